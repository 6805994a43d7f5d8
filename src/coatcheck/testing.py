"""The store conformance suite: every store, ours or yours, proves itself with a few lines::

    # tests/test_my_store.py
    import pytest
    from coatcheck.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)  # a Store or an AsyncStore

The suite drives the store through the real engine with an injectable clock (no sleeping), and
checks the raw store contracts. Async stores run on one event loop per test (an anyio blocking
portal), so a client bound to its loop works. Needs pytest, and anyio for async stores. For
detailed assertion messages, call ``pytest.register_assert_rewrite("coatcheck.testing")`` in
your ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pytest

from .config import SessionConfig
from .engine import Plan, SessionEngine, run, run_async
from .events import SessionEvent
from .ids import new_id, store_key
from .session import Session
from .stores.base import (
    AsyncStore,
    Iterable,
    NotSupported,
    Purgeable,
    Record,
    Store,
    UserIndex,
)

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")

IDLE = 1800.0
ABSOLUTE = 4 * 3600.0
TOUCH = 60.0


class FakeClock:
    """A clock that starts at a given time and only moves when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore(Store):
    """A real store wrapped to count the calls the engine makes on it, by method name.

    >>> from coatcheck.stores import MemoryStore
    >>> store = CountingStore(MemoryStore())
    >>> store.load("k" * 64) is None, store.calls
    (True, Counter({'load': 1}))
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.offload_async = inner.offload_async
        self.calls: Counter[str] = Counter()

    def reset(self) -> None:
        self.calls.clear()

    def load(self, key: str) -> Record | None:
        self.calls["load"] += 1
        return self.inner.load(key)

    def create(self, record: Record) -> bool:
        self.calls["create"] += 1
        return self.inner.create(record)

    def save(self, record: Record, expected_version: int) -> bool:
        self.calls["save"] += 1
        return self.inner.save(record, expected_version)

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        self.calls["save"] += 1  # a save on the wire, with less for the store to index
        return self.inner.save_keeping_expiry(record, expected_version)

    def touch(self, key: str, expires_at: float) -> None:
        self.calls["touch"] += 1
        self.inner.touch(key, expires_at)

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.inner.delete(key)

    def rotate(self, old_key: str, record: Record) -> bool:
        self.calls["rotate"] += 1
        return self.inner.rotate(old_key, record)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        self.calls["load"] += 1  # one call on the wire, whether or not it also touched
        return self.inner.load_touching(key, now, expires_at, min_gain)

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """The inner store's purge (:class:`NotSupported` if it has none); a ``limit`` of 0,
        which makes no round trip, is not counted."""
        if limit != 0:
            self.calls["purge_expired"] += 1
        if not isinstance(self.inner, Purgeable):
            raise NotSupported(f"{type(self.inner).__name__} cannot purge")
        return self.inner.purge_expired(now, limit)

    def close(self) -> None:
        self.inner.close()


class Harness:
    """One store under test, an engine with a fake clock, and calls in the store's own face."""

    def __init__(self, store: Store | AsyncStore, portal: BlockingPortal | None) -> None:
        self.store = store
        self.portal = portal
        self.clock = FakeClock(time.time())
        self.events: list[SessionEvent] = []
        self.engine = self.engine_with()

    def engine_with(self, **options: Any) -> SessionEngine:
        """An engine on the harness's clock and timeouts, with ``options`` on top; its events
        are appended to :attr:`events`."""
        config = SessionConfig(
            secure=False,
            idle_timeout=IDLE,
            absolute_timeout=ABSOLUTE,
            touch_interval=TOUCH,
            clock=self.clock,
            on_event=self.events.append,
        )
        return SessionEngine(dataclasses.replace(config, **options))

    def _portal(self) -> BlockingPortal:
        assert self.portal is not None, "async stores need a blocking portal"
        return self.portal

    @overload
    def run(self, plan: Plan[T]) -> T: ...
    @overload
    def run(self, plan: None) -> None: ...
    def run(self, plan: Plan[T] | None) -> T | None:
        """Carry out an engine plan against the store."""
        if plan is None:
            return None
        if isinstance(self.store, AsyncStore):
            result: T = self._portal().call(run_async, plan, self.store)
            return result
        return run(plan, self.store)

    def call(self, method: str, *args: Any) -> Any:
        """Call one store method directly."""
        if isinstance(self.store, AsyncStore):
            return self._portal().call(getattr(self.store, method), *args)
        return getattr(self.store, method)(*args)

    def records(self) -> list[Record]:
        if isinstance(self.store, AsyncStore):

            async def collect() -> list[Record]:
                assert isinstance(self.store, AsyncStore)
                return [record async for record in self.store.iter_records()]

            result: list[Record] = self._portal().call(collect)
            return result
        if not isinstance(self.store, Iterable):
            raise NotSupported(f"{type(self.store).__name__} cannot list its records")
        return list(self.store.iter_records())

    def capability(self, method: str, *args: Any) -> Any:
        """Call an optional capability; NotSupported when the store lacks it."""
        if isinstance(self.store, Store):
            kinds: dict[str, type] = {
                "list_by_user": UserIndex,
                "delete_by_user": UserIndex,
                "purge_expired": Purgeable,
            }
            if not isinstance(self.store, kinds[method]):
                raise NotSupported(f"{type(self.store).__name__} has no {method}")
        return self.call(method, *args)

    # -- the request cycle, as a middleware runs it ---------------------------------------

    def load(self, session_id: str | None) -> Session:
        return self.run(self.engine.load(session_id))

    def commit(self, session: Session) -> str | None:
        return self.run(self.engine.commit(session))

    def request(
        self, session_id: str | None, change: Callable[[Session], None] | None = None
    ) -> tuple[Session, str | None]:
        """Load, apply ``change``, commit; return the session and the Set-Cookie value."""
        session = self.load(session_id)
        if change is not None:
            change(session)
        return session, self.commit(session)

    def new_session(self, **data: Any) -> str:
        """Create a session holding ``data``; return its ID (the cookie value)."""
        _, cookie = self.request(None, lambda s: s.update(data))
        return cookie_id(cookie)


