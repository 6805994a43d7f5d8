"""One small application per integration, all with the same routes, served over real HTTP, for
the integration conformance suite (tests/test_integration_conformance.py).

Every application answers:

- ``GET /read``: ``{"data": {...}, "user": "alice" | null}``, the session as the server sees it;
- ``POST /write?key=value&...``: sets each query parameter in the session (``delay=S`` first
  loads the session, then waits ``S`` seconds holding the version it loaded); answers as
  ``/read``;
- ``POST /guarded?key=value&...``: the same, checked against CSRF the integration's way (in
  Django, the only view not ``csrf_exempt``, since Django's CSRF needs a token on every POST);
- ``POST /login?user=alice``, ``POST /logout``, ``POST /regenerate``: the session's
  ``login``, ``logout`` and ``regenerate`` (Django: ``cycle_key`` and ``flush``); answer as
  ``/read``;
- ``GET /csrf-token``: the session's CSRF token, as text.

A serve function (``serve_flask``, ...) takes a :class:`Setup` (the store's URL, the ID's
transport, and whether the per-client limits are on) and yields a :class:`Served` (the URL, and
the app's facts a client needs: cookie name, CSRF header, limits in force) while a real server
runs the app: uvicorn for ASGI applications, a threading wsgiref server for WSGI ones, aiohttp's
own server for aiohttp. The store is built from the URL by the integration's own means where
it has one (Flask's ``COATCHECK_STORE_URL``, Django's setting), else with ``from_url``.

Adding a framework is a serve function here and a class in the suite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl

import flask
import quart
from aiohttp import web
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from fastapi import FastAPI
from litestar import Litestar, MediaType, Request, get, post
from litestar.params import FromPath
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from coatcheck import asgi, wsgi
from coatcheck.config import SessionConfig, SessionOptions
from coatcheck.engine import SessionEngine
from coatcheck.integrations import aiohttp as coatcheck_aiohttp
from coatcheck.integrations import fastapi as coatcheck_fastapi
from coatcheck.integrations import flask as coatcheck_flask
from coatcheck.integrations import litestar as coatcheck_litestar
from coatcheck.integrations import quart as coatcheck_quart
from coatcheck.integrations import starlette as coatcheck_starlette
from coatcheck.integrations.django.session_store import BearerSessionStore
from coatcheck.stores import Store, from_url
from coatcheck.tokens import TokenKey, TokenKeyRing, Tokens

from .django_settings import configure as configure_django
from .servers import serve_aiohttp, serve_asgi, serve_wsgi

Transport = Literal["cookie", "header"]

LIMIT = 3
"""The per-client limits of a limited setup, where the integration takes them."""
DEFAULT_REJECTIONS = SessionConfig().max_rejections_per_client
"""The limit on cookies naming no session that every coatcheck engine has by default."""
POSTS = ("write", "guarded", "login", "logout", "regenerate", "whoami")
"""The routes answered to POST (``whoami`` changes nothing); ``read`` and ``csrf-token`` are
answered to GET."""
SECRET = "conformance-tests-not-a-secret"
TOKEN_KEYS = TokenKeyRing([TokenKey.generate("EdDSA")])
"""The key ring the applications verify access tokens with, and the tests issue them with."""


def access_tokens() -> Tokens:
    """Access tokens over header-borne refresh sessions, with :data:`TOKEN_KEYS`: what an
    application with ``Setup.tokens`` verifies Bearer requests with (revocation read on every
    request), and what the tests issue, refresh and revoke tokens with on the same store."""
    engine = SessionEngine(SessionConfig(transport="header", secure=False))
    return Tokens(engine, TOKEN_KEYS, issuer="conformance", audience="conformance-api")


@dataclass(frozen=True)
class Setup:
    """What an application is built with."""

    store_url: str
    transport: Transport = "cookie"
    limited: bool = False
    """Turn on ``max_rejections_per_client`` and ``max_creations_per_client`` (:data:`LIMIT`)
    where the integration takes them."""
    tokens: bool = False
    """Accept Bearer access tokens (``access_tokens``, :func:`access_tokens`)."""


@dataclass(frozen=True)
class Served:
    """A running application: where it is, and what a client must know of it."""

    url: str
    cookie_name: str = "session"
    csrf_header: str = "X-CSRF-Token"
    """Where a same-site unsafe request puts the token from ``GET /csrf-token``."""
    rejection_limit: int | None = None
    """Cookies naming no session one client may send per window before a 429 (None: no limit)."""
    creation_limit: int | None = None
    """New sessions one client may create per window before a 429 (None: no limit)."""
    limit_window: float = field(default=SessionConfig().limit_window)
    coatcheck_csrf: bool = True
    """Whether CSRF is coatcheck's check (Django's is its own CsrfViewMiddleware)."""


Serve = Callable[[Setup], AbstractContextManager[Served]]


class SessionApi(Protocol):
    """What the routes use of a session: coatcheck's Session, and Flask's FlaskSession."""

    def __iter__(self) -> Iterator[str]: ...
    def __getitem__(self, key: str) -> Any: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def keys(self) -> Iterable[str]: ...
    @property
    def user_id(self) -> str | None: ...
    def login(self, user_id: str) -> None: ...
    def logout(self) -> None: ...
    def regenerate(self) -> None: ...
    def csrf_token(self) -> str: ...


def view(session: SessionApi) -> dict[str, Any]:
    """The body ``/read`` (and every POST) answers with."""
    return {"data": {key: session[key] for key in session}, "user": session.user_id}


def act(session: SessionApi, route: str, params: dict[str, str]) -> dict[str, Any]:
    """What POST ``/<route>`` does to the session (after any ``delay``); the body it answers."""
    if route in ("write", "guarded"):
        for key, value in params.items():
            session[key] = value
    elif route == "login":
        session.login(params["user"])
    elif route == "logout":
        session.logout()
    elif route == "regenerate":
        session.regenerate()
    return view(session)


def delay_of(params: dict[str, str]) -> float:
    """The ``delay`` parameter, taken out of ``params``."""
    return float(params.pop("delay", "0"))


def options_of(setup: Setup) -> SessionOptions:
    """The coatcheck options of an integration that takes them all (core, Litestar, aiohttp)."""
    options: SessionOptions = {"secure": False, "transport": setup.transport}
    if setup.limited:
        options["max_rejections_per_client"] = LIMIT
        options["max_creations_per_client"] = LIMIT
    if setup.tokens:
        options["access_tokens"] = access_tokens()
    return options


def served_with_all_limits(url: str, setup: Setup) -> Served:
    if setup.limited:
        return Served(url, rejection_limit=LIMIT, creation_limit=LIMIT)
    return Served(url, rejection_limit=DEFAULT_REJECTIONS)


def sync_store(setup: Setup) -> Store:
    store = from_url(setup.store_url)
    assert isinstance(store, Store)
    return store


# -- the raw ASGI middleware, around a bare ASGI application ------------------------------------


async def bare_asgi_app(scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    assert scope["type"] == "http"
    session = asgi.session_of(scope)
    route = scope["path"].strip("/")
    params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    method = scope["method"]
    status, content_type, body = 200, b"application/json", b""
    if method == "GET" and route == "read":
        body = json.dumps(view(session)).encode()
    elif method == "GET" and route == "csrf-token":
        content_type, body = b"text/plain; charset=utf-8", session.csrf_token().encode()
    elif method == "POST" and route in POSTS:
        delay = delay_of(params)
        if delay:
            await asyncio.sleep(delay)
        body = json.dumps(act(session, route, params)).encode()
    else:
        status, content_type, body = 404, b"text/plain", b"not found"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve_raw_asgi(setup: Setup) -> Iterator[Served]:
    store = sync_store(setup)
    app = asgi.SessionMiddleware(bare_asgi_app, store=store, **options_of(setup))
    try:
        with serve_asgi(app) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- the raw WSGI middleware, around a bare WSGI application ------------------------------------


def bare_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = environ[wsgi.ENVIRON_KEY]
    route = environ["PATH_INFO"].strip("/")
    params = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    method = environ["REQUEST_METHOD"]
    status, content_type, body = "200 OK", "application/json", b""
    if method == "GET" and route == "read":
        body = json.dumps(view(session)).encode()
    elif method == "GET" and route == "csrf-token":
        content_type, body = "text/plain; charset=utf-8", session.csrf_token().encode()
    elif method == "POST" and route in POSTS:
        time.sleep(delay_of(params))
        body = json.dumps(act(session, route, params)).encode()
    else:
        status, content_type, body = "404 Not Found", "text/plain", b"not found"
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


@contextmanager
def serve_raw_wsgi(setup: Setup) -> Iterator[Served]:
    store = sync_store(setup)
    app = wsgi.SessionMiddleware(bare_wsgi_app, store=store, **options_of(setup))
    try:
        with serve_wsgi(app) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- Starlette ----------------------------------------------------------------------------------


async def starlette_read(request: StarletteRequest) -> Response:
    return JSONResponse(view(coatcheck_starlette.session_of(request)))


async def starlette_token(request: StarletteRequest) -> Response:
    return PlainTextResponse(coatcheck_starlette.session_of(request).csrf_token())


def starlette_post(route: str) -> Callable[[StarletteRequest], Awaitable[Response]]:
    async def handler(request: StarletteRequest) -> Response:
        session = coatcheck_starlette.session_of(request)
        params = dict(request.query_params)
        delay = delay_of(params)
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(act(session, route, params))

    return handler


def starlette_options(setup: Setup) -> coatcheck_starlette.CoatcheckOptions:
    """The coatcheck options beside Starlette's own arguments (``https_only`` is off)."""
    options: coatcheck_starlette.CoatcheckOptions = {"transport": setup.transport}
    if setup.limited:
        options["max_rejections_per_client"] = LIMIT
        options["max_creations_per_client"] = LIMIT
    if setup.tokens:
        options["access_tokens"] = access_tokens()
    return options


