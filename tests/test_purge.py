"""The purge the app runs itself (``purge_interval``), over real stores.

Ordinary requests through the middleware delete expired sessions from the stores that keep them
(SQLite, files, PostgreSQL, MariaDB; memory, which no command can reach): at most
``purge_batch`` per run, by one of the app instances sharing a store per interval (the lease),
after the request's own writes and without ever failing it. A store that expires records itself
(Redis, Memcached) is left alone, and with the option off (the default), or between checks, no
request makes a store call (or reads the clock) more than it did.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from coatcheck.config import ConfigError, SessionConfig
from coatcheck.engine import Plan, SessionEngine, run, run_async
from coatcheck.events import SessionEvent
from coatcheck.ids import new_id, store_key
from coatcheck.limits import is_counter, lease_key
from coatcheck.stores import (
    AsyncStore,
    FileStore,
    Iterable,
    MemoryStore,
    NotSupported,
    Record,
    SQLiteStore,
    Store,
    as_async,
)
from coatcheck.stores.memcached import MemcachedStore
from coatcheck.stores.redis import AsyncRedisStore, RedisStore
from coatcheck.stores.sql import AsyncSQLStore, SQLStore
from coatcheck.testing import CountingStore, FakeClock

from .apps import starlette_app
from .services import MARIADB_URL, MEMCACHED_ADDRESS, POSTGRESQL_URL, REDIS_URL, require
from .test_sql import run_sql
from .wsgi_app import wsgi_app

IDLE = 600.0
INTERVAL = 200.0
START = 1_800_000_000.0
KINDS = ["sqlite", "file", "postgresql", "mariadb"]
DATABASES = {"postgresql": POSTGRESQL_URL, "mariadb": MARIADB_URL}


class Recorder(list[SessionEvent]):
    def __call__(self, event: SessionEvent) -> None:
        self.append(event)

    def purged(self) -> list[int]:
        """The counts of the purges reported, in order."""
        return [event.count for event in self if event.kind == "purged"]


class Backing:
    """Where the stores of one test keep their records: a file, a directory or a table, which
    each :meth:`open` opens anew, as another app instance would."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / ("sessions.db" if kind == "sqlite" else "sessions")
        self.url = DATABASES.get(kind, "")
        self.table = f"coatcheck_test_{secrets.token_hex(4)}"
        self.opened: list[Store] = []

    def open(self) -> Store:
        store: Store
        if self.kind == "sqlite":
            store = SQLiteStore(self.path)
        elif self.kind == "file":
            store = FileStore(self.path)
        else:
            store = SQLStore.from_url(self.url, table=self.table)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()
        if self.url:
            run_sql(self.url, f"DROP TABLE IF EXISTS {self.table}")
            if self.kind == "postgresql":
                run_sql(self.url, f"DROP FUNCTION IF EXISTS {self.table}_refuse()")

    def refuse_deletes(self, expired_key: str) -> Callable[[], object]:
        """Make the store fail every purge that reaches ``expired_key`` (the database refuses
        the DELETE, or the file's lock cannot be taken); return what undoes it."""
        table = self.table
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                db.execute(
                    "CREATE TRIGGER no_purge BEFORE DELETE ON coatcheck_sessions "
                    "BEGIN SELECT RAISE(ABORT, 'purging is refused'); END"
                )

            def undo() -> None:
                with sqlite3.connect(self.path) as db:
                    db.execute("DROP TRIGGER no_purge")

            return undo
        if self.kind == "postgresql":
            run_sql(
                self.url,
                f"CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'purging is refused'; END $$",
            )
            run_sql(
                self.url,
                f"CREATE TRIGGER no_purge BEFORE DELETE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse()",
            )
            return partial(run_sql, self.url, f"DROP TRIGGER no_purge ON {table}")
        if self.kind == "mariadb":
            run_sql(
                self.url,
                f"CREATE TRIGGER {table}_no_purge BEFORE DELETE ON {table} FOR EACH ROW "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'purging is refused'",
            )
            return partial(run_sql, self.url, f"DROP TRIGGER {table}_no_purge")
        # FileStore: the purge deletes a file under the lock of its key's prefix, a lock file;
        # a directory in its place cannot be opened.
        lock = self.path / ".locks" / expired_key[:2]
        lock.unlink(missing_ok=True)
        lock.mkdir()
        return lock.rmdir


