"""TieredStore and AsyncTieredStore: the conformance suite over real stores, a fast tier that dies
under a real application and comes back with its old data, what each request costs, and each
window the documentation of :mod:`coatcheck.stores.tiered` admits."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from click.testing import CliRunner, Result
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from coatcheck.cli import commands
from coatcheck.engine import SessionEngine, run
from coatcheck.ids import store_key
from coatcheck.limits import is_counter
from coatcheck.stores import (
    AsyncStore,
    AsyncStoreAdapter,
    AsyncTieredStore,
    Iterable,
    MemoryStore,
    NotSupported,
    Purgeable,
    Record,
    Store,
    TieredStore,
    UserIndex,
    from_url,
)
from coatcheck.stores.redis import AsyncRedisStore, RedisStore
from coatcheck.stores.tiered import EPOCH_KEY, TierEvent
from coatcheck.testing import CountingStore, FakeClock, StoreConformance, cookie_id

from .apps import starlette_app
from .operator_stores import (
    ENGINE,
    data_of,
    new_session,
    open_store,
    postgresql_url,
    redis_url,
    sqlite_url,
)
from .redis_servers import PrivateRedis, wait_until
from .servers import free_port, serve_asgi, serve_wsgi
from .wsgi_app import wsgi_app

__all__ = ["postgresql_url", "redis_url", "sqlite_url"]  # fixtures

REST = 0.2
"""The fast tier's rest after a failure in these tests (``retry_interval``)."""

# -- the conformance suite ----------------------------------------------------------------------


class TestTieredRedisOverSQLite(StoreConformance):
    @pytest.fixture
    def store(self, redis_url: str, sqlite_url: str) -> Store:
        return TieredStore(open_store(redis_url), open_store(sqlite_url))


class TestAsyncTieredRedisOverPostgreSQL(StoreConformance):
    """The composition an ASGI application runs: two async server stores."""

    @pytest.fixture
    def store(self, redis_url: str, postgresql_url: str) -> AsyncStore:
        fast = from_url(redis_url, asynchronous=True)
        durable = from_url(postgresql_url, asynchronous=True)
        assert isinstance(fast, AsyncStore)
        assert isinstance(durable, AsyncStore)
        return AsyncTieredStore(fast, durable)


class TestTieredWithoutCapabilities(StoreConformance):
    """A durable store that cannot list, find a user's or purge its records: the composition
    offers none of it (the suite checks that each is NotSupported, or skips it)."""

    @pytest.fixture
    def store(self) -> Store:
        return TieredStore(MemoryStore(), CountingStore(MemoryStore()))


def test_capabilities_follow_the_durable_store_and_the_user_index_needs_both() -> None:
    plain = CountingStore(MemoryStore())  # no index, no listing, no purge
    both = TieredStore(MemoryStore(), MemoryStore())
    plain_fast = TieredStore(plain, MemoryStore())
    plain_durable = TieredStore(MemoryStore(), plain)
    assert all(isinstance(both, c) for c in (UserIndex, Purgeable, Iterable))
    assert not isinstance(plain_fast, UserIndex)  # a user's sessions must end in both
    assert isinstance(plain_fast, Iterable)
    assert isinstance(plain_fast, Purgeable)
    assert not any(isinstance(plain_durable, c) for c in (UserIndex, Purgeable, Iterable))
    assert isinstance(plain_fast, TieredStore)
    async_face = AsyncTieredStore(AsyncStoreAdapter(plain), AsyncStoreAdapter(MemoryStore()))
    assert [async_face.offers(c) for c in (UserIndex, Purgeable, Iterable)] == [False, True, True]
    with pytest.raises(NotSupported):
        AsyncTieredStore(AsyncStoreAdapter(MemoryStore()), AsyncStoreAdapter(plain)).iter_records()


# -- helpers ------------------------------------------------------------------------------------


def key(session_id: str) -> str:
    """The store key of a session ID, as the engine hashes it."""
    return store_key(session_id, ENGINE.config.hash_secret)


def write(store: Store, session_id: str, **data: object) -> None:
    session = run(ENGINE.load(session_id), store)
    assert not session.is_new
    session.update(data)
    run(ENGINE.commit(session), store)


