"""Bytes per session at rest: what 10 million sessions need on Redis, PostgreSQL and SQLite.

Each store is given ``COUNT`` sessions written by the engine, each holding about 1 KiB of data
(a cart of the demo shop's products with some random order numbers, half of them logged in, as
a shop's are), once stored as plain JSON (``compress_over=None``) and once as coatcheck stores
them by default (compressed past 1 KiB). What they take is measured from the store itself:

- **Redis**: ``MEMORY USAGE`` of every key the sessions made (``SAMPLES 0``: exact), session
  hashes and the users' indexes, so Redis's own per-key overhead is counted;
- **PostgreSQL**: ``pg_total_relation_size`` of the sessions' table (heap, TOAST and its
  indexes) after ``VACUUM``, less that of the empty table;
- **SQLite**: the database's pages (``page_count * page_size``) after a checkpoint, less the
  empty database's.

Bytes per session is that over ``COUNT``; 10 million sessions need ten million times as much
(before the server's own overhead: Redis's fragmentation ratio, PostgreSQL's free space map and
WAL, SQLite's WAL file).

Run with ``python -m benchmarks.run --only sizing`` (the stores at their usual addresses).
"""

from __future__ import annotations

import dataclasses
import datetime
import secrets
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine, run
from coatcheck.stores import Store, from_url

from .report import described, own_run, table

COUNT = 2000
TEN_MILLION = 10_000_000
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"


def session_data(n: int) -> dict[str, Any]:
    """About 1 KiB of a shop's session: a cart, a few order numbers (random), a device."""
    cart = [
        {"product_id": f"wool-coat-{(n + i) % 9}", "quantity": 1 + i % 3, "size": "M"}
        for i in range(9)
    ]
    return {
        "cart": cart,
        "orders": [secrets.token_hex(8) for _ in range(30)],
        "device": "Firefox 133 on Linux",
        "seen": n,
    }


def populate(store: Store, config: SessionConfig) -> None:
    """``COUNT`` sessions through the engine; every other one logged in (its user indexed)."""
    engine = SessionEngine(config)
    for n in range(COUNT):
        session = run(engine.load(None), store)
        session.update(session_data(n))
        if n % 2:
            session.login(f"user-{n}")
        run(engine.commit(session), store)


@dataclass
class Size:
    store: str
    stored_as: str
    per_session: float

    @property
    def ten_million_gib(self) -> float:
        return self.per_session * TEN_MILLION / 2**30


def _redis(config: SessionConfig) -> float:
    import redis

    prefix = f"coatcheck-sizing-{uuid.uuid4().hex[:8]}:"
    store = from_url(f"{REDIS_URL}?prefix={prefix}")
    assert isinstance(store, Store)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        populate(store, config)
        total = 0
        for name in client.scan_iter(match=prefix + "*", count=1000):
            total += int(client.memory_usage(name, samples=0) or 0)
        return total / COUNT
    finally:
        for name in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(name)
        client.close()
        store.close()


def _postgresql(config: SessionConfig) -> float:
    import psycopg

    table_name = f"coatcheck_sizing_{uuid.uuid4().hex[:8]}"
    store = from_url(f"{POSTGRESQL_URL}?table={table_name}")
    assert isinstance(store, Store)

    def size() -> int:
        with psycopg.connect(POSTGRESQL_URL, autocommit=True) as connection:
            connection.execute(f"VACUUM {table_name}")
            row = connection.execute(f"SELECT pg_total_relation_size('{table_name}')").fetchone()
            assert row is not None
            return int(row[0])

    try:
        store.load("0" * 64)  # the table, empty
        empty = size()
        populate(store, config)
        return (size() - empty) / COUNT
    finally:
        store.close()
        with psycopg.connect(POSTGRESQL_URL, autocommit=True) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {table_name}")


def _sqlite(config: SessionConfig) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sessions.db"
        store = from_url(f"sqlite:///{path}")
        assert isinstance(store, Store)

        def size() -> int:
            with sqlite3.connect(path) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                pages = connection.execute("PRAGMA page_count").fetchone()[0]
                page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            return int(pages) * int(page_size)

        try:
            store.load("0" * 64)
            empty = size()
            populate(store, config)
            return (size() - empty) / COUNT
        finally:
            store.close()


STORES: dict[str, Callable[[SessionConfig], float]] = {
    "Redis": _redis,
    "PostgreSQL": _postgresql,
    "SQLite": _sqlite,
}


@dataclass
class SizingResult:
    sizes: list[Size]
    envelope_bytes: int
    measured_at: str
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def markdown(self, command: str = "scripts/bench --only sizing") -> str:
        lines = [
            *own_run(
                self.measured_at, *(f"{name}: {version}" for name, version in self.versions.items())
            ),
            described(__doc__),
            "",
            f"A session's envelope is {self.envelope_bytes:,} bytes as plain JSON. "
            f"Reproduce: `{command}`",
            "",
        ]
        rows = [
            [s.store, s.stored_as, f"{s.per_session:,.0f}", f"{s.ten_million_gib:,.1f} GiB"]
            for s in self.sizes
        ]
        lines.append(
            table(["store", "stored as", "bytes per session", "10 million sessions"], rows, left=2)
        )
        return "\n".join(lines)


def _versions() -> dict[str, str]:
    import psycopg
    import redis

    found = {"SQLite": sqlite3.sqlite_version}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        found["Redis"] = str(client.info("server")["redis_version"])
    finally:
        client.close()
    with psycopg.connect(POSTGRESQL_URL) as connection:
        row = connection.execute("SHOW server_version").fetchone()
        found["PostgreSQL"] = str(row[0]) if row else "?"
    return found


def measure() -> SizingResult:
    from coatcheck import codec

    plain = SessionConfig(secure=False, compress_over=None)
    default = SessionConfig(secure=False)
    sizes = [
        Size(name, way, measure_one(config))
        for name, measure_one in STORES.items()
        for way, config in (("plain JSON", plain), ("compressed (default)", default))
    ]
    envelope = len(codec.envelope(codec.serialize(session_data(0)), 0.0, 0.0))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return SizingResult(sizes, envelope, now, _versions())


if __name__ == "__main__":  # pragma: no cover
    print(measure().markdown())
