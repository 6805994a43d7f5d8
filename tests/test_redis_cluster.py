"""The Redis stores on a Redis Cluster of three private masters: conformance and races.

A session's operations stay in its one slot; the per-user index lives in another slot, so it
is updated by a command of its own (documented as not atomic with the session's).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest

from coatcheck.stores import AsyncStore, from_url
from coatcheck.stores.redis import AsyncRedisStore, RedisStore
from coatcheck.testing import StoreConformance

from .redis_servers import ClusterGroup
from .test_concurrency import race_asgi, race_wsgi


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed for the Cluster tests")
    group = ClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:  # a group that fails to start is stopped too: nothing outlives the tests
        group.start()
        yield group
    finally:
        group.stop()


def prefixed(cluster: ClusterGroup) -> str:
    return f"{cluster.url}?prefix=test-{secrets.token_hex(4)}:"


class TestClusterRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, cluster: ClusterGroup) -> RedisStore:
        store = from_url(prefixed(cluster))
        assert isinstance(store, RedisStore)
        assert store.cluster
        return store


class TestClusterAsyncRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, cluster: ClusterGroup) -> AsyncStore:
        store = from_url(prefixed(cluster), asynchronous=True)
        assert isinstance(store, AsyncRedisStore)
        return store


def test_sessions_spread_over_the_masters(cluster: ClusterGroup) -> None:
    store = from_url(prefixed(cluster))
    assert isinstance(store, RedisStore)
    from coatcheck.stores import Record

    for n in range(30):
        store.create(Record(secrets.token_hex(32), b"{}", 2e9, 1, f"user-{n % 3}"))
    import redis

    counts = []
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as client:
            counts.append(client.dbsize())
    assert all(count > 0 for count in counts), counts
    store.close()


def test_asgi_requests_racing_on_one_session_lose_nothing(cluster: ClusterGroup) -> None:
    store = from_url(prefixed(cluster), asynchronous=True)
    assert isinstance(store, AsyncRedisStore)
    race_asgi(store)


def test_wsgi_requests_racing_on_one_session_lose_nothing(cluster: ClusterGroup) -> None:
    store = from_url(prefixed(cluster))
    assert isinstance(store, RedisStore)
    race_wsgi(store)
