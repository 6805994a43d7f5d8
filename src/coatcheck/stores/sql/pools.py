"""Connection pools for the SQL stores, one small adapter per driver and face.

Each pool has ``open()``, ``connection()`` (a context manager lending a connection in
autocommit mode whose ``cursor()`` is a context manager too) and ``close()``, so the stores run
the same code on every driver: psycopg 3 for PostgreSQL, aiomysql and PyMySQL for MariaDB and
MySQL.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit


def dialect_of(url: str) -> str:
    """``postgresql`` or ``mysql``, from the URL's scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    raise ValueError(f"no SQL dialect for {scheme}://; use postgresql:// or mysql:// (mariadb://)")


def _pg_pool(url: str, timeout: float, max_size: int) -> dict[str, Any]:
    """What psycopg's pools, sync and async alike, are built with."""
    connection = {
        "autocommit": True,
        "connect_timeout": max(1, round(timeout)),
        "options": f"-c statement_timeout={round(timeout * 1000)}",
    }
    return {
        "conninfo": url,
        "min_size": 1,
        "max_size": max_size,
        "timeout": timeout,
        "open": False,
        "kwargs": connection,
    }


def _mysql_kwargs(url: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "autocommit": True,
        "connect_timeout": timeout,
    }


def _mysql_database(url: str) -> str:
    database = urlsplit(url).path.lstrip("/")
    if not database:
        raise ValueError("mysql:// needs a database name, e.g. mysql://root@127.0.0.1/app")
    return unquote(database)


class AsyncPool:
    """An asyncio pool: psycopg's for PostgreSQL, aiomysql's for MariaDB and MySQL."""

    def __init__(self, url: str, *, timeout: float, max_size: int) -> None:
        self.dialect = dialect_of(url)
        self.timeout = timeout
        self._url, self._max_size = url, max_size
        self._pool: Any = None

    async def open(self) -> None:
        if self.dialect == "postgresql":
            from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

            pool = AsyncConnectionPool(**_pg_pool(self._url, self.timeout, self._max_size))
            await pool.open(wait=True, timeout=self.timeout)
            self._pool = pool
        else:
            import aiomysql  # noqa: PLC0415

            self._pool = await aiomysql.create_pool(
                minsize=1,
                maxsize=self._max_size,
                db=_mysql_database(self._url),
                **_mysql_kwargs(self._url, self.timeout),
            )

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        if self.dialect == "postgresql":
            async with self._pool.connection() as conn:
                yield conn
        else:
            async with self._pool.acquire() as conn:
                yield conn

    async def close(self) -> None:
        if self._pool is None:
            return
        if self.dialect == "postgresql":
            await self._pool.close()
        else:
            self._pool.close()
            await self._pool.wait_closed()


class Pool:
    """A thread-safe pool: psycopg's for PostgreSQL, a small LIFO of PyMySQL connections."""

    def __init__(self, url: str, *, timeout: float, max_size: int) -> None:
        self.dialect = dialect_of(url)
        self.timeout = timeout
        self._url, self._max_size = url, max_size
        self._pool: Any = None
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)

    def open(self) -> None:
        if self.dialect == "postgresql":
            from psycopg_pool import ConnectionPool  # noqa: PLC0415

            pool = ConnectionPool(**_pg_pool(self._url, self.timeout, self._max_size))
            pool.open(wait=True, timeout=self.timeout)
            self._pool = pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        if self.dialect == "postgresql":
            with self._pool.connection() as conn:
                yield conn
            return
        if not self._slots.acquire(timeout=self.timeout):
            import pymysql  # noqa: PLC0415

            raise pymysql.err.OperationalError(2013, "no free connection in the pool")
        try:
            conn = self._take()
            try:
                yield conn
            except BaseException:
                conn.close()  # never lend out a connection in an unknown state
                raise
            self._idle.put(conn)
        finally:
            self._slots.release()

    def _take(self) -> Any:
        import pymysql  # noqa: PLC0415

        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return pymysql.connect(
                database=_mysql_database(self._url),
                read_timeout=self.timeout,
                write_timeout=self.timeout,
                **_mysql_kwargs(self._url, self.timeout),
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        while not self._idle.empty():
            self._idle.get_nowait().close()
