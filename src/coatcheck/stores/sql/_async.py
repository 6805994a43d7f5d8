"""AsyncSQLStore: sessions in PostgreSQL, MariaDB or MySQL through an asyncio pool.

This file is the source of the sync :class:`~coatcheck.stores.sql.SQLStore`:
``scripts/unasync.py`` generates ``_sync.py`` from it. The statements are in
:mod:`coatcheck.stores.sql.dialect`.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

from ..base import AsyncStore, Record
from .dialect import DEFAULT_TABLE, Statements, record_from_row
from .errors import reported
from .pools import AsyncPool


class AsyncSQLStore(AsyncStore):
    """Sessions in a PostgreSQL, MariaDB or MySQL table, one statement per call, pooled.

    The table (and its indexes) is created on first use unless ``create_schema=False``.
    An unreachable database, or one slower than ``timeout``, raises
    :class:`~coatcheck.stores.StoreUnavailable`; the pool reconnects when it is back.
    """

    offload_async = True

    def __init__(
        self, pool: AsyncPool, *, table: str = DEFAULT_TABLE, create_schema: bool = True
    ) -> None:
        self.pool = pool
        self.table = table
        self.sql = Statements.for_dialect(pool.dialect, table)
        self._create_schema = create_schema
        self._ready = False
        self._opening = asyncio.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 5.0,
        max_size: int = 10,
        create_schema: bool = True,
    ) -> AsyncSQLStore:
        """A store on the database at ``url``: ``postgresql://``, ``mysql://``, ``mariadb://``."""
        pool = AsyncPool(url, timeout=timeout, max_size=max_size)
        return cls(pool, table=table, create_schema=create_schema)

    async def _prepare(self) -> None:
        async with self._opening:
            if self._ready:
                return
            with reported("open"):
                await self.pool.open()
                if self._create_schema:
                    async with self.pool.connection() as conn, conn.cursor() as cursor:
                        # "already exists" notes: aiomysql turns them into Python warnings
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            for statement in self.sql.schema:
                                await cursor.execute(statement)
            self._ready = True

    async def _rows(self, call: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if not self._ready:
            await self._prepare()
        with reported(call):
            async with self.pool.connection() as conn, conn.cursor() as cursor:
                await self.pool.bounded(cursor.execute(sql, params))
                return list(await cursor.fetchall())

    async def _change(self, call: str, sql: str, params: tuple[Any, ...]) -> int:
        if not self._ready:
            await self._prepare()
        with reported(call):
            async with self.pool.connection() as conn, conn.cursor() as cursor:
                await self.pool.bounded(cursor.execute(sql, params))
                return int(cursor.rowcount)

    async def load(self, key: str) -> Record | None:
        rows = await self._rows("load", self.sql.load, (key,))
        return Record(key, bytes(rows[0][0]), *rows[0][1:]) if rows else None

    async def create(self, record: Record) -> bool:
        r = record
        params = (r.key, r.data, r.expires_at, r.version, r.user_id)
        return await self._change("create", self.sql.create, params) == 1

    async def save(self, record: Record, expected_version: int) -> bool:
        r = record
        params = (r.data, r.expires_at, r.version, r.user_id, r.key, expected_version)
        return await self._change("save", self.sql.save, params) == 1

    async def touch(self, key: str, expires_at: float) -> None:
        await self._change("touch", self.sql.touch, (expires_at, key))

    async def delete(self, key: str) -> None:
        await self._change("delete", self.sql.delete, (key,))

    async def list_by_user(self, user_id: str) -> list[Record]:
        rows = await self._rows("list_by_user", self.sql.by_user, (user_id,))
        return [record_from_row(row) for row in rows]

    async def delete_by_user(self, user_id: str) -> int:
        return await self._change("delete_by_user", self.sql.delete_user, (user_id,))

    async def purge_expired(self, now: float, limit: int | None = None) -> int:
        if limit is None:
            return await self._change("purge_expired", self.sql.purge, (now,))
        if limit <= 0:
            return 0
        return await self._change("purge_expired", self.sql.purge_some, (now, limit))

    async def iter_records(self) -> AsyncIterator[Record]:
        after, page_size = "", 500
        while True:
            rows = await self._rows("iter_records", self.sql.page, (after, page_size))
            for row in rows:
                yield record_from_row(row)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    async def close(self) -> None:
        await self.pool.close()
