"""The Redis stores behind Sentinel: conformance, and a failover under traffic.

The group (master, replica, three sentinels) is private to this module, on ports of its own.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import httpx
import pytest

from coatcheck.stores import AsyncStore, from_url
from coatcheck.stores.redis import AsyncRedisStore, RedisStore
from coatcheck.testing import StoreConformance

from .apps import starlette_app
from .redis_servers import SentinelGroup, wait_until
from .servers import Traffic, serve_asgi


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the Sentinel tests (Debian package redis-server)")
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:  # a group that fails to start is stopped too: nothing outlives the tests
        group.start()
        yield group
    finally:
        group.stop()


class TestSentinelRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, group: SentinelGroup) -> RedisStore:
        store = from_url(f"{group.url}?prefix=test-{secrets.token_hex(4)}:")
        assert isinstance(store, RedisStore)
        return store


class TestSentinelAsyncRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, group: SentinelGroup) -> AsyncStore:
        store = from_url(f"{group.url}?prefix=test-{secrets.token_hex(4)}:", asynchronous=True)
        assert isinstance(store, AsyncRedisStore)
        return store


def test_sessions_stay_readable_and_writable_across_a_failover(group: SentinelGroup) -> None:
    store = from_url(group.url + "?timeout=0.5", asynchronous=True)
    assert isinstance(store, AsyncRedisStore)
    with serve_asgi(starlette_app(store), cleanup=store.close) as base:
        http = httpx.Client(base_url=base, timeout=10)
        created = http.post("/write", json={"cart": ["apple"]})
        cookie = {"Cookie": created.headers["set-cookie"].split(";")[0]}
        wait_until(group.replica_caught_up, "the replica to have the session")
        with Traffic(http, cookie) as traffic:
            old_master = group.master.port
            group.master.kill()
            wait_until(lambda: group.master_port() != old_master, "Sentinel to promote", 30)
            wait_until(lambda: http.get("/read", headers=cookie).status_code == 200, "service")
        assert http.get("/read", headers=cookie).json() == {"cart": ["apple"]}
        written = http.post("/write", json={"after": "failover"}, headers=cookie)
        assert written.status_code == 200
        assert http.get("/read", headers=cookie).json() == {"cart": ["apple"], "after": "failover"}
        http.close()
    assert set(traffic.statuses) <= {200, 503}, traffic.statuses  # never a 500
