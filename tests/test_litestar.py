"""coatcheck in Litestar: `request.session` and Litestar's own session calls, as clients see them.

Litestar's own session tests (``tests/unit/test_middleware/test_session/`` in its repository,
copied for the installed version under ``tests/.upstream_files/``) run against coatcheck in
test_litestar_upstream.py. The
behaviours its ``test_middleware.py`` checks for ``ServerSideSessionConfig`` are also specified
here, against ``CoatcheckSessionConfig``:

- ``test_integration`` (write, read, ``clear_session``, a new ID after it): TestLitestarCalls;
- ``test_set_empty`` (``set_session(Empty)`` empties): TestLitestarCalls;
- ``test_middleware_exclude_pattern`` / ``_exclude_flag`` / ``_exclude_custom_key``:
  TestExclusions;
- ``test_does_not_override_cookies`` (a handler's own cookie survives): TestCookies;
- ``test_session_middleware_not_installed_raises``: TestWithoutTheMiddleware.

Two of its tests contradict coatcheck by design and have no counterpart:
``test_session_id_correctness`` and ``test_keep_session_id`` expect ``request.get_session_id()``
to equal the cookie and to stay the same across ``set_session`` calls; coatcheck gives handlers
no session ID (None) and ``set_session`` regenerates the ID (session fixation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from litestar import Litestar, Request, Response, WebSocket, get, post, websocket
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import Body, Parameter
from litestar.response import Redirect
from litestar.security.session_auth import SessionAuth
from litestar.testing import TestClient
from litestar.types import Empty

from coatcheck.ids import new_id
from coatcheck.integrations.litestar import (
    CoatcheckSessionBackend,
    CoatcheckSessionConfig,
    provide_session,
    session_of,
)
from coatcheck.session import Session
from coatcheck.stores import MemoryStore, from_url
from coatcheck.testing import CountingStore

from .servers import free_port


def set_cookies(response: Any) -> list[str]:
    return list(response.headers.get_list("set-cookie"))


def session_cookie(response: Any) -> str | None:
    """The ``session=...`` Set-Cookie header of a response, if it has one."""
    found = [h for h in set_cookies(response) if h.startswith("session=")]
    assert len(found) <= 1
    return found[0] if found else None


def session_id(response: Any) -> str:
    header = session_cookie(response)
    assert header is not None, "expected a session cookie"
    return header.split(";", 1)[0].split("=", 1)[1]


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


@dataclasses.dataclass
class Profile:
    name: str
    roles: list[str]


@get("/read", sync_to_thread=False)
def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return dict(request.session)


@get("/nothing", sync_to_thread=False)
def nothing() -> str:
    return "nothing"


@post("/write", sync_to_thread=False)
def write(request: Request[Any, Any, Any], data: Annotated[dict[str, Any], Body()]) -> None:
    request.session.update(data)


@post("/set", sync_to_thread=False)
def set_session(request: Request[Any, Any, Any], data: Annotated[dict[str, Any], Body()]) -> None:
    request.set_session(data)


@post("/set-profile", sync_to_thread=False)
def set_profile(request: Request[Any, Any, Any]) -> None:
    request.set_session(Profile(name="ada", roles=["admin"]))


@post("/set-empty", sync_to_thread=False)
def set_empty(request: Request[Any, Any, Any]) -> None:
    request.set_session(Empty)


@post("/clear", sync_to_thread=False)
def clear(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


@post("/login/{user:str}", sync_to_thread=False)
def login(request: Request[Any, Any, Any], user: Annotated[str, Parameter()]) -> None:
    session_of(request).login(user)


@post("/logout", sync_to_thread=False)
def logout(request: Request[Any, Any, Any]) -> None:
    session_of(request).logout()


@get("/whoami", sync_to_thread=False, dependencies={"session": provide_session})
def whoami(session: NamedDependency[Session]) -> dict[str, Any]:
    return {"user": session.user_id, "data": dict(session), "typed": isinstance(session, Session)}


@get("/session-id", sync_to_thread=False)
def get_session_id(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"id": request.get_session_id()}


@post("/write-then-redirect", sync_to_thread=False)
def write_then_redirect(request: Request[Any, Any, Any]) -> Redirect:
    request.session["flash"] = "saved"
    return Redirect("/read")


@post("/write-then-fail", sync_to_thread=False)
def write_then_fail(request: Request[Any, Any, Any]) -> None:
    request.session["attempted"] = True
    raise NotAuthorizedException("no")


@get("/own-cookie", sync_to_thread=False)
def own_cookie(request: Request[Any, Any, Any]) -> Response[str]:
    request.session["seen"] = True
    return Response("hello", cookies={"foo": "bar"})


@websocket("/ws")
async def socket(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    text = await socket.receive_text()
    socket.session["ws"] = text
    await socket.send_json(dict(socket.session))
    await socket.close()


HANDLERS = [
    read,
    nothing,
    write,
    set_session,
    set_profile,
    set_empty,
    clear,
    login,
    logout,
    whoami,
    get_session_id,
    write_then_redirect,
    write_then_fail,
    own_cookie,
    socket,
]


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def client(store: CountingStore) -> Iterator[TestClient[Litestar]]:
    sessions = CoatcheckSessionConfig(store=store, secure=False)
    app = Litestar(HANDLERS, middleware=[sessions.middleware])
    with TestClient(app) as client:
        yield client


def start_session(client: TestClient[Litestar], **data: Any) -> str:
    return session_id(client.post("/write", json=data or {"x": 1}))


class TestLifecycle:
    def test_an_anonymous_request_makes_no_store_call_and_sets_no_cookie(
        self, client: TestClient[Litestar], store: CountingStore
    ) -> None:
        response = client.get("/read")
        assert response.json() == {}
        assert set_cookies(response) == []
        assert not store.calls

    def test_a_write_sets_a_cookie_and_persists(self, client: TestClient[Litestar]) -> None:
        sid = start_session(client, cart=["apple"])
        assert client.get("/read", headers=cookie(sid)).json() == {"cart": ["apple"]}

    def test_a_read_only_request_sends_no_cookie(self, client: TestClient[Litestar]) -> None:
        sid = start_session(client)
        assert session_cookie(client.get("/read", headers=cookie(sid))) is None

    def test_an_unknown_id_is_not_adopted_and_its_cookie_is_expired(
        self, client: TestClient[Litestar]
    ) -> None:
        planted = new_id()
        expired = session_cookie(client.get("/read", headers=cookie(planted)))
        assert expired is not None
        assert "Max-Age=0" in expired
        written = session_id(client.post("/write", json={"a": 1}, headers=cookie(planted)))
        assert written != planted

    def test_the_typed_session_logs_in_with_a_new_id(self, client: TestClient[Litestar]) -> None:
        anonymous = start_session(client, cart=["fig"])
        signed_in = session_id(client.post("/login/ada", headers=cookie(anonymous)))
        assert signed_in != anonymous
        me = client.get("/whoami", headers=cookie(signed_in)).json()
        assert me == {"user": "ada", "data": {"cart": ["fig"]}, "typed": True}
        assert client.get("/read", headers=cookie(anonymous)).json() == {}

    def test_a_redirect_carries_the_session(self, client: TestClient[Litestar]) -> None:
        response = client.post("/write-then-redirect", follow_redirects=False)
        assert response.status_code in (301, 302, 303, 307, 308)
        assert client.get("/read", headers=cookie(session_id(response))).json() == {
            "flash": "saved"
        }

    def test_an_error_response_still_commits_the_session(
        self, client: TestClient[Litestar]
    ) -> None:
        """Litestar turns a handler's exception into a response inside the middleware."""
        response = client.post("/write-then-fail")
        assert response.status_code == 401
        assert client.get("/read", headers=cookie(session_id(response))).json() == {
            "attempted": True
        }

    def test_a_websocket_gets_the_session_and_its_changes_are_stored(
        self, client: TestClient[Litestar]
    ) -> None:
        sid = start_session(client, a=1)
        with client.websocket_connect("/ws", headers=cookie(sid)) as ws:
            ws.send_text("hello")
            assert ws.receive_json() == {"a": 1, "ws": "hello"}
        assert client.get("/read", headers=cookie(sid)).json() == {"a": 1, "ws": "hello"}


