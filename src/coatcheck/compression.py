"""Compression at rest: large sessions are stored compressed, marked so that any record loads.

A session's envelope whose size passes ``compress_over`` (a :class:`~coatcheck.config.SessionConfig`
option, 1 KiB by default) is compressed before it is stored (and before it is encrypted, when
it is: ciphertext does not compress): with zstd when the ``zstandard`` package is installed
(the ``compression`` extra), with the standard library's zlib otherwise. A compressed record
begins with a mark that no JSON envelope (``{``) and no sealed record can begin with, and names
its algorithm, so records written before compression was on, or with the other algorithm, load
as they are.

Stored data is untrusted: a record is decompressed into at most :data:`DECOMPRESSED_LIMIT`
bytes (a "zip bomb" written into the store is refused, not inflated), and one that does not
decompress is a :class:`~coatcheck.codec.DecodeError`, as any undecodable record (the request
gets a fresh session).

>>> blob = b'{"d":{"notes":"' + b"tea " * 1000 + b'"}}'
>>> packed = compress(blob)
>>> len(blob), len(packed) < 100, decompress(packed) == blob
(4018, True, True)
>>> decompress(b'{"d":{}}')  # not compressed: as it is
b'{"d":{}}'
"""

from __future__ import annotations

import io
import threading
import zlib
from typing import Any

from .codec import DecodeError

ZLIB = b"\x00cz1"
"""The mark of a record compressed with zlib."""
ZSTD = b"\x00cs1"
"""The mark of a record compressed with zstd."""
MARK_LENGTH = 4
COMPRESS_OVER = 1024
"""The default ``compress_over``: envelopes larger than this many bytes are stored compressed."""
DECOMPRESSED_LIMIT = 16 * 1024 * 1024
"""The most bytes one record decompresses into; past it, the record is refused."""
ZLIB_LEVEL = 6
ZSTD_LEVEL = 3

_zstd: Any
try:
    import zstandard as _zstd
except ImportError:  # the compression extra is not installed: zlib
    _zstd = None


def algorithm() -> str:
    """What new records are compressed with: ``"zstd"`` or ``"zlib"``."""
    return "zstd" if _zstd is not None else "zlib"


class _Contexts(threading.local):
    """zstd's compression and decompression contexts, one pair per thread (a context is not
    safe to share between threads, and making one costs more than using it)."""

    def __init__(self) -> None:
        self.compressor = _zstd.ZstdCompressor(level=ZSTD_LEVEL)
        self.decompressor = _zstd.ZstdDecompressor()


_contexts: _Contexts | None = None


def _zstd_contexts() -> _Contexts:
    global _contexts  # noqa: PLW0603 - made on first use, when zstd is in use
    if _contexts is None:
        _contexts = _Contexts()
    return _contexts


def compress(blob: bytes) -> bytes:
    """``blob`` compressed and marked (zstd when installed, zlib otherwise)."""
    if _zstd is not None:
        packed: bytes = _zstd_contexts().compressor.compress(blob)
        return ZSTD + packed
    return ZLIB + zlib.compress(blob, ZLIB_LEVEL)


def is_compressed(data: bytes) -> bool:
    """Whether ``data`` is a compressed record (of either algorithm)."""
    return data[:MARK_LENGTH] in (ZLIB, ZSTD)


def decompress(data: bytes) -> bytes:
    """The bytes a compressed record holds; any other ``data`` as it is. DecodeError for a
    record that does not decompress, or would be larger than :data:`DECOMPRESSED_LIMIT`."""
    mark = data[:MARK_LENGTH]
    if mark in (ZLIB, ZSTD) and len(data) == MARK_LENGTH:
        raise DecodeError("stored session is marked compressed, and holds nothing")
    if mark == ZLIB:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data[MARK_LENGTH:], DECOMPRESSED_LIMIT)
        except zlib.error:
            raise DecodeError("stored session does not decompress (zlib)") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise DecodeError("stored session is truncated or decompresses past the limit")
        return out
    if mark == ZSTD:
        if _zstd is None:
            raise DecodeError(
                "stored session is compressed with zstd: pip install 'coatcheck[compression]'"
            )
        frame = data[MARK_LENGTH:]
        decompressor = _zstd_contexts().decompressor
        try:
            # A frame that states its size is decompressed into that much and no more (it
            # fails if it holds more); one that does not is read up to the limit.
            size = _zstd.frame_content_size(frame)
            if size > DECOMPRESSED_LIMIT:
                raise DecodeError("stored session decompresses past the limit")
            if size >= 0:
                return bytes(decompressor.decompress(frame))
            out = decompressor.stream_reader(io.BytesIO(frame)).read(DECOMPRESSED_LIMIT + 1)
        except _zstd.ZstdError:
            raise DecodeError("stored session does not decompress (zstd)") from None
        if len(out) > DECOMPRESSED_LIMIT:
            raise DecodeError("stored session decompresses past the limit")
        return bytes(out)
    return data
