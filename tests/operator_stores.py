"""Stores of a test's own for the operator tools (CLI, migration), and real sessions to fill them.

Each fixture gives a URL that ``coatcheck.stores.from_url`` understands, isolated from other
tests: a fresh SQLite file, a Redis key prefix, a PostgreSQL table, each removed afterwards.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine, run
from coatcheck.stores import Iterable, Record, Store, UserIndex, from_url
from coatcheck.testing import cookie_id

from .services import POSTGRESQL_URL, REDIS_URL, require

IDLE = 600.0
ABSOLUTE = 3600.0
ENGINE = SessionEngine(
    SessionConfig(secure=False, idle_timeout=IDLE, absolute_timeout=ABSOLUTE, hash_secret=None)
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The shared Redis, under a key prefix of this test's own, deleted afterwards."""
    parts = urlsplit(REDIS_URL)
    require("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    prefix = f"coatcheck-ops-test-{secrets.token_hex(4)}:"
    yield f"{REDIS_URL}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=prefix + "*"))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """The test database, in a table of this test's own, dropped afterwards."""
    parts = urlsplit(POSTGRESQL_URL)
    require("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    table = f"coatcheck_ops_test_{secrets.token_hex(4)}"
    yield f"{POSTGRESQL_URL}?table={table}&pool_size=2"
    with psycopg.connect(POSTGRESQL_URL, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {table}".encode())


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each real store in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def open_store(url: str) -> Store:
    store = from_url(url)
    assert isinstance(store, Store)
    return store


def new_session(store: Store, user: str | None = None, **data: object) -> str:
    """A real session made by the engine (logged in as ``user`` if given); return its ID."""
    session = ENGINE.fresh()
    session.update(data or {"cart": ["tea"]})
    if user is not None:
        session.login(user)
    return cookie_id(run(ENGINE.commit(session), store))


def populate(store: Store, users: dict[str, int], anonymous: int) -> dict[str, list[str]]:
    """``users[name]`` sessions for each user and ``anonymous`` more; their IDs by user
    (anonymous ones under "")."""
    ids: dict[str, list[str]] = {"": [new_session(store) for _ in range(anonymous)]}
    for user, count in users.items():
        ids[user] = [new_session(store, user) for _ in range(count)]
    return ids


def add_expired(store: Store, count: int) -> None:
    """Records already dead (a store without native expiry keeps them until purged)."""
    for _ in range(count):
        store.create(Record(secrets.token_hex(32), b'{"c":1,"a":1,"d":{}}', time.time() - 5))


def data_of(store: Store, session_id: str) -> dict[str, object] | None:
    """What the application sees through the engine for a cookie: its data, or None."""
    session = run(ENGINE.load(session_id), store)
    return None if session.is_new else dict(session)


def all_records(store: Store) -> list[Record]:
    assert isinstance(store, Iterable)
    return list(store.iter_records())


def live_records(store: Store) -> dict[str, Record]:
    """The store's live records by key."""
    now = time.time()
    return {r.key: r for r in all_records(store) if r.expires_at > now}


def user_keys(store: Store, user: str) -> set[str]:
    assert isinstance(store, UserIndex)
    return {record.key for record in store.list_by_user(user)}
