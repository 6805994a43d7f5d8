"""MemoryStore purge scaling: the time to purge 1k expired sessions among 10k, and among 1M.

The live sessions expire over the next 30 minutes (one idle timeout), the expired ones over the
last minute, all as Records put in with ``create()`` under 64-hex keys like the engine's. Each
repeat adds 1k freshly expired records to each store and times ``purge_expired(now)`` alone, the
stores taking turns and the cyclic garbage collector paused (as ``timeit`` does); the report takes
the median of the repeats.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from coatcheck.stores import MemoryStore, Record

from .report import Target, median, table

EXPIRED = 1_000
TOTALS = (10_000, 1_000_000)
REPEATS = 31
LIVE_SPAN = 30 * 60.0
EXPIRED_SPAN = 60.0
TARGET_RATIO = 2.0
BLOB = b'{"c":1700000000.0,"a":1700000000.0,"d":{}}'
"""One data object shared by every record: the purge never reads it."""


@dataclass(frozen=True)
class PurgeResult:
    total: int
    seconds: list[float]

    @property
    def median_seconds(self) -> float:
        return median(self.seconds)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _key(number: int) -> str:
    return hashlib.sha256(number.to_bytes(8, "big")).hexdigest()


def _live_store(total: int, now: float) -> MemoryStore:
    store = MemoryStore()
    live = total - EXPIRED
    for number in range(live):
        store.create(Record(_key(number), BLOB, now + LIVE_SPAN * (number + 1) / live))
    return store


def _time_purge(store: MemoryStore, now: float, first: int) -> float:
    """Add EXPIRED expired records (keys numbered from ``first``), then time one purge."""
    for number in range(EXPIRED):
        expires_at = now - EXPIRED_SPAN * (number + 1) / EXPIRED
        store.create(Record(_key(first + number), BLOB, expires_at))
    live = len(store) - EXPIRED
    start = time.perf_counter()
    purged = store.purge_expired(now)
    elapsed = time.perf_counter() - start
    if purged != EXPIRED or len(store) != live:
        raise RuntimeError(f"purged {purged} of {EXPIRED}, {len(store)} left of {live}")
    return elapsed


def measure() -> list[PurgeResult]:
    """Time the purges of every store size, alternating between them so drift hits all alike."""
    # Half-way through a second: the live sessions that expire later in it share the bucket
    # of ``now``, which every purge must look through, as in a running server.
    now = math.floor(time.time()) + 0.5
    with _collector_paused():
        stores = [_live_store(total, now) for total in TOTALS]
        seconds: list[list[float]] = [[] for _ in TOTALS]
        for repeat in range(REPEATS):
            for total, store, times in zip(TOTALS, stores, seconds, strict=True):
                times.append(_time_purge(store, now, total + repeat * EXPIRED))
        del stores
    gc.collect()
    return [PurgeResult(total, times) for total, times in zip(TOTALS, seconds, strict=True)]


def _ratio(result: PurgeResult, small: PurgeResult) -> float:
    """The median over repeats of the time against the smallest store's in the same repeat."""
    return median(ours / theirs for ours, theirs in zip(result.seconds, small.seconds, strict=True))


def target(results: list[PurgeResult]) -> Target:
    small, large = results[0], results[-1]
    ratio = _ratio(large, small)
    return Target(
        f"purge among {large.total:,} within {TARGET_RATIO:g}x of among {small.total:,}",
        f"{ratio:.2f}x",
        ratio <= TARGET_RATIO,
    )


def markdown(results: list[PurgeResult]) -> str:
    small = results[0]
    rows = [
        (
            f"{result.total:,}",
            f"{EXPIRED:,}",
            f"{result.median_seconds * 1e3:.3f}",
            f"{result.median_seconds / EXPIRED * 1e6:.2f}",
            f"{min(result.seconds) * 1e3:.3f}-{max(result.seconds) * 1e3:.3f}",
            f"{_ratio(result, small):.2f}x",
        )
        for result in results
    ]
    headers = ["sessions", "expired", "median ms", "us per purged", "range ms", "ratio"]
    return f"""\
`purge_expired(now)` on a `MemoryStore` holding {EXPIRED:,} expired sessions (expiring over the
last {EXPIRED_SPAN:g} s) among the total, the others expiring over the next {LIVE_SPAN:g} s;
{REPEATS} repeats, each with {EXPIRED:,} newly expired records, the sizes taking turns, the
garbage collector paused during the timing. The ratio is the median over repeats of the time
against the smallest store's time in the same repeat.

{table(headers, rows)}
"""
