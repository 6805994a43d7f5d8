"""SQLStore: sessions in PostgreSQL, MariaDB or MySQL through a thread-safe pool.

Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

from ..base import Iterable, Purgeable, Record, Store, UserIndex
from .dialect import DEFAULT_TABLE, Statements, record_from_row
from .errors import reported
from .pools import Pool


class SQLStore(Store, UserIndex, Purgeable, Iterable):
    """Sessions in a PostgreSQL, MariaDB or MySQL table, one statement per call, pooled.

    The table (and its indexes) is created on first use unless ``create_schema=False``.
    An unreachable database, or one slower than ``timeout``, raises
    :class:`~coatcheck.stores.StoreUnavailable`; the pool reconnects when it is back.
    """

    offload_async = True

    def __init__(
        self, pool: Pool, *, table: str = DEFAULT_TABLE, create_schema: bool = True
    ) -> None:
        self.pool = pool
        self.table = table
        self.sql = Statements.for_dialect(pool.dialect, table)
        self._create_schema = create_schema
        self._ready = False
        self._opening = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 5.0,
        max_size: int = 10,
        create_schema: bool = True,
    ) -> SQLStore:
        """A store on the database at ``url``: ``postgresql://``, ``mysql://``, ``mariadb://``."""
        pool = Pool(url, timeout=timeout, max_size=max_size)
        return cls(pool, table=table, create_schema=create_schema)

    def _prepare(self) -> None:
        with self._opening:
            if self._ready:
                return
            with reported("open"):
                self.pool.open()
                if self._create_schema:
                    with self.pool.connection() as conn, conn.cursor() as cursor:
                        # "already exists" notes: aiomysql turns them into Python warnings
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            for statement in self.sql.schema:
                                cursor.execute(statement)
            self._ready = True

    def _rows(self, call: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self._ready:
            self._prepare()
        with reported(call):
            with self.pool.connection() as conn, conn.cursor() as cursor:
                self.pool.bounded(cursor.execute(sql, params))
                return list(cursor.fetchall())

    def _change(self, call: str, sql: str, params: tuple[Any, ...]) -> int:
        if not self._ready:
            self._prepare()
        with reported(call):
            with self.pool.connection() as conn, conn.cursor() as cursor:
                self.pool.bounded(cursor.execute(sql, params))
                return int(cursor.rowcount)

    def load(self, key: str) -> Record | None:
        rows = self._rows("load", self.sql.load, (key,))
        return Record(key, bytes(rows[0][0]), *rows[0][1:]) if rows else None

    def create(self, record: Record) -> bool:
        r = record
        params = (r.key, r.data, r.expires_at, r.version, r.user_id)
        return self._change("create", self.sql.create, params) == 1

    def save(self, record: Record, expected_version: int) -> bool:
        r = record
        params = (r.data, r.expires_at, r.version, r.user_id, r.key, expected_version)
        return self._change("save", self.sql.save, params) == 1

    def touch(self, key: str, expires_at: float) -> None:
        self._change("touch", self.sql.touch, (expires_at, key))

    def delete(self, key: str) -> None:
        self._change("delete", self.sql.delete, (key,))

    def list_by_user(self, user_id: str) -> list[Record]:
        rows = self._rows("list_by_user", self.sql.by_user, (user_id,))
        return [record_from_row(row) for row in rows]

    def delete_by_user(self, user_id: str) -> int:
        return self._change("delete_by_user", self.sql.delete_user, (user_id,))

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        if limit is None:
            return self._change("purge_expired", self.sql.purge, (now,))
        if limit <= 0:
            return 0
        return self._change("purge_expired", self.sql.purge_some, (now, limit))

    def iter_records(self) -> Iterator[Record]:
        after, page_size = "", 500
        while True:
            rows = self._rows("iter_records", self.sql.page, (after, page_size))
            for row in rows:
                yield record_from_row(row)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def close(self) -> None:
        self.pool.close()
