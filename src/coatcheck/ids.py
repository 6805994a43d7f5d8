"""Session IDs: how they are made, how a cookie value is checked, and how they are hashed at rest.

An ID is 256 bits from :mod:`secrets`, written as 43 URL-safe base64 characters. Stores never see
it: they are given :func:`store_key`, a SHA-256 (or, with a secret, HMAC-SHA-256) hex digest, so a
dump of the store yields no usable cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ID_BYTES = 32
ID_LENGTH = 43  # ceil(32 * 8 / 6), unpadded base64url

# 43 characters carry 258 bits; the last one holds only 4 of them, so its two low bits are zero.
# Accepting only the canonical last characters means each ID has exactly one spelling.
_ID_FORMAT = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


def new_id() -> str:
    """Return a fresh session ID: 256 random bits, URL-safe, 43 characters."""
    return secrets.token_urlsafe(ID_BYTES)


def is_well_formed(value: str) -> bool:
    """Tell whether ``value`` is exactly of the ID format (checked before any store call)."""
    return len(value) == ID_LENGTH and _ID_FORMAT.fullmatch(value) is not None


def store_key(session_id: str, secret: bytes | None = None) -> str:
    """Return the key under which a store keeps ``session_id``: a 64-character hex digest.

    With ``secret``, the digest is an HMAC, so even a guessed ID cannot be checked against a
    stolen dump without the secret.
    """
    raw = session_id.encode("ascii")
    if secret is None:
        return hashlib.sha256(raw).hexdigest()
    return hmac.new(secret, raw, hashlib.sha256).hexdigest()


FINGERPRINT_LENGTH = 16


def fingerprint(key: str) -> str:
    """A short name for a stored session, safe to show, log or pass around: 16 hex digits.

    It is a prefix of the store key (itself a hash of the ID), so it identifies the record
    without being usable as a cookie or revealing the ID.

    >>> fingerprint(store_key("A" * 43))
    '0f007385b6f9d4b7'
    """
    return key[:FINGERPRINT_LENGTH]
