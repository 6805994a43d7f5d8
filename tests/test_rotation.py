"""Regeneration: a plain rotation forwards requests already in flight for a short grace window;
login and privilege changes kill the old ID at once; a password change ends the user's other
sessions."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from coatcheck import SessionConfig, SessionEngine
from coatcheck.engine import run
from coatcheck.events import SessionEvent
from coatcheck.ids import store_key
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.testing import FakeClock

GRACE = 10.0


class World:
    """An engine, a store and a clock, and the requests of a few browsers."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock(1_800_000_000.0)
        self.events: list[SessionEvent] = []
        options.setdefault("rotation_grace", GRACE)
        config = SessionConfig(
            secure=False, clock=self.clock, on_event=self.events.append, **options
        )
        self.engine, self.store = SessionEngine(config), MemoryStore()

    def request(self, sid: str | None, change: Any = None) -> tuple[Session, str | None]:
        session = run(self.engine.load(sid), self.store)
        if change is not None:
            change(session)
        set_cookie = run(self.engine.commit(session), self.store)
        new = set_cookie.split(";", 1)[0].split("=", 1)[1] if set_cookie else None
        return session, new or None

    def login(self, user: str) -> str:
        _, sid = self.request(None, lambda s: s.login(user))
        assert sid is not None
        return sid


def test_a_request_in_flight_at_a_rotation_reads_and_writes_the_rotated_session() -> None:
    world = World()
    _, old = world.request(None, lambda s: s.update(cart=[1]))
    loaded_before = run(world.engine.load(old), world.store)  # in flight: loaded, not yet done
    _, new = world.request(old, Session.regenerate)
    loaded_before["note"] = "written by the request in flight"
    assert run(world.engine.commit(loaded_before), world.store) is None  # no fork, no cookie
    session, _ = world.request(new)
    assert dict(session) == {"cart": [1], "note": "written by the request in flight"}


def test_the_old_id_dies_when_the_grace_window_ends() -> None:
    world = World()
    _, old = world.request(None, lambda s: s.update(cart=[1]))
    world.request(old, Session.regenerate)
    assert world.request(old)[0]["cart"] == [1]
    world.clock.advance(GRACE)
    assert world.request(old)[0].is_new


def test_no_grace_window_when_it_is_set_to_zero() -> None:
    world = World(rotation_grace=0)
    _, old = world.request(None, lambda s: s.update(cart=[1]))
    world.request(old, Session.regenerate)
    assert world.request(old)[0].is_new


@pytest.mark.parametrize("change", [lambda s: s.login("bob"), Session.privileges_changed])
def test_login_and_privilege_changes_kill_the_old_id_at_once(change: Any) -> None:
    world = World()
    _, old = world.request(None, lambda s: s.update(cart=[1]))
    _, new = world.request(old, change)
    assert new is not None
    assert new != old
    assert world.request(old)[0].is_new
    assert world.request(new)[0]["cart"] == [1]


def test_a_privilege_change_renews_the_csrf_token() -> None:
    world = World()
    tokens: list[str] = []
    _, sid = world.request(None, lambda s: tokens.append(s.csrf_token()))
    _, sid = world.request(sid, Session.privileges_changed)
    session, _ = world.request(sid)
    assert not session.csrf_matches(tokens[0])
    assert session.csrf_matches(session.csrf_token())


def test_a_password_change_ends_the_users_other_sessions_and_keeps_this_one() -> None:
    world = World()
    laptop, phone, other_user = world.login("ann"), world.login("ann"), world.login("ben")
    _, laptop_now = world.request(laptop, Session.password_changed)
    assert laptop_now is not None
    assert world.request(laptop_now)[0].user_id == "ann"
    assert world.request(laptop)[0].is_new  # the old ID too: no grace for it
    assert world.request(phone)[0].is_new
    assert world.request(other_user)[0].user_id == "ben"
    revoked = [e for e in world.events if e.kind == "revoked"]
    assert [(e.user_id, e.reason) for e in revoked] == [("ann", "password changed")]


def test_a_logout_after_a_password_change_still_ends_the_users_other_sessions() -> None:
    world = World()
    laptop, phone, other_user = world.login("ann"), world.login("ann"), world.login("ben")

    def change_password_then_log_out(session: Session) -> None:
        session.password_changed()
        session.logout()

    _, cookie = world.request(laptop, change_password_then_log_out)
    assert cookie is None  # expired: Max-Age=0 with an empty value
    assert world.request(laptop)[0].is_new
    assert world.request(phone)[0].is_new
    assert world.request(other_user)[0].user_id == "ben"


def test_a_regenerate_after_a_privilege_change_gives_the_old_id_no_grace_window() -> None:
    world = World()
    _, old = world.request(None, lambda s: s.update(cart=[1]))

    def elevate_then_regenerate(session: Session) -> None:
        session.privileges_changed()
        session.regenerate()

    _, new = world.request(old, elevate_then_regenerate)
    assert new is not None
    assert world.request(old)[0].is_new
    assert world.request(new)[0]["cart"] == [1]


def test_a_password_change_needs_a_logged_in_session() -> None:
    session = Session.fresh(now=0.0, max_size=1024)
    with pytest.raises(RuntimeError, match="logged-in"):
        session.password_changed()


def test_the_forwarding_record_is_sealed_and_belongs_to_no_user() -> None:
    world = World(encryption_keys=(secrets.token_bytes(32),))
    old = world.login("cy")
    _, new = world.request(old, Session.regenerate)
    forwarding = world.store.load(store_key(old))
    assert forwarding is not None
    assert forwarding.user_id is None
    assert forwarding.expires_at <= world.clock.now + GRACE
    assert b'"m"' not in forwarding.data  # encrypted like every record
    assert [r.key for r in world.store.list_by_user("cy")] == [store_key(new or "")]
    assert world.request(old)[0].user_id == "cy"


def test_a_touch_by_a_late_request_does_not_stretch_the_grace_window() -> None:
    world = World(touch_interval=0)
    _, old = world.request(None, lambda s: s.update(cart=[1]))
    late = run(world.engine.load(old), world.store)  # loaded just before the rotation
    world.request(old, Session.regenerate)
    world.clock.advance(5)
    run(world.engine.commit(late), world.store)  # a read-only request that touches
    world.clock.advance(GRACE)
    assert world.request(old)[0].is_new