def login(store: Store, session_id: str, user: str) -> str:
    session = run(ENGINE.load(session_id), store)
    session.login(user)
    return cookie_id(run(ENGINE.commit(session), store))


def logout(store: Store, session_id: str) -> None:
    session = run(ENGINE.load(session_id), store)
    assert not session.is_new
    session.logout()
    run(ENGINE.commit(session), store)


def coatcheck(*args: str) -> Result:
    """Run an operator command in this process, as the console script would."""
    return CliRunner().invoke(commands, list(args), catch_exceptions=False)


def quick_redis(port: int, prefix: str = "tier:") -> RedisStore:
    """A Redis store whose client does not retry: a dead server fails a call at once (the
    tiered store rests it and serves from the durable store; redis-py's own retries would only
    make that call wait)."""
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    return RedisStore(client, prefix=prefix)


def quick_async_redis(port: int, prefix: str = "tier:") -> AsyncRedisStore:
    client = redis.asyncio.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=AsyncRetry(NoBackoff(), 0),
    )
    return AsyncRedisStore(client, prefix=prefix)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, every write on disk (``appendfsync always``)."""
    if shutil.which("redis-server") is None:
        message = "redis-server is needed (Debian package redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
    server = PrivateRedis(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.kill()


# -- the fault test: a real application, Redis killed and restarted with its old data ----------


class Browser:
    """One HTTP client per app, speaking the app's routes: the sessions are their IDs."""

    def __init__(self, http: httpx.Client, *, asgi: bool) -> None:
        self.http, self.asgi = http, asgi

    def _send(self, path: str, session_id: str | None, **data: str) -> httpx.Response:
        self.http.cookies.clear()  # each request names its session itself
        headers = {"Cookie": f"session={session_id}"} if session_id else {}
        if self.asgi:
            if path == "/read":
                response = self.http.get(path, headers=headers)
            else:
                response = self.http.post(path, json=data, headers=headers)
        else:
            response = self.http.get(path, params=data, headers=headers)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response

    def new(self, **data: str) -> str:
        return cookie_id(self._send("/write", None, **data).headers["set-cookie"])

    def write(self, session_id: str, **data: str) -> None:
        self._send("/write", session_id, **data)

    def read(self, session_id: str) -> dict[str, Any]:
        """The session's data ({} when the ID names no live session)."""
        body = self._send("/read", session_id).json()
        return dict(body if self.asgi else body["data"])

    def login(self, session_id: str, user: str) -> str:
        if self.asgi:
            response = self._send(f"/login/{user}", session_id)
        else:
            response = self._send("/login", session_id, user=user)
        return cookie_id(response.headers["set-cookie"])

    def logout(self, session_id: str) -> None:
        self._send("/logout", session_id)

    def logout_everywhere(self, session_id: str) -> None:
        assert self.asgi
        self._send("/logout-everywhere", session_id)


@pytest.fixture(params=["asgi-postgresql", "wsgi-sqlite"])
def served(
    request: pytest.FixtureRequest, private_redis: PrivateRedis
) -> Iterator[tuple[TieredStore | AsyncTieredStore, Browser, list[TierEvent]]]:
    """A real app on ``TieredStore(private Redis, durable store)``: the ASGI app on the async
    face over PostgreSQL, or the WSGI app on the sync face over SQLite; its store, a browser,
    and the store's events."""
    events: list[TierEvent] = []
    options: dict[str, Any] = {"retry_interval": REST, "on_event": events.append}
    store: TieredStore | AsyncTieredStore
    if request.param == "asgi-postgresql":
        durable = from_url(request.getfixturevalue("postgresql_url"), asynchronous=True)
        assert isinstance(durable, AsyncStore)
        store = AsyncTieredStore(quick_async_redis(private_redis.port), durable, **options)
        server = serve_asgi(starlette_app(store), cleanup=store.close)
    else:
        sqlite = open_store(request.getfixturevalue("sqlite_url"))
        store = TieredStore(quick_redis(private_redis.port), sqlite, **options)
        server = serve_wsgi(wsgi_app(store))
    with server as base, httpx.Client(base_url=base, timeout=10) as http:
        yield store, Browser(http, asgi=isinstance(store, AsyncTieredStore)), events
    if isinstance(store, TieredStore):
        store.close()


