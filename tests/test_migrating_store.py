"""MigratingStore and AsyncMigratingStore: the conformance suite over pairs of real stores, and
each guarantee of :mod:`coatcheck.stores.migrating` (and each window its documentation admits),
with the other client's call put at an exact point between the composition's steps."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from coatcheck.engine import SessionEngine, run
from coatcheck.ids import store_key
from coatcheck.migration import migrate
from coatcheck.stores import (
    AsyncMigratingStore,
    AsyncStore,
    AsyncStoreAdapter,
    Iterable,
    MemoryStore,
    MigratingStore,
    NotSupported,
    Purgeable,
    Record,
    SQLiteStore,
    Store,
    UserIndex,
    from_url,
)
from coatcheck.stores.migrating._capabilities import offers
from coatcheck.stores.redis import RedisStore
from coatcheck.testing import CountingStore, StoreConformance, cookie_id

from .operator_stores import ENGINE, data_of, new_session, postgresql_url, redis_url, sqlite_url
from .servers import free_port
from .wsgi_app import wsgi_app

__all__ = ["postgresql_url", "redis_url", "sqlite_url"]  # fixtures

# -- the conformance suite ----------------------------------------------------------------------


class TestMigratingMemoryStores(StoreConformance):
    @pytest.fixture
    def store(self) -> Store:
        return MigratingStore(MemoryStore(), MemoryStore())


class TestMigratingMemoryStoresNotReadingTheOld(StoreConformance):
    """The last step of a rolling switch: writes and deletes still reach both, reads only new."""

    @pytest.fixture
    def store(self) -> Store:
        return MigratingStore(MemoryStore(), MemoryStore(), read_old=False)


class TestMigratingFromAStoreWithoutCapabilities(StoreConformance):
    """An old store that cannot list, find a user's or purge its records: the composition
    offers none of it (the suite checks that each is NotSupported, or skips it)."""

    @pytest.fixture
    def store(self) -> Store:
        return MigratingStore(CountingStore(MemoryStore()), MemoryStore())


class TestMigratingSQLiteToRedis(StoreConformance):
    @pytest.fixture
    def store(self, sqlite_url: str, redis_url: str) -> Store:
        old, new = from_url(sqlite_url), from_url(redis_url)
        assert isinstance(old, Store)
        assert isinstance(new, Store)
        return MigratingStore(old, new)


class TestAsyncMigratingSQLiteToPostgreSQL(StoreConformance):
    """The async composition an ASGI application runs: a sync store's adapter behind, an async
    server store in front."""

    @pytest.fixture
    def store(self, tmp_path: Path, postgresql_url: str) -> AsyncStore:
        old = AsyncStoreAdapter(SQLiteStore(tmp_path / "old.db"), offload=True)
        new = from_url(postgresql_url, asynchronous=True)
        assert isinstance(new, AsyncStore)
        return AsyncMigratingStore(old, new)


class TestAsyncMigratingRedisToPostgreSQL(StoreConformance):
    @pytest.fixture
    def store(self, redis_url: str, postgresql_url: str) -> AsyncStore:
        old = from_url(redis_url, asynchronous=True)
        new = from_url(postgresql_url, asynchronous=True)
        assert isinstance(old, AsyncStore)
        assert isinstance(new, AsyncStore)
        return AsyncMigratingStore(old, new)


# -- a store to interleave another client's calls with -------------------------------------------


class Interleaved(MemoryStore):
    """A MemoryStore that runs a function once, just before or just after one of its calls: the
    other client's call, at an exact point between a composition's steps."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[tuple[str, str], Callable[[], object]] = {}

    def at(self, when: str, method: str, action: Callable[[], object]) -> None:
        self.hooks[(when, method)] = action

    def _hook(self, when: str, method: str) -> None:
        action = self.hooks.pop((when, method), None)
        if action is not None:
            action()

    def load(self, key: str) -> Record | None:
        self._hook("before", "load")
        record = super().load(key)
        self._hook("after", "load")
        return record

    def create(self, record: Record) -> bool:
        self._hook("before", "create")
        created = super().create(record)
        self._hook("after", "create")
        return created

    def save(self, record: Record, expected_version: int) -> bool:
        self._hook("before", "save")
        saved = super().save(record, expected_version)
        self._hook("after", "save")
        return saved

    def delete(self, key: str) -> None:
        self._hook("before", "delete")
        super().delete(key)
        self._hook("after", "delete")


