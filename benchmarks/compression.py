"""Compression at rest: what it saves and what it costs, on a 1 KiB and a 50 KiB session.

Each payload is a session's envelope as the engine stores it (a cart of the demo shop's
products, grown to size): its bytes at rest without compression, with zlib and with zstd, and
the time to compress it and to decompress it. The time is the median of interleaved rounds (the
two algorithms one after the other in every round, so that the machine's drift reaches them alike),
in microseconds per operation. The two operations run once per write (compress) and once per
request that loads the session (decompress); a session under ``compress_over`` (1 KiB by
default) costs neither, only a length comparison.

Run with ``python -m benchmarks.run --only compression``.
"""

from __future__ import annotations

import datetime
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard

from coatcheck import codec, compression

from .report import described, own_run, table

SIZES = {"1 KiB": 1024, "50 KiB": 50 * 1024}
ROUNDS = 21
"""Interleaved rounds; the median is reported."""
TARGET_SECONDS = 0.02
"""How long one timed batch of one operation runs, about."""


def payload(size: int) -> bytes:
    """A session envelope of about ``size`` bytes: the demo shop's cart, with a device and a
    CSRF token, as the engine encodes it."""
    items = []
    n = 0
    while True:
        items.append({"product_id": f"wool-coat-{n % 9}", "quantity": 1 + n % 3, "size": "M"})
        data = {"cart": items, "device": "Firefox 133 on Linux", "seen": n}
        blob = codec.envelope(codec.serialize(data), 1_765_000_000.0, 1_765_000_000.0)
        if len(blob) >= size:
            return blob
        n += 1


def _per_op(work: Callable[[], object]) -> float:
    """Microseconds per call of ``work``, timed over a batch of about TARGET_SECONDS."""
    count = 1
    while True:
        begun = time.perf_counter()
        for _ in range(count):
            work()
        spent = time.perf_counter() - begun
        if spent >= TARGET_SECONDS:
            return spent / count * 1e6
        count *= 2


@dataclass
class Way:
    """One way to store a payload: its bytes, and its cost each way (µs per operation)."""

    name: str
    stored: int
    compress_us: list[float] = field(default_factory=list)
    decompress_us: list[float] = field(default_factory=list)


@dataclass
class CompressionResult:
    ways: dict[str, dict[str, Way]]
    """Payload name to way name to its measurement."""
    measured_at: str
    zstd_version: str

    def markdown(self, command: str = "scripts/bench --only compression") -> str:
        lines = [
            *own_run(
                self.measured_at,
                f"zlib: {zlib.ZLIB_RUNTIME_VERSION} (level {compression.ZLIB_LEVEL}), "
                f"zstandard: {self.zstd_version} (level {compression.ZSTD_LEVEL})",
            ),
            described(__doc__),
            "",
            f"Reproduce: `{command}`",
            "",
        ]
        rows = []
        for size, ways in self.ways.items():
            plain = ways["none"].stored
            for way in ways.values():
                compress = statistics.median(way.compress_us) if way.compress_us else None
                decompress = statistics.median(way.decompress_us) if way.decompress_us else None
                rows.append(
                    [
                        size,
                        way.name,
                        f"{way.stored:,}",
                        f"{way.stored / plain:.0%}",
                        "" if compress is None else f"{compress:.1f}",
                        "" if decompress is None else f"{decompress:.1f}",
                    ]
                )
        headers = ["payload", "stored as", "bytes at rest", "of plain", "compress µs", "load µs"]
        lines.append(table(headers, rows, left=2))
        return "\n".join(lines)


def _round(ways: dict[str, Way], blob: bytes, packed_zlib: bytes, packed_zstd: bytes) -> None:
    """One round: each way's compression and decompression, one after the other."""
    ways["zlib"].compress_us.append(_per_op(lambda: zlib.compress(blob, compression.ZLIB_LEVEL)))
    ways["zstd"].compress_us.append(_per_op(lambda: compression.compress(blob)))  # as the engine
    ways["zlib"].decompress_us.append(_per_op(lambda: compression.decompress(packed_zlib)))
    ways["zstd"].decompress_us.append(_per_op(lambda: compression.decompress(packed_zstd)))


def measure(rounds: int = ROUNDS) -> CompressionResult:
    """Measure every payload every way, interleaved, ``rounds`` times."""
    ways: dict[str, dict[str, Way]] = {}
    for name, size in SIZES.items():
        blob = payload(size)
        packed_zlib = compression.ZLIB + zlib.compress(blob, compression.ZLIB_LEVEL)
        packed_zstd = compression.compress(blob)
        assert packed_zstd.startswith(compression.ZSTD), "the compression extra is installed"
        assert compression.decompress(packed_zlib) == compression.decompress(packed_zstd) == blob
        ways[name] = {
            "none": Way("plain JSON", len(blob)),
            "zlib": Way("zlib", len(packed_zlib)),
            "zstd": Way("zstd", len(packed_zstd)),
        }
        for _ in range(rounds):
            _round(ways[name], blob, packed_zlib, packed_zstd)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return CompressionResult(ways, now, zstandard.__version__)


if __name__ == "__main__":  # pragma: no cover
    print(measure().markdown())
