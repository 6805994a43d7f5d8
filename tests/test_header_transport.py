"""The session ID by header (``transport="header"``), for API and mobile clients, over real
servers: the raw ASGI middleware under uvicorn, the raw WSGI middleware and Flask under wsgiref,
and aiohttp under its own server, each on a real SQLite store. The ID travels only in
``X-Session-Token``: never read from a cookie, never set in one; a response carries the header
when the session was created or rotated (the new ID) and empty when it ended or the request's
ID named nothing. CSRF checks, which guard ambient credentials, do not apply to it. A
cookie-transport app never reads the header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from coatcheck.ids import is_well_formed, new_id
from coatcheck.stores import SQLiteStore

from .apps import starlette_app
from .servers import serve_aiohttp, serve_asgi, serve_wsgi
from .wsgi_app import wsgi_app

KINDS = ["asgi", "wsgi", "flask", "aiohttp"]

HEADER = "X-Session-Token"
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


class Server:
    """One server's routes, spoken the same way: write, login, logout, read."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.http = kind, httpx.Client(base_url=url)

    def send(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers[HEADER] = token
        return self.http.request(method, path, headers=headers, **kw)

    def write(self, token: str | None, key: str, value: str, **kw: Any) -> httpx.Response:
        if self.kind == "asgi":
            return self.send("POST", "/write", token, json={key: value}, **kw)
        return self.send("POST", f"/write?{key}={value}", token, **kw)

    def login(self, token: str, user: str) -> httpx.Response:
        if self.kind == "asgi":
            return self.send("POST", f"/login/{user}", token)
        return self.send("POST", f"/login?user={user}", token)

    def logout(self, token: str) -> httpx.Response:
        return self.send("POST", "/logout", token)

    def read(self, token: str | None, **kw: Any) -> tuple[dict[str, Any], str | None]:
        """The session's data and user, as the server sees them."""
        if self.kind == "asgi":
            data = json.loads(self.send("GET", "/read", token, **kw).text)
            user = self.send("GET", "/whoami", token, **kw).json()["user"]
            return data, user
        body = self.send("GET", "/read", token, **kw).json()
        return body["data"], body["user"]


def flask_app(store: SQLiteStore, **options: Any) -> Any:
    """A Flask app with the routes of tests/wsgi_app.py, over coatcheck's Flask integration."""
    import flask

    from coatcheck.integrations.flask import Session, current_session

    app = flask.Flask(__name__)
    config = {f"COATCHECK_{name.upper()}": value for name, value in options.items()}
    app.config.update(COATCHECK_STORE=store, SESSION_COOKIE_SECURE=False, **config)
    Session(app)

    @app.route("/<action>", methods=["GET", "POST"])
    def act(action: str) -> Any:
        session = current_session()
        if action == "write":
            session.update(flask.request.args.to_dict())
        elif action == "login":
            session.login(flask.request.args["user"])
        elif action == "logout":
            session.logout()
        return {"data": dict(session), "user": session.user_id}

    return app


def aiohttp_app(store: SQLiteStore, **options: Any) -> Any:
    """An aiohttp app with the same routes, over coatcheck's aiohttp integration."""
    from aiohttp import web

    from coatcheck.integrations.aiohttp import session_of, setup

    async def act(request: web.Request) -> web.Response:
        session, action = session_of(request), request.match_info["action"]
        if action == "write":
            session.update(dict(request.query))
        elif action == "login":
            session.login(request.query["user"])
        elif action == "logout":
            session.logout()
        return web.json_response({"data": dict(session), "user": session.user_id})

    app = web.Application()
    app.router.add_route("*", "/{action}", act)
    setup(app, store=store, **{"secure": False, **options})
    return app


@contextmanager
def serving(kind: str, tmp_path: Path, **options: Any) -> Iterator[Server]:
    store = SQLiteStore(tmp_path / f"{kind}.db")
    if kind == "asgi":
        context = serve_asgi(starlette_app(store, **options))
    elif kind == "wsgi":
        context = serve_wsgi(wsgi_app(store, **options))
    elif kind == "flask":
        context = serve_wsgi(flask_app(store, **options))
    else:
        context = serve_aiohttp(aiohttp_app(store, **options))
    with context as url:
        server = Server(kind, url)
        try:
            yield server
        finally:
            server.http.close()
            store.close()


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with serving(request.param, tmp_path, transport="header") as server:
        yield server


def created(server: Server, **data: str) -> str:
    """A new session holding ``data``; the ID the response handed out."""
    (key, value), *_ = data.items()
    response = server.write(None, key, value)
    assert response.status_code == 200
    token = response.headers[HEADER]
    assert is_well_formed(token)
    return token


def test_the_header_names_the_session_and_a_cookie_does_not(server: Server) -> None:
    token = created(server, cart="tea")
    assert server.read(token) == ({"cart": "tea"}, None)
    assert server.read(None, headers={"Cookie": f"session={token}"}) == ({}, None)
    response = server.write(token, "more", "milk")
    assert HEADER not in response.headers  # same ID: nothing to hand out
    assert server.read(token)[0] == {"cart": "tea", "more": "milk"}


def test_logout_and_unknown_ids_get_an_empty_header(server: Server) -> None:
    token = created(server, cart="tea")
    response = server.logout(token)
    assert response.headers[HEADER] == ""
    assert server.read(token) == ({}, None)
    unknown = server.send("GET", "/read", new_id())
    assert unknown.headers[HEADER] == ""  # forget it
    malformed = server.send("GET", "/read", "not an id")
    assert malformed.headers[HEADER] == ""


@pytest.mark.parametrize("kind", KINDS)
def test_a_cookie_transport_app_never_reads_the_header(kind: str, tmp_path: Path) -> None:
    with serving(kind, tmp_path) as cookies:
        response = cookies.write(None, "cart", "tea")
        session_id = response.cookies["session"]
        assert HEADER not in response.headers
        cookies.http.cookies.clear()
        assert cookies.read(session_id) == ({}, None)  # offered in the header: ignored
        in_a_cookie = {"Cookie": f"session={session_id}"}
        assert cookies.read(None, headers=in_a_cookie) == ({"cart": "tea"}, None)
        refused = cookies.write(None, "x", "y", headers=CROSS_SITE)
        assert refused.status_code == 403  # a cookie-borne session keeps its CSRF checks


def test_the_session_header_is_a_token_and_the_transport_one_of_two() -> None:
    from coatcheck.config import ConfigError, SessionConfig

    assert SessionConfig(transport="header", session_header="X-Api-Session").session_header == (
        "x-api-session"
    )
    with pytest.raises(ConfigError, match="transport"):
        SessionConfig(transport="carrier-pigeon")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="session_header"):
        SessionConfig(transport="header", session_header="no spaces")
