"""Compression at rest (coatcheck.compression): large sessions stored compressed, every record
loading whichever way it was written, and compressed bytes treated as the untrusted input they
are. That every store keeps compressed records whole is the store conformance suite's
``test_a_large_session_is_kept_compressed_and_loads_whole``."""

from __future__ import annotations

import zlib

import pytest

from coatcheck import compression
from coatcheck.backup import export_sessions, import_sessions
from coatcheck.codec import DecodeError
from coatcheck.config import ConfigError, SessionConfig
from coatcheck.encryption import MAGIC, KeyRing, seal, unseal
from coatcheck.ids import store_key
from coatcheck.stores import MemoryStore
from coatcheck.testing import Harness, cookie_id

CART = {"cart": [{"product": f"wool-coat-{n % 7}", "size": "M", "quantity": 1} for n in range(400)]}
"""A session of about 20 KB that compresses well, as real ones do (repeated keys)."""


@pytest.fixture(params=["zstd", "zlib"])
def algorithm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with zstd (the compression extra) and again as if it were not installed."""
    if request.param == "zlib":
        monkeypatch.setattr(compression, "_zstd", None)
    assert compression.algorithm() == request.param
    chosen: str = request.param
    return chosen


@pytest.fixture
def harness() -> Harness:
    return Harness(MemoryStore(), None)


def stored(harness: Harness, session_id: str) -> bytes:
    record = harness.call("load", store_key(session_id))
    assert record is not None
    data: bytes = record.data
    return data


def test_a_session_past_the_threshold_is_stored_compressed_and_loads(
    harness: Harness, algorithm: str
) -> None:
    session_id = harness.new_session(**CART)
    data = stored(harness, session_id)
    mark = compression.ZSTD if algorithm == "zstd" else compression.ZLIB
    assert data.startswith(mark)
    assert len(data) * 5 < len(compression.decompress(data))
    assert dict(harness.load(session_id)) == CART


def test_a_small_session_is_stored_as_json(harness: Harness, algorithm: str) -> None:
    session_id = harness.new_session(cart=["tea"])
    assert stored(harness, session_id).startswith(b"{")


def test_compress_over_none_never_compresses(harness: Harness) -> None:
    harness.engine = harness.engine_with(compress_over=None)
    session_id = harness.new_session(**CART)
    assert stored(harness, session_id).startswith(b"{")
    assert dict(harness.load(session_id)) == CART


def test_records_written_either_way_load_whichever_way_new_ones_are_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records from before compression (plain JSON), and zlib ones after zstd is installed (or
    the other way round), all load; a write after a load keeps working."""
    plain = harness.engine_with(compress_over=None)
    old = harness.run(plain.load(None))
    old.update(CART)
    plain_id = cookie_id(harness.run(plain.commit(old)))
    monkeypatch.setattr(compression, "_zstd", None)
    zlib_id = harness.new_session(**CART)
    assert stored(harness, zlib_id).startswith(compression.ZLIB)
    monkeypatch.undo()
    assert compression.algorithm() == "zstd"
    for session_id in (plain_id, zlib_id):
        session = harness.load(session_id)
        assert dict(session) == CART
        session["more"] = "x"
        harness.commit(session)
        assert stored(harness, session_id).startswith(compression.ZSTD)
        assert harness.load(session_id)["more"] == "x"


def test_with_encryption_it_is_compressed_then_sealed(harness: Harness, algorithm: str) -> None:
    key = bytes(range(32))
    harness.engine = harness.engine_with(encryption_keys=(key,))
    session_id = harness.new_session(**CART)
    data = stored(harness, session_id)
    assert data.startswith(MAGIC)
    assert len(data) < 4_000  # ciphertext does not compress: it was compressed first
    assert dict(harness.load(session_id)) == CART
    opened = KeyRing([key]).open(data, store_key(session_id))
    assert compression.is_compressed(opened)


def test_seal_and_unseal_keep_small_blobs_as_they_are() -> None:
    blob = b'{"d":{"a":1}}'
    assert seal(None, blob, "k", 1024) == blob
    assert unseal(None, blob, "k") == blob
    packed = seal(None, blob * 200, "k", 1024)
    assert compression.is_compressed(packed)
    assert unseal(None, packed, "k") == blob * 200


