"""The SQL stores against real PostgreSQL and MariaDB servers: conformance, schema, failure."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest

from coatcheck.stores import AsyncStore, Record, StoreUnavailable, from_url
from coatcheck.stores.sql import AsyncSQLStore, SQLStore, mysql_schema, postgresql_schema
from coatcheck.testing import StoreConformance

from .servers import free_port
from .services import MARIADB_URL, POSTGRESQL_URL, require
from .test_concurrency import race_asgi, race_wsgi

DATABASES = {"postgresql": POSTGRESQL_URL, "mariadb": MARIADB_URL}


def run_sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """One statement on its own connection, outside any store."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        with psycopg.connect(url, autocommit=True) as pg:
            cursor = pg.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
    )
    try:
        with conn.cursor() as my:
            my.execute(statement)
            return list(my.fetchall())
    finally:
        conn.close()


@pytest.fixture(params=list(DATABASES))
def database(request: pytest.FixtureRequest) -> str:
    url = DATABASES[request.param]
    parts = urlsplit(url)
    require(request.param, parts.hostname or "127.0.0.1", parts.port or 0)
    return url


@pytest.fixture
def table(database: str) -> Iterator[str]:
    """A table of this test's own, dropped afterwards."""
    name = f"coatcheck_test_{secrets.token_hex(4)}"
    yield name
    run_sql(database, f"DROP TABLE IF EXISTS {name}")


class TestSQLStore(StoreConformance):
    @pytest.fixture
    def store(self, database: str, table: str) -> SQLStore:
        return SQLStore.from_url(database, table=table)


class TestAsyncSQLStore(StoreConformance):
    @pytest.fixture
    def store(self, database: str, table: str) -> AsyncStore:
        return AsyncSQLStore.from_url(database, table=table)


def test_the_schema_is_created_once_with_its_indexes(database: str, table: str) -> None:
    stores = [SQLStore.from_url(database, table=table) for _ in range(3)]
    for store in stores:
        assert store.create(Record(secrets.token_hex(32), b"{}", time.time() + 60))
    plan = run_sql(database, f"EXPLAIN SELECT * FROM {table} WHERE user_id = 'u'")
    assert f"{table}_user_id" in str(plan)
    for store in stores:
        store.close()


def test_the_schemas_are_plain_sql() -> None:
    assert "CREATE TABLE IF NOT EXISTS web_sessions" in postgresql_schema("web_sessions")
    assert "CREATE TABLE IF NOT EXISTS web_sessions" in mysql_schema("web_sessions")
    with pytest.raises(ValueError, match="identifier"):
        postgresql_schema("x; DROP TABLE y")


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_an_unreachable_database_is_unavailable_within_the_timeout(scheme: str) -> None:
    url = f"{scheme}://root:hunter2@127.0.0.1:{free_port()}/test"
    store = SQLStore.from_url(url, timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.load("a" * 64)
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(caught.value)  # the message is logged: no credentials in it
    store.close()


def test_from_url(database: str, table: str) -> None:
    store = from_url(f"{database}?table={table}&timeout=3&pool_size=4")
    assert isinstance(store, SQLStore)
    assert store.table == table
    assert isinstance(from_url(database, asynchronous=True), AsyncSQLStore)
    assert isinstance(from_url(database.replace("mysql://", "mariadb://")), SQLStore)
    with pytest.raises(ValueError, match="identifier") as caught:
        from_url("postgresql://u:hunter2@127.0.0.1/test?table=a-b")
    assert "hunter2" not in str(caught.value)
    store.close()


def test_asgi_requests_racing_on_one_session_lose_nothing(database: str, table: str) -> None:
    race_asgi(AsyncSQLStore.from_url(database, table=table))


def test_wsgi_requests_racing_on_one_session_lose_nothing(database: str, table: str) -> None:
    race_wsgi(SQLStore.from_url(database, table=table))


@contextlib.contextmanager
def row_locked(url: str, table: str) -> Iterator[None]:
    """Every row of ``table`` locked by another connection's open transaction meanwhile."""
    if url.startswith("postgres"):
        with psycopg.connect(url) as pg:
            pg.execute(f"SELECT * FROM {table} FOR UPDATE".encode())
            yield
            pg.rollback()
        return
    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        database=parts.path.lstrip("/"),
    )
    try:
        with conn.cursor() as my:
            my.execute("BEGIN")
            my.execute(f"SELECT * FROM {table} FOR UPDATE")
            yield
        conn.rollback()
    finally:
        conn.close()


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_statement_that_waits_is_unavailable_within_the_timeout(
    database: str, table: str, face: str
) -> None:
    """docs/stores.md: a statement slower than ``timeout`` raises StoreUnavailable. Here a
    touch waits for a row another transaction holds (for 50 s by default on MariaDB; aiomysql
    has no read timeout, so the async MariaDB store bounds the work on a connection itself)."""
    key = "a" * 64
    setup = SQLStore.from_url(database, table=table)
    setup.create(Record(key, b"{}", time.time() + 600))
    setup.close()
    with row_locked(database, table):
        started = time.monotonic()
        if face == "sync":
            store = SQLStore.from_url(database, table=table, timeout=0.5)
            try:
                with pytest.raises(StoreUnavailable):
                    store.touch(key, time.time() + 900)
            finally:
                store.close()
        else:
            async_store = AsyncSQLStore.from_url(database, table=table, timeout=0.5)

            async def touch() -> None:
                try:
                    await asyncio.wait_for(async_store.touch(key, time.time() + 900), 3)
                finally:
                    await async_store.close()

            with pytest.raises(StoreUnavailable):
                asyncio.run(touch())
        assert time.monotonic() - started < 3
