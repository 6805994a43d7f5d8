"""coatcheck.integrations.starlette: Starlette's SessionMiddleware arguments, server-side sessions.

What Starlette's own tests (test_starlette_upstream.py) cannot see: where the data lives, how
the arguments map onto coatcheck's options, and what coatcheck adds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

from coatcheck.config import ConfigError
from coatcheck.ids import store_key
from coatcheck.integrations.starlette import (
    SessionMiddleware,
    StarletteCookieWriter,
    hash_secret_of,
    session_of,
    starlette_config,
)
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.testing import CountingStore, FakeClock, cookie_id

from . import apps

DAY = 24 * 3600.0


async def clear(request: Request) -> Response:
    request.session.clear()
    return PlainTextResponse("cleared")


async def is_coatchecks(request: Request) -> Response:
    session = request.session
    return PlainTextResponse(f"{isinstance(session, Session)} {json.dumps(session)}")


def make_app(store: CountingStore, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/read", apps.read),
            Route("/nothing", apps.nothing),
            Route("/write", apps.write, methods=["POST"]),
            Route("/clear", clear, methods=["POST"]),
            Route("/login/{user}", apps.login, methods=["POST"]),
            Route("/logout", apps.logout, methods=["POST"]),
            Route("/whoami", apps.whoami),
            Route("/type", is_coatchecks),
            WebSocketRoute("/ws", apps.socket),
        ],
        middleware=[Middleware(SessionMiddleware, secret_key="s3cret", store=store, **options)],
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def client(store: CountingStore, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(make_app(store, clock=clock)) as client:
        yield client


class TestArgumentsMapOntoCoatchecksOptions:
    def test_starlettes_defaults(self) -> None:
        config = starlette_config("s3cret")
        assert (config.cookie_key, config.secure, config.same_site, config.path) == (
            "session",
            False,
            "lax",
            "/",
        )
        assert (config.persistent, config.idle_timeout, config.absolute_timeout) == (
            True,
            14 * DAY,
            30 * DAY,
        )
        assert (config.domain, config.partitioned) == (None, False)

    def test_every_cookie_argument(self) -> None:
        config = starlette_config("s3cret", "sid", 3600, "/app", "none", True, ".example.com", True)
        assert (config.cookie_key, config.path, config.same_site, config.secure) == (
            "__Secure-sid",  # __Host- needs Path=/ and no Domain; __Secure- still binds Secure
            "/app",
            "none",
            True,
        )
        assert (config.domain, config.partitioned, config.idle_timeout) == (
            ".example.com",
            True,
            3600.0,
        )

    def test_https_only_takes_the_host_prefix_where_browsers_allow_it(self) -> None:
        assert starlette_config("s", https_only=True).cookie_key == "__Host-session"

    def test_max_age_none_is_a_browser_session_cookie_with_a_server_side_idle_limit(self) -> None:
        default = starlette_config("s", max_age=None)
        assert (default.persistent, default.idle_timeout) == (False, 14 * DAY)
        chosen = starlette_config("s", max_age=None, idle_timeout=timedelta(hours=2))
        assert chosen.idle_timeout == 7200.0

    def test_idle_timeout_is_refused_beside_a_max_age(self) -> None:
        with pytest.raises(ConfigError, match="idle_timeout"):
            starlette_config("s", max_age=3600, idle_timeout=60)

    @pytest.mark.parametrize("max_age", [0, -1])
    def test_a_max_age_that_is_not_positive_is_refused(self, max_age: int) -> None:
        with pytest.raises(ConfigError, match="max_age"):
            SessionMiddleware(Starlette(), secret_key="s", max_age=max_age, store=MemoryStore())

    def test_an_absolute_timeout_alone_cuts_max_age_and_its_default_to_it(self) -> None:
        alone = starlette_config("s", absolute_timeout=600)
        assert (alone.idle_timeout, alone.absolute_timeout) == (600.0, 600.0)
        capped = starlette_config("s", max_age=int(90 * DAY), absolute_timeout=timedelta(days=30))
        assert (capped.idle_timeout, capped.absolute_timeout) == (30 * DAY, 30 * DAY)
        browser = starlette_config("s", max_age=None, absolute_timeout=600)
        assert browser.idle_timeout == 600.0

    def test_an_idle_timeout_and_an_absolute_timeout_that_contradict_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="must not exceed absolute_timeout"):
            starlette_config("s", max_age=None, idle_timeout=7200, absolute_timeout=3600)

    def test_a_long_max_age_lengthens_the_absolute_timeout(self) -> None:
        config = starlette_config("s", max_age=int(90 * DAY))
        assert config.absolute_timeout == 90 * DAY
        assert starlette_config("s", absolute_timeout=20 * DAY).absolute_timeout == 20 * DAY

    def test_the_secret_keys_the_hash_of_ids_at_rest(self) -> None:
        assert starlette_config("s3cret").hash_secret == hash_secret_of("s3cret")
        assert starlette_config(Secret("s3cret")).hash_secret == hash_secret_of("s3cret")
        assert len(hash_secret_of("x")) == 32  # any secret, even a short one, gives a full key
        assert starlette_config(None).hash_secret is None


class TestServerSideSessions:
    def test_request_session_is_coatchecks_session_and_json_dumps_it(
        self, client: TestClient
    ) -> None:
        client.post("/write", json={"cart": ["apple"]})
        assert client.get("/type").text == 'True {"cart": ["apple"]}'

    def test_the_cookie_holds_only_an_id_stored_under_its_keyed_hash(
        self, client: TestClient, store: CountingStore
    ) -> None:
        response = client.post("/write", json={"secret": "data"})
        session_id = cookie_id(response.headers["set-cookie"])
        assert "data" not in response.headers["set-cookie"]
        key = store_key(session_id, hash_secret_of("s3cret"))
        record = store.inner.load(key)
        assert record is not None
        assert b"data" in record.data

    def test_a_new_secret_key_makes_old_sessions_unreachable(
        self, store: CountingStore, clock: FakeClock
    ) -> None:
        with TestClient(make_app(store, clock=clock)) as before:
            before.post("/write", json={"a": 1})
            cookie = before.cookies["session"]
        rotated = Starlette(
            routes=[Route("/read", apps.read)],
            middleware=[Middleware(SessionMiddleware, secret_key="other", store=store)],
        )
        with TestClient(rotated, cookies={"session": cookie}) as after:
            assert after.get("/read").text == "{}"

    def test_an_expired_sessions_cookie_gives_an_empty_session(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        client.post("/write", json={"a": 1})
        clock.advance(14 * DAY + 1)
        response = client.get("/read")
        assert response.text == "{}"
        assert "Max-Age=0" in response.headers["set-cookie"]

    def test_reads_slide_the_expiry_and_re_send_the_cookie(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        client.post("/write", json={"a": 1})
        clock.advance(10 * DAY)
        refreshed = client.get("/read")
        assert "; Max-Age=1209600; " in refreshed.headers["set-cookie"]
        clock.advance(10 * DAY)  # 20 days after the write, 10 after the last read
        assert client.get("/read").text == '{"a": 1}'

    def test_clear_ends_the_session_as_starlettes_did(
        self, client: TestClient, store: CountingStore
    ) -> None:
        session_id = cookie_id(client.post("/write", json={"user": "alice"}).headers["set-cookie"])
        cleared = client.post("/clear")
        assert cleared.headers["set-cookie"].startswith("session=; ")
        assert store.inner.load(store_key(session_id, hash_secret_of("s3cret"))) is None
        replay = TestClient(client.app, cookies={"session": session_id})
        assert replay.get("/read").text == "{}"

    def test_clear_keeps_a_logged_in_session(self, client: TestClient) -> None:
        client.post("/login/alice")
        client.post("/write", json={"a": 1})
        client.post("/clear")
        assert client.get("/whoami").json() == {"user": "alice", "new": False}

    def test_login_regenerates_and_logout_makes_the_old_cookie_anonymous(
        self, client: TestClient
    ) -> None:
        anonymous = cookie_id(client.post("/write", json={"a": 1}).headers["set-cookie"])
        logged_in = cookie_id(client.post("/login/alice").headers["set-cookie"])
        assert logged_in != anonymous
        client.post("/logout")
        replay = TestClient(client.app, cookies={"session": logged_in})
        assert replay.get("/whoami").json() == {"user": None, "new": True}

    def test_a_response_that_used_the_session_varies_on_cookie(self, client: TestClient) -> None:
        client.post("/write", json={"a": 1})
        assert client.get("/whoami").headers["vary"] == "Cookie"  # through session_of
        assert client.post("/logout").headers["vary"] == "Cookie"
        assert "vary" not in client.get("/nothing").headers

    def test_a_websocket_gets_the_session(self, client: TestClient) -> None:
        client.post("/write", json={"a": 1})
        with client.websocket_connect("/ws") as socket:
            socket.send_text("hello")
            assert json.loads(socket.receive_text()) == {"a": 1, "ws": "hello"}
        assert client.get("/read").json() == {"a": 1, "ws": "hello"}

    def test_the_cookie_is_laid_out_as_starlettes(self, store: CountingStore) -> None:
        app = make_app(store, https_only=True, same_site="none", partitioned=True)
        with TestClient(app, base_url="https://testserver") as client:
            header = client.post("/write", json={"a": 1}).headers["set-cookie"]
        attributes = header.split("; ")[1:]
        assert attributes == [
            "path=/",
            "Max-Age=1209600",
            "httponly",
            "samesite=none",
            "secure",
            "partitioned",
        ]
        writer = StarletteCookieWriter(starlette_config("s", max_age=None, domain="a.example"))
        assert writer.issue("ID", 60) == (
            "session=ID; path=/; httponly; samesite=lax; domain=a.example"
        )


def test_without_a_store_sessions_live_in_memory_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        middleware = SessionMiddleware(Starlette(), secret_key="s")
    assert "no store=" in caplog.text
    assert isinstance(middleware.store.store, MemoryStore)  # type: ignore[attr-defined]


def test_session_of_is_the_typed_session() -> None:
    scope = {"type": "http", "session": Session.fresh(now=0.0, max_size=100)}
    assert isinstance(session_of(scope), Session)
