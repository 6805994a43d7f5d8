"""The shop's demo users and how a password is checked (scrypt, a memory-hard KDF).

The user table holds only a salt and a derived key per user, as a real one would; the three
demo users all have the password ``coatcheck`` (shown on the login page).

>>> authenticate("alice", "coatcheck")
'alice'
>>> authenticate("alice", "guess") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

DEMO_PASSWORD = "coatcheck"  # noqa: S105 - the demo users' password, shown on the login page


class PasswordHash(NamedTuple):
    """An scrypt-derived key and the salt it was derived with."""

    salt: bytes
    key: bytes


# scrypt's cost: 16 MiB of memory and some tens of milliseconds per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32


def derive(password: str, salt: bytes) -> bytes:
    """The scrypt key of ``password`` with ``salt``."""
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=KEY_BYTES,
    )


def _stored(salt: str, key: str) -> PasswordHash:
    return PasswordHash(bytes.fromhex(salt), bytes.fromhex(key))


USERS: dict[str, PasswordHash] = {
    "alice": _stored(
        "7c2066c26ddc94c3160a9ce167199783",
        "aea20c89b4f902b85b0ce99743a681602c2596ac1ce90fa21a91256fe34c163f",
    ),
    "bob": _stored(
        "f285d3fe2da32a08685868f0be583cbd",
        "a037df89c4f0b8f6dcf9c86f934000a8b9a884f5e262306068efbd310a121483",
    ),
    "carol": _stored(
        "66cfd5f72a8a72cac393aed02708cf36",
        "7b3d056108f2b2aa2772281081b314d51e30c216aefc7eb3efeedac18ff9fcfe",
    ),
}
"""Username to password hash; every one is a hash of :data:`DEMO_PASSWORD`."""

_NOBODY = PasswordHash(b"\0" * 16, b"\0" * KEY_BYTES)
"""Checked against for an unknown name, so that it takes as long as a wrong password."""


def authenticate(username: str, password: str) -> str | None:
    """The username when ``password`` is that user's, else None (same cost either way)."""
    stored = USERS.get(username, _NOBODY)
    matches = hmac.compare_digest(derive(password, stored.salt), stored.key)
    return username if matches and username in USERS else None
