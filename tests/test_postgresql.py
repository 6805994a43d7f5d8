"""The SQL stores against the real PostgreSQL server: conformance, schema, failure."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest

from coatcheck.stores import AsyncStore, Record, StoreUnavailable, from_url
from coatcheck.stores.sql import AsyncSQLStore, SQLStore, postgresql_schema
from coatcheck.testing import StoreConformance

from .servers import free_port
from .services import POSTGRESQL_URL, require


@pytest.fixture
def table() -> Iterator[str]:
    """A table of this test's own, dropped afterwards."""
    require("PostgreSQL", "127.0.0.1", 5432)
    name = f"coatcheck_test_{secrets.token_hex(4)}"
    yield name
    with psycopg.connect(POSTGRESQL_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


class TestSQLStore(StoreConformance):
    @pytest.fixture
    def store(self, table: str) -> SQLStore:
        return SQLStore.from_url(POSTGRESQL_URL, table=table)


class TestAsyncSQLStore(StoreConformance):
    @pytest.fixture
    def store(self, table: str) -> AsyncStore:
        return AsyncSQLStore.from_url(POSTGRESQL_URL, table=table)


def test_the_schema_is_created_once_with_its_indexes(table: str) -> None:
    stores = [SQLStore.from_url(POSTGRESQL_URL, table=table) for _ in range(3)]
    for store in stores:
        assert store.create(Record(secrets.token_hex(32), b"{}", time.time() + 60))
    with psycopg.connect(POSTGRESQL_URL) as conn:
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
            )
        }
        plan = conn.execute(f"EXPLAIN DELETE FROM {table} WHERE expires_at <= 1").fetchall()
    assert {f"{table}_expires_at", f"{table}_user_id", f"{table}_pkey"} <= indexes
    assert "expires_at" in str(plan)
    for store in stores:
        store.close()


def test_the_schema_is_plain_sql() -> None:
    sql = postgresql_schema("web_sessions")
    assert "CREATE TABLE IF NOT EXISTS web_sessions" in sql
    with pytest.raises(ValueError, match="identifier"):
        postgresql_schema("x; DROP TABLE y")


def test_an_unreachable_database_is_unavailable_within_the_timeout() -> None:
    store = SQLStore.from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/test", timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.load("a" * 64)
    assert time.monotonic() - started < 5
    store.close()


def test_from_url(table: str) -> None:
    store = from_url(f"{POSTGRESQL_URL}?table={table}&timeout=3&pool_size=4")
    assert isinstance(store, SQLStore)
    assert store.table == table
    assert isinstance(from_url(POSTGRESQL_URL, asynchronous=True), AsyncSQLStore)
    with pytest.raises(ValueError, match="identifier") as caught:
        from_url("postgresql://u:hunter2@127.0.0.1/test?table=a-b")
    assert "hunter2" not in str(caught.value)
    store.close()


def test_asgi_requests_racing_on_one_session_lose_nothing(table: str) -> None:
    from .apps import starlette_app
    from .servers import serve_asgi
    from .test_concurrency import asgi_write, hammer

    with serve_asgi(starlette_app(AsyncSQLStore.from_url(POSTGRESQL_URL, table=table))) as base:
        hammer(base, asgi_write)


def test_wsgi_requests_racing_on_one_session_lose_nothing(table: str) -> None:
    from .servers import serve_wsgi
    from .test_concurrency import hammer, wsgi_write
    from .wsgi_app import wsgi_app

    with serve_wsgi(wsgi_app(SQLStore.from_url(POSTGRESQL_URL, table=table))) as base:
        hammer(base, wsgi_write)
