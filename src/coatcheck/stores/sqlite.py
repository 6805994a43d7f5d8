"""SQLiteStore: sessions in an SQLite database file, the embedded default (standard library only).

One table, ``WITHOUT ROWID`` on the hashed key, indexes on expiry and user. Every call is one
statement in autocommit mode: load is a primary-key SELECT, create an INSERT that does nothing on
a key collision, save an UPDATE guarded by the version (it never inserts, so a deleted session
stays deleted; a save that keeps the expiry leaves the indexed columns alone), touch an UPDATE of
``expires_at`` alone, purge a DELETE through the expiry index. The database runs in WAL mode, so
readers never wait for writers and several processes can share the file. Each thread gets its
own connection.

Calls are short enough to run inline on an event loop by default (``offload=True`` moves them to
a worker thread, e.g. for a database on a slow network disk).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Iterable, Purgeable, Record, Store, StoreUnavailable, UserIndex

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def schema(table: str = "coatcheck_sessions") -> str:
    """The schema as plain SQL, for those who run their own migrations."""
    if not _IDENTIFIER.fullmatch(table):
        raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
    return f"""\
CREATE TABLE IF NOT EXISTS {table} (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires_at REAL NOT NULL,
    version INTEGER NOT NULL,
    user_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at);
CREATE INDEX IF NOT EXISTS {table}_user_id ON {table} (user_id) WHERE user_id IS NOT NULL;
"""


class SQLiteStore(Store, UserIndex, Purgeable, Iterable):
    """Sessions in the SQLite database at ``path`` (created, with its table, on first use).

    >>> import tempfile, os
    >>> store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "sessions.db"))
    >>> store.create(Record("a" * 64, b"{}", expires_at=2e9))
    True
    >>> store.save(Record("a" * 64, b"{}", expires_at=2e9, version=2), expected_version=1)
    True
    >>> store.load("a" * 64).version
    2
    """

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "coatcheck_sessions",
        offload: bool = False,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = str(path)
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise ValueError(
                "SQLiteStore needs a database file; MemoryStore keeps sessions in memory"
            )
        self.table = table
        self.offload_async = offload
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        t = table
        self._sql_load = f"SELECT data, expires_at, version, user_id FROM {t} WHERE key = ?"
        self._sql_create = (
            f"INSERT INTO {t} (key, data, expires_at, version, user_id) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING"
        )
        self._sql_save = (
            f"UPDATE {t} SET data = ?, expires_at = ?, version = ?, user_id = ? "
            "WHERE key = ? AND version = ?"
        )
        # Naming expires_at or user_id in SET rewrites their index entries, unchanged or not:
        # most saves keep both, so they write the row alone (a third less time per save).
        self._sql_save_data = f"UPDATE {t} SET data = ?, version = ? WHERE key = ? AND version = ?"
        self._sql_touch = f"UPDATE {t} SET expires_at = ? WHERE key = ?"
        self._sql_delete = f"DELETE FROM {t} WHERE key = ?"
        self._sql_by_user = (
            f"SELECT key, data, expires_at, version, user_id FROM {t} WHERE user_id = ?"
        )
        self._sql_delete_user = f"DELETE FROM {t} WHERE user_id = ?"
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at <= ?"
        self._sql_purge_some = (
            f"DELETE FROM {t} WHERE key IN "
            f"(SELECT key FROM {t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
        )
        self._sql_page = (
            f"SELECT key, data, expires_at, version, user_id FROM {t} "
            "WHERE key > ? ORDER BY key LIMIT ?"
        )
        self._db().executescript(schema(table))

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._connect()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path!r}: {exc}") from exc
            self._local.db = db
            with self._guard:
                self._all.append(db)
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            isolation_level=None,
            timeout=self._busy_ms / 1000,
            check_same_thread=False,  # each thread uses its own; close() may run anywhere
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        return db

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path!r}: {exc}") from exc

    def _change(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            return self._db().execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path!r}: {exc}") from exc

    def load(self, key: str) -> Record | None:
        rows = self._query(self._sql_load, (key,))
        return Record(key, *rows[0]) if rows else None

    def create(self, record: Record) -> bool:
        r = record
        return (
            self._change(self._sql_create, (r.key, r.data, r.expires_at, r.version, r.user_id)) == 1
        )

    def save(self, record: Record, expected_version: int) -> bool:
        r = record
        params = (r.data, r.expires_at, r.version, r.user_id, r.key, expected_version)
        return self._change(self._sql_save, params) == 1

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        r = record
        params = (r.data, r.version, r.key, expected_version)
        return self._change(self._sql_save_data, params) == 1

    def touch(self, key: str, expires_at: float) -> None:
        self._change(self._sql_touch, (expires_at, key))

    def delete(self, key: str) -> None:
        self._change(self._sql_delete, (key,))

    def list_by_user(self, user_id: str) -> list[Record]:
        return [Record(*row) for row in self._query(self._sql_by_user, (user_id,))]

    def delete_by_user(self, user_id: str) -> int:
        return self._change(self._sql_delete_user, (user_id,))

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        if limit is None:
            return self._change(self._sql_purge, (now,))
        if limit <= 0:
            return 0
        return self._change(self._sql_purge_some, (now, limit))

    def iter_records(self, page_size: int = 500) -> Iterator[Record]:
        """Every record in key order, a page at a time (safe to resume from any thread)."""
        after = ""
        while True:
            rows = self._query(self._sql_page, (after, page_size))
            yield from (Record(*row) for row in rows)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def close(self) -> None:
        with self._guard:
            connections, self._all = self._all, []
        for db in connections:
            db.close()
        self._local = threading.local()
