"""coatcheck.integrations.fastapi: the typed session as a route dependency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from coatcheck.integrations.fastapi import SessionDep, SessionMiddleware
from coatcheck.integrations.starlette import SessionMiddleware as StarlettesMiddleware
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.testing import cookie_id


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    def me(session: SessionDep) -> dict[str, object]:
        return {"user": session.user_id, "data": dict(session), "typed": type(session).__name__}

    @app.post("/cart/{item}")
    def add(item: str, session: SessionDep) -> list[str]:
        cart: list[str] = session.setdefault("cart", [])
        cart.append(item)
        return cart

    @app.post("/login/{user}")
    async def login(user: str, session: SessionDep) -> dict[str, str]:
        session.login(user)
        return {"user": user}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.logout()
        return {"ok": True}

    @app.get("/plain")
    def plain() -> str:
        return "no session"

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        session["greeting"] = await websocket.receive_text()
        await websocket.send_json({"user": session.user_id})
        await websocket.close()

    app.add_middleware(SessionMiddleware, secret_key="s3cret", store=MemoryStore())
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(make_app()) as client:
        yield client


def test_it_is_the_starlette_integrations_middleware() -> None:
    assert SessionMiddleware is StarlettesMiddleware


def test_a_route_gets_the_typed_session(client: TestClient) -> None:
    first = client.get("/me")
    assert first.json() == {"user": None, "data": {}, "typed": Session.__name__}
    assert "set-cookie" not in first.headers  # an anonymous visit stores nothing


def test_nested_changes_persist(client: TestClient) -> None:
    client.post("/cart/apple")
    assert client.post("/cart/pear").json() == ["apple", "pear"]
    assert client.get("/me").json()["data"] == {"cart": ["apple", "pear"]}


def test_login_regenerates_and_logout_ends_the_session(client: TestClient) -> None:
    anonymous = cookie_id(client.post("/cart/apple").headers["set-cookie"])
    logged_in = cookie_id(client.post("/login/alice").headers["set-cookie"])
    assert logged_in != anonymous
    assert client.get("/me").json()["user"] == "alice"
    client.post("/logout")
    with TestClient(client.app, cookies={"session": logged_in}) as replay:
        assert replay.get("/me").json() == {"user": None, "data": {}, "typed": "Session"}


def test_a_route_that_takes_the_session_varies_on_cookie(client: TestClient) -> None:
    assert client.get("/me").headers["vary"] == "Cookie"
    assert "vary" not in client.get("/plain").headers


def test_a_websocket_route_gets_the_session_too(client: TestClient) -> None:
    client.post("/login/alice")
    with client.websocket_connect("/ws") as socket:
        socket.send_text("hi")
        assert socket.receive_json() == {"user": "alice"}
    assert client.get("/me").json()["data"] == {"greeting": "hi"}


def test_without_the_middleware_the_dependency_says_what_is_missing() -> None:
    app = make_app()
    app.user_middleware.clear()
    with (
        TestClient(app) as client,
        pytest.raises(RuntimeError, match="SessionMiddleware installed"),
    ):
        client.get("/me")
