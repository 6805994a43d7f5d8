"""Flask: sessions bound to their client, and the per-client limits, as the core middleware has
them. The client is the WSGI ``REMOTE_ADDR`` (``X-Forwarded-For`` only from a trusted proxy) and
the ``User-Agent``; a request over a limit gets 429 (or 403) with ``Retry-After``, never a 500."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import flask
import pytest
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

from coatcheck.events import SessionEvent
from coatcheck.exchange import LIMITED_BODY
from coatcheck.ids import new_id
from coatcheck.integrations.flask import CoatcheckSessionInterface, Session, current_session
from coatcheck.stores import MemoryStore
from coatcheck.testing import FakeClock

FIREFOX, CHROME = "Mozilla/5.0 Firefox/140.0", "Mozilla/5.0 Chrome/150.0"
WINDOW = 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_app(store: MemoryStore, clock: FakeClock, **settings: Any) -> flask.Flask:
    """An app whose session options come from ``COATCHECK_*`` keys (and a fake clock)."""
    app = flask.Flask(__name__)
    app.config.update(COATCHECK_STORE=store, COATCHECK_LIMIT_WINDOW=WINDOW, **settings)
    Session(app)
    interface = app.session_interface
    assert isinstance(interface, CoatcheckSessionInterface)
    app.session_interface = CoatcheckSessionInterface(
        app, store, replace(interface.config, clock=clock)
    )

    @app.get("/read")
    def read() -> dict[str, Any]:
        session = current_session()
        return {"data": dict(session), "user": session.user_id, "flagged": session.flagged}

    @app.post("/write/<key>/<value>")
    def write(key: str, value: str) -> str:
        flask.session[key] = value
        return "ok"

    @app.post("/login/<name>")
    def login(name: str) -> str:
        current_session().login(name)
        return "in"

    return app


def client_at(app: flask.Flask, address: str) -> FlaskClient:
    """A test client connecting from ``address``, sending its cookies by hand."""
    client = app.test_client(use_cookies=False)
    client.environ_base["REMOTE_ADDR"] = address
    return client


def cookie_of(response: Any) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


def start(client: FlaskClient, **headers: str) -> str:
    """A new session holding ``a=1``; its ID."""
    sid = cookie_of(client.post("/write/a/1", headers=headers))
    assert sid
    return sid


def read(client: FlaskClient, sid: str, **headers: str) -> Any:
    return client.get("/read", headers={"Cookie": f"session={sid}", **headers})


def guess(client: FlaskClient) -> int:
    status: int = read(client, new_id()).status_code
    return status


# -- binding ---------------------------------------------------------------------------------


def test_a_cookie_replayed_from_another_browser_is_anonymous(
    store: MemoryStore, clock: FakeClock
) -> None:
    client = client_at(make_app(store, clock, COATCHECK_BIND_TO=["user_agent"]), "203.0.113.5")
    sid = start(client, **{"User-Agent": FIREFOX})
    stolen = read(client, sid, **{"User-Agent": CHROME})
    assert stolen.get_json()["data"] == {}
    assert "Max-Age=0" in stolen.headers["Set-Cookie"]
    # The owner keeps the session.
    assert read(client, sid, **{"User-Agent": FIREFOX}).get_json()["data"] == {"a": "1"}


def test_flag_mode_keeps_the_session_and_reports_it(store: MemoryStore, clock: FakeClock) -> None:
    events: list[SessionEvent] = []
    app = make_app(
        store,
        clock,
        COATCHECK_BIND_TO=("user_agent",),
        COATCHECK_BINDING_ACTION="flag",
        COATCHECK_ON_EVENT=events.append,
    )
    client = client_at(app, "203.0.113.5")
    sid = start(client, **{"User-Agent": FIREFOX})
    assert not read(client, sid, **{"User-Agent": FIREFOX}).get_json()["flagged"]
    replayed = read(client, sid, **{"User-Agent": CHROME}).get_json()
    assert replayed == {"data": {"a": "1"}, "user": None, "flagged": True}
    assert (events[-1].kind, events[-1].reason) == ("flagged", "binding")


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    store: MemoryStore, clock: FakeClock
) -> None:
    app = make_app(
        store, clock, COATCHECK_BIND_TO=("network",), COATCHECK_TRUSTED_PROXIES=["10.0.0.0/8"]
    )
    proxy = client_at(app, "10.0.0.2")
    sid = start(proxy, **{"X-Forwarded-For": "203.0.113.5"})
    same = read(proxy, sid, **{"X-Forwarded-For": "203.0.113.77"})  # the same /24
    assert same.get_json()["data"] == {"a": "1"}
    moved = read(proxy, sid, **{"X-Forwarded-For": "198.51.100.5"})
    assert moved.get_json()["data"] == {}
    # A client that is not a proxy cannot claim the owner's address.
    forger = client_at(app, "198.51.100.9")
    assert read(forger, sid, **{"X-Forwarded-For": "203.0.113.5"}).get_json()["data"] == {}


def test_behind_proxyfix_the_rewritten_remote_addr_is_the_client(
    store: MemoryStore, clock: FakeClock
) -> None:
    app = make_app(store, clock, COATCHECK_BIND_TO=("network",))
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    proxy = client_at(app, "10.0.0.2")
    sid = start(proxy, **{"X-Forwarded-For": "203.0.113.5"})
    assert read(proxy, sid, **{"X-Forwarded-For": "203.0.113.77"}).get_json()["data"] == {"a": "1"}
    assert read(proxy, sid, **{"X-Forwarded-For": "198.51.100.5"}).get_json()["data"] == {}


def test_forged_forwarded_for_does_not_escape_the_guessing_throttle(
    store: MemoryStore, clock: FakeClock
) -> None:
    guesser = client_at(make_app(store, clock, COATCHECK_MAX_REJECTIONS_PER_CLIENT=2), "6.6.6.6")
    statuses = [
        read(guesser, new_id(), **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


# -- limits ----------------------------------------------------------------------------------


def test_guessing_ids_is_throttled_per_client(store: MemoryStore, clock: FakeClock) -> None:
    app = make_app(store, clock, COATCHECK_MAX_REJECTIONS_PER_CLIENT=3)
    guesser, bystander = client_at(app, "203.0.113.5"), client_at(app, "198.51.100.7")
    mine = start(bystander)
    assert [guess(guesser) for _ in range(3)] == [200, 200, 200]
    refused = read(guesser, new_id())
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.data == LIMITED_BODY
    assert "Set-Cookie" not in refused.headers
    # Another client, holding a real session, is unaffected.
    assert read(bystander, mine).get_json()["data"] == {"a": "1"}
    assert guess(bystander) == 200
    clock.advance(WINDOW)
    assert guess(guesser) == 200  # a new window


def test_a_creation_flood_is_throttled_per_client(store: MemoryStore, clock: FakeClock) -> None:
    app = make_app(store, clock, COATCHECK_MAX_CREATIONS_PER_CLIENT=2)
    flood, user = client_at(app, "203.0.113.5"), client_at(app, "198.51.100.7")
    mine = cookie_of(user.post("/login/alice"))
    assert [flood.post("/write/x/1").status_code for _ in range(2)] == [200, 200]
    refused = flood.post("/write/x/1")
    assert refused.status_code == 429
    assert refused.data == LIMITED_BODY
    assert "Retry-After" in refused.headers
    assert "Set-Cookie" not in refused.headers
    # A logged-in user at another address carries on, writes included.
    headers = {"Cookie": f"session={mine}"}
    assert user.post("/write/cart/1", headers=headers).status_code == 200
    assert read(user, mine or "").get_json() == {
        "data": {"cart": "1"},
        "user": "alice",
        "flagged": False,
    }


def test_a_global_creation_cap_answers_429_not_500(store: MemoryStore, clock: FakeClock) -> None:
    app = make_app(store, clock, COATCHECK_MAX_CREATIONS=2)
    statuses = [client_at(app, f"203.0.113.{n}").post("/write/n/1").status_code for n in range(3)]
    assert statuses == [200, 200, 429]


def login_from(app: flask.Flask, clock: FakeClock, address: str) -> tuple[FlaskClient, str]:
    client = client_at(app, address)
    sid = cookie_of(client.post("/login/carol"))
    assert sid
    clock.advance(1)
    return client, sid


def test_a_login_past_max_sessions_per_user_ends_the_oldest(
    store: MemoryStore, clock: FakeClock
) -> None:
    app = make_app(store, clock, COATCHECK_MAX_SESSIONS_PER_USER=2)
    oldest, middle, newest = (login_from(app, clock, f"203.0.113.{n}") for n in range(3))
    assert read(*oldest).get_json()["user"] is None
    assert read(*middle).get_json()["user"] == "carol"
    assert read(*newest).get_json()["user"] == "carol"


def test_the_refuse_policy_answers_403_and_keeps_the_others(
    store: MemoryStore, clock: FakeClock
) -> None:
    app = make_app(
        store, clock, COATCHECK_MAX_SESSIONS_PER_USER=2, COATCHECK_SESSION_LIMIT_POLICY="refuse"
    )
    logged_in = [login_from(app, clock, f"203.0.113.{n}") for n in range(2)]
    refused = client_at(app, "203.0.113.9").post("/login/carol")
    assert refused.status_code == 403
    assert refused.data == LIMITED_BODY
    assert "Retry-After" in refused.headers
    assert "Set-Cookie" not in refused.headers
    assert all(read(*pair).get_json()["user"] == "carol" for pair in logged_in)


def test_an_error_handler_for_429_applies(store: MemoryStore, clock: FakeClock) -> None:
    app = make_app(store, clock, COATCHECK_MAX_REJECTIONS_PER_CLIENT=1)
    app.register_error_handler(429, lambda error: ("slow down", 429))
    guesser = client_at(app, "203.0.113.5")
    assert guess(guesser) == 200
    assert read(guesser, new_id()).data == b"slow down"
