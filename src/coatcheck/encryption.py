"""Encryption at rest: AES-256-GCM of what a store holds, under a ring of keys.

A :class:`KeyRing` encrypts with its newest key and decrypts with any of them, so keys rotate
without a flag day: put the new key first, keep the old ones until ``coatcheck rekey`` (or the
sessions' own expiry) has moved every record to the new key, then drop them. The record's store
key is the associated data, so a ciphertext moved to another record does not decrypt.

A sealed record is ``MAGIC (4 bytes) | key id (4) | nonce (12) | ciphertext and tag``; the
magic cannot begin JSON, so sealed and plain records are told apart without guessing.

>>> ring = KeyRing([bytes(32)])
>>> sealed = ring.seal(b'{"d":{}}', "a-store-key")
>>> ring.open(sealed, "a-store-key")
b'{"d":{}}'
>>> ring.open(sealed, "another-key")
Traceback (most recent call last):
...
coatcheck.codec.DecodeError: stored session fails authentication: tampered?
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Callable
from collections.abc import Iterable as Many
from dataclasses import dataclass

from . import compression
from .codec import DecodeError
from .limits import is_counter
from .stores.base import Iterable, NotSupported, Store

MAGIC = b"\x00cc1"
KEY_BYTES = 32
_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + _ID_BYTES + _NONCE_BYTES


class InvalidKey(ValueError):
    """An encryption key is not 32 bytes (or their unpadded base64url spelling)."""


def parse_key(key: bytes | str) -> bytes:
    """A 32-byte key from raw bytes or from base64url text (as ``coatcheck keygen`` prints)."""
    if isinstance(key, str):
        try:
            raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except (binascii.Error, ValueError):
            raise InvalidKey("an encryption key given as text must be base64url") from None
    elif isinstance(key, bytes):
        raw = key
    else:
        raise InvalidKey(f"an encryption key must be bytes or str, not {type(key).__name__}")
    if len(raw) != KEY_BYTES:
        raise InvalidKey(f"an encryption key must be {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def seal(
    ring: KeyRing | None, blob: bytes, store_key: str, compress_over: int | None = None
) -> bytes:
    """What a store is given for ``blob``: the blob itself, compressed when it is larger than
    ``compress_over`` bytes (:mod:`coatcheck.compression`), then, with a ``ring``, sealed."""
    if compress_over is not None and len(blob) > compress_over:
        blob = compression.compress(blob)
    return blob if ring is None else ring.seal(blob, store_key)


def unseal(ring: KeyRing | None, data: bytes, store_key: str) -> bytes:
    """The envelope a stored record holds (opened when there is a ``ring``, decompressed when
    compressed); DecodeError if no key of the ring opens it, or it does not decompress."""
    if ring is not None:
        data = ring.open(data, store_key)
    if data and data[0] == 0:  # marked (compressed); an envelope begins with "{"
        return compression.decompress(data)
    return data


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is a sealed record (as opposed to a plain JSON envelope)."""
    return data.startswith(MAGIC)


class KeyRing:
    """AES-256-GCM keys, newest first: seals with the first, opens with whichever sealed it."""

    def __init__(self, keys: Many[bytes | str]) -> None:
        try:
            from cryptography.exceptions import InvalidTag  # noqa: PLC0415
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ImportError(
                "encryption at rest needs the cryptography package: "
                "pip install 'coatcheck[encryption]'"
            ) from exc
        parsed = [parse_key(key) for key in keys]
        if not parsed:
            raise InvalidKey("a key ring needs at least one key")
        self._ciphers = {hashlib.sha256(key).digest()[:_ID_BYTES]: AESGCM(key) for key in parsed}
        if len(self._ciphers) != len(parsed):
            raise InvalidKey("the key ring holds the same key twice")
        self._current_id = hashlib.sha256(parsed[0]).digest()[:_ID_BYTES]
        self._current = self._ciphers[self._current_id]
        self._invalid: type[Exception] = InvalidTag

    def seal(self, plaintext: bytes, store_key: str) -> bytes:
        """Encrypt ``plaintext`` for the record at ``store_key`` with the newest key."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext, store_key.encode("ascii"))
        return MAGIC + self._current_id + nonce + sealed

    def open(self, data: bytes, store_key: str) -> bytes:
        """Decrypt a record sealed by any key of the ring; :class:`DecodeError` otherwise."""
        if not data.startswith(MAGIC) or len(data) < _HEADER + 16:
            raise DecodeError("stored session is not encrypted, but encryption is configured")
        key_id = data[len(MAGIC) : len(MAGIC) + _ID_BYTES]
        cipher = self._ciphers.get(key_id)
        if cipher is not None:
            nonce = data[len(MAGIC) + _ID_BYTES : _HEADER]
            try:
                return bytes(cipher.decrypt(nonce, data[_HEADER:], store_key.encode("ascii")))
            except self._invalid:  # tampered, or another record's data
                raise DecodeError("stored session fails authentication: tampered?") from None
        raise DecodeError("stored session does not decrypt with any key of the ring")

    def is_current(self, data: bytes) -> bool:
        """Whether ``data`` is sealed under the newest key (``rekey`` leaves such records)."""
        return data[len(MAGIC) : len(MAGIC) + _ID_BYTES] == self._current_id and is_sealed(data)


@dataclass
class RekeyReport:
    """What :func:`rekey` did: records moved to the newest key, and those it left alone."""

    rekeyed: int = 0
    current: int = 0
    """Already sealed with the newest key."""
    unreadable: int = 0
    """Opened with no key of the ring (left as they are; they fail to load anyway)."""
    changed: int = 0
    """Written by a request while being rekeyed: sealed by the engine, with the newest key."""


def rekey(
    store: Store,
    ring: KeyRing,
    *,
    now: float | None = None,
    on_record: Callable[[], None] | None = None,
) -> RekeyReport:
    """Seal every live record of ``store`` with the ring's newest key (plain records too).

    Each record is rewritten with compare-and-set on its version, so a session that a request
    writes meanwhile is never overwritten with older data. Needs a store that can list its
    records (:class:`~coatcheck.stores.base.Iterable`).
    """
    if not isinstance(store, Iterable):
        raise NotSupported(f"{type(store).__name__} cannot list its records to rekey them")
    moment = time.time() if now is None else now
    report = RekeyReport()
    for record in list(store.iter_records()):
        if on_record is not None:
            on_record()
        if record.expires_at <= moment or is_counter(record):
            continue
        if ring.is_current(record.data):
            report.current += 1
            continue
        try:
            plain = ring.open(record.data, record.key) if is_sealed(record.data) else record.data
        except DecodeError:
            report.unreadable += 1
            continue
        resealed = record._replace(data=ring.seal(plain, record.key), version=record.version + 1)
        if store.save(resealed, record.version):
            report.rekeyed += 1
        else:
            report.changed += 1
    return report
