"""The Redis stores against the real Redis server: conformance, round trips, failure."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from starlette.testclient import TestClient

from coatcheck.clients import Client
from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine, run
from coatcheck.ids import new_id, store_key
from coatcheck.session import Session
from coatcheck.stores import AsyncStore, Record, StoreError, StoreUnavailable, from_url
from coatcheck.stores.redis import AsyncRedisStore, RedisStore
from coatcheck.testing import FakeClock, StoreConformance, cookie_id

from .apps import starlette_app
from .redis_servers import PrivateRedis
from .servers import free_port
from .services import REDIS_URL, require
from .test_concurrency import race_asgi, race_wsgi

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    parts = urlsplit(REDIS_URL)
    require("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    prefix = f"coatcheck-test-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=prefix + "*"))
    if names:
        client.delete(*names)
    client.close()


class TestRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, prefix: str) -> RedisStore:
        return RedisStore.from_url(REDIS_URL, prefix=prefix)


class TestAsyncRedisStore(StoreConformance):
    @pytest.fixture
    def store(self, prefix: str) -> AsyncStore:
        return AsyncRedisStore.from_url(REDIS_URL, prefix=prefix)


def commands(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


class Traffic:
    """One engine on a Redis store, its clock, and the commands each action sends."""

    def __init__(self, prefix: str) -> None:
        self.store = RedisStore.from_url(REDIS_URL, prefix=prefix)
        self.clock = FakeClock(time.time())
        self.engine = SessionEngine(SessionConfig(secure=False, clock=self.clock))
        self.observer = redis.Redis.from_url(REDIS_URL)

    def new_session(self) -> str:
        session = run(self.engine.load(None), self.store)
        session["cart"] = [1]
        cookie = run(self.engine.commit(session), self.store)
        assert cookie is not None
        return cookie.split(";")[0].split("=")[1]

    def sent(self, action: Callable[[], object]) -> int:
        """How many commands (a script counts once) ``action`` sent."""
        before = commands(self.observer)
        action()
        after = commands(self.observer)
        return sum(after.get(c, 0) - before.get(c, 0) for c in ("hgetall", "evalsha", "eval"))

    def request(self, session_id: str, change: Callable[[Session], object] = bool) -> str | None:
        """One request: load, ``change`` the session, commit; the cookie it sets."""
        session = run(self.engine.load(session_id), self.store)
        change(session)
        return run(self.engine.commit(session), self.store)

    def close(self) -> None:
        self.observer.close()
        self.store.close()


@pytest.fixture
def traffic(prefix: str) -> Iterator[Traffic]:
    watched = Traffic(prefix)
    yield watched
    watched.close()


def test_one_round_trip_per_store_call(traffic: Traffic) -> None:
    """Each request is as few commands as the issue asks (a script counts once)."""
    session_id = traffic.new_session()

    def write(session: Session) -> None:
        session["cart"] = [1, 2, time.time()]

    assert traffic.sent(lambda: traffic.request(session_id)) == 1  # HGETALL
    assert traffic.sent(lambda: traffic.request(session_id, write)) == 2  # load, compare-and-set
    assert traffic.sent(lambda: traffic.request(session_id, Session.logout)) == 2  # load, delete
    session_id = traffic.new_session()
    login = traffic.request  # load, rotate (create the new, drop the old: one script)
    assert traffic.sent(lambda: login(session_id, lambda s: s.login("ada"))) == 2


def test_a_due_touch_is_a_call_of_its_own_once_per_touch_interval(traffic: Traffic) -> None:
    """Loads are a plain HGETALL (no script): a read that finds a touch due touches in a second
    round trip, at most once per ``touch_interval``; a write that finds one due slides the
    expiry in its own save."""
    session_id = traffic.new_session()
    clock, store = traffic.clock, traffic.store
    clock.advance(61)
    assert traffic.sent(lambda: traffic.request(session_id)) == 2  # load, then touch
    touched = store.load(store_key(session_id))
    assert touched is not None
    assert touched.expires_at == pytest.approx(clock.now + 1800, abs=0.01)
    assert traffic.sent(lambda: traffic.request(session_id)) == 1  # touched: one load again
    clock.advance(61)  # a touch is due again, and this time the request also writes
    cookies: list[str | None] = []

    def write(session: Session) -> None:
        session["cart"] = [1, 2]

    assert traffic.sent(lambda: cookies.append(traffic.request(session_id, write))) == 2
    assert "Max-Age=1800" in (cookies[0] or "")  # the save slid the expiry: the cookie too
    moved = store.load(store_key(session_id))
    assert moved is not None
    assert moved.expires_at == pytest.approx(clock.now + 1800, abs=0.01)


def test_a_touch_on_every_request_is_still_one_round_trip(prefix: str) -> None:
    """``touch_interval=0`` (a sliding expiry on every request, as Flask-Session and
    express-session users set it): the load extends the expiry in its own round trip (a script,
    under ``SCRIPTED_TOUCH_BELOW``), and nothing follows it, however long the request took."""
    store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    clock = FakeClock(time.time())
    engine = SessionEngine(SessionConfig(secure=False, clock=clock, touch_interval=0))
    session = run(engine.load(None), store)
    session["cart"] = [1]
    session_id = (run(engine.commit(session), store) or "").split(";")[0].split("=")[1]
    observer = redis.Redis.from_url(REDIS_URL)
    for _ in range(3):
        clock.advance(5)
        before = commands(observer)
        loaded = run(engine.load(session_id), store)
        clock.advance(0.2)  # the request takes a while
        cookie = run(engine.commit(loaded), store)
        after = commands(observer)
        sent = sum(after.get(c, 0) - before.get(c, 0) for c in ("hgetall", "evalsha", "eval"))
        assert sent == 1
        assert cookie is not None  # the cookie slides with the expiry the load moved
        stored = store.load(store_key(session_id))
        assert stored is not None
        assert stored.expires_at == pytest.approx(clock.now - 0.2 + 1800, abs=0.01)
    observer.close()
    store.close()


def test_the_user_index_expires_with_its_last_session(prefix: str) -> None:
    store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    now = time.time()
    store.create(Record("a" * 64, b"{}", now + 30, 1, "dora"))
    store.create(Record("b" * 64, b"{}", now + 90, 1, "dora"))
    client = redis.Redis.from_url(REDIS_URL)
    ttl = client.pttl(f"{prefix}u:dora")
    assert 85_000 < ttl <= 90_000
    store.touch("a" * 64, now + 300)
    assert 295_000 < client.pttl(f"{prefix}u:dora") <= 300_000
    store.delete("a" * 64)
    store.delete("b" * 64)
    assert store.list_by_user("dora") == []
    assert client.exists(f"{prefix}u:dora") == 0
    client.close()


def test_an_unreachable_redis_is_unavailable_within_the_timeout() -> None:
    store = RedisStore.from_url(f"redis://:hunter2@127.0.0.1:{free_port()}/0", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.load("a" * 64)
    assert time.monotonic() - started < 2
    assert "hunter2" not in str(caught.value)  # the message is logged: no credentials in it


def test_from_url(prefix: str) -> None:
    sync = from_url(f"{REDIS_URL}?prefix={prefix}&timeout=1")
    assert isinstance(sync, RedisStore)
    assert sync.prefix == prefix
    assert isinstance(from_url(REDIS_URL, asynchronous=True), AsyncRedisStore)
    with pytest.raises(ValueError, match="unknown option") as caught:
        from_url("redis://user:hunter2@127.0.0.1/0?colour=red")
    assert "hunter2" not in str(caught.value)


def test_the_generated_sync_store_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_asgi_requests_racing_on_one_session_lose_nothing(prefix: str) -> None:
    race_asgi(AsyncRedisStore.from_url(REDIS_URL, prefix=prefix))


def test_wsgi_requests_racing_on_one_session_lose_nothing(prefix: str) -> None:
    race_wsgi(RedisStore.from_url(REDIS_URL, prefix=prefix))


def test_redis_down_gives_503_within_the_timeout() -> None:
    from starlette.testclient import TestClient

    from .apps import starlette_app

    store = AsyncRedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with TestClient(starlette_app(store)) as client:
        started = time.monotonic()
        response = client.get("/read", headers={"Cookie": "session=" + "A" * 43})
    assert response.status_code == 503
    assert time.monotonic() - started < 2


# -- eviction: why only maxmemory-policy noeviction keeps sessions (docs/integrations/django.md) --


def test_every_key_coatcheck_writes_has_a_ttl(prefix: str) -> None:
    """Sessions, a regenerated ID's forwarder, a user's index, the limits' counters: every key
    expires by itself. So under any ``volatile-*`` policy every coatcheck key, a live session
    too, is a candidate for eviction, exactly as under ``allkeys-*``."""
    store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    engine = SessionEngine(
        SessionConfig(
            secure=False,
            max_creations_per_client=100,
            max_creations=1000,
            max_sessions_per_user=3,
        )
    )
    client = Client("203.0.113.7", "test")
    anonymous = run(engine.load(None, client), store)
    anonymous["cart"] = ["tea"]
    regenerated = cookie_id(run(engine.commit(anonymous), store))
    session = run(engine.load(regenerated, client), store)
    session.regenerate()  # the old ID forwards for rotation_grace: a record of its own
    run(engine.commit(session), store)
    for _ in range(2):
        session = run(engine.load(None, client), store)
        session.login("ada")  # the user's index, and the per-user count
        run(engine.commit(session), store)
    run(engine.load(new_id(), client), store)  # an ID naming nothing: the guessing counter
    observer = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(observer.scan_iter(match=prefix + "*"))
        kinds = {name.decode().removeprefix(prefix)[:2] for name in names}
        assert kinds == {"s:", "u:"}
        assert len(names) >= 8  # 3 sessions, 1 forwarder, 1 index, 3 counters at least
        assert {name: observer.pttl(name) > 0 for name in names} == dict.fromkeys(names, True)
    finally:
        observer.close()
        store.close()


@pytest.mark.parametrize("policy", ["volatile-lru", "noeviction"])
def test_a_full_redis_evicts_live_sessions_unless_the_policy_is_noeviction(
    policy: str, tmp_path: Path
) -> None:
    """A Redis at its ``maxmemory``: under ``volatile-lru`` new sessions keep coming in and the
    oldest live ones are evicted (their users logged out); under ``noeviction`` every session
    stays, and a write Redis has no room for is a store error, which the middleware answers
    with 503."""
    server = PrivateRedis(
        tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", policy, "--appendonly", "no"
    )
    server.start()
    try:
        store = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0")
        now = time.time()
        first = "f" * 64
        assert store.create(Record(first, b"x" * 2000, now + 3600, 1, "ada"))
        refused = None
        for _ in range(3000):  # 6 MB of live sessions into 3 MB
            try:
                store.create(Record(secrets.token_hex(32), b"y" * 2000, now + 3600))
            except StoreError as exc:
                refused = exc
                break
        if policy == "noeviction":
            assert refused is not None
            assert "OutOfMemoryError" in str(refused)
            assert store.load(first) is not None
            assert store.list_by_user("ada") != []
            with TestClient(starlette_app(store)) as http:
                assert http.post("/write", json={"cart": ["tea"]}).status_code == 503
        else:
            assert refused is None
            # All 3,001 are live for another hour; Redis's LRU is approximate (it samples keys),
            # so which ones went varies, but many of them are gone.
            client = redis.Redis(port=server.port)
            sessions = sum(1 for _ in client.scan_iter(match="*s:*", count=1000))
            client.close()
            assert sessions < 2000
        store.close()
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        (("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"), "allkeys-lru"),
        (("--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"), "volatile-ttl"),
        (("--maxmemory", "64mb", "--maxmemory-policy", "noeviction"), None),
        (("--maxmemory", "0", "--maxmemory-policy", "allkeys-lru"), None),  # no limit: no evicting
    ],
)
def test_a_redis_that_may_evict_sessions_is_reported_before_the_first_is_written(
    settings: tuple[str, ...],
    warned: str | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/stores.md: a warning naming maxmemory-policy and the safe choice, once per store
    (sync and async), and `coatcheck stats` says it too."""
    from click.testing import CliRunner

    from coatcheck.cli import commands

    server = PrivateRedis(tmp_path, *settings, "--appendonly", "no")
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    try:
        store = RedisStore.from_url(url)
        assert store.eviction_policy() == warned
        now = time.time()
        with caplog.at_level("WARNING", logger="coatcheck"):
            for n in range(3):
                assert store.create(Record(f"{n}" * 64, b"{}", now + 60))
        store.close()
        warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
        if warned is None:
            assert warnings == []
        else:
            assert len(warnings) == 1  # once, before the first session
            assert f"maxmemory-policy is {warned}" in warnings[0]
            assert "noeviction" in warnings[0]

        async def async_policy() -> str | None:
            async_store = AsyncRedisStore.from_url(url)
            try:
                return await async_store.eviction_policy()
            finally:
                await async_store.close()

        assert asyncio.run(async_policy()) == warned
        result = CliRunner().invoke(commands, ["stats", "--store", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["eviction_policy"] == warned
        text = CliRunner().invoke(commands, ["stats", "--store", url]).output
        assert ("maxmemory-policy" in text) == (warned is not None)
    finally:
        server.kill()