class TestLitestarCalls:
    """``request.set_session``, ``request.clear_session`` and ``request.get_session_id``."""

    def test_set_session_replaces_the_data_under_a_new_id(
        self, client: TestClient[Litestar]
    ) -> None:
        old = start_session(client, a=1)
        new = session_id(client.post("/set", json={"user_id": "7"}, headers=cookie(old)))
        assert new != old
        assert client.get("/read", headers=cookie(new)).json() == {"user_id": "7"}
        assert client.get("/read", headers=cookie(old)).json() == {}

    def test_set_session_on_an_anonymous_request_starts_a_session(
        self, client: TestClient[Litestar]
    ) -> None:
        sid = session_id(client.post("/set", json={"user_id": "7"}))
        assert client.get("/read", headers=cookie(sid)).json() == {"user_id": "7"}

    def test_set_session_takes_a_data_container_as_its_json(
        self, client: TestClient[Litestar]
    ) -> None:
        sid = session_id(client.post("/set-profile"))
        assert client.get("/read", headers=cookie(sid)).json() == {
            "name": "ada",
            "roles": ["admin"],
        }

    def test_clear_session_destroys_the_session_and_expires_the_cookie(
        self, client: TestClient[Litestar]
    ) -> None:
        sid = start_session(client, a=1)
        out = session_cookie(client.post("/clear", headers=cookie(sid)))
        assert out is not None
        assert "Max-Age=0" in out
        assert client.get("/read", headers=cookie(sid)).json() == {}

    def test_set_session_to_empty_is_clear_session(self, client: TestClient[Litestar]) -> None:
        sid = start_session(client, a=1)
        assert "Max-Age=0" in (session_cookie(client.post("/set-empty", headers=cookie(sid))) or "")
        assert client.get("/read", headers=cookie(sid)).json() == {}

    def test_clear_session_on_an_anonymous_request_sends_no_cookie(
        self, client: TestClient[Litestar], store: CountingStore
    ) -> None:
        assert set_cookies(client.post("/clear")) == []
        assert not store.calls

    def test_write_clear_write_gives_a_new_session(self, client: TestClient[Litestar]) -> None:
        """Upstream's test_integration: after clear_session, the next write has a new ID."""
        first = start_session(client, username="moishe")
        client.post("/clear", headers=cookie(first))
        second = start_session(client, username="moishe")
        assert second != first
        assert client.get("/read", headers=cookie(second)).json() == {"username": "moishe"}

    def test_handlers_are_given_no_session_id(self, client: TestClient[Litestar]) -> None:
        sid = start_session(client)
        assert client.get("/session-id", headers=cookie(sid)).json() == {"id": None}


