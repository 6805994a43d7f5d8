"""The Memcached stores against a real Memcached (scripts/test starts one on its own port)."""

from __future__ import annotations

import secrets
import time

import pytest
from pymemcache.client.base import Client

from coatcheck.stores import AsyncStore, NotSupported, Record, StoreUnavailable, from_url
from coatcheck.stores.memcached import AsyncMemcachedStore, MemcachedStore
from coatcheck.testing import StoreConformance

from .servers import free_port
from .services import MEMCACHED_ADDRESS, require
from .test_concurrency import race_asgi, race_wsgi

URL = f"memcached://{MEMCACHED_ADDRESS}"


@pytest.fixture
def prefix() -> str:
    host, port = MEMCACHED_ADDRESS.rsplit(":", 1)
    require("Memcached", host, int(port))
    return f"coatcheck-test-{secrets.token_hex(4)}:"


class TestMemcachedStore(StoreConformance):
    @pytest.fixture
    def store(self, prefix: str) -> MemcachedStore:
        return MemcachedStore.from_url(URL, prefix=prefix)


class TestAsyncMemcachedStore(StoreConformance):
    @pytest.fixture
    def store(self, prefix: str) -> AsyncStore:
        return AsyncMemcachedStore.from_url(URL, prefix=prefix)


def test_log_out_everywhere_is_not_supported(prefix: str) -> None:
    store = from_url(f"{URL}?prefix={prefix}", asynchronous=True)
    assert isinstance(store, AsyncMemcachedStore)
    import asyncio

    with pytest.raises(NotSupported, match="no user index"):
        asyncio.run(store.delete_by_user("alice"))
    sync = from_url(f"{URL}?prefix={prefix}")
    assert isinstance(sync, MemcachedStore)
    assert not hasattr(sync, "delete_by_user")


def test_memcached_expires_items_itself(prefix: str) -> None:
    store = MemcachedStore.from_url(URL, prefix=prefix)
    store.create(Record("a" * 64, b"{}", time.time() + 1))
    assert store.load("a" * 64) is not None
    deadline = time.monotonic() + 5  # Memcached's clock ticks once a second
    while store.load("a" * 64) is not None:
        assert time.monotonic() < deadline, "Memcached kept an expired session"
        time.sleep(0.25)
    store.close()


def test_an_unreachable_memcached_is_unavailable_within_the_timeout() -> None:
    store = MemcachedStore.from_url(f"memcached://127.0.0.1:{free_port()}", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.load("a" * 64)
    assert time.monotonic() - started < 2


def test_asgi_requests_racing_on_one_session_lose_nothing(prefix: str) -> None:
    race_asgi(AsyncMemcachedStore.from_url(URL, prefix=prefix))


def test_wsgi_requests_racing_on_one_session_lose_nothing(prefix: str) -> None:
    race_wsgi(MemcachedStore.from_url(URL, prefix=prefix))


def test_a_touch_rewrites_the_whole_item(prefix: str) -> None:
    """The exception to "a touch never rewrites the session" (README): the item's value holds
    the expiry with the data, so a touch is a ``gets`` and a ``cas`` that sends the data back,
    not Memcached's ``touch`` command."""
    host, port = MEMCACHED_ADDRESS.rsplit(":", 1)
    observer = Client((host, int(port)))
    store = MemcachedStore.from_url(URL, prefix=prefix)
    data = b"x" * 20_000
    store.create(Record("a" * 64, data, time.time() + 60))
    before = observer.stats()
    store.touch("a" * 64, time.time() + 120)
    after = observer.stats()
    assert after[b"cas_hits"] - before[b"cas_hits"] == 1
    assert after[b"cmd_touch"] == before[b"cmd_touch"]
    assert after[b"bytes_read"] - before[b"bytes_read"] > len(data)  # the data, sent again
    touched = store.load("a" * 64)
    assert touched is not None
    assert touched.data == data
    observer.close()
    store.close()
