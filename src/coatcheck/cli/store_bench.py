"""What ``coatcheck bench`` measures: the latency of a store's calls, as one client sees them.

It creates ``sessions`` records of its own (random keys, an envelope of about ``size`` bytes,
an expiry a few minutes past the run so that anything left behind by a crash dies by itself),
then for ``seconds`` loads, saves and touches them in random order, one call at a time, and
deletes them all at the end, even when interrupted.

>>> from coatcheck.stores import MemoryStore
>>> store = MemoryStore()
>>> result = measure(store, sessions=10, seconds=0.01)
>>> sorted(result.latencies), len(store)
(['create', 'delete', 'load', 'save', 'touch'], 0)
"""

from __future__ import annotations

import dataclasses
import math
import random
import secrets
import time
from collections.abc import Callable
from typing import TypeVar

from .. import codec
from ..stores import Record, Store

T = TypeVar("T")

OPERATIONS = ("load", "save", "touch", "create", "delete")
LEFTOVER_LIFETIME = 300.0
"""Seconds past the run after which a record the bench failed to delete expires anyway."""


@dataclasses.dataclass
class BenchResult:
    """Each call's latencies in seconds, and the wall time of the load/save/touch loop."""

    latencies: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    loop_seconds: float = 0.0

    def timed(self, operation: str, call: Callable[..., T], *args: object) -> T:
        """Call ``call(*args)``, adding its latency to ``operation``'s."""
        started = time.perf_counter()
        result = call(*args)
        self.latencies.setdefault(operation, []).append(time.perf_counter() - started)
        return result

    def percentile(self, operation: str, fraction: float) -> float:
        """The nearest-rank percentile of an operation's latencies, in seconds."""
        ordered = sorted(self.latencies[operation])
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    def rate(self, operation: str) -> float:
        """Calls per second one client gets: calls over the time spent in them."""
        spent = sum(self.latencies[operation])
        return len(self.latencies[operation]) / spent if spent else math.inf

    @property
    def loop_rate(self) -> float:
        """Load, save and touch calls per second of the measuring loop, all together."""
        calls = sum(len(self.latencies.get(op, ())) for op in ("load", "save", "touch"))
        return calls / self.loop_seconds if self.loop_seconds else 0.0


def measure(
    store: Store,
    *,
    sessions: int,
    seconds: float,
    size: int = 200,
    on_progress: Callable[[str, float], None] | None = None,
) -> BenchResult:
    """Run the benchmark on ``store``; ``on_progress(phase, fraction_done)`` as it goes."""
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, not {sessions}")
    report = on_progress or (lambda phase, done: None)
    result = BenchResult()
    now = time.time()
    expires_at = now + seconds + LEFTOVER_LIFETIME
    blob = codec.envelope(codec.dumps({"bench": "x" * max(0, size - 40)}), now, now)
    versions: dict[str, int] = {}
    try:
        for number in range(sessions):
            record = Record(secrets.token_hex(32), blob, expires_at)
            result.timed("create", store.create, record)
            versions[record.key] = 1
            report("create", (number + 1) / sessions)
        keys = list(versions)
        started = time.perf_counter()
        deadline = started + seconds
        while (clock := time.perf_counter()) < deadline:
            key = random.choice(keys)
            version = versions[key]
            result.timed("load", store.load, key)
            saved = Record(key, blob, expires_at, version + 1)
            if result.timed("save", store.save, saved, version):
                versions[key] = version + 1
            result.timed("touch", store.touch, key, expires_at)
            report("measure", min(1.0, (clock - started) / seconds) if seconds else 1.0)
        result.loop_seconds = time.perf_counter() - started
    finally:
        for number, key in enumerate(list(versions)):
            result.timed("delete", store.delete, key)
            report("delete", (number + 1) / len(versions))
    return result
