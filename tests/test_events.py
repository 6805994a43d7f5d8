"""Audit events: every lifecycle step is reported once, with a fingerprint and never an ID."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from coatcheck.events import SessionEvent
from coatcheck.stores import MemoryStore
from coatcheck.testing import FakeClock

from .apps import starlette_app

IDLE = 600


class Recorder(list[SessionEvent]):
    def __call__(self, event: SessionEvent) -> None:
        self.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(event.kind, event.reason) for event in self]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def client(store: MemoryStore, clock: FakeClock, events: Recorder) -> Iterator[TestClient]:
    app = starlette_app(store, clock=clock, on_event=events, idle_timeout=IDLE)
    with TestClient(app) as client:
        yield client


def cookie(client: TestClient) -> str:
    value = client.cookies.get("session")
    assert value
    return value


def test_an_anonymous_visit_reports_nothing(client: TestClient, events: Recorder) -> None:
    client.get("/read")
    assert events == []


def test_creation_login_and_logout_are_reported_with_fingerprints_only(
    client: TestClient, events: Recorder
) -> None:
    client.post("/write", json={"a": 1})
    first = cookie(client)
    client.post("/login/alice")
    second = cookie(client)
    client.post("/logout")
    assert events.kinds() == [
        ("created", None),
        ("regenerated", None),
        ("logged_in", None),
        ("logged_out", None),
    ]
    created, regenerated, logged_in, logged_out = events
    assert created.user_id is None
    assert regenerated.user_id == logged_in.user_id == logged_out.user_id == "alice"
    assert regenerated.fingerprint == logged_in.fingerprint == logged_out.fingerprint
    assert created.fingerprint != regenerated.fingerprint
    for event in events:
        assert event.fingerprint is not None
        assert len(event.fingerprint) == 16
        assert first not in repr(event)
        assert second not in repr(event)


def test_logout_everywhere_reports_how_many_sessions_it_ended(
    store: MemoryStore, clock: FakeClock, events: Recorder
) -> None:
    app = starlette_app(store, clock=clock, on_event=events)
    with TestClient(app) as laptop, TestClient(app) as phone:
        laptop.post("/login/bob")
        phone.post("/login/bob")
        assert len(store.list_by_user("bob")) == 2
        events.clear()
        laptop.post("/logout-everywhere")
        assert store.list_by_user("bob") == []
        assert phone.get("/whoami").json() == {"user": None, "new": True}
    revoked = [e for e in events if e.kind == "revoked"]
    assert [(e.user_id, e.count) for e in revoked] == [
        ("bob", 1)
    ]  # the phone's; ours was logged out
    assert ("logged_out", None) in events.kinds()


@pytest.mark.parametrize(
    ("sent", "reason"),
    [("not-an-id", "malformed"), ("A" * 43, "unknown")],
)
def test_a_cookie_naming_no_session_is_reported_as_rejected(
    client: TestClient, events: Recorder, sent: str, reason: str
) -> None:
    client.get("/read", headers={"Cookie": f"session={sent}"})
    assert events.kinds() == [("rejected", reason)]


def test_a_duplicated_cookie_is_rejected_as_ambiguous(client: TestClient, events: Recorder) -> None:
    client.get("/read", headers={"Cookie": f"session={'A' * 43}; session={'E' * 43}"})
    assert events.kinds() == [("rejected", "ambiguous")]


def test_idle_and_absolute_expiry_are_reported(
    client: TestClient, events: Recorder, clock: FakeClock
) -> None:
    client.post("/write", json={"a": 1})
    clock.advance(IDLE + 1)
    client.get("/read")
    assert events.kinds()[-1] == ("expired", "idle")


def test_tampered_data_is_reported_as_undecodable(
    client: TestClient, events: Recorder, store: MemoryStore
) -> None:
    client.post("/write", json={"a": 1})
    (record,) = list(store.iter_records())
    store.save(record._replace(data=b"garbage", version=2), 1)
    client.get("/read")
    assert events.kinds()[-1] == ("rejected", "undecodable")
    assert events[-1].fingerprint == events[0].fingerprint


def test_audit_lines_go_to_the_audit_logger_and_cannot_be_split(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coatcheck.audit")
    client.post("/login/mallory%0D%0AINFO%20session%20created%20user=admin")
    sid = cookie(client)
    lines = [r.getMessage() for r in caplog.records if r.name == "coatcheck.audit"]
    assert lines
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert all(sid not in line for line in lines)
    assert any("logged_in" in line and "mallory\\r\\n" in line for line in lines)


def test_a_failing_event_handler_never_fails_the_request(store: MemoryStore) -> None:
    def explode(event: SessionEvent) -> None:
        raise RuntimeError("metrics backend down")

    with TestClient(starlette_app(store, on_event=explode)) as client:
        assert client.post("/write", json={"a": 1}).status_code == 200
        assert client.get("/read").json() == {"a": 1}