class TestCookies:
    def test_a_handlers_own_cookie_survives(self, client: TestClient[Litestar]) -> None:
        response = client.get("/own-cookie")
        headers = set_cookies(response)
        assert any(h.startswith("foo=bar") for h in headers)
        assert session_cookie(response) is not None

    def test_the_config_mirrors_the_cookie_attributes(self) -> None:
        config = CoatcheckSessionConfig(store=MemoryStore(), idle_timeout=600, same_site="strict")
        assert (config.key, config.max_age, config.secure, config.samesite) == (
            "__Host-session",
            600,
            True,
            "strict",
        )
        assert (config.path, config.domain, config.httponly) == ("/", None, True)


def installed(request: Request[Any, Any, Any]) -> dict[str, bool]:
    return {"has_session": "session" in request.scope}


@get("/north", sync_to_thread=False)
def north(request: Request[Any, Any, Any]) -> dict[str, bool]:
    return installed(request)


@get("/south", sync_to_thread=False, skip_session=True)
def south(request: Request[Any, Any, Any]) -> dict[str, bool]:
    return installed(request)


@get("/west", sync_to_thread=False, my_exclude_key=True)
def west(request: Request[Any, Any, Any]) -> dict[str, bool]:
    return installed(request)


class TestExclusions:
    def run(self, config: CoatcheckSessionConfig) -> dict[str, bool]:
        app = Litestar([north, south, west], middleware=[config.middleware])
        with TestClient(app) as client:
            return {path: client.get(f"/{path}").json()["has_session"] for path in config_paths}

    def test_an_exclude_pattern_skips_matching_paths(self) -> None:
        config = CoatcheckSessionConfig(store=MemoryStore(), secure=False, exclude=["north"])
        assert self.run(config) == {"north": False, "south": False, "west": True}

    def test_the_skip_session_opt_key_skips_a_route(self) -> None:
        config = CoatcheckSessionConfig(store=MemoryStore(), secure=False)
        assert self.run(config) == {"north": True, "south": False, "west": True}

    def test_a_custom_opt_key_skips_a_route(self) -> None:
        config = CoatcheckSessionConfig(
            store=MemoryStore(), secure=False, exclude_opt_key="my_exclude_key"
        )
        assert self.run(config) == {"north": True, "south": True, "west": False}