def cookie_id(set_cookie: str | None) -> str:
    """The session ID a ``Set-Cookie`` value carries (empty when it expires the cookie)."""
    assert set_cookie is not None, "expected a Set-Cookie"
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def key_of(session_id: str) -> str:
    return store_key(session_id)


class StoreConformance:
    """What every session store must do. Subclass it and provide a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Store | AsyncStore:
        raise NotImplementedError("define a `store` fixture returning the store under test")

    @pytest.fixture
    def harness(self, store: Store | AsyncStore) -> Iterator[Harness]:
        with ExitStack() as stack:
            portal = None
            if isinstance(store, AsyncStore):
                from anyio.from_thread import start_blocking_portal  # noqa: PLC0415

                portal = stack.enter_context(start_blocking_portal())
            h = Harness(store, portal)
            yield h
            h.call("close")

    # -- raw store contracts ------------------------------------------------------------------

    def test_load_of_an_unknown_key_is_none(self, harness: Harness) -> None:
        assert harness.call("load", key_of(new_id())) is None

    def test_create_then_load_round_trips_every_field(self, harness: Harness) -> None:
        record = Record(key_of(new_id()), b'{"x":1}', harness.clock.now + 100, 1, "u-1")
        assert harness.call("create", record) is True
        assert harness.call("load", record.key) == record

    def test_a_large_session_is_kept_compressed_and_loads_whole(self, harness: Harness) -> None:
        """A 48 KB compressible session takes well under 8 KB at rest (the engine compresses
        envelopes past ``compress_over``), in binary the store keeps byte for byte."""
        notes = " ".join(f"item {n % 40}: wool coat, size M, quantity 1" for n in range(1300))
        assert len(notes) > 48_000
        session_id = harness.new_session(notes=notes)
        record = harness.call("load", key_of(session_id))
        assert record.data[:1] == b"\x00"  # marked: not a JSON envelope
        assert len(record.data) < 8_000
        assert dict(harness.load(session_id)) == {"notes": notes}

    def test_create_refuses_a_key_that_exists_and_changes_nothing(self, harness: Harness) -> None:
        key = key_of(new_id())
        first = Record(key, b"first", harness.clock.now + 100)
        assert harness.call("create", first) is True
        assert harness.call("create", Record(key, b"second", harness.clock.now + 200)) is False
        assert harness.call("load", key) == first

    def test_save_is_compare_and_set_on_the_version(self, harness: Harness) -> None:
        key = key_of(new_id())
        harness.call("create", Record(key, b"v1", harness.clock.now + 100))
        stale = Record(key, b"stale", harness.clock.now + 100, 2)
        assert harness.call("save", stale, 7) is False
        assert harness.call("load", key).data == b"v1"
        fresh = Record(key, b"v2", harness.clock.now + 150, 2, "u-2")
        assert harness.call("save", fresh, 1) is True
        assert harness.call("load", key) == fresh
        assert harness.call("save", Record(key, b"v3", harness.clock.now + 150, 2), 1) is False

    def test_a_save_keeping_the_expiry_is_a_save(self, harness: Harness) -> None:
        key, expires_at = key_of(new_id()), harness.clock.now + 100
        harness.call("create", Record(key, b"v1", expires_at, 1, "u-2"))
        stale = Record(key, b"stale", expires_at, 2, "u-2")
        assert harness.call("save_keeping_expiry", stale, 7) is False
        assert harness.call("load", key).data == b"v1"
        fresh = Record(key, b"v2", expires_at, 2, "u-2")
        assert harness.call("save_keeping_expiry", fresh, 1) is True
        loaded = harness.call("load", key)
        assert (loaded.data, loaded.version, loaded.user_id) == (b"v2", 2, "u-2")
        assert loaded.expires_at == pytest.approx(expires_at, abs=0.01)
        harness.call("delete", key)
        assert harness.call("save_keeping_expiry", Record(key, b"v3", expires_at, 3), 2) is False
        assert harness.call("load", key) is None

    def test_save_never_resurrects_a_deleted_record(self, harness: Harness) -> None:
        key = key_of(new_id())
        harness.call("create", Record(key, b"v1", harness.clock.now + 100))
        harness.call("delete", key)
        assert harness.call("save", Record(key, b"v2", harness.clock.now + 100, 2), 1) is False
        assert harness.call("load", key) is None

    def test_touch_moves_the_expiry_and_nothing_else(self, harness: Harness) -> None:
        key = key_of(new_id())
        record = Record(key, b"data", harness.clock.now + 100, 3, "u-3")
        harness.call("create", record)
        harness.call("touch", key, harness.clock.now + 500)
        loaded = harness.call("load", key)
        assert loaded.expires_at == pytest.approx(harness.clock.now + 500, abs=0.01)
        assert (loaded.data, loaded.version, loaded.user_id) == (b"data", 3, "u-3")

    def test_rotate_moves_a_record_to_a_new_key(self, harness: Harness) -> None:
        old, new, taken = (key_of(new_id()) for _ in range(3))
        harness.call("create", Record(old, b"old", harness.clock.now + 100, 4, "u-4"))
        harness.call("create", Record(taken, b"taken", harness.clock.now + 100))
        refused = Record(taken, b"new", harness.clock.now + 200, 1, "u-4")
        assert harness.call("rotate", old, refused) is False
        assert harness.call("load", old).data == b"old"
        assert harness.call("load", taken).data == b"taken"
        moved = Record(new, b"new", harness.clock.now + 200, 1, "u-4")
        assert harness.call("rotate", old, moved) is True
        assert harness.call("load", old) is None
        assert harness.call("load", new) == moved
        with contextlib.suppress(NotSupported):
            assert [r.key for r in harness.capability("list_by_user", "u-4")] == [new]

    def test_load_touching_extends_a_due_expiry_up_to_the_deadline_or_only_loads(
        self, harness: Harness
    ) -> None:
        now = harness.clock.now
        key = key_of(new_id())
        record = Record(key, b"data", now + 100, 2, "u-5", deadline=now + 1000)
        harness.call("create", record)

        def plain(loaded: tuple[Record, bool]) -> tuple[Record, bool]:
            return loaded[0]._replace(deadline=record.deadline), loaded[1]  # kept or not

        assert plain(harness.call("load_touching", key, now, now + 150, 60)) == (record, False)
        later = now + 200  # past the expiry: an expired record is returned untouched
        assert plain(harness.call("load_touching", key, later, later + 500, 60)) == (record, False)
        loaded, touched = harness.call("load_touching", key, now, now + 5000, 60)
        assert (loaded.data, loaded.version, loaded.user_id) == (b"data", 2, "u-5")
        if touched:  # a store that touches as it loads caps the expiry at the deadline
            assert loaded.expires_at == pytest.approx(now + 1000, abs=0.01)
            assert harness.call("load", key).expires_at == pytest.approx(now + 1000, abs=0.01)
        else:
            assert loaded.expires_at == pytest.approx(now + 100, abs=0.01)
        assert harness.call("load_touching", key_of(new_id()), now, now, 0) == (None, False)

    def test_touch_and_delete_of_a_missing_key_do_nothing(self, harness: Harness) -> None:
        key = key_of(new_id())
        harness.call("touch", key, harness.clock.now + 100)
        harness.call("delete", key)
        assert harness.call("load", key) is None

    # -- the lifecycle through the engine ------------------------------------------------------

    def test_a_written_session_round_trips(self, harness: Harness) -> None:
        session_id = harness.new_session(cart=["apple", "pear"], n=1.5, nested={"a": None})
        session = harness.load(session_id)
        assert not session.is_new
        assert dict(session) == {"cart": ["apple", "pear"], "n": 1.5, "nested": {"a": None}}

    def test_the_store_sees_only_the_hash_of_the_id(self, harness: Harness) -> None:
        session_id = harness.new_session(note="x")
        assert harness.call("load", session_id) is None
        assert harness.call("load", key_of(session_id)) is not None

    def test_an_unknown_id_is_never_adopted(self, harness: Harness) -> None:
        planted = new_id()
        _, cookie = harness.request(planted, lambda s: s.update(a=1))
        assert cookie_id(cookie) != planted
        assert harness.call("load", key_of(planted)) is None

    def test_idle_timeout_ends_a_session(self, harness: Harness) -> None:
        session_id = harness.new_session(a=1)
        harness.clock.advance(IDLE - 1)
        assert not harness.load(session_id).is_new
        harness.clock.advance(IDLE + 1)
        assert harness.load(session_id).is_new

    def test_activity_slides_the_idle_timeout(self, harness: Harness) -> None:
        session_id = harness.new_session(a=1)
        for _ in range(5):
            harness.clock.advance(IDLE * 0.75)
            session, _ = harness.request(session_id)
            assert not session.is_new
        assert harness.clock.now - session.created_at > IDLE * 3

    def test_absolute_timeout_ends_even_an_active_session(self, harness: Harness) -> None:
        session_id = harness.new_session(a=1)
        alive_until = harness.clock.now + ABSOLUTE
        while harness.clock.now + IDLE / 2 < alive_until:
            harness.clock.advance(IDLE / 2)
            session, _ = harness.request(session_id, lambda s: s.update(b=s.get("b", 0) + 1))
            assert not session.is_new
            assert session.expires_at is not None
            assert session.expires_at <= alive_until
        harness.clock.now = alive_until
        assert harness.load(session_id).is_new

    def test_a_read_touches_at_most_once_per_interval(self, harness: Harness) -> None:
        session_id = harness.new_session(a=1)
        key = key_of(session_id)
        first = harness.call("load", key)
        harness.clock.advance(TOUCH / 2)
        _, cookie = harness.request(session_id, lambda s: s.get("a"))
        assert cookie is None
        assert harness.call("load", key).expires_at == pytest.approx(first.expires_at, abs=0.01)
        harness.clock.advance(TOUCH)
        _, cookie = harness.request(session_id, lambda s: s.get("a"))
        assert cookie is not None
        touched = harness.call("load", key)
        assert touched.expires_at == pytest.approx(harness.clock.now + IDLE, abs=0.01)
        assert (touched.version, touched.data) == (first.version, first.data)

    def test_a_write_slides_the_expiry_at_most_once_per_interval(self, harness: Harness) -> None:
        session_id = harness.new_session(n=0)
        key = key_of(session_id)
        first = harness.call("load", key)
        harness.clock.advance(TOUCH / 2)
        _, cookie = harness.request(session_id, lambda s: s.update(n=1))
        assert cookie is None
        saved = harness.call("load", key)
        assert (saved.version, saved.expires_at) == (first.version + 1, first.expires_at)
        harness.clock.advance(TOUCH)
        _, cookie = harness.request(session_id, lambda s: s.update(n=2))
        assert cookie_id(cookie) == session_id  # re-sent: the browser's expiry slides too
        slid = harness.call("load", key)
        assert slid.version == first.version + 2
        assert slid.expires_at == pytest.approx(harness.clock.now + IDLE, abs=0.01)
        assert harness.load(session_id)["n"] == 2

    def test_regenerate_keeps_data_and_kills_the_old_id(self, harness: Harness) -> None:
        session_id = harness.new_session(cart=[1])
        created = harness.load(session_id).created_at
        harness.clock.advance(10)
        _, cookie = harness.request(session_id, lambda s: s.regenerate())
        new = cookie_id(cookie)
        assert new != session_id
        # A request sent with the old ID before the new cookie arrived is forwarded: it reads
        # the session and its write lands there, with no cookie of its own.
        _, late_cookie = harness.request(session_id, lambda s: s.__setitem__("late", 1))
        assert late_cookie is None
        harness.clock.advance(harness.engine.config.rotation_grace)
        assert harness.load(session_id).is_new
        session = harness.load(new)
        assert dict(session) == {"cart": [1], "late": 1}
        assert session.created_at == created

    def test_a_rotation_through_a_forwarded_id_hands_out_the_new_cookie(
        self, harness: Harness
    ) -> None:
        # A tab still holding the old ID logs in during the grace window of a regenerate().
        old = harness.new_session(cart=[1])
        newer = cookie_id(harness.request(old, Session.regenerate)[1])
        _, cookie = harness.request(old, lambda s: s.login("alice"))
        newest = cookie_id(cookie)
        assert newest not in ("", old, newer)
        harness.clock.advance(harness.engine.config.rotation_grace + 1)
        session = harness.load(newest)
        assert (session.user_id, dict(session)) == ("alice", {"cart": [1]})
        assert harness.load(old).is_new
        assert harness.load(newer).is_new

    def test_login_leaves_no_grace_window_to_the_old_id(self, harness: Harness) -> None:
        session_id = harness.new_session(cart=[1])
        _, cookie = harness.request(session_id, lambda s: s.login("alice"))
        assert harness.load(session_id).is_new
        assert harness.load(cookie_id(cookie)).user_id == "alice"

    def test_login_binds_the_user_and_restarts_the_absolute_timeout(self, harness: Harness) -> None:
        session_id = harness.new_session(cart=[1])
        first_deadline = harness.clock.now + ABSOLUTE
        while harness.clock.now + IDLE / 2 < first_deadline:
            harness.clock.advance(IDLE / 2)
            harness.request(session_id)
        _, cookie = harness.request(session_id, lambda s: s.login("alice"))
        new = cookie_id(cookie)
        assert harness.load(session_id).is_new
        harness.clock.now = first_deadline + 1
        session = harness.load(new)
        assert (session.user_id, dict(session)) == ("alice", {"cart": [1]})

    def test_logout_destroys_the_session(self, harness: Harness) -> None:
        session_id = harness.new_session(a=1)
        _, cookie = harness.request(session_id, lambda s: s.logout())
        assert cookie is not None
        assert cookie_id(cookie) == ""
        assert harness.call("load", key_of(session_id)) is None
        assert harness.load(session_id).is_new

    def test_corrupt_stored_data_gives_a_fresh_session(self, harness: Harness) -> None:
        for garbage in (b"", b"\xff\xfe", b"[1,2]", b'{"d":"not a dict","c":1,"a":1}'):
            session_id = new_id()
            record = Record(key_of(session_id), garbage, harness.clock.now + 100)
            harness.call("create", record)
            session, cookie = harness.request(session_id, lambda s: s.update(mine=1))
            assert cookie_id(cookie) != session_id
            assert dict(session) == {"mine": 1}

    @pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
    def test_a_record_whose_user_column_was_changed_is_rejected(
        self, harness: Harness, encrypted: bool
    ) -> None:
        # A store writer sets mallory's record's user column to alice, keeping the data.
        keys = (bytes(range(32)),) if encrypted else ()
        engine = harness.engine_with(encryption_keys=keys)
        session = harness.run(engine.load(None))
        session["cart"] = ["ring"]
        session.login("mallory")
        session_id = cookie_id(harness.run(engine.commit(session)))
        record = harness.call("load", key_of(session_id))
        assert record.user_id == "mallory"
        altered = record._replace(user_id="alice", version=record.version + 1)
        assert harness.call("save", altered, record.version)
        assert harness.call("load", key_of(session_id)).user_id == "alice"
        harness.events.clear()
        loaded = harness.run(engine.load(session_id))
        assert (loaded.is_new, loaded.user_id, dict(loaded)) == (True, None, {})
        assert [(e.kind, e.reason, e.user_id) for e in harness.events] == [
            ("rejected", "tampered", None)
        ]

    def test_an_expiry_column_moved_past_the_deadline_does_not_outlive_it(
        self, harness: Harness
    ) -> None:
        session_id = harness.new_session(a=1)
        deadline = harness.clock.now + ABSOLUTE
        harness.call("touch", key_of(session_id), deadline + 10 * ABSOLUTE)
        harness.clock.now = deadline
        assert harness.load(session_id).is_new

    # -- capabilities -----------------------------------------------------------------------

    def test_sessions_are_listed_and_deleted_by_user(self, harness: Harness) -> None:
        alice = [harness.new_session(n=i) for i in range(3)]
        alice = [cookie_id(harness.request(i, lambda s: s.login("alice"))[1]) for i in alice]
        _, bob = harness.request(harness.new_session(n=9), lambda s: s.login("bob"))
        try:
            listed = harness.capability("list_by_user", "alice")
        except NotSupported:
            with pytest.raises(NotSupported):
                harness.capability("delete_by_user", "alice")
            return
        assert sorted(r.key for r in listed) == sorted(key_of(s) for s in alice)
        assert harness.capability("delete_by_user", "alice") == 3
        assert all(harness.load(s).is_new for s in alice)
        assert harness.capability("list_by_user", "alice") == []
        assert harness.load(cookie_id(bob)).user_id == "bob"

    def test_logout_removes_the_session_from_its_user(self, harness: Harness) -> None:
        _, cookie = harness.request(harness.new_session(n=1), lambda s: s.login("carol"))
        harness.request(cookie_id(cookie), lambda s: s.logout())
        with contextlib.suppress(NotSupported):
            assert harness.capability("list_by_user", "carol") == []

    def test_purge_removes_expired_sessions_only(self, harness: Harness) -> None:
        old = [harness.new_session(n=i) for i in range(5)]
        harness.clock.advance(IDLE - 10)
        young = [harness.new_session(n=i) for i in range(3)]
        harness.clock.advance(20)
        try:
            purged = harness.capability("purge_expired", harness.clock.now)
        except NotSupported:
            return
        assert purged == len(old)
        assert all(harness.call("load", key_of(s)) is None for s in old)
        assert all(not harness.load(s).is_new for s in young)

    def test_a_limited_purge_deletes_at_most_that_many_and_no_live_record(
        self, harness: Harness
    ) -> None:
        now = harness.clock.now
        try:
            assert harness.capability("purge_expired", now, 0) == 0  # asks, deletes nothing
        except NotSupported:
            return
        expired = [Record(key_of(new_id()), b"x", now - 10 * (i + 1)) for i in range(5)]
        live = [Record(key_of(new_id()), b"y", now + 10 * (i + 1), 1, "u-7") for i in range(3)]
        for record in expired + live:
            assert harness.call("create", record)
        assert harness.capability("purge_expired", now, 0) == 0
        assert all(harness.call("load", r.key) is not None for r in expired)
        assert harness.capability("purge_expired", now, 2) == 2
        left = [r for r in expired if harness.call("load", r.key) is not None]
        assert len(left) == 3
        assert harness.capability("purge_expired", now, 2) == 2
        assert harness.capability("purge_expired", now, 2) == 1
        assert harness.capability("purge_expired", now, 2) == 0
        assert all(harness.call("load", r.key) is None for r in expired)
        assert [harness.call("load", r.key) for r in live] == live

    def test_a_limited_purge_takes_the_longest_expired_first(self, harness: Harness) -> None:
        now = harness.clock.now
        try:
            harness.capability("purge_expired", now, 0)
        except NotSupported:
            return
        # Created in no particular order of expiry, 10 s apart (MemoryStore files by second).
        ages = [30, 70, 10, 50, 60, 20, 40]
        expired = {age: Record(key_of(new_id()), b"x", now - age) for age in ages}
        for record in expired.values():
            assert harness.call("create", record)
        assert harness.capability("purge_expired", now, 3) == 3
        gone = sorted(age for age, r in expired.items() if harness.call("load", r.key) is None)
        assert gone == [50, 60, 70]
        assert harness.capability("purge_expired", now, 3) == 3
        assert harness.call("load", expired[10].key) is not None
        assert harness.capability("purge_expired", now, None) == 1

    def test_iteration_yields_every_record(self, harness: Harness) -> None:
        ids = [harness.new_session(n=i) for i in range(7)]
        try:
            keys = {record.key for record in harness.records()}
        except NotSupported:
            return
        assert keys == {key_of(s) for s in ids}

    # -- concurrency --------------------------------------------------------------------------

    def test_concurrent_writers_lose_no_update(self, harness: Harness) -> None:
        session_id = harness.new_session(start=True)
        writers = 12
        barrier = threading.Barrier(writers)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                session = harness.load(session_id)
                barrier.wait()  # every writer has loaded the same version
                session[f"k{n}"] = n
                harness.commit(session)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        final = harness.load(session_id)
        assert dict(final) == {"start": True, **{f"k{n}": n for n in range(writers)}}

    def test_concurrent_writers_of_one_key_last_one_wins(self, harness: Harness) -> None:
        session_id = harness.new_session(counter=0)
        first, second = harness.load(session_id), harness.load(session_id)
        first["counter"] = 1
        second["counter"] = 2
        harness.commit(first)
        harness.commit(second)
        assert harness.load(session_id)["counter"] == 2