@pytest.fixture(params=KINDS)
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backing]:
    kind = request.param
    if kind in DATABASES:
        parts = urlsplit(DATABASES[kind])
        require(kind, parts.hostname or "127.0.0.1", parts.port or 0)
    backing = Backing(kind, tmp_path)
    yield backing
    backing.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    parts = urlsplit(REDIS_URL)
    require("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    prefix = f"coatcheck-test-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=prefix + "*"))
    if names:
        client.delete(*names)
    client.close()


def client_of(app: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")


def sessions(store: Store) -> list[Record]:
    """The sessions a store holds, expired or not (the purge lease and counters aside)."""
    assert isinstance(store, Iterable)
    return [record for record in store.iter_records() if not is_counter(record)]


def new_sessions(client: httpx.Client, count: int) -> list[str]:
    """Create ``count`` sessions, each as a new visitor; their IDs."""
    ids = []
    for n in range(count):
        client.cookies.clear()
        response = client.get(f"/write?n={n}")
        ids.append(response.headers["set-cookie"].split(";")[0].split("=")[1])
    client.cookies.clear()
    return ids


def purging_app(store: Store, clock: FakeClock, events: Recorder, **options: Any) -> Any:
    options = {"purge_interval": INTERVAL, "purge_batch": 3, **options}
    return wsgi_app(store, clock=clock, idle_timeout=IDLE, on_event=events, **options)


# -- through the middleware, on each store that keeps expired records ---------------------------


def test_ordinary_requests_purge_expired_sessions_a_batch_per_interval(
    backing: Backing, clock: FakeClock
) -> None:
    store, events = backing.open(), Recorder()
    with client_of(purging_app(store, clock, events, purge_batch=3)) as client:
        new_sessions(client, 7)  # the first request's purge found nothing expired
        assert events.purged() == [0]
        clock.advance(IDLE + 100)  # all seven expired, and the lease too
        live = new_sessions(client, 1)[0]  # this request purges, after creating its session
        assert events.purged() == [0, 3]
        assert len(sessions(store)) == 1 + 4
        client.get("/read")  # within the interval: no purge
        assert (events.purged(), len(sessions(store))) == ([0, 3], 5)
        clock.advance(INTERVAL)
        response = client.get("/read")  # a request with nothing to write purges too
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
        assert (events.purged(), len(sessions(store))) == ([0, 3, 3], 2)
        clock.advance(INTERVAL)
        read = client.get("/read", headers={"Cookie": f"session={live}"})
        assert read.json() == {"data": {"n": "0"}, "user": None}
        assert events.purged() == [0, 3, 3, 1]
        assert [r.key for r in sessions(store)] == [store_key(live)]
    purged = [event for event in events if event.kind == "purged"]
    assert all(event.fingerprint is None and event.user_id is None for event in purged)


def test_one_of_two_instances_sharing_a_store_purges_per_interval(
    backing: Backing, clock: FakeClock
) -> None:
    first, second = Recorder(), Recorder()
    app_a = purging_app(backing.open(), clock, first, purge_batch=2)
    app_b = purging_app(backing.open(), clock, second, purge_batch=2)
    store = backing.opened[0]
    with client_of(app_a) as a, client_of(app_b) as b:
        new_sessions(a, 10)  # A's first request takes the lease for an interval
        new_sessions(b, 1)  # B's first check finds it held
        assert (first.purged(), second.purged()) == ([0], [])
        clock.advance(IDLE + 100)  # the ten expired; the lease too
        a.get("/read")
        b.get("/read")  # due on B, but A holds the lease again
        assert (first.purged(), second.purged()) == ([0, 2], [])
        assert len(sessions(store)) == 11 - 2
        clock.advance(INTERVAL / 3)
        a.get("/read")
        b.get("/read")
        assert (first.purged(), second.purged()) == ([0, 2], [])
        clock.advance(INTERVAL * 2 / 3)  # A's lease has run out: B's check comes first
        b.get("/read")
        a.get("/read")
        assert (first.purged(), second.purged()) == ([0, 2], [2])
        assert len(sessions(store)) == 11 - 4


def test_instances_due_at_the_same_moment_purge_once(backing: Backing, clock: FakeClock) -> None:
    instances = 4
    recorders = [Recorder() for _ in range(instances)]
    apps = [purging_app(backing.open(), clock, events) for events in recorders]
    barrier = threading.Barrier(instances)
    statuses: list[int] = []

    def request(app: Any) -> None:
        with client_of(app) as client:
            barrier.wait()
            statuses.append(client.get("/read").status_code)

    threads = [threading.Thread(target=request, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * instances
    assert sorted(len(events.purged()) for events in recorders) == [0] * (instances - 1) + [1]


def test_a_failing_purge_leaves_the_response_intact(
    backing: Backing, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store, events = backing.open(), Recorder()
    with client_of(purging_app(store, clock, events)) as client:
        live = new_sessions(client, 1)[0]
        # An expired record, under a key whose lock (FileStore) no request of this test takes.
        taken = (lease_key(None)[:2], store_key(live)[:2])
        key = next(k for k in (store_key(new_id()) for _ in range(1000)) if k[:2] not in taken)
        assert store.create(Record(key, b"expired", clock.now - 1))
        undo = backing.refuse_deletes(key)
        clock.advance(INTERVAL)
        with caplog.at_level(logging.WARNING, logger="coatcheck"):
            response = client.get("/write?b=2", headers={"Cookie": f"session={live}"})
        assert response.status_code == 200
        assert response.json() == {"data": {"n": "0", "b": "2"}, "user": None}
        assert "could not purge expired sessions" in caplog.text
        assert events.purged() == [0]  # the first request's; the failed one reports nothing
        assert store.load(key) is not None
        stored = client.get("/read", headers={"Cookie": f"session={live}"})
        assert stored.json() == {"data": {"n": "0", "b": "2"}, "user": None}
        undo()
        clock.advance(INTERVAL)  # the lease the failed purge took has run out
        client.get("/read")
        assert events.purged() == [0, 1]
        assert store.load(key) is None


# -- stores that expire records themselves --------------------------------------------------------


def test_a_store_with_native_expiry_is_left_alone(
    prefix: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = CountingStore(RedisStore.from_url(REDIS_URL, prefix=prefix))
    events = Recorder()
    with (
        caplog.at_level(logging.DEBUG, logger="coatcheck"),
        client_of(purging_app(store, clock, events)) as client,
    ):
        sid = new_sessions(client, 1)[0]
        assert store.calls == {"create": 1}  # no lease, no purge
        clock.advance(INTERVAL)
        store.reset()
        response = client.get("/read", headers={"Cookie": f"session={sid}"})
        assert response.json() == {"data": {"n": "0"}, "user": None}
        assert store.calls == {"load": 1, "touch": 1}  # the read and its due touch, no lease
    assert store.inner.load(lease_key(None)) is None
    assert events.purged() == []
    assert "purge" not in caplog.text
    store.close()


def test_memcached_is_left_alone_too(clock: FakeClock) -> None:
    host, port = MEMCACHED_ADDRESS.rsplit(":", 1)
    require("Memcached", host, int(port))
    prefix = f"coatcheck-test-{secrets.token_hex(4)}:"
    store = CountingStore(
        MemcachedStore.from_url(f"memcached://{MEMCACHED_ADDRESS}", prefix=prefix)
    )
    events = Recorder()
    with client_of(purging_app(store, clock, events)) as client:
        sid = new_sessions(client, 1)[0]
        clock.advance(INTERVAL)
        assert client.get("/read", headers={"Cookie": f"session={sid}"}).status_code == 200
    assert store.calls == {"create": 1, "load": 1, "touch": 1}  # the session's own: no lease
    assert store.inner.load(lease_key(None)) is None
    assert events.purged() == []
    store.close()


def test_an_async_store_with_native_expiry_is_left_alone(prefix: str, clock: FakeClock) -> None:
    events = Recorder()
    store = AsyncRedisStore.from_url(REDIS_URL, prefix=prefix)
    app = starlette_app(
        store, clock=clock, idle_timeout=IDLE, purge_interval=INTERVAL, on_event=events
    )
    with TestClient(app) as client:
        assert client.post("/write", json={"a": 1}).status_code == 200
        clock.advance(INTERVAL)
        assert client.get("/read").json() == {"a": 1}
        client.portal.call(store.close)
    assert events.purged() == []
    assert RedisStore.from_url(REDIS_URL, prefix=prefix).load(lease_key(None)) is None


# -- the async face ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DATABASES))
def test_the_asgi_middleware_purges_through_an_async_store(kind: str, clock: FakeClock) -> None:
    url = DATABASES[kind]
    parts = urlsplit(url)
    require(kind, parts.hostname or "127.0.0.1", parts.port or 0)
    table = f"coatcheck_test_{secrets.token_hex(4)}"
    store: AsyncStore = AsyncSQLStore.from_url(url, table=table)
    events = Recorder()
    options = {"purge_interval": INTERVAL, "purge_batch": 2, "on_event": events}
    app = starlette_app(store, clock=clock, idle_timeout=IDLE, **options)
    try:
        with TestClient(app) as client:
            for n in range(5):
                client.cookies.clear()
                client.post("/write", json={"n": n})
            clock.advance(IDLE + 1)
            client.cookies.clear()
            assert client.get("/read").status_code == 200
            client.portal.call(store.close)
        assert events.purged() == [0, 2]
        left = [
            Record("", bytes(cast(bytes, data)), 0)
            for (data,) in run_sql(url, f"SELECT data FROM {table}")
        ]
        assert len([record for record in left if not is_counter(record)]) == 3
    finally:
        run_sql(url, f"DROP TABLE IF EXISTS {table}")


def test_the_starlette_integration_purges_a_memory_store() -> None:
    """``coatcheck purge`` cannot reach a MemoryStore; ``purge_interval`` can."""
    from coatcheck.integrations.starlette import SessionMiddleware

    clock, events, store = FakeClock(START), Recorder(), MemoryStore()
    app = SessionMiddleware(
        starlette_app().app,
        secret_key="not a secret",
        store=store,
        max_age=int(IDLE),
        clock=clock,
        purge_interval=INTERVAL,
        purge_batch=2,
        on_event=events,
    )
    with TestClient(app) as client:
        for n in range(5):
            client.cookies.clear()
            client.post("/write", json={"n": n})
        clock.advance(IDLE + 1)
        client.cookies.clear()
        client.get("/read")
    assert events.purged() == [0, 2]
    assert len(sessions(store)) == 3


# -- off by default, and no cost when nothing is due ---------------------------------------------


def test_off_by_default_no_request_makes_a_store_call_more(tmp_path: Path) -> None:
    assert SessionConfig().purge_interval is None
    clock = FakeClock(START)
    store = CountingStore(SQLiteStore(tmp_path / "s.db"))
    with client_of(wsgi_app(store, clock=clock, idle_timeout=IDLE)) as client:
        client.get("/read")
        assert store.calls == {}
        old = new_sessions(client, 1)[0]
        assert store.calls == {"create": 1}
        clock.advance(IDLE + INTERVAL)  # the old session expires; no purge comes
        store.reset()
        sid = new_sessions(client, 1)[0]
        assert store.calls == {"create": 1}
        store.reset()
        client.get("/read")
        assert store.calls == {}
        assert client.get("/read", headers={"Cookie": f"session={sid}"}).json()["data"] == {
            "n": "0"
        }
        assert store.calls == {"load": 1}
    assert store.inner.load(lease_key(None)) is None
    assert sorted(r.key for r in sessions(store.inner)) == sorted(map(store_key, [old, sid]))


def test_a_purge_costs_three_calls_and_a_write_once_per_interval(tmp_path: Path) -> None:
    clock, events = FakeClock(START), Recorder()
    store = CountingStore(SQLiteStore(tmp_path / "s.db"))
    with client_of(purging_app(store, clock, events)) as client:
        client.get("/read")  # the first request checks: load the lease, create it, purge
        assert store.calls == {"load": 1, "create": 1, "purge_expired": 1}
        store.reset()
        for _ in range(3):
            client.get("/read")
            clock.advance(INTERVAL / 4)
        assert store.calls == {}
        clock.advance(INTERVAL / 4)
        client.get("/read")  # an interval on: load the lease, save it, purge
        assert store.calls == {"load": 1, "save": 1, "purge_expired": 1}
    # Another instance, its first check while the lease is held: a load only.
    other = CountingStore(SQLiteStore(tmp_path / "s.db"))
    with client_of(purging_app(other, clock, Recorder())) as client:
        client.get("/read")
    assert other.calls == {"load": 1}


class CountingClock(FakeClock):
    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_a_purge_not_due_adds_no_work_to_a_request(tmp_path: Path) -> None:
    """With the option on, a request whose purge is not due reads the clock as often, and makes
    the same store calls, as one with the option off: the check is one comparison."""

    def requests(**options: Any) -> tuple[int, Counter[str]]:
        clock = CountingClock(START)
        store = CountingStore(SQLiteStore(tmp_path / f"{len(options)}.db"))
        app = wsgi_app(store, clock=clock, idle_timeout=IDLE, **options)
        with client_of(app) as client:
            client.get("/read")  # the first purge, if any, is done here
            sid = new_sessions(client, 1)[0]
            clock.reads, store.calls = 0, Counter()
            for n in range(4):
                client.get("/read", headers={"Cookie": f"session={sid}"})
                client.get(f"/write?n={n}", headers={"Cookie": f"session={sid}"})
                client.get("/read")
                clock.advance(IDLE / 8)  # a touch comes due on the way
        return clock.reads, store.calls

    assert requests(purge_interval=IDLE) == requests()


# -- the engine's step, and the options --------------------------------------------------------


def test_the_drivers_throw_a_failing_call_into_the_plan() -> None:
    """What lets the purge step handle its own failures: a store call that raises is thrown
    into the plan at its ``yield``; a plan that does not handle it fails with it."""

    def plan() -> Plan[str]:
        try:
            yield ("delete_by_user", ("alice",))
        except NotSupported as exc:
            return f"handled: {exc}"
        return "not raised"

    def unhandled() -> Plan[None]:
        yield ("delete_by_user", ("alice",))

    store = CountingStore(MemoryStore())  # no user index
    assert run(plan(), store) == "handled: CountingStore cannot delete by user"
    with pytest.raises(NotSupported):
        run(unhandled(), store)

    async def both() -> None:
        face = as_async(store)
        assert await run_async(plan(), face) == "handled: AsyncStoreAdapter has no user index"
        with pytest.raises(NotSupported):
            await run_async(unhandled(), face)

    asyncio.run(both())


def test_due_purge_is_none_without_the_option_and_between_intervals() -> None:
    clock = FakeClock(START)
    assert SessionEngine(SessionConfig(clock=clock)).due_purge(clock.now) is None
    engine = SessionEngine(SessionConfig(clock=clock, purge_interval=60))
    assert engine.due_purge(clock.now) is not None
    assert engine.due_purge(clock.now + 59) is None
    assert engine.due_purge(clock.now + 60) is not None


def test_a_custom_store_whose_purge_takes_no_limit_is_logged_not_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class OldStore(SQLiteStore):
        def purge_expired(self, now: float) -> int:  # type: ignore[override]
            return super().purge_expired(now)

    clock = FakeClock(START)
    engine = SessionEngine(SessionConfig(clock=clock, purge_interval=60, secure=False))
    store = OldStore(tmp_path / "s.db")
    session = run(engine.load(None), store)
    session["a"] = 1
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        cookie = run(engine.commit(session), store)
    assert cookie is not None
    assert "could not purge expired sessions" in caplog.text
    assert store.load(lease_key(None)) is None  # asked first: no lease taken


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"purge_interval": 0}, "purge_interval must be positive"),
        ({"purge_interval": -5}, "purge_interval must be positive"),
        ({"purge_interval": float("inf")}, "purge_interval must be positive"),
        ({"purge_interval": float("nan")}, "purge_interval must be positive"),
        ({"purge_interval": "60"}, "purge_interval must be a number of seconds"),
        ({"purge_batch": 0}, "purge_batch must be a positive int"),
        ({"purge_batch": True}, "purge_batch must be a positive int"),
        ({"purge_batch": 2.5}, "purge_batch must be a positive int"),
    ],
)
def test_bad_purge_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionConfig(**options)


def test_the_purge_interval_takes_a_timedelta() -> None:
    from datetime import timedelta

    config = SessionConfig.from_options(purge_interval=timedelta(minutes=5), purge_batch=50)
    assert (config.purge_interval, config.purge_batch) == (300.0, 50)


def test_flask_reads_the_purge_options_from_its_config(tmp_path: Path) -> None:
    import flask

    from coatcheck.integrations.flask import Session

    clock, events = FakeClock(START), Recorder()
    app = flask.Flask(__name__)
    app.config.update(
        COATCHECK_STORE_URL=f"sqlite:///{tmp_path}/flask.db",
        COATCHECK_PURGE_INTERVAL=INTERVAL,
        COATCHECK_PURGE_BATCH=2,
        COATCHECK_CLOCK=clock,
        COATCHECK_ON_EVENT=events,
        PERMANENT_SESSION_LIFETIME=IDLE,
    )
    Session(app)

    @app.get("/write/<value>")
    def write(value: str) -> str:
        flask.session["v"] = value
        return "ok"

    with app.test_client() as client:
        for n in range(5):
            client.delete_cookie("session")
            client.get(f"/write/{n}")
        clock.advance(IDLE + 1)
        client.delete_cookie("session")
        client.get("/write/live")
    assert events.purged() == [0, 2]
    store = SQLiteStore(tmp_path / "flask.db")
    assert len(sessions(store)) == 6 - 2
    store.close()


def test_the_lease_is_told_from_sessions_as_limit_counters_are(tmp_path: Path) -> None:
    clock = FakeClock(START)
    store = SQLiteStore(tmp_path / "s.db")
    with client_of(purging_app(store, clock, Recorder())) as client:
        client.get("/read")
    lease = store.load(lease_key(None))
    assert lease is not None
    assert lease.expires_at == START + INTERVAL
    assert is_counter(lease)
    assert sessions(store) == []
    store.close()