def login(store: Store, session_id: str, user: str) -> str:
    session = run(ENGINE.load(session_id), store)
    session.login(user)
    return cookie_id(run(ENGINE.commit(session), store))


def logout(store: Store, session_id: str) -> None:
    session = run(ENGINE.load(session_id), store)
    assert not session.is_new
    session.logout()
    run(ENGINE.commit(session), store)


def write(store: Store, session_id: str, **data: object) -> None:
    session = run(ENGINE.load(session_id), store)
    assert not session.is_new
    session.update(data)
    run(ENGINE.commit(session), store)


def key(session_id: str) -> str:
    """The store key of a session ID, as the engine hashes it."""
    return store_key(session_id, ENGINE.config.hash_secret)


# -- reads: the new store first, then the old one, copied forward --------------------------------


def test_a_session_only_in_the_old_store_is_served_and_copied_forward() -> None:
    old, new = MemoryStore(), MemoryStore()
    sid = new_session(old, "ada", cart=["tea"])
    store = MigratingStore(old, new)
    assert data_of(store, sid) == {"cart": ["tea"]}
    assert new.load(key(sid)) == old.load(key(sid))  # verbatim: version and all


def test_a_read_repair_never_overwrites_a_copy_another_writer_made_first() -> None:
    old, new = MemoryStore(), Interleaved()
    sid = new_session(old, cart=["tea"])
    theirs = old.load(key(sid))
    assert theirs is not None
    newer = theirs._replace(version=theirs.version + 1, data=theirs.data)
    new.at("before", "create", lambda: MemoryStore.create(new, newer))
    assert MigratingStore(old, new).load(theirs.key) == newer
    assert new.load(theirs.key) == newer


def test_an_expired_record_of_the_old_store_is_not_copied() -> None:
    old, new = MemoryStore(), MemoryStore()
    dead = Record("d" * 64, b"{}", time.time() - 1)
    old.create(dead)
    assert MigratingStore(old, new).load(dead.key) == dead  # the engine sees it is dead
    assert new.load(dead.key) is None


@pytest.mark.parametrize("moment", ["before the copy", "after the copy"])
def test_a_session_logged_out_while_it_is_copied_forward_stays_logged_out(moment: str) -> None:
    """The delete's two steps (old, then new) both land between the repair's read of the old
    store and its second read: the copy is undone, whichever side of it they fall."""
    old, new = MemoryStore(), Interleaved()
    sid = new_session(old, "ada", cart=["tea"])
    store = MigratingStore(old, new)
    other_request = MigratingStore(old, new)
    new.at(
        "before" if moment == "before the copy" else "after",
        "create",
        lambda: other_request.delete(key(sid)),  # the other request logs the session out
    )
    assert store.load(key(sid)) is None
    assert (old.load(key(sid)), new.load(key(sid))) == (None, None)
    assert data_of(store, sid) is None


def test_a_delete_landing_after_the_repairs_second_read_removes_the_copy() -> None:
    """The other order: the repair checks the old store before the delete reaches it; the
    delete's second step, on the new store, comes after the copy and removes it."""
    old, new = Interleaved(), MemoryStore()
    sid = new_session(old, cart=["tea"])
    k = key(sid)
    store = MigratingStore(old, new)
    loads = 0

    def count() -> None:
        nonlocal loads
        loads += 1
        if loads < 2:
            old.at("after", "load", count)

    old.at("after", "load", count)
    assert store.load(k) is not None  # read, copied, checked: the copy stands
    assert loads == 2
    store.delete(k)  # old first, then new
    assert (old.load(k), new.load(k), store.load(k)) == (None, None, None)