@contextmanager
def serve_starlette(setup: Setup) -> Iterator[Served]:
    """Starlette's SessionMiddleware arguments, and coatcheck's options beside them."""
    store = sync_store(setup)
    routes = [
        Route("/read", starlette_read),
        Route("/csrf-token", starlette_token),
        *(Route(f"/{name}", starlette_post(name), methods=["POST"]) for name in POSTS),
    ]
    middleware = Middleware(
        coatcheck_starlette.SessionMiddleware,
        secret_key=SECRET,
        store=store,
        **starlette_options(setup),
    )
    app = Starlette(routes=routes, middleware=[middleware])
    try:
        with serve_asgi(app) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- FastAPI ------------------------------------------------------------------------------------


def fastapi_app(setup: Setup, store: Store) -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        coatcheck_fastapi.SessionMiddleware,
        secret_key=SECRET,
        store=store,
        **starlette_options(setup),
    )

    @app.get("/read")
    async def read(session: coatcheck_fastapi.SessionDep) -> dict[str, Any]:
        return view(session)

    @app.get("/csrf-token", response_class=PlainTextResponse)
    async def token(session: coatcheck_fastapi.SessionDep) -> str:
        return session.csrf_token()

    @app.post("/{route}")
    async def post_route(
        route: str, request: StarletteRequest, session: coatcheck_fastapi.SessionDep
    ) -> Response:
        if route not in POSTS:
            return PlainTextResponse("not found", status_code=404)
        params = dict(request.query_params)
        delay = delay_of(params)
        if delay:
            await asyncio.sleep(delay)
        return JSONResponse(act(session, route, params))

    return app


