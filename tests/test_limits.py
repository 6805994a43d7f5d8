"""Limits: creation floods and ID guessing get 429 per client (and overall), a user's sessions
are capped, and none of it touches clients that behave."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from coatcheck import SessionConfig, SessionEngine
from coatcheck.clients import Client
from coatcheck.engine import run
from coatcheck.ids import new_id
from coatcheck.limits import LimitExceeded, is_counter
from coatcheck.stores import MemoryStore, Store, from_url
from coatcheck.testing import FakeClock

from .apps import starlette_app
from .services import REDIS_URL, require

WINDOW = 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


def client_at(store: Store, clock: FakeClock, address: str, **options: Any) -> TestClient:
    app = starlette_app(store, clock=clock, limit_window=WINDOW, **options)
    return TestClient(app, client=(address, 50000))


def guess(client: TestClient) -> int:
    status: int = client.get("/read", headers={"Cookie": f"session={new_id()}"}).status_code
    return status


def test_guessing_ids_is_throttled_per_client(clock: FakeClock) -> None:
    store = MemoryStore()
    with (
        client_at(store, clock, "203.0.113.5", max_rejections_per_client=3) as guesser,
        client_at(store, clock, "198.51.100.7", max_rejections_per_client=3) as bystander,
    ):
        bystander.post("/write", json={"mine": 1})
        assert [guess(guesser) for _ in range(3)] == [200, 200, 200]
        refused = guesser.get("/read", headers={"Cookie": f"session={new_id()}"})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= WINDOW
        assert "no-store" in refused.headers["cache-control"]
        # Another client, holding a real session, is unaffected.
        assert bystander.get("/read").json() == {"mine": 1}
        assert guess(bystander) == 200
        clock.advance(WINDOW)
        assert guess(guesser) == 200  # a new window


def test_malformed_cookies_cost_no_store_call_and_are_not_counted(clock: FakeClock) -> None:
    store = MemoryStore()
    with client_at(store, clock, "203.0.113.5", max_rejections_per_client=1) as client:
        for _ in range(5):
            assert client.get("/read", headers={"Cookie": "session=junk"}).status_code == 200
    assert len(store) == 0


def test_creation_floods_are_throttled_per_client(clock: FakeClock) -> None:
    store = MemoryStore()
    with (
        client_at(store, clock, "203.0.113.5", max_creations_per_client=2) as flood,
        client_at(store, clock, "198.51.100.7", max_creations_per_client=2) as user,
    ):
        user.post("/login/alice")
        for _ in range(2):
            flood.cookies.clear()
            assert flood.post("/write", json={"x": 1}).status_code == 200
        flood.cookies.clear()
        response = flood.post("/write", json={"x": 1})
        assert response.status_code == 429
        assert "set-cookie" not in response.headers
        # A logged-in user of another address carries on, writes included.
        assert user.post("/write", json={"cart": [1]}).status_code == 200
        assert user.get("/whoami").json() == {"user": "alice", "new": False}


def test_ipv4_mapped_clients_are_counted_each_as_its_own_ipv4_address(clock: FakeClock) -> None:
    # A dual-stack server sees IPv4 clients as ::ffff:a.b.c.d: one of them using up its
    # allowance must not use up everyone's (they share ::/64, not their IPv4 address).
    store = MemoryStore()
    with (
        client_at(store, clock, "::ffff:127.0.0.1", max_creations_per_client=2) as flood,
        client_at(store, clock, "::ffff:127.0.0.2", max_creations_per_client=2) as neighbour,
        client_at(store, clock, "127.0.0.1", max_creations_per_client=2) as unmapped,
    ):
        for _ in range(2):
            flood.cookies.clear()
            assert flood.post("/write", json={"x": 1}).status_code == 200
        flood.cookies.clear()
        assert flood.post("/write", json={"x": 1}).status_code == 429
        assert neighbour.post("/write", json={"x": 1}).status_code == 200
        # The same client reached over plain IPv4 is the same client, with nothing left.
        assert unmapped.post("/write", json={"x": 1}).status_code == 429


def test_a_global_cap_stops_a_flood_from_many_addresses(clock: FakeClock) -> None:
    store = MemoryStore()
    statuses = []
    for n in range(5):
        with client_at(store, clock, f"203.0.113.{n}", max_creations=3) as client:
            statuses.append(client.post("/write", json={"n": n}).status_code)
    assert statuses == [200, 200, 200, 429, 429]


def test_counters_are_records_tools_can_tell_from_sessions(clock: FakeClock) -> None:
    store = MemoryStore()
    with client_at(store, clock, "203.0.113.5", max_creations_per_client=5) as client:
        client.post("/write", json={"x": 1})
    kinds = sorted(is_counter(record) for record in store.iter_records())
    assert kinds == [False, True]


# -- sessions per user ------------------------------------------------------------------------


def login_from(store: Store, clock: FakeClock, address: str, **options: Any) -> TestClient:
    client = client_at(store, clock, address, max_sessions_per_user=2, **options)
    client.__enter__()
    client.post("/login/carol")
    clock.advance(1)
    return client


@pytest.fixture
def logins() -> Iterator[list[TestClient]]:
    opened: list[TestClient] = []
    yield opened
    for client in opened:
        client.__exit__(None, None, None)


def test_a_login_past_the_cap_ends_the_least_recently_active_session(
    clock: FakeClock, logins: list[TestClient]
) -> None:
    store = MemoryStore()
    logins += [login_from(store, clock, f"203.0.113.{n}") for n in range(3)]
    oldest, middle, newest = logins
    assert oldest.get("/whoami").json()["user"] is None
    assert middle.get("/whoami").json()["user"] == "carol"
    assert newest.get("/whoami").json()["user"] == "carol"
    assert len(store.list_by_user("carol")) == 2


def test_the_refuse_policy_refuses_the_login_and_keeps_the_others(
    clock: FakeClock, logins: list[TestClient]
) -> None:
    store = MemoryStore()
    logins += [
        login_from(store, clock, f"203.0.113.{n}", session_limit_policy="refuse") for n in range(2)
    ]
    third = client_at(
        store, clock, "203.0.113.9", max_sessions_per_user=2, session_limit_policy="refuse"
    )
    with third:
        assert third.post("/login/carol").status_code == 403
        assert third.get("/whoami").json()["user"] is None
    assert all(client.get("/whoami").json()["user"] == "carol" for client in logins)


# -- on a shared store ---------------------------------------------------------------------------


def test_limits_count_across_instances_sharing_redis(clock: FakeClock) -> None:
    require("Redis", "127.0.0.1", 6379)
    store = from_url(f"{REDIS_URL}?prefix=limits-{new_id()[:8]}:")
    assert isinstance(store, Store)
    config = SessionConfig(secure=False, clock=clock, max_creations=2, limit_window=WINDOW)
    instances = [SessionEngine(config), SessionEngine(config)]

    def create(n: int) -> None:
        engine = instances[n % 2]  # two app instances, one store
        session = run(engine.load(None, Client(f"203.0.113.{n}", None)), store)
        session["n"] = n
        run(engine.commit(session), store)

    try:
        create(0)
        create(1)
        with pytest.raises(LimitExceeded) as refused:
            create(2)
        assert refused.value.status == 429
    finally:
        for record in list(store.iter_records()):  # type: ignore[attr-defined]
            store.delete(record.key)
        store.close()