def test_sessions_live_through_a_fast_tier_outage_and_nothing_stale_comes_back(
    served: tuple[TieredStore | AsyncTieredStore, Browser, list[TierEvent]],
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``TieredStore(Redis with its data on disk, PostgreSQL or SQLite)`` under a real app:
    Redis is killed; reads, writes, a logout (and, on the ASGI app, a logout everywhere) and a
    new session all succeed while it is down; Redis restarts with its old data, which still
    holds each session as it was; the written session shows its latest data, the ended ones
    stay ended, the new one lives, and the fast tier serves again."""
    store, browser, events = served
    caplog.set_level(logging.INFO, logger="coatcheck.stores.tiered")
    inspect = quick_redis(private_redis.port)  # looks into the fast tier, as it is on disk
    written = browser.new(cart="tea")
    ada = browser.login(browser.new(cart="jam"), "ada")
    bob_here = browser.login(browser.new(cart="milk"), "bob")
    bob_there = browser.login(browser.new(cart="eggs"), "bob")
    for session_id in (written, ada, bob_here, bob_there):
        assert browser.read(session_id)  # each one in the fast tier
    assert store.state.epoch is not None
    before = store.state.epoch.prefix
    assert inspect.load(before + key(written)) is not None

    private_redis.kill()
    assert browser.read(written) == {"cart": "tea"}
    browser.write(written, cart="tea jam")
    browser.logout(ada)
    if browser.asgi:
        browser.logout_everywhere(bob_here)  # revokes bob_there too
    fresh = browser.new(cart="bread")
    assert browser.read(fresh) == {"cart": "bread"}
    assert browser.read(written) == {"cart": "tea jam"}
    assert store.degraded
    assert [e.kind for e in events] == ["degraded"]
    assert store.stats.fast_failures >= 1
    assert store.stats.degraded_calls >= 1

    private_redis.start()  # the same port and directory: Redis reloads its old data
    stale = inspect.load(before + key(written))
    assert stale is not None
    assert b"tea jam" not in stale.data  # the old data is there...
    assert inspect.load(before + key(ada)) is not None
    assert inspect.load(before + key(bob_there)) is not None

    wait_until(lambda: browser.read(written) and not store.degraded, "the fast tier", 10)
    assert browser.read(written) == {"cart": "tea jam"}  # ...and none of it is served
    assert browser.read(ada) == {}
    assert browser.read(bob_there) == ({} if browser.asgi else {"cart": "eggs"})
    assert browser.read(fresh) == {"cart": "bread"}
    assert [e.kind for e in events] == ["degraded", "recovered"]

    now = store.state.epoch
    assert now is not None
    assert now.prefix != before
    hits = store.stats.fast_hits
    assert browser.read(written) == {"cart": "tea jam"}
    assert store.stats.fast_hits == hits + 1  # served by the fast tier again
    copy = inspect.load(now.prefix + key(written))
    assert copy is not None
    assert b"tea jam" in copy.data
    inspect.close()
    said = [
        (r.levelno, r.getMessage().split(" (")[0])
        for r in caplog.records
        if r.name == "coatcheck.stores.tiered"
    ]
    assert said == [
        (logging.WARNING, "coatcheck: fast tier failed"),
        (logging.INFO, "coatcheck: fast tier answers again: serving sessions from it"),
    ]


def test_a_write_whose_fast_copy_failed_is_never_read_back_older(
    private_redis: PrivateRedis, sqlite_url: str
) -> None:
    """Redis dies between a request's load and its save: the durable store takes the save, the
    fast tier's follow-up fails. Redis comes back with the session as it was before the save;
    that copy is never read."""
    clock = FakeClock(0.0)
    store = TieredStore(
        quick_redis(private_redis.port),
        open_store(sqlite_url),
        check_interval=60,
        retry_interval=REST,
        clock=clock,
    )
    sid = new_session(store, cart=["tea"])
    session = run(ENGINE.load(sid), store)
    private_redis.kill()
    session["cart"] = ["tea", "jam"]
    run(ENGINE.commit(session), store)
    private_redis.start()
    clock.advance(REST)
    assert data_of(store, sid) == {"cart": ["tea", "jam"]}
    assert not store.degraded
    store.close()


@pytest.mark.parametrize("seen", [True, False], ids=["a-call-saw-it-fail", "no-call-saw-it"])
def test_a_fast_tier_back_with_older_data_than_it_acknowledged(
    seen: bool, private_redis: PrivateRedis, sqlite_url: str
) -> None:
    """Redis restarts from a snapshot older than the writes it acknowledged (as one without
    ``appendfsync always`` may). If a call saw it down, nothing of the snapshot is read. If
    none did (its client reconnected silently, as redis-py's retries do), the snapshot's copy
    is read: the window the documentation admits, closed by running Redis without persistence
    or with ``appendfsync always``."""
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    fast = quick_redis(private_redis.port) if seen else RedisStore.from_url(url, prefix="tier:")
    clock = FakeClock(0.0)
    store = TieredStore(
        fast, open_store(sqlite_url), check_interval=60, retry_interval=REST, clock=clock
    )
    sid = new_session(store, cart=["tea"])
    with redis.Redis(port=private_redis.port) as client:
        client.save()  # the snapshot: the session's first version
    write(store, sid, cart=["tea", "jam"])  # the fast tier acknowledges the second
    private_redis.kill()
    if seen:
        assert data_of(store, sid) == {"cart": ["tea", "jam"]}  # from the durable store
    private_redis.extra = ("--appendonly", "no")  # so it loads the snapshot
    private_redis.start()
    clock.advance(REST)
    assert data_of(store, sid) == {"cart": ["tea", "jam"] if seen else ["tea"]}
    store.close()


def test_a_fast_tier_down_from_the_start_fails_no_request(sqlite_url: str) -> None:
    store = TieredStore(quick_redis(free_port()), open_store(sqlite_url), retry_interval=60)
    with serve_wsgi(wsgi_app(store)) as base, httpx.Client(base_url=base) as http:
        browser = Browser(http, asgi=False)
        session_id = browser.login(browser.new(cart="tea"), "ada")
        browser.write(session_id, cart="tea jam")
        assert browser.read(session_id) == {"cart": "tea jam"}
        browser.logout(session_id)
        assert browser.read(session_id) == {}
    assert store.degraded
    assert store.stats.fast_failures == 1  # then it rests: the calls go to the durable store
    store.close()


def test_a_durable_store_that_is_down_fails_the_request_with_a_503() -> None:
    store = TieredStore(MemoryStore(), quick_redis(free_port()))
    with serve_wsgi(wsgi_app(store)) as base, httpx.Client(base_url=base) as http:
        assert http.get("/write", params={"cart": "tea"}).status_code == 503
    store.close()


# -- what each request costs --------------------------------------------------------------------


def test_calls_per_request_on_each_tier(redis_url: str, sqlite_url: str) -> None:
    """A read the fast tier answers costs it one call and the durable store none; each change
    costs one call on each (after the fast tier's load)."""
    fast, durable = CountingStore(open_store(redis_url)), CountingStore(open_store(sqlite_url))
    store = TieredStore(fast, durable, check_interval=60)

    def calls(action: Callable[[], object]) -> tuple[dict[str, int], dict[str, int]]:
        fast.reset()
        durable.reset()
        action()
        return dict(fast.calls), dict(durable.calls)

    # The first call reads the epoch (and makes it, in a store that has none yet).
    assert calls(lambda: store.load(key("x" * 43))) == ({"load": 1}, {"load": 2, "create": 1})
    ids: list[str] = []
    assert calls(lambda: ids.append(new_session(store, cart=["tea"]))) == (
        {"create": 1},
        {"create": 1},
    )
    sid = ids[0]
    assert calls(lambda: data_of(store, sid)) == ({"load": 1}, {})
    assert calls(lambda: write(store, sid, cart=["jam"])) == ({"load": 1, "save": 1}, {"save": 1})
    ids.append("")
    assert calls(lambda: ids.__setitem__(1, login(store, sid, "ada"))) == (
        {"load": 1, "rotate": 1},
        {"rotate": 1},
    )
    toucher = SessionEngine(dataclasses.replace(ENGINE.config, touch_interval=0))
    assert calls(lambda: run(toucher.commit(run(toucher.load(ids[1]), store)), store)) == (
        {"load": 1, "touch": 1},
        {"touch": 1},
    )
    assert calls(lambda: logout(store, ids[1])) == ({"load": 1, "delete": 1}, {"delete": 1})
    # A session the fast tier lacks: read from the durable store, copied in, checked again.
    only_durable = new_session(durable.inner, cart=["milk"])
    assert calls(lambda: data_of(store, only_durable)) == ({"load": 1, "create": 1}, {"load": 2})
    assert calls(lambda: data_of(store, only_durable)) == ({"load": 1}, {})
    assert store.stats.epoch_reads == 1

    every_call = TieredStore(fast, durable, check_interval=0)  # no window: see below
    data_of(every_call, sid)
    assert calls(lambda: data_of(every_call, only_durable)) == ({"load": 1}, {"load": 1})
    store.close()


def test_calls_per_request_while_the_fast_tier_rests(sqlite_url: str) -> None:
    """Degraded, each call goes to the durable store alone, and each change is followed by one
    more durable call: the epoch moved on."""
    fast = CountingStore(quick_redis(free_port()))
    durable = CountingStore(open_store(sqlite_url))
    store = TieredStore(fast, durable, retry_interval=60)
    sid = new_session(store, cart=["tea"])  # the fast tier fails here, once, and rests
    assert fast.calls == {"create": 1}
    fast.reset()
    durable.reset()
    assert data_of(store, sid) == {"cart": ["tea"]}
    assert durable.calls == {"load": 1}
    durable.reset()
    write(store, sid, cart=["jam"])
    assert durable.calls == {"load": 1, "save": 2}  # the session's save, and the epoch's
    durable.reset()
    new_session(store, cart=["milk"])
    assert durable.calls == {"create": 1, "save": 1}
    durable.reset()
    logout(store, sid)
    assert durable.calls == {"load": 1, "delete": 1, "save": 1}
    assert fast.calls == {}
    store.close()


# -- the windows the documentation admits -------------------------------------------------------


def test_an_instance_that_saw_no_failure_follows_the_new_epoch_within_check_interval(
    private_redis: PrivateRedis, sqlite_url: str
) -> None:
    """Instance x sees the fast tier fail and writes while it is down. Instance y made no call
    meanwhile, and its client reconnects silently once Redis is back (redis-py's retries): for
    what is left of its ``check_interval`` it trusts the old epoch, and serves the old data.
    Instance z, with ``check_interval=0``, reads the epoch on every call: never."""
    durable = open_store(sqlite_url)
    x = TieredStore(quick_redis(private_redis.port), durable, retry_interval=REST)
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    y_clock = FakeClock(0.0)
    y = TieredStore(
        RedisStore.from_url(url, prefix="tier:"), durable, check_interval=2, clock=y_clock
    )
    z = TieredStore(RedisStore.from_url(url, prefix="tier:"), durable, check_interval=0)
    sid = new_session(x, cart=["tea"])
    assert data_of(y, sid) == data_of(z, sid) == {"cart": ["tea"]}

    private_redis.kill()
    write(x, sid, cart=["tea", "jam"])
    private_redis.start()

    assert data_of(z, sid) == {"cart": ["tea", "jam"]}
    y_clock.advance(1.5)  # the window is open: y still trusts the old epoch
    assert data_of(y, sid) == {"cart": ["tea"]}
    y_clock.advance(0.5)  # its check_interval is over
    assert data_of(y, sid) == {"cart": ["tea", "jam"]}
    for store in (x, y, z):
        store.fast.close()
    durable.close()


def test_revoke_all_on_the_durable_store_reaches_the_fast_tier_and_revoke_user_does_not(
    redis_url: str, sqlite_url: str
) -> None:
    """The operator's commands work on one store. ``revoke --all`` on the durable store deletes
    the epoch record with the sessions, so the fast tier's copies are never read again;
    ``revoke --user`` on the durable store alone leaves the user's copies in the fast tier,
    until it is run on the fast tier too. The epoch record is no session to the commands."""
    store = TieredStore(open_store(redis_url), open_store(sqlite_url), check_interval=0)
    ada = new_session(store, "ada", cart=["tea"])
    bob = new_session(store, "bob", cart=["jam"])
    epoch = store.durable.load(EPOCH_KEY)
    assert epoch is not None
    assert is_counter(epoch)
    assert isinstance(store, Iterable)
    assert EPOCH_KEY not in {r.key for r in store.iter_records()}

    assert coatcheck("revoke", "--store", sqlite_url, "--user", "ada").exit_code == 0
    assert data_of(store, ada) == {"cart": ["tea"]}  # the fast tier's copy: the window
    assert coatcheck("revoke", "--store", redis_url, "--user", "ada").exit_code == 0
    assert data_of(store, ada) is None

    backup = coatcheck("export", "--store", sqlite_url).stdout
    assert [json.loads(line)["key"] for line in backup.splitlines()] == [key(bob)]

    result = coatcheck("revoke", "--store", sqlite_url, "--all", "--yes")
    assert "revoked all 1 session(s)" in result.output  # bob's; the epoch record is none
    assert data_of(store, bob) is None
    store.close()


# -- races: another request's call put at an exact point between the store's steps ----------------


class Hooked(MemoryStore):
    """A MemoryStore that runs a function once, just before or just after one of its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[tuple[str, str], Callable[[], object]] = {}

    def at(self, when: str, method: str, action: Callable[[], object]) -> None:
        self.hooks[(when, method)] = action

    def _hook(self, when: str, method: str) -> None:
        action = self.hooks.pop((when, method), None)
        if action is not None:
            action()

    def create(self, record: Record) -> bool:
        self._hook("before", "create")
        created = super().create(record)
        self._hook("after", "create")
        return created


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_logout_crossing_a_copy_into_the_fast_tier_stays_a_logout(
    moment: str, sqlite_url: str
) -> None:
    """A request reads a session the fast tier lacks from the durable store; another request
    logs it out (durable store, then fast tier) just before or just after the first one's copy
    lands in the fast tier. Either way the copy does not outlive the logout."""
    fast, durable = Hooked(), open_store(sqlite_url)
    app, other_request = TieredStore(fast, durable), TieredStore(fast, durable)
    sid = new_session(durable, "ada", cart=["tea"])
    fast.at(moment, "create", lambda: logout(other_request, sid))
    assert app.load(key(sid)) is None
    assert list(fast.iter_records()) == []
    assert data_of(app, sid) is None
    durable.close()


def test_a_write_on_a_stale_fast_copy_repairs_it_and_loses_nothing(sqlite_url: str) -> None:
    """The fast copy is older than the durable record (an instance inside its window, say): the
    durable store refuses the save, the copy is made the durable record's, and the engine's
    replay lands on the newest data."""
    fast, durable = MemoryStore(), open_store(sqlite_url)
    store = TieredStore(fast, durable)
    sid = new_session(store, cart=["tea"])
    write(durable, sid, cart=["tea", "jam"])  # a change the fast tier missed
    write(store, sid, note="hello")
    assert data_of(durable, sid) == {"cart": ["tea", "jam"], "note": "hello"}
    assert data_of(store, sid) == {"cart": ["tea", "jam"], "note": "hello"}
    store.close()


def test_a_copy_of_a_newer_write_is_never_replaced_by_an_older_one() -> None:
    fast, durable = MemoryStore(), MemoryStore()
    store = TieredStore(fast, durable)
    v1 = Record("b" * 64, b"v1", time.time() + 100)
    assert store.create(v1)
    v2, v3 = v1._replace(data=b"v2", version=2), v1._replace(data=b"v3", version=3)
    assert durable.save(v2, 1)  # the first writer's save; its follow-up is late
    assert store.save(v3, 2)  # the second writer's, follow-up and all
    assert store.load(v1.key) == v3
    assert store._put(store.state.epoch.prefix, v2, 1) is False  # type: ignore[union-attr]
    assert store.load(v1.key) == v3
