"""Stored data is untrusted input, even when encrypted: what a store writer changes by hand is
rejected cleanly (a fresh session and a ``rejected`` event), never served, never a 500, and
never copied into the log. Each case alters a real store with its own client (SQL ``UPDATE``,
Redis ``HSET``), the way an attacker with write access to the store would."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import flask_login
import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from coatcheck.engine import run
from coatcheck.events import SessionEvent
from coatcheck.ids import store_key
from coatcheck.integrations.flask import Session as FlaskSessionExtension
from coatcheck.stores import Store, from_url
from coatcheck.stores.redis.layout import session_key
from coatcheck.testing import FakeClock, cookie_id

from .apps import starlette_app
from .operator_stores import postgresql_url, redis_url, sqlite_url, store_url
from .services import POSTGRESQL_URL, REDIS_URL

__all__ = ["postgresql_url", "redis_url", "sqlite_url", "store_url"]  # fixtures, re-exported

KEYS = ("J3Pq1Vd5cQm1u0a6rC3jz3yJm7H9nK2xWv0bT8eL4sA",)
SECRET = b"a hash secret of at least thirty-two bytes!"


class Scene:
    """A Starlette app over a real store, and hands on the store's own client."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.events: list[SessionEvent] = []
        options.setdefault("hash_secret", SECRET)
        self.store = from_url(url)
        self.app = starlette_app(self.store, on_event=self.events.append, **options)
        self.client = TestClient(self.app)

    def key(self, session_id: str) -> str:
        return store_key(session_id, SECRET)

    def logged_in(self, user: str, **data: Any) -> str:
        """A session holding ``data``, logged in as ``user``; its ID."""
        self.client.cookies.clear()
        self.client.post("/write", json=data or {"cart": ["tea"]})
        self.client.post(f"/login/{user}")
        session_id = self.client.cookies["session"]
        self.client.cookies.clear()
        return session_id

    def send(self, method: str, path: str, session_id: str) -> Any:
        """A request carrying ``session_id`` as its cookie (and no other)."""
        self.client.cookies.clear()
        self.client.cookies.set("session", session_id)
        try:
            return self.client.request(method, path)
        finally:
            self.client.cookies.clear()

    def whoami(self, session_id: str) -> Any:
        response = self.send("GET", "/whoami", session_id)
        assert response.status_code == 200, response.text
        return response

    def rejections(self) -> list[str | None]:
        return [event.reason for event in self.events if event.kind == "rejected"]

    # -- the store's own client, as a store writer uses it ---------------------------------

    def set_column(self, session_id: str, column: str, value: Any) -> None:
        """``UPDATE ... SET column = value`` (or ``HSET``) on the session's record."""
        key, parts = self.key(session_id), urlsplit(self.url)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if parts.scheme == "sqlite":
            with sqlite3.connect(parts.path) as db:
                changed = db.execute(
                    f"UPDATE coatcheck_sessions SET {column} = ? WHERE key = ?", (value, key)
                ).rowcount
        elif parts.scheme == "redis":
            field = {"user_id": "u", "version": "v", "expires_at": "e", "deadline": "a"}
            client = redis.Redis.from_url(REDIS_URL)
            name = session_key(query["prefix"], key)
            changed = int(client.exists(name))
            client.hset(name, field.get(column, column), value)
            client.close()
        else:
            with psycopg.connect(POSTGRESQL_URL, autocommit=True) as db:
                changed = db.execute(
                    f"UPDATE {query['table']} SET {column} = %s WHERE session_key = %s".encode(),
                    (value, key),
                ).rowcount
        assert changed == 1

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture
def scene(store_url: str) -> Iterator[Scene]:
    """SQLite, Redis and PostgreSQL in turn, with encryption at rest and a hash secret."""
    scene = Scene(store_url, encryption_keys=KEYS)
    yield scene
    scene.close()


# -- 1. encryption at rest authenticates the user, not only the data ---------------------------


def test_a_user_column_set_to_another_user_is_rejected(scene: Scene) -> None:
    mallory = scene.logged_in("mallory")
    assert scene.whoami(mallory).json() == {"user": "mallory", "new": False}
    scene.set_column(mallory, "user_id", "alice")
    response = scene.whoami(mallory)
    assert response.json() == {"user": None, "new": True}
    assert "Max-Age=0" in response.headers["set-cookie"]  # the altered ID is expired
    assert scene.rejections() == ["tampered"]


