"""Memory per session in MemoryStore: 100k sessions of about 1 KiB each, traced with tracemalloc.

The sessions are made the way requests make them: ``engine.load(None)``, about 1 KiB of data
written, ``engine.commit(session)``. What stays allocated afterwards, less the stored payloads
(``len(record.data)`` of every record), is the store's overhead per session.
"""

from __future__ import annotations

import gc
import linecache
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine, run
from coatcheck.stores import MemoryStore, Record

from .report import Target, table

HERE = Path(__file__).resolve().parent
SESSIONS = 100_000
TARGET_OVERHEAD = 300
"""Bytes of overhead per session that MemoryStore should stay within."""
ACTIVE_SAVES = 5
SAVE_SPACING = 1.0


SHARED_DATA: dict[str, Any] = {
    "user": {"id": 48213, "name": "Ada Lovelace", "email": "ada@example.org"},
    "roles": ["editor", "reader"],
    "locale": "en-GB",
    "cart": [
        {"sku": f"SKU-{item:05d}", "qty": item % 3 + 1, "cents": 1999 + item} for item in range(15)
    ],
    "recent": [f"/products/{1000 + page}" for page in range(12)],
}
"""Most of each session's data: the kind a shop keeps (values shared, so the benchmark itself
allocates little while it is traced; what the store keeps is each session's own encoding)."""


def fill(session: dict[str, Any], number: int) -> None:
    """Write about 1 KiB (serialized) of data into ``session``, one key unique to it."""
    session.update(SHARED_DATA)
    session["csrf"] = f"{number:043d}"


@dataclass(frozen=True)
class Site:
    """Where retained memory was allocated, and how much per session."""

    where: str
    code: str
    bytes_per_session: float


@dataclass(frozen=True)
class MemoryResult:
    sessions: int
    traced_bytes: int
    payload_bytes: int
    sites: list[Site]
    growth_after_saves: int
    """Bytes still allocated after ACTIVE_SAVES more saves of every session."""
    growth_sites: list[Site]

    @property
    def per_session(self) -> float:
        return self.traced_bytes / self.sessions

    @property
    def payload_per_session(self) -> float:
        return self.payload_bytes / self.sessions

    @property
    def overhead(self) -> float:
        return self.per_session - self.payload_per_session

    @property
    def overhead_after_saves(self) -> float:
        return self.overhead + self.growth_after_saves / self.sessions

    def targets(self) -> list[Target]:
        return [
            Target(
                f"MemoryStore overhead <= {TARGET_OVERHEAD} bytes per session",
                f"{self.overhead:.0f} bytes",
                self.overhead <= TARGET_OVERHEAD,
            ),
            Target(
                f"the same after {ACTIVE_SAVES} saves of every session, {SAVE_SPACING:g} s apart",
                f"{self.overhead_after_saves:.0f} bytes",
                self.overhead_after_saves <= TARGET_OVERHEAD,
            ),
        ]

    def markdown(self) -> str:
        summary = table(
            ["sessions", "state", "traced bytes per session", "payload", "overhead"],
            [
                (
                    f"{self.sessions:,}",
                    "just created",
                    f"{self.per_session:,.1f}",
                    f"{self.payload_per_session:,.1f}",
                    f"{self.overhead:,.1f}",
                ),
                (
                    f"{self.sessions:,}",
                    f"after {ACTIVE_SAVES} saves each",
                    f"{self.per_session + self.growth_after_saves / self.sessions:,.1f}",
                    f"{self.payload_per_session:,.1f}",
                    f"{self.overhead_after_saves:,.1f}",
                ),
            ],
            left=2,
        )
        sites, growth_sites = (
            table(
                ["allocated at", "code", "bytes per session"],
                [
                    (site.where, f"`{site.code}`", f"{site.bytes_per_session:,.1f}")
                    for site in found
                ],
                left=2,
            )
            for found in (self.sites, self.growth_sites)
        )
        return f"""\
{self.sessions:,} sessions created through the engine (`run(engine.load(None), store)`, about
1 KiB of data written, `run(engine.commit(session), store)`) into one `MemoryStore`, traced with
`tracemalloc` (what is still allocated after a garbage collection, divided by the sessions; the
payload is `len(record.data)`). Then every session is saved {ACTIVE_SAVES} more times with the
same data, its expiry moving {SAVE_SPACING:g} s later each time (as when a session is written
by requests a second or more apart), and what stays allocated is added to the overhead.

{summary}

Where the memory of the just-created sessions was allocated (tracemalloc, by line; the payload
is the `codec.encode` line):

{sites}

Where the memory that the {ACTIVE_SAVES} saves per session left behind was allocated:

{growth_sites}
"""


def _sites(statistics: list[tracemalloc.StatisticDiff], sessions: int) -> list[Site]:
    """The library's source lines that kept at least a byte per session, biggest first."""
    return [
        Site(
            f"{Path(frame.filename).name}:{frame.lineno}",
            linecache.getline(frame.filename, frame.lineno).strip(),
            stat.size_diff / sessions,
        )
        for stat in statistics
        if stat.size_diff >= sessions
        for frame in stat.traceback[:1]
        if Path(frame.filename).parent != HERE
    ]


def _save_again(store: MemoryStore, sessions: int) -> tuple[int, list[Site]]:
    """Save every session ACTIVE_SAVES more times; the bytes that stay allocated, and where."""
    records = [(r.key, r.data, r.version) for r in store.iter_records()]
    later = time.time() + 2 * SessionConfig().idle_timeout
    gc.collect()
    start = tracemalloc.take_snapshot()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(1, ACTIVE_SAVES + 1):
        for key, data, version in records:
            store.save(
                Record(key, data, later + step * SAVE_SPACING, version + step), version + step - 1
            )
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - before
    return growth, _sites(tracemalloc.take_snapshot().compare_to(start, "lineno"), sessions)


def measure(sessions: int = SESSIONS) -> MemoryResult:
    engine = SessionEngine(SessionConfig(secure=False))
    store = MemoryStore()
    gc.collect()
    tracemalloc.start()
    try:
        empty = tracemalloc.take_snapshot()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(sessions):
            session = run(engine.load(None), store)
            fill(session, number)
            run(engine.commit(session), store)
        del session
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - before
        sites = _sites(tracemalloc.take_snapshot().compare_to(empty, "lineno"), sessions)
        payload = sum(len(record.data) for record in store.iter_records())
        growth, growth_sites = _save_again(store, sessions)
    finally:
        tracemalloc.stop()
    return MemoryResult(sessions, traced, payload, sites, growth, growth_sites)