@pytest.mark.parametrize("ending", ["logout", "login"])
def test_a_read_between_the_two_steps_of_a_delete_brings_nothing_back(ending: str) -> None:
    """Another request reads the session between the delete's two steps, whichever store the
    delete takes first. It may still see the session (the delete is not over), but it copies
    nothing back: the old store goes first, and the new store's copy goes second."""
    old, new = Interleaved(), Interleaved()
    sid = new_session(old, "ada", cart=["tea"])
    app, other_request = MigratingStore(old, new), MigratingStore(old, new)
    reads: list[object] = []

    def read_once() -> None:
        if not reads:
            reads.append(other_request.load(key(sid)))

    old.at("after", "delete", read_once)
    new.at("after", "delete", read_once)
    if ending == "logout":
        logout(app, sid)
    else:
        assert run(ENGINE.load(login(app, sid, "ada")), new).user_id == "ada"
    assert len(reads) == 1
    assert (old.load(key(sid)), new.load(key(sid))) == (None, None)
    assert data_of(app, sid) is None


def test_the_back_fill_undoes_a_copy_of_a_session_logged_out_meanwhile() -> None:
    """``coatcheck migrate`` reads a session from the old store; before its copy lands, the
    application on the composition logs it out: the copy is undone, counted as ended."""
    old, new = MemoryStore(), Interleaved()
    sid = new_session(old, "ada", cart=["tea"])
    kept = new_session(old, cart=["jam"])
    app = MigratingStore(old, new)
    new.at("before", "create", lambda: app.delete(key(sid)))
    report = migrate(old, new)
    assert (report.read, report.copied, report.expired, report.ok) == (2, 1, 1, True)
    assert new.load(key(sid)) is None
    assert data_of(app, sid) is None
    assert data_of(new, kept) == {"cart": ["jam"]}


# -- writes: the new store is the truth, the old one follows --------------------------------------


def test_writes_logins_and_logouts_reach_both_stores_so_the_old_one_can_take_over_again() -> None:
    old, new = MemoryStore(), MemoryStore()
    written, logged_in, logged_out = (new_session(old, cart=["tea"]) for _ in range(3))
    app = MigratingStore(old, new)
    write(app, written, cart=["tea", "jam"])
    ada = login(app, logged_in, "ada")
    logout(app, logged_out)
    created = new_session(app, cart=["milk"])
    for alone in (new, old):  # the switch, or a rollback
        assert data_of(alone, written) == {"cart": ["tea", "jam"]}
        assert run(ENGINE.load(ada), alone).user_id == "ada"
        assert data_of(alone, logged_in) is None
        assert data_of(alone, logged_out) is None
        assert data_of(alone, created) == {"cart": ["milk"]}


def test_a_stale_save_is_refused_and_changes_neither_store() -> None:
    old, new = MemoryStore(), MemoryStore()
    store = MigratingStore(old, new)
    record = Record("a" * 64, b"v1", time.time() + 100)
    assert store.create(record)
    assert store.save(record._replace(data=b"v2", version=2), 1)
    assert not store.save(record._replace(data=b"stale", version=2), 1)
    assert old.load(record.key) == new.load(record.key) == record._replace(data=b"v2", version=2)


def test_the_old_copy_ends_on_the_newest_version_when_follow_ups_cross() -> None:
    """Two writers: the second's save and follow-up run before the first's follow-up. The old
    copy takes the newest version, and the late, older follow-up does not undo it."""
    old, new = MemoryStore(), MemoryStore()
    store = MigratingStore(old, new)
    v1 = Record("b" * 64, b"v1", time.time() + 100)
    assert store.create(v1)
    v2, v3 = v1._replace(data=b"v2", version=2), v1._replace(data=b"v3", version=3)
    assert new.save(v2, 1)  # the first writer's save; its follow-up is late
    assert store.save(v3, 2)  # the second writer's, follow-up and all
    assert old.load(v1.key) == v3
    assert old.save(v2, 1) is False  # the first writer's late follow-up: refused
    assert (new.load(v1.key), old.load(v1.key)) == (v3, v3)


