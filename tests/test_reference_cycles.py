"""A request leaves no session for the cycle collector: everything it made is freed on return.

A reference cycle through the session (the request holds the session, the session holds
something that holds the request) costs every request a trip through the garbage collector,
and under load the collector's sweeps of the whole heap. Each adapter is driven directly, so
the only objects in play are the framework's and coatcheck's; the test runs with binding and
every per-client limit on, which is when the session carries a way to find its client.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, MutableMapping
from functools import partial
from typing import TYPE_CHECKING, Any

import flask
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import EnvironBuilder

from coatcheck.asgi import SessionMiddleware as ASGISessionMiddleware
from coatcheck.integrations.aiohttp import SESSION_KEY, setup
from coatcheck.integrations.flask import Session as FlaskSession
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.wsgi import ENVIRON_KEY
from coatcheck.wsgi import SessionMiddleware as WSGISessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

OPTIONS: dict[str, Any] = {
    "secure": False,
    "bind_to": ("user_agent", "network"),
    "max_creations_per_client": 1000,
    "max_rejections_per_client": 1000,
}
"""Binding and every per-client limit: the session then holds how to find its client."""

PATHS = ("/anonymous", "/write", "/read", "/write", "/logout")
"""One visit: no session, a new one, a read, a save, the end."""


@pytest.fixture
def collector() -> Iterator[Callable[[], list[object]]]:
    """Run with the collector off; the returned function collects and lists what it found."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)

    def found() -> list[object]:
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
        return garbage

    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def sessions_in(garbage: list[object]) -> list[object]:
    return [item for item in garbage if isinstance(item, Session)]


def answer(session: MutableMapping[str, Any], path: str) -> str:
    """What every test app does on ``path``."""
    if path == "/write":
        session["n"] = session.get("n", 0) + 1
    elif path == "/logout" and isinstance(session, Session):
        session.logout()
    return str(session.get("n"))


def cookie_from(headers: list[tuple[str, str]], cookie: str | None) -> str | None:
    for name, value in headers:
        if name.lower() == "set-cookie":
            return value.partition(";")[0]
    return cookie


async def keep_message(
    kept: list[MutableMapping[str, Any]], message: MutableMapping[str, Any]
) -> None:
    kept.append(message)


def test_asgi_requests_leave_no_cycles(collector: Callable[[], list[object]]) -> None:
    async def route(request: Request) -> PlainTextResponse:
        return PlainTextResponse(answer(request.session, request.url.path))

    app = ASGISessionMiddleware(
        Starlette(routes=[Route(path, route) for path in PATHS]), store=MemoryStore(), **OPTIONS
    )

    async def visit() -> None:
        cookie = None
        for path in PATHS:
            headers = [(b"host", b"testserver"), (b"user-agent", b"test")]
            if cookie is not None:
                headers.append((b"cookie", cookie.encode()))
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": headers,
                "client": ("203.0.113.7", 50000),
                "server": ("testserver", 80),
            }
            sent: list[MutableMapping[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            await app(scope, receive, partial(keep_message, sent))
            start = [(n.decode(), v.decode()) for n, v in sent[0]["headers"]]
            cookie = cookie_from(start, cookie)

    asyncio.run(visit())  # the event loop's own objects, made and dropped once
    collector()
    asyncio.run(visit())
    assert sessions_in(collector()) == []


def wsgi_visit(app: WSGIApplication) -> None:
    """One visit through a WSGI app, called directly."""
    cookie = None
    for path in PATHS:
        headers = [("User-Agent", "test")] + ([("Cookie", cookie)] if cookie else [])
        environ = EnvironBuilder(path=path, headers=headers).get_environ()
        environ["REMOTE_ADDR"] = "203.0.113.7"
        started: list[tuple[str, str]] = []
        b"".join(app(environ, partial(keep_headers, started)))
        cookie = cookie_from(started, cookie)
        del environ


def keep_headers(
    kept: list[tuple[str, str]], status: str, headers: list[tuple[str, str]], *_: object
) -> Callable[[bytes], object]:
    kept.extend(headers)
    return len


def test_wsgi_requests_leave_no_cycles(collector: Callable[[], list[object]]) -> None:
    def route(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        body = answer(environ[ENVIRON_KEY], environ["PATH_INFO"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    app = WSGISessionMiddleware(route, store=MemoryStore(), **OPTIONS)
    collector()
    wsgi_visit(app)
    assert sessions_in(collector()) == []


def test_flask_requests_leave_no_cycles(collector: Callable[[], list[object]]) -> None:
    app = flask.Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        SESSION_COOKIE_SECURE=False,
        COATCHECK_BIND_TO=("user_agent", "network"),
        COATCHECK_MAX_CREATIONS_PER_CLIENT=1000,
        COATCHECK_STORE=MemoryStore(),
    )
    FlaskSession(app)

    @app.route("/<name>")
    def route(name: str) -> str:
        return answer(flask.session, f"/{name}")

    with app.test_client() as client:  # warm up: Flask's first request builds caches
        client.get("/anonymous")
    collector()
    wsgi_visit(app)
    assert sessions_in(collector()) == []


def test_aiohttp_requests_leave_no_cycles(collector: Callable[[], list[object]]) -> None:
    async def route(request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        return web.Response(text=answer(session, request.path))

    async def visit() -> None:
        app = web.Application()
        setup(app, store=MemoryStore(), **OPTIONS)
        app.router.add_get("/{name}", route)
        async with TestClient(TestServer(app)) as client:
            cookie = None
            for path in PATHS:
                headers = {"User-Agent": "test"} | ({"Cookie": cookie} if cookie else {})
                async with client.get(path, headers=headers) as response:
                    await response.read()
                    cookie = cookie_from(list(response.headers.items()), cookie)

    asyncio.run(visit())
    collector()
    asyncio.run(visit())
    assert sessions_in(collector()) == []
