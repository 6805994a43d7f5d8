"""CSRF defences: a synchronizer token per session, masked per response, and Origin checks.

The token lives with the session on the server (never in the data dict). Pages embed
``session.csrf_token()``, which is the token XORed with a fresh random pad, so no two
responses carry the same bytes (BREACH cannot recover it from compressed pages). The
middleware checks unsafe requests: first the browser's ``Sec-Fetch-Site`` and ``Origin``
headers, then, in ``csrf="token"`` mode, the token from a header or a form field.

>>> token = new_token()
>>> first, second = mask(token), mask(token)
>>> first != second and matches(first, token) and matches(second, token)
True
>>> matches(mask(new_token()), token)
False
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Collection
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

TOKEN_BYTES = 32
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def new_token() -> str:
    """A fresh secret token: 256 random bits, base64url."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def mask(token: str) -> str:
    """The token as one response carries it: a random pad, then the token XORed with it."""
    raw = _decode(token) or b""
    pad = secrets.token_bytes(len(raw))
    return _encode(pad + bytes(a ^ b for a, b in zip(pad, raw, strict=True)))


def matches(submitted: str, token: str) -> bool:
    """Whether ``submitted`` (as :func:`mask` made it) carries ``token``; constant time."""
    if not submitted or len(submitted) > 200 or not submitted.isascii():
        return False
    raw, expected = _decode(submitted), _decode(token)
    if raw is None or expected is None or len(raw) != 2 * len(expected) or not expected:
        return False
    pad, masked = raw[: len(expected)], raw[len(expected) :]
    return hmac.compare_digest(bytes(a ^ b for a, b in zip(pad, masked, strict=True)), expected)


def _netloc(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    if port is None or str(port) == DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def _host(host_header: str) -> str:
    host = host_header.strip().lower()
    for port in DEFAULT_PORTS.values():
        host = host.removesuffix(f":{port}")
    return host


def origin_problem(
    sec_fetch_site: str | None,
    origin: str | None,
    host: str | None,
    trusted_origins: Collection[str] = (),
) -> str | None:
    """Why an unsafe request's browser headers show it came from another site; None if not.

    A request without these headers (an old browser, a non-browser client) passes this check;
    the token check is what stops a forged one.
    """
    cross_site = sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site"
    if cross_site and (origin is None or origin.strip() not in trusted_origins):
        return "cross-site request (Sec-Fetch-Site)"
    if origin is None:
        return None
    origin = origin.strip()
    if origin in trusted_origins:
        return None
    if origin == "null":
        return "opaque origin (Origin: null)"
    netloc = _netloc(origin)
    if netloc is None or host is None or netloc.lower() != _host(host):
        return "cross-origin request (Origin does not match Host)"
    return None


_MULTIPART_FIELD = re.compile(
    rb'content-disposition:\s*form-data;\s*name="(?P<name>[^"]*)"\r\n\r\n(?P<value>[^\r]*)\r\n',
    re.IGNORECASE,
)


def form_token(content_type: str, body: bytes, field: str) -> str | None:
    """The token a submitted form carries in ``field``, or None."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            return None
        for name, value in pairs:
            if name == field:
                return value
        return None
    if kind == "multipart/form-data":
        wanted = field.encode("ascii", "replace")
        for found in _MULTIPART_FIELD.finditer(body):
            if found["name"] == wanted:
                return found["value"].decode("ascii", "replace")
    return None


FORM_LIMIT = 1024 * 1024
"""Largest form body the middleware reads to find a token field (larger: send the header)."""


class CsrfPolicy(Protocol):
    """The options a CSRF check reads (a :class:`~coatcheck.config.SessionConfig`)."""

    @property
    def csrf(self) -> str: ...
    @property
    def csrf_exempt(self) -> tuple[str, ...]: ...
    @property
    def trusted_origins(self) -> tuple[str, ...]: ...


class TokenHolder(Protocol):
    def csrf_matches(self, submitted: str | None) -> bool: ...


def applies(policy: CsrfPolicy, method: str, path: str) -> bool:
    """Whether a request is checked at all: an unsafe method on a path not exempted."""
    return (
        policy.csrf != "off"
        and method in UNSAFE_METHODS
        and not any(path.startswith(prefix) for prefix in policy.csrf_exempt)
    )


def handshake_problem(
    policy: CsrfPolicy, path: str, origin: str | None, host: str | None
) -> str | None:
    """Why a WebSocket handshake comes from another site (cross-site WebSocket hijacking), or
    None. Browsers always send ``Origin`` on a handshake; ``csrf="off"`` and exempt paths skip
    the check."""
    if policy.csrf == "off" or any(path.startswith(prefix) for prefix in policy.csrf_exempt):
        return None
    return origin_problem(None, origin, host, policy.trusted_origins)


def wants_form(policy: CsrfPolicy, header_token: str | None, content_type: str | None) -> bool:
    """Whether the token must be looked for in the body: token mode, no header, a form."""
    return (
        policy.csrf == "token"
        and header_token is None
        and content_type is not None
        and content_type.split(";", 1)[0].strip().lower() in FORM_TYPES
    )


def verdict(
    policy: CsrfPolicy,
    session: TokenHolder,
    *,
    sec_fetch_site: str | None,
    origin: str | None,
    host: str | None,
    submitted: str | None,
) -> str | None:
    """Why a checked request is refused, or None when it passes."""
    problem = origin_problem(sec_fetch_site, origin, host, policy.trusted_origins)
    if problem is not None or policy.csrf != "token":
        return problem
    if not submitted:
        return "no CSRF token"
    if not session.csrf_matches(submitted):
        return "wrong CSRF token"
    return None


FORBIDDEN_BODY = b"Forbidden: the request failed its CSRF check.\n"
