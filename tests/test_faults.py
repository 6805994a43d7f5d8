"""Fault tests: a store's server dies under traffic and comes back.

Each test runs a private server of its own on a port of its own, never the machine's shared
ones, and stops it afterwards.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck.stores.redis import AsyncRedisStore
from coatcheck.stores.sql import AsyncSQLStore

from .apps import starlette_app
from .postgres_server import PrivatePostgres
from .postgres_server import available as postgres_available
from .redis_servers import PrivateRedis
from .servers import serve_asgi

TIMEOUT = 0.5


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the fault tests (Debian package redis-server)")
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    if redis.process is not None and redis.process.poll() is None:
        redis.kill()


def test_redis_killed_under_traffic_gives_503s_then_service_resumes(
    private_redis: PrivateRedis,
) -> None:
    store = AsyncRedisStore.from_url(f"redis://127.0.0.1:{private_redis.port}/0", timeout=TIMEOUT)
    with serve_asgi(starlette_app(store), cleanup=store.close) as base:
        http = httpx.Client(base_url=base, timeout=10)
        created = http.post("/write", json={"cart": ["apple"]})
        cookie = {"Cookie": created.headers["set-cookie"].split(";")[0]}
        statuses: Counter[int] = Counter()
        slowest = 0.0
        stop = threading.Event()

        def traffic() -> None:
            nonlocal slowest
            while not stop.is_set():
                started = time.monotonic()
                status = http.get("/read", headers=cookie).status_code
                slowest = max(slowest, time.monotonic() - started)
                statuses[status] += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        time.sleep(0.3)
        private_redis.kill()
        time.sleep(1.5)
        during = statuses.copy()
        private_redis.start()
        deadline = time.monotonic() + 10
        while http.get("/read", headers=cookie).status_code != 200:
            assert time.monotonic() < deadline, "service did not resume after Redis returned"
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        worker.join(10)
        assert http.get("/read", headers=cookie).json() == {"cart": ["apple"]}
        http.close()
    assert set(statuses) <= {200, 503}, statuses  # never a 500
    assert during[503] > 0
    assert statuses[200] > during[200]  # requests succeeded again after the restart
    assert slowest < TIMEOUT * 4 + 1  # no request hung past the timeout


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not postgres_available():
        pytest.fail("the PostgreSQL fault test needs root and PostgreSQL's server binaries")
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


def test_postgresql_restarted_under_traffic_gives_503s_then_service_resumes(
    private_postgres: PrivatePostgres,
) -> None:
    store = AsyncSQLStore.from_url(private_postgres.url, timeout=TIMEOUT * 2)
    with serve_asgi(starlette_app(store), cleanup=store.close) as base:
        http = httpx.Client(base_url=base, timeout=10)
        created = http.post("/write", json={"cart": ["pear"]})
        cookie = {"Cookie": created.headers["set-cookie"].split(";")[0]}
        statuses: Counter[int] = Counter()
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                statuses[http.get("/read", headers=cookie).status_code] += 1
                time.sleep(0.01)

        worker = threading.Thread(target=traffic)
        worker.start()
        time.sleep(0.3)
        private_postgres.stop("immediate")  # a crash, as far as clients can tell
        time.sleep(1.5)
        during = statuses.copy()
        private_postgres.start()
        deadline = time.monotonic() + 15
        while http.get("/read", headers=cookie).status_code != 200:
            assert time.monotonic() < deadline, "service did not resume after PostgreSQL returned"
            time.sleep(0.2)
        stop.set()
        worker.join(10)
        assert http.get("/read", headers=cookie).json() == {"cart": ["pear"]}
        assert http.post("/write", json={"more": 1}, headers=cookie).status_code == 200
        http.close()
    assert set(statuses) <= {200, 503}, statuses  # never a 500
    assert during[503] > 0