config_paths = ("north", "south", "west")


class TestWithoutTheMiddleware:
    def test_session_of_says_what_is_missing(self) -> None:
        with pytest.raises(RuntimeError, match="CoatcheckSessionConfig"):
            session_of({"type": "http"})

    def test_reading_request_session_is_a_500(self) -> None:
        with TestClient(Litestar([read])) as client:
            assert client.get("/read").status_code == 500


class TestStoreFailure:
    """A store that cannot be reached: a real Redis client pointed at a port nobody listens on."""

    @pytest.fixture
    def down(self) -> Iterator[TestClient[Litestar]]:
        store = from_url(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5", asynchronous=True)
        sessions = CoatcheckSessionConfig(store=store, secure=False)
        with TestClient(Litestar(HANDLERS, middleware=[sessions.middleware])) as client:
            yield client

    def test_a_failing_load_is_a_503(self, down: TestClient[Litestar]) -> None:
        response = down.get("/read", headers=cookie(new_id()))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"

    def test_a_failing_commit_is_a_503_not_the_handlers_response(
        self, down: TestClient[Litestar]
    ) -> None:
        response = down.post("/write", json={"a": 1})
        assert response.status_code == 503
        assert set_cookies(response) == []

    def test_an_anonymous_request_needs_no_store(self, down: TestClient[Litestar]) -> None:
        assert down.get("/nothing").status_code == 200


async def retrieve_user(
    session: dict[str, Any], connection: ASGIConnection[Any, Any, Any, Any]
) -> Any:
    return {"id": session["user_id"]} if "user_id" in session else None


@post("/auth/login", sync_to_thread=False)
def auth_login(request: Request[Any, Any, Any], data: Annotated[dict[str, str], Body()]) -> None:
    request.set_session({"user_id": data["user"]})


@get("/auth/me", sync_to_thread=False)
def auth_me(request: Request[Any, Any, Any]) -> Any:
    return request.user


@post("/auth/logout", sync_to_thread=False)
def auth_logout(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


class TestSessionAuth:
    """Litestar's ``SessionAuth`` takes a ``CoatcheckSessionConfig`` as its backend config."""

    @pytest.fixture
    def auth_client(self) -> Iterator[TestClient[Litestar]]:
        auth = SessionAuth[Any, CoatcheckSessionBackend](
            retrieve_user_handler=retrieve_user,
            session_backend_config=CoatcheckSessionConfig(store=MemoryStore(), secure=False),
            exclude=["/auth/login", "/schema"],
        )
        app = Litestar([auth_login, auth_me, auth_logout], on_app_init=[auth.on_app_init])
        with TestClient(app) as client:
            yield client

    def test_login_me_logout(self, auth_client: TestClient[Litestar]) -> None:
        assert auth_client.get("/auth/me").status_code == 401
        sid = session_id(auth_client.post("/auth/login", json={"user": "ada"}))
        assert auth_client.get("/auth/me", headers=cookie(sid)).json() == {"id": "ada"}
        out = session_cookie(auth_client.post("/auth/logout", headers=cookie(sid)))
        assert "Max-Age=0" in (out or "")
        assert auth_client.get("/auth/me", headers=cookie(sid)).status_code == 401

    def test_an_unauthenticated_request_sends_no_cookie(
        self, auth_client: TestClient[Litestar]
    ) -> None:
        response = auth_client.get("/auth/me")
        assert response.status_code == 401
        assert set_cookies(response) == []
