"""Responses that set or carry a session cookie stay out of shared caches (Cache-Control),
through the ASGI and WSGI middleware and the Flask and aiohttp integrations alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask
import httpx
import pytest
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from coatcheck.asgi import SessionMiddleware as ASGISessionMiddleware
from coatcheck.integrations.aiohttp import SESSION_KEY, setup
from coatcheck.integrations.flask import Session as FlaskSession
from coatcheck.stores import MemoryStore
from coatcheck.wsgi import ENVIRON_KEY
from coatcheck.wsgi import SessionMiddleware as WSGISessionMiddleware

from .servers import serve_aiohttp

PUBLIC = "public, max-age=3600"


async def asgi_route(request: Request) -> Response:
    if request.query_params.get("write"):
        request.session["n"] = 1
    headers = {"Cache-Control": PUBLIC} if request.query_params.get("public") else {}
    return PlainTextResponse("ok", headers=headers)


def wsgi_route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if "write=1" in environ.get("QUERY_STRING", ""):
        environ[ENVIRON_KEY]["n"] = 1
    headers = [("Content-Type", "text/plain")]
    if "public=1" in environ.get("QUERY_STRING", ""):
        headers.append(("Cache-Control", PUBLIC))
    start_response("200 OK", headers)
    return [b"ok"]


def flask_app(store: MemoryStore) -> flask.Flask:
    app = flask.Flask(__name__)
    # Flask re-sends the cookie on every request unless told not to; a response that sets it
    # is never cacheable, so the cases of a request that only carries one need this off.
    app.config.update(
        COATCHECK_STORE=store, SESSION_COOKIE_SECURE=False, SESSION_REFRESH_EACH_REQUEST=False
    )
    FlaskSession(app)

    @app.route("/")
    def route() -> flask.Response:
        if flask.request.args.get("write"):
            flask.session["n"] = 1
        response = flask.make_response("ok")
        if flask.request.args.get("public"):
            response.headers["Cache-Control"] = PUBLIC
        return response

    return app


def aiohttp_app(store: MemoryStore) -> web.Application:
    async def route(request: web.Request) -> web.Response:
        if request.query.get("write"):
            request[SESSION_KEY]["n"] = 1
        headers = {"Cache-Control": PUBLIC} if request.query.get("public") else {}
        return web.Response(text="ok", headers=headers)

    app = web.Application()
    setup(app, store=store, secure=False)
    app.router.add_get("/", route)
    return app


@pytest.fixture(params=["asgi", "wsgi", "flask", "aiohttp"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    store = MemoryStore()
    if request.param == "aiohttp":
        with serve_aiohttp(aiohttp_app(store)) as url, httpx.Client(base_url=url) as client:
            yield client
    elif request.param == "flask":
        transport = httpx.WSGITransport(app=flask_app(store))
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            yield client
    elif request.param == "asgi":
        app = ASGISessionMiddleware(
            Starlette(routes=[Route("/", asgi_route)]), store=store, secure=False
        )
        from starlette.testclient import TestClient

        with TestClient(app) as client:
            yield client
    else:
        wsgi = WSGISessionMiddleware(wsgi_route, store=store, secure=False)
        transport = httpx.WSGITransport(app=wsgi)
        with httpx.Client(transport=transport, base_url="http://testserver") as client:
            yield client


def cache_control(response: httpx.Response) -> list[str]:
    return response.headers.get_list("cache-control")


def test_an_anonymous_response_is_left_as_the_app_made_it(client: httpx.Client) -> None:
    assert cache_control(client.get("/")) == []
    assert cache_control(client.get("/?public=1")) == [PUBLIC]


def test_a_response_that_sets_the_cookie_is_never_cacheable(client: httpx.Client) -> None:
    response = client.get("/?write=1&public=1")
    assert "set-cookie" in response.headers
    assert cache_control(response) == ["no-store"]


def test_a_response_to_a_request_carrying_a_session_is_not_stored(client: httpx.Client) -> None:
    client.get("/?write=1")
    response = client.get("/")
    assert "set-cookie" not in response.headers
    assert cache_control(response) == ["no-store"]


def test_the_app_may_still_mark_shared_assets_cacheable(client: httpx.Client) -> None:
    client.get("/?write=1")
    assert cache_control(client.get("/?public=1")) == [PUBLIC]


def test_the_expiring_cookie_of_a_logout_or_bad_cookie_is_not_cacheable(
    client: httpx.Client,
) -> None:
    response = client.get("/?public=1", headers={"Cookie": "session=forged"})
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert cache_control(response) == ["no-store"]