def test_an_anonymous_record_given_a_user_is_rejected(scene: Scene) -> None:
    scene.client.post("/write", json={"cart": ["tea"]})
    anonymous = scene.client.cookies["session"]
    scene.client.cookies.clear()
    scene.set_column(anonymous, "user_id", "alice")
    assert scene.whoami(anonymous).json() == {"user": None, "new": True}
    assert scene.rejections() == ["tampered"]


def test_a_user_column_cleared_is_rejected_too(scene: Scene) -> None:
    alice = scene.logged_in("alice")
    scene.set_column(alice, "user_id", None if "redis" not in scene.url else "")
    assert scene.whoami(alice).json() == {"user": None, "new": True}
    assert scene.rejections() == ["tampered"]


def test_an_expiry_column_stretched_past_the_absolute_deadline_does_not_outlive_it(
    store_url: str,
) -> None:
    clock = FakeClock(time.time())
    scene = Scene(store_url, encryption_keys=KEYS, absolute_timeout=3600, clock=clock)
    try:
        alice = scene.logged_in("alice")
        scene.set_column(alice, "expires_at", 4e9)  # the year 2096
        if "redis" in store_url:
            redis.Redis.from_url(REDIS_URL).persist(
                session_key(parse_qs(urlsplit(store_url).query)["prefix"][0], scene.key(alice))
            )
        clock.advance(3600)  # the absolute deadline, sealed in the record, is now
        assert scene.whoami(alice).json() == {"user": None, "new": True}
        assert [e.reason for e in scene.events if e.kind == "expired"] == ["absolute"]
    finally:
        scene.close()


# -- 3. bad numbers and shapes: rejected, never a 500 -----------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("v", "seven"), ("a", "soon"), ("e", "nan"), ("e", "inf"), ("e", "later"), ("u", b"\xff")],
)
def test_redis_fields_that_do_not_parse_give_a_fresh_session(
    redis_url: str, field: str, value: str | bytes
) -> None:
    scene = Scene(redis_url)
    try:
        alice = scene.logged_in("alice")
        scene.set_column(alice, field, value)
        assert scene.whoami(alice).json() == {"user": None, "new": True}
        assert scene.rejections() in (["undecodable"], ["tampered"])
    finally:
        scene.close()


def test_a_non_finite_expiry_in_postgresql_gives_a_fresh_session(postgresql_url: str) -> None:
    scene = Scene(postgresql_url)
    try:
        alice = scene.logged_in("alice")
        scene.set_column(alice, "expires_at", float("nan"))
        assert scene.whoami(alice).json() == {"user": None, "new": True}
        bob = scene.logged_in("bob")
        scene.set_column(bob, "expires_at", float("inf"))  # the deadline still holds
        assert scene.whoami(bob).json() == {"user": "bob", "new": False}
    finally:
        scene.close()


BAD_ENVELOPES = {
    "nested 100,000 deep": b'{"c":1700000000,"a":1700000000,"d":{"x":'
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}}",
    "NaN as the absolute timeout's start": b'{"c":1700000000,"a":NaN,"d":{}}',
    "Infinity as the creation time": b'{"c":Infinity,"a":1700000000,"d":{}}',
    "a creation time past the year 9999": b'{"c":1e300,"a":1700000000,"d":{}}',
    "NaN in the data": b'{"c":1700000000,"a":1700000000,"d":{"n":NaN}}',
    "a user that is not text": b'{"c":1700000000,"a":1700000000,"u":1,"d":{}}',
}


@pytest.mark.usefixtures("json_backend")
@pytest.mark.parametrize("blob", BAD_ENVELOPES.values(), ids=BAD_ENVELOPES.keys())
def test_envelopes_that_are_not_sane_give_a_fresh_session(sqlite_url: str, blob: bytes) -> None:
    scene = Scene(sqlite_url)
    try:
        scene.client.post("/write", json={"cart": ["tea"]})
        session_id = scene.client.cookies["session"]
        scene.client.cookies.clear()
        scene.set_column(session_id, "data", blob)
        assert scene.whoami(session_id).json() == {"user": None, "new": True}
        assert scene.rejections() == ["undecodable"]
    finally:
        scene.close()


def test_a_session_over_a_lowered_max_size_still_loads(sqlite_url: str) -> None:
    before = Scene(sqlite_url)
    before.client.post("/write", json={"notes": "x" * 20_000})
    session_id = before.client.cookies["session"]
    before.close()
    after = Scene(sqlite_url, max_size=16 * 1024)
    try:
        response = after.send("GET", "/read", session_id)
        assert response.status_code == 200
        assert len(response.json()["notes"]) == 20_000
        regenerated = after.send("POST", "/regenerate", session_id)
        assert regenerated.status_code == 200  # moving the data as it is: not a new write
        assert after.rejections() == []
    finally:
        after.close()