# -- stored data is untrusted -----------------------------------------------------------------


def bomb(algorithm: str) -> bytes:
    """A record that inflates past the limit (32 MiB of zeros, some 32 KB compressed)."""
    size = compression.DECOMPRESSED_LIMIT * 2
    if algorithm == "zlib":
        return compression.ZLIB + zlib.compress(bytes(size), 9)
    import zstandard

    return compression.ZSTD + zstandard.ZstdCompressor(level=3).compress(bytes(size))


def test_a_zstd_frame_of_unstated_size_is_read_up_to_the_limit_only() -> None:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False)
    data = compression.ZSTD + compressor.compress(bytes(compression.DECOMPRESSED_LIMIT * 2))
    with pytest.raises(DecodeError, match="limit"):
        compression.decompress(data)
    small = compression.ZSTD + compressor.compress(b'{"d":{}}' * 100)
    assert compression.decompress(small) == b'{"d":{}}' * 100


@pytest.mark.parametrize("algorithm_of_bomb", ["zlib", "zstd"])
def test_a_record_that_inflates_past_the_limit_is_refused(algorithm_of_bomb: str) -> None:
    data = bomb(algorithm_of_bomb)
    assert len(data) < 4 * 1024 * 1024
    with pytest.raises(DecodeError, match="limit"):
        compression.decompress(data)


@pytest.mark.parametrize(
    "data",
    [
        compression.ZLIB + b"not zlib at all",
        compression.ZSTD + b"not zstd at all",
        compression.ZLIB + zlib.compress(b'{"d":{}}' * 100)[:-6],  # truncated
        compression.ZLIB,
        compression.ZSTD,
    ],
)
def test_bytes_that_do_not_decompress_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        compression.decompress(data)


@pytest.mark.parametrize(
    "data",
    [
        bomb("zlib"),
        compression.ZLIB + b"garbage",
        compression.ZSTD + b"garbage",
        compression.ZLIB + zlib.compress(b"[1, 2, 3]"),  # decompresses to no envelope
    ],
)
def test_such_a_record_gives_a_fresh_session_and_a_rejected_event(
    harness: Harness, data: bytes
) -> None:
    session_id = harness.new_session(cart=["tea"])
    record = harness.call("load", store_key(session_id))
    harness.call("save", record._replace(data=data, version=record.version + 1), record.version)
    session = harness.load(session_id)
    assert session.is_new
    assert dict(session) == {}
    assert [(e.kind, e.reason) for e in harness.events][-1] == ("rejected", "undecodable")


def test_a_zstd_record_without_zstandard_installed_is_refused_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packed = compression.compress(b'{"d":{}}' * 200)
    assert packed.startswith(compression.ZSTD)
    monkeypatch.setattr(compression, "_zstd", None)
    with pytest.raises(DecodeError, match="zstd"):
        compression.decompress(packed)


@pytest.mark.parametrize("value", [-1, 1.5, "1024", True])
def test_compress_over_is_none_or_a_count_of_bytes(value: object) -> None:
    with pytest.raises(ConfigError, match="compress_over"):
        SessionConfig(compress_over=value)  # type: ignore[arg-type]
    assert SessionConfig(compress_over=0).compress_over == 0
    assert SessionConfig().compress_over == compression.COMPRESS_OVER


def test_export_and_import_keep_compressed_records_as_they_are(harness: Harness) -> None:
    """docs/operations.md: compressed records are exported as stored and imported back."""
    session_id = harness.new_session(**CART)
    lines: list[str] = []
    export_sessions(harness.store, lines.append, clock=harness.clock)  # type: ignore[arg-type]
    assert len(lines) == 1
    other = Harness(MemoryStore(), None)
    other.clock = harness.clock
    other.engine = other.engine_with()
    import_sessions(other.store, lines, clock=harness.clock)  # type: ignore[arg-type]
    assert stored(other, session_id) == stored(harness, session_id)
    assert compression.is_compressed(stored(other, session_id))
    assert dict(other.load(session_id)) == CART