def test_a_follow_up_never_creates_in_the_old_store() -> None:
    old, new = MemoryStore(), MemoryStore()
    record = Record("c" * 64, b"v1", time.time() + 100)
    new.create(record)  # a record the old store lacks (ended there, say)
    assert MigratingStore(old, new).save(record._replace(version=2), 1)
    assert old.load(record.key) is None


def test_a_save_of_a_record_only_in_the_old_store_copies_it_forward_first() -> None:
    """A tool that listed the composition's records (the old store's among them) writes one
    no request has read: the save lands, in both stores, as it would in one store."""
    old, new = MemoryStore(), MemoryStore()
    record = Record("e" * 64, b"v1", time.time() + 100, 4, "ada")
    old.create(record)
    newer = record._replace(data=b"v2", version=5)
    assert MigratingStore(old, new).save(newer, 4)
    assert new.load(record.key) == old.load(record.key) == newer
    assert not MigratingStore(old, new).save(newer._replace(version=6), 4)


def test_a_create_of_a_key_the_old_store_holds_is_refused_and_leaves_no_copy() -> None:
    old, new = MemoryStore(), MemoryStore()
    held = Record("f" * 64, b"old", time.time() + 100)
    old.create(held)
    assert not MigratingStore(old, new).create(held._replace(data=b"new"))
    assert not MigratingStore(old, new).rotate("0" * 64, held._replace(data=b"new"))
    assert (old.load(held.key), new.load(held.key)) == (held, None)


def test_a_touch_reaches_the_old_copy_too(sqlite_url: str, redis_url: str) -> None:
    """Over Redis, whose load touches in the same round trip: the old copy's expiry follows."""
    old, new = from_url(sqlite_url), from_url(redis_url)
    assert isinstance(old, Store)
    assert isinstance(new, Store)
    store = MigratingStore(old, new)
    sid = new_session(store, cart=["tea"])
    before = old.load(key(sid))
    assert before is not None
    time.sleep(0.05)
    toucher = SessionEngine(dataclasses.replace(ENGINE.config, touch_interval=0))
    session = run(toucher.load(sid), store)
    run(toucher.commit(session), store)
    after_new, after_old = new.load(key(sid)), old.load(key(sid))
    assert after_new is not None
    assert after_old is not None
    assert after_new.expires_at > before.expires_at
    assert after_old.expires_at == pytest.approx(after_new.expires_at, abs=0.01)


# -- capabilities ---------------------------------------------------------------------------------


def test_capabilities_are_offered_only_where_both_stores_honour_them() -> None:
    full, plain = MemoryStore(), CountingStore(MemoryStore())  # plain: no index, no listing
    both = MigratingStore(MemoryStore(), full)
    from_plain = MigratingStore(plain, MemoryStore())
    not_reading = MigratingStore(plain, MemoryStore(), read_old=False)
    assert all(isinstance(both, c) for c in (UserIndex, Purgeable, Iterable))
    assert not isinstance(from_plain, UserIndex)
    assert not isinstance(from_plain, Iterable)
    assert not isinstance(from_plain, Purgeable)  # the fallback would return what it kept
    assert isinstance(not_reading, Iterable)  # reads, so listings, are the new store's alone
    assert isinstance(not_reading, Purgeable)
    assert not isinstance(not_reading, UserIndex)  # a user's sessions still end in both
    assert isinstance(both, MigratingStore)
    assert isinstance(from_plain, MigratingStore)