@contextmanager
def serve_fastapi(setup: Setup) -> Iterator[Served]:
    """FastAPI with the Starlette integration's middleware and ``SessionDep``."""
    store = sync_store(setup)
    try:
        with serve_asgi(fastapi_app(setup, store)) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- Litestar -----------------------------------------------------------------------------------


def litestar_app(setup: Setup, store: Store) -> Litestar:
    @get("/read")
    async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return view(coatcheck_litestar.session_of(request))

    @get("/csrf-token", media_type=MediaType.TEXT)
    async def token(request: Request[Any, Any, Any]) -> str:
        return coatcheck_litestar.session_of(request).csrf_token()

    @post("/{route:str}", status_code=200)
    async def post_route(route: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        session = coatcheck_litestar.session_of(request)
        params = {key: str(value) for key, value in request.query_params.items()}
        delay = delay_of(params)
        if delay:
            await asyncio.sleep(delay)
        return act(session, route, params)

    sessions = coatcheck_litestar.CoatcheckSessionConfig(store=store, **options_of(setup))
    return Litestar([read, token, post_route], middleware=[sessions.middleware])


@contextmanager
def serve_litestar(setup: Setup) -> Iterator[Served]:
    store = sync_store(setup)
    try:
        with serve_asgi(litestar_app(setup, store)) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- aiohttp ------------------------------------------------------------------------------------


async def aiohttp_read(request: web.Request) -> web.Response:
    return web.json_response(view(coatcheck_aiohttp.session_of(request)))


async def aiohttp_token(request: web.Request) -> web.Response:
    return web.Response(text=coatcheck_aiohttp.session_of(request).csrf_token())


async def aiohttp_post(request: web.Request) -> web.Response:
    route = request.match_info["route"]
    if route not in POSTS:
        raise web.HTTPNotFound
    session = coatcheck_aiohttp.session_of(request)
    params = dict(request.query)
    delay = delay_of(params)
    if delay:
        await asyncio.sleep(delay)
    return web.json_response(act(session, route, params))


@contextmanager
def serve_aiohttp_app(setup: Setup) -> Iterator[Served]:
    store = sync_store(setup)
    app = web.Application()
    app.router.add_get("/read", aiohttp_read)
    app.router.add_get("/csrf-token", aiohttp_token)
    app.router.add_post("/{route}", aiohttp_post)
    coatcheck_aiohttp.setup(app, store=store, **options_of(setup))
    try:
        with serve_aiohttp(app) as url:
            yield served_with_all_limits(url, setup)
    finally:
        store.close()


# -- Flask --------------------------------------------------------------------------------------


def flask_app(setup: Setup) -> flask.Flask:
    """Configured from ``app.config`` keys, as the Flask integration is."""
    app = flask.Flask(__name__)
    app.config["COATCHECK_STORE_URL"] = setup.store_url
    app.config["COATCHECK_TRANSPORT"] = setup.transport
    if setup.limited:
        app.config["COATCHECK_MAX_REJECTIONS_PER_CLIENT"] = LIMIT
        app.config["COATCHECK_MAX_CREATIONS_PER_CLIENT"] = LIMIT
    if setup.tokens:
        app.config["COATCHECK_ACCESS_TOKENS"] = access_tokens()
    coatcheck_flask.Session(app)

    @app.get("/read")
    def read() -> dict[str, Any]:
        return view(coatcheck_flask.current_session())

    @app.get("/csrf-token")
    def token() -> str:
        return coatcheck_flask.current_session().csrf_token()

    @app.post("/<route>")
    def post_route(route: str) -> dict[str, Any]:
        if route not in POSTS:
            flask.abort(404)
        params = flask.request.args.to_dict()
        time.sleep(delay_of(params))
        return act(coatcheck_flask.current_session(), route, params)

    return app


@contextmanager
def serve_flask(setup: Setup) -> Iterator[Served]:
    app = flask_app(setup)
    interface = app.session_interface
    assert isinstance(interface, coatcheck_flask.CoatcheckSessionInterface)
    try:
        with serve_wsgi(app) as url:
            yield served_with_all_limits(url, setup)
    finally:
        interface.store.close()


# -- Quart --------------------------------------------------------------------------------------


def quart_app(setup: Setup) -> quart.Quart:
    """Configured from ``app.config`` keys, as the Quart integration is (Flask's keys)."""
    app = quart.Quart(__name__)
    app.config["COATCHECK_STORE_URL"] = setup.store_url
    app.config["COATCHECK_TRANSPORT"] = setup.transport
    if setup.limited:
        app.config["COATCHECK_MAX_REJECTIONS_PER_CLIENT"] = LIMIT
        app.config["COATCHECK_MAX_CREATIONS_PER_CLIENT"] = LIMIT
    if setup.tokens:
        app.config["COATCHECK_ACCESS_TOKENS"] = access_tokens()
    coatcheck_quart.Session(app)

    @app.get("/read")
    async def read() -> dict[str, Any]:
        return view(coatcheck_quart.current_session())

    @app.get("/csrf-token")
    async def token() -> str:
        return coatcheck_quart.current_session().csrf_token()

    @app.post("/<route>")
    async def post_route(route: str) -> dict[str, Any]:
        if route not in POSTS:
            quart.abort(404)
        params = quart.request.args.to_dict()
        await asyncio.sleep(delay_of(params))
        return act(coatcheck_quart.current_session(), route, params)

    return app


@contextmanager
def serve_quart(setup: Setup) -> Iterator[Served]:
    """Under uvicorn with lifespan off, so the store is closed here, not in ``after_serving``."""
    app = quart_app(setup)
    with serve_asgi(app, cleanup=app.extensions["coatcheck"].store.close) as url:
        yield served_with_all_limits(url, setup)


# -- Django -------------------------------------------------------------------------------------


def django_view(request: HttpRequest) -> dict[str, Any]:
    """The session's data (Django's own ``_``-prefixed keys left out) and its user (the
    ``_auth_user_id`` that ``django.contrib.auth.login`` sets)."""
    session = request.session
    data = {key: value for key, value in session.items() if not key.startswith("_")}
    if isinstance(session, BearerSessionStore):  # the access token's user
        return {"data": data, "user": session.user_id}
    return {"data": data, "user": session.get("_auth_user_id")}


def django_read(request: HttpRequest) -> HttpResponse:
    return JsonResponse(django_view(request))


def django_token(request: HttpRequest) -> HttpResponse:
    return HttpResponse(get_token(request), content_type="text/plain; charset=utf-8")


def django_post(request: HttpRequest, route: str) -> HttpResponse:
    if request.method != "POST" or route not in POSTS:
        return HttpResponse("not found", status=404, content_type="text/plain")
    session = request.session
    params: dict[str, str] = request.GET.dict()
    session.get("_auth_user_id")  # loaded now: the version this request holds
    time.sleep(delay_of(params))
    if route in ("write", "guarded"):
        session.update(params)
    elif route == "login":  # what django.contrib.auth.login does to the session
        session.cycle_key()
        session["_auth_user_id"] = params["user"]
    elif route == "logout":  # what django.contrib.auth.logout does to it
        session.flush()
    elif route == "regenerate":  # coatcheck's plain regenerate (cycle_key is login's)
        session.regenerate()
    return JsonResponse(django_view(request))


def django_guarded(request: HttpRequest) -> HttpResponse:
    return django_post(request, "guarded")


urlpatterns = [
    path("read", django_read),
    path("csrf-token", django_token),
    path("guarded", django_guarded),  # Django's CSRF checks it
    path("<str:route>", csrf_exempt(django_post)),
]
"""The Django app's URLconf (``ROOT_URLCONF`` while it is served)."""


@contextmanager
def serve_django(setup: Setup) -> Iterator[Served]:
    """Django's WSGI handler with coatcheck as ``SESSION_ENGINE``, coatcheck's
    ``SessionMiddleware`` and Django's ``CsrfViewMiddleware`` with ``CSRF_USE_SESSIONS`` (as
    docs/integrations/django.md recommends). Settings are process-wide: the override lasts as
    long as the server, so two Django setups are never served at once."""
    configure_django()
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    settings = override_settings(
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        COATCHECK_STORE_URL=setup.store_url,
        COATCHECK_SESSION={
            key: value
            for key, value in options_of(setup).items()
            if key not in ("secure",)  # Django's SESSION_COOKIE_SECURE, False by default
        },
        CSRF_USE_SESSIONS=True,
        MIDDLEWARE=[
            "coatcheck.integrations.django.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
    )
    with settings, serve_wsgi(WSGIHandler()) as url:
        limits = served_with_all_limits(url, setup)
        yield dataclasses.replace(
            limits, cookie_name="sessionid", csrf_header="X-CSRFToken", coatcheck_csrf=False
        )
