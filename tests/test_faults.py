"""Fault tests: a store's server dies under traffic and comes back.

Each test runs a private server of its own on a port of its own, never the machine's shared
ones, and stops it afterwards.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck.stores import AsyncStore
from coatcheck.stores.redis import AsyncRedisStore
from coatcheck.stores.sql import AsyncSQLStore

from .apps import starlette_app
from .postgres_server import PrivatePostgres
from .postgres_server import available as postgres_available
from .redis_servers import PrivateRedis, wait_until
from .servers import Traffic, serve_asgi

TIMEOUT = 0.5


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the fault tests (Debian package redis-server)")
    redis = PrivateRedis(tmp_path)
    try:
        redis.start()
        yield redis
    finally:
        redis.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not postgres_available():
        pytest.fail("the PostgreSQL fault test needs root and PostgreSQL's server binaries")
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def outage(store: AsyncStore, kill: Callable[[], None], restart: Callable[[], None]) -> None:
    """Read a session under traffic while the store's server dies and returns.

    Every answer is 200 or 503 (never a 500, never a hang past the timeout); there are 503s
    during the outage; afterwards the same session is readable and writable again.
    """
    with serve_asgi(starlette_app(store), cleanup=store.close) as base:
        http = httpx.Client(base_url=base, timeout=10)
        created = http.post("/write", json={"cart": ["apple"]})
        cookie = {"Cookie": created.headers["set-cookie"].split(";")[0]}
        with Traffic(http, cookie) as traffic:
            time.sleep(0.3)
            kill()
            time.sleep(1.5)
            during = traffic.statuses.copy()
            restart()
            wait_until(lambda: http.get("/read", headers=cookie).status_code == 200, "service")
            time.sleep(0.3)
        assert http.get("/read", headers=cookie).json() == {"cart": ["apple"]}
        assert http.post("/write", json={"more": 1}, headers=cookie).status_code == 200
        http.close()
    assert set(traffic.statuses) <= {200, 503}, traffic.statuses
    assert during[503] > 0
    assert traffic.statuses[200] > during[200]  # requests succeeded again after the restart
    assert traffic.slowest < TIMEOUT * 4 + 1


def test_redis_killed_under_traffic_gives_503s_then_service_resumes(
    private_redis: PrivateRedis,
) -> None:
    store = AsyncRedisStore.from_url(f"redis://127.0.0.1:{private_redis.port}/0", timeout=TIMEOUT)
    outage(store, private_redis.kill, private_redis.start)


def test_postgresql_restarted_under_traffic_gives_503s_then_service_resumes(
    private_postgres: PrivatePostgres,
) -> None:
    store = AsyncSQLStore.from_url(private_postgres.url, timeout=TIMEOUT * 2)
    outage(store, lambda: private_postgres.stop("immediate"), private_postgres.start)