def test_the_async_face_refuses_a_users_deletion_before_either_store_deletes() -> None:
    old, new = MemoryStore(), CountingStore(MemoryStore())
    sid = new_session(old, "ada")
    store = AsyncMigratingStore(AsyncStoreAdapter(old), AsyncStoreAdapter(new))
    assert [offers(store, c) for c in (UserIndex, Purgeable, Iterable)] == [False, False, False]
    with start_blocking_portal() as portal:
        with pytest.raises(NotSupported):
            portal.call(store.delete_by_user, "ada")
        with pytest.raises(NotSupported):
            store.iter_records()
    assert data_of(old, sid) == {"cart": ["tea"]}


def test_listing_yields_each_record_once_the_new_stores_copy_first() -> None:
    old, new = MemoryStore(), MemoryStore()
    only_old = [new_session(old, cart=[n]) for n in range(3)]
    store = MigratingStore(old, new)
    write(store, only_old[0], cart=["copied"])  # now in both, newer in the new store
    only_new = new_session(new, cart=["new"])
    assert isinstance(store, Iterable)
    records = list(store.iter_records())
    assert sorted(r.key for r in records) == sorted(key(s) for s in [*only_old, only_new])
    assert {r.key: r for r in records}[key(only_old[0])] == new.load(key(only_old[0]))


# -- the windows the documentation admits ---------------------------------------------------------


def test_a_logout_on_the_old_store_alone_misses_a_copy_made_forward() -> None:
    """Rolling onto the composition: an instance still on the old store alone logs out a
    session an upgraded instance has already copied forward; the copy lives on."""
    old, new = MemoryStore(), MemoryStore()
    sid = new_session(old, "ada", cart=["tea"])
    assert data_of(MigratingStore(old, new), sid) == {"cart": ["tea"]}
    logout(old, sid)
    assert data_of(MigratingStore(old, new), sid) == {"cart": ["tea"]}


def test_the_last_switch_goes_through_read_old_false() -> None:
    """Rolling off the composition: an instance on the new store alone logs a session out
    there; the old copy is still there, and a composition that reads the old store copies it
    back. One that does not (``read_old=False``) leaves it ended."""
    old, new = MemoryStore(), MemoryStore()
    sid = new_session(MigratingStore(old, new), "ada", cart=["tea"])
    logout(new, sid)
    assert data_of(MigratingStore(old, new, read_old=False), sid) is None
    assert data_of(MigratingStore(old, new), sid) == {"cart": ["tea"]}  # back: the window


def test_read_old_false_still_ends_sessions_in_both_stores() -> None:
    old, new = MemoryStore(), MemoryStore()
    sid = new_session(MigratingStore(old, new), "ada", cart=["tea"])
    logout(MigratingStore(old, new, read_old=False), sid)
    assert (old.load(key(sid)), new.load(key(sid))) == (None, None)


# -- what it costs, and what it needs -------------------------------------------------------------


def test_a_first_read_costs_four_calls_and_then_each_call_reaches_each_store_once() -> None:
    old, new = CountingStore(MemoryStore()), CountingStore(MemoryStore())
    sid = new_session(old.inner, cart=["tea"])
    store = MigratingStore(old, new)
    assert data_of(store, sid) == {"cart": ["tea"]}  # the first read: copied forward
    assert (new.calls, old.calls) == ({"load": 1, "create": 1}, {"load": 2})
    new.reset()
    old.reset()
    assert data_of(store, sid) == {"cart": ["tea"]}
    assert (new.calls, old.calls) == ({"load": 1}, {})
    new.reset()
    write(store, sid, cart=["jam"])
    assert (new.calls, old.calls) == ({"load": 1, "save": 1}, {"save": 1})
    new.reset()
    old.reset()
    store.touch(key(sid), time.time() + 100)
    store.delete(key(sid))
    assert new.calls == old.calls == {"touch": 1, "delete": 1}


def test_an_old_store_that_is_down_fails_the_request_with_a_503() -> None:
    down = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    app = wsgi_app(MigratingStore(down, MemoryStore()))
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/write", "QUERY_STRING": "cart=tea"}
    environ |= {"SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    b"".join(app(environ, lambda status, headers, *exc: statuses.append(status)))
    assert statuses[0].startswith("503")