# -- 4. an undecodable record's bytes never reach the log -------------------------------------


def test_an_undecodable_record_is_logged_by_fingerprint_never_by_content(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    scene = Scene(sqlite_url)
    try:
        engine = scene.app.engine
        session = engine.fresh()
        token = session.csrf_token()
        session["cart"] = ["secret-ring-42"]
        session["device"] = "Ada's phone"
        store = scene.store
        assert isinstance(store, Store)
        session_id = cookie_id(run(engine.commit(session), store))
        raw = store.load(scene.key(session_id))
        assert raw is not None
        assert session._csrf is not None
        assert session._csrf.encode() in raw.data
        scene.set_column(session_id, "data", raw.data + b"\xff")
        with caplog.at_level(logging.DEBUG):
            assert scene.whoami(session_id).json()["new"] is True
        logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
        assert "discarding stored session" in logged
        for secret in (session._csrf, token, "secret-ring-42", "Ada"):
            assert secret not in logged
    finally:
        scene.close()


# -- 6. the grace window never strands a user -------------------------------------------------


def flask_app(url: str, **config: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config.update(COATCHECK_STORE_URL=url, **config)
    FlaskSessionExtension(app)

    @app.get("/write")
    def write() -> str:
        flask.session["cart"] = ["tea"]
        return "ok"

    @app.get("/read")
    def read() -> dict[str, Any]:
        return dict(flask.session)

    @app.get("/regenerate")
    def regenerate() -> str:
        app.session_interface.regenerate(flask.session)  # type: ignore[attr-defined]
        return "rotated"

    return app


def set_cookies(response: Any) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]


def regenerated(app: flask.Flask) -> tuple[str, str]:
    """A session written, then regenerated: its old ID and its new one."""
    client = app.test_client()
    client.get("/write")
    old = client.get_cookie("session")
    assert old is not None
    client.get("/regenerate")
    new = client.get_cookie("session")
    assert new is not None
    assert new.value != old.value
    return old.value, new.value


def with_cookie(app: flask.Flask, session_id: str) -> Any:
    """A client that sends ``session_id`` (as a tab, or a request in flight, still does)."""
    client = app.test_client()
    client.set_cookie("session", session_id)
    return client


def test_flask_sends_no_cookie_on_a_request_forwarded_from_an_old_id(sqlite_url: str) -> None:
    app = flask_app(sqlite_url)
    old, _ = regenerated(app)
    # A request the browser sent with the old cookie before the rotation's response arrived:
    response = with_cookie(app, old).get("/read")
    assert response.get_json() == {"cart": ["tea"]}
    assert set_cookies(response) == []  # the browser keeps the newer cookie it holds


def test_flask_hands_out_the_new_cookie_when_a_forwarded_request_rotates(
    sqlite_url: str,
) -> None:
    app = flask_app(sqlite_url)
    old, new = regenerated(app)
    (cookie,) = set_cookies(with_cookie(app, old).get("/regenerate"))
    newest = cookie.split(";", 1)[0].split("=", 1)[1]
    assert newest not in ("", old, new)
    assert with_cookie(app, newest).get("/read").get_json() == {"cart": ["tea"]}


def test_flask_rejects_a_record_whose_user_column_was_changed(sqlite_url: str) -> None:
    app = flask_app(sqlite_url, SECRET_KEY="for Flask-Login", COATCHECK_ENCRYPTION_KEYS=KEYS)
    manager = flask_login.LoginManager(app)

    class User(flask_login.UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    manager.user_loader(User)

    @app.get("/login/<name>")
    def login(name: str) -> str:
        flask_login.login_user(User(name))
        return "in"

    @app.get("/me")
    def me() -> dict[str, Any]:
        user = flask_login.current_user
        return {"user": user.get_id(), "session_user": flask.session.coatcheck.user_id}  # type: ignore[attr-defined]

    client = app.test_client()
    client.get("/login/mallory")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert client.get("/me").get_json() == {"user": "mallory", "session_user": "mallory"}
    path = urlsplit(sqlite_url).path
    with sqlite3.connect(path) as db:
        db.execute("UPDATE coatcheck_sessions SET user_id = 'alice' WHERE user_id = 'mallory'")
    response = client.get("/me")
    assert response.status_code == 200
    assert response.get_json() == {"user": None, "session_user": None}
    assert Path(path).exists()
