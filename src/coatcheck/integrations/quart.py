"""Quart integration: ``quart.session`` kept on the server by coatcheck, with async store calls.

``Session(app)`` (or ``Session().init_app(app)``) installs a Quart session interface: I/O glue
that drives the request's lifecycle (:class:`~coatcheck.exchange.Exchange`) with
:func:`~coatcheck.engine.run_async`. ``quart.session`` is the Flask integration's mapping
(:class:`~coatcheck.integrations.flask.FlaskSession`; Quart's sessions are Flask's), so it has
``permanent``, ``login(user_id)``, ``logout()``, ``regenerate()`` and ``user_id``;
:func:`current_session` gives it typed.

It is configured as the Flask integration is, from ``app.config`` when ``init_app`` runs:
``COATCHECK_STORE`` (a sync or async store), else the async face of ``COATCHECK_STORE_URL``'s
store, else SQLite in ``app.instance_path``; ``PERMANENT_SESSION_LIFETIME`` and every
``COATCHECK_*`` option (CSRF, binding, limits, ``COATCHECK_TRANSPORT``); and at every request
``SESSION_PERMANENT``, ``SESSION_REFRESH_EACH_REQUEST`` and ``SESSION_COOKIE_*``. A session that
cannot be loaded (503, 429) and an unsafe request, or a WebSocket handshake, that fails the CSRF
check (403) are answered before any view runs, with the Flask integration's exceptions
(``@app.errorhandler`` applies); a commit that fails replaces the response.

>>> import asyncio, quart
>>> from coatcheck.stores import MemoryStore
>>> app = quart.Quart(__name__)
>>> app.config["COATCHECK_STORE"] = MemoryStore()
>>> @app.get("/")
... async def visits() -> str:
...     quart.session["visits"] = quart.session.get("visits", 0) + 1
...     return str(quart.session["visits"])
>>> _ = Session(app)
>>> async def twice() -> list[str]:
...     client = app.test_client()
...     return [await (await client.get("/")).get_data(as_text=True) for _ in "12"]
>>> asyncio.run(twice())
['1', '2']
"""

from __future__ import annotations

import logging
from functools import partial

import quart
from quart.sessions import NullSession, SessionInterface, SessionMixin, session_json_serializer
from quart.wrappers import BaseRequestWebsocket, Request, Response
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import csrf
from ..clients import found_client
from ..config import SessionConfig
from ..cookies import find_cookie
from ..engine import Plan, run_async
from ..exchange import REFUSED
from ..limits import LimitExceeded
from ..session import BearerSession
from ..session import Session as CoatcheckSession
from ..stores import AsyncStore, Store, StoreError, as_async
from .app_config import (
    browser_of,
    configured_store,
    engines,
    exchange_of,
    report_cookie,
    session_config,
)
from .flask import CsrfRefused, FlaskSession, refusal_exception

__all__ = ["CoatcheckSessionInterface", "Session", "csrf_token", "current_session"]

logger = logging.getLogger("coatcheck")


class UnavailableSession(NullSession):
    """The session of a request whose session could not be loaded: reads as empty, refuses
    writes; the request gets ``refusal`` (503, 429 or 403) before any view runs."""

    def __init__(self, refusal: HTTPException) -> None:
        super().__init__()
        self.refusal = refusal


class CoatcheckSessionInterface(SessionInterface):
    """Quart's session interface, backed by the engine and an async ``store``."""

    serializer = session_json_serializer

    def __init__(self, app: quart.Quart, store: Store | AsyncStore, config: SessionConfig) -> None:
        self.store = as_async(store)
        self.config = config
        self.engines = engines(config, app, self)
        self.exchange = exchange_of(self.engines, app)

    def get_cookie_partitioned(self, app: quart.Quart) -> bool:  # Quart < 0.21 has none
        return bool(app.config.get("SESSION_COOKIE_PARTITIONED", False))

    async def open_session(self, app: quart.Quart, request: BaseRequestWebsocket) -> SessionMixin:
        exchange, headers = self.exchange, request.headers
        transport = exchange.transport
        token = exchange.bearer(headers.get("Authorization"))
        session_id = None
        if token is not None:  # authenticated by its access token alone
            opened: CoatcheckSession | Plan[CoatcheckSession] = exchange.authenticate(token)
        else:
            if transport.cookie_name is None:
                session_id = transport.read(headers.get(transport.request_header))
            else:  # Quart's SESSION_COOKIE_NAME; HTTP/2 may split the Cookie header
                cookies = "; ".join(headers.getlist("Cookie"))
                session_id = find_cookie(cookies, self.get_cookie_name(app))
            client = None
            if exchange.wants_client(session_id):
                forwarded, agent = headers.get("X-Forwarded-For"), headers.get("User-Agent")
                proxies = self.config.trusted_proxies
                client = partial(found_client, request.remote_addr, forwarded, agent, proxies)
            opened = exchange.open(session_id, client)
        if not isinstance(opened, CoatcheckSession):
            try:
                opened = await run_async(opened, self.store)
            except REFUSED as exc:
                return UnavailableSession(refusal_exception(exchange, exc))
        permanent = bool(app.config.get("SESSION_PERMANENT", True))
        return FlaskSession(opened, self.serializer, permanent, session_id)

    async def save_session(
        self, app: quart.Quart, session: SessionMixin, response: Response | WerkzeugResponse | None
    ) -> None:
        if not isinstance(session, FlaskSession) or type(session.coatcheck) is BearerSession:
            return  # a Bearer request's session is never stored, and sets nothing
        session.settle()  # Flask's rules: nested changes, emptied sessions, `permanent`
        engine = self.engines[session.permanent]
        try:
            id_value = await run_async(engine.commit(session.coatcheck), self.store)
        except (StoreError, LimitExceeded) as exc:
            refusal = refusal_exception(self.exchange, exc)
            if response is None:  # after a WebSocket: nothing left to answer
                logger.error("could not store a WebSocket session: %s", exc)
                return
            assert refusal.code is not None
            response.status_code = refusal.code
            response.headers = Headers(refusal.get_headers())
            response.set_data(refusal.get_body())
            return
        if response is None:
            return
        transport = self.exchange.transport
        stored = transport.cookie_name is not None and not session.new
        if id_value is None and stored and self.should_set_cookie(app, session):
            id_value = engine.current_cookie(session.coatcheck)  # re-sent, as Flask does
        elif id_value is not None and self.exchange.watching_secure:
            report_cookie(self.exchange, quart.request)
        app_cache_control = "Cache-Control" in response.headers
        added, no_store = self.exchange.headers(session.coatcheck, id_value, app_cache_control)
        if session.accessed or added:
            response.vary.add("Cookie" if transport.cookie_name else transport.request_header)
        for name, value in added:
            response.headers.add(name, value)
        if no_store:
            response.headers["Cache-Control"] = "no-store"


async def _guard() -> None:
    """Before any view or WebSocket handler: the refusal of a session that could not be loaded,
    then the CSRF check."""
    session = quart.session
    if isinstance(session, UnavailableSession):
        raise session.refusal
    interface = quart.current_app.session_interface
    if not isinstance(session, FlaskSession) or not isinstance(
        interface, CoatcheckSessionInterface
    ):
        return
    websocket = quart.has_websocket_context()
    request: BaseRequestWebsocket = quart.websocket if websocket else quart.request
    exchange, headers = interface.exchange, request.headers
    if not exchange.checks(request.method, request.path, websocket):
        return
    submitted = headers.get(interface.config.csrf_header)
    content_type = headers.get("Content-Type")
    if not websocket and content_type and exchange.wants_form(submitted, content_type):
        body = await _form_body(quart.request)
        submitted = csrf.form_token(content_type, body, interface.config.csrf_field)
    browser = browser_of(request, submitted, websocket)
    refusal = exchange.csrf_refusal(session.coatcheck, browser)
    if refusal is not None:
        raise CsrfRefused(refusal.cause, refusal)


async def _form_body(request: Request) -> bytes:
    """A form's body (up to ``csrf.FORM_LIMIT``), cached: the view still gets ``request.form``."""
    length = request.content_length
    if length is None or length > csrf.FORM_LIMIT:
        return b""
    return await request.get_data(cache=True, as_text=False, parse_form_data=False)


def current_session() -> FlaskSession:
    """``quart.session``, typed as coatcheck's (with ``login``, ``logout``, ``regenerate``)."""
    session = quart.session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(session, FlaskSession):
        raise RuntimeError("no coatcheck session here: was Session(app) called?")
    return session


def csrf_token() -> str:
    """The current session's CSRF token, masked afresh; ``{{ csrf_token() }}`` in templates."""
    return current_session().csrf_token()


class Session:
    """The Quart extension: ``Session(app)`` or ``Session().init_app(app)``."""

    def __init__(self, app: quart.Quart | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: quart.Quart) -> None:
        """Install coatcheck's session interface on ``app``, configured from ``app.config``."""
        store = configured_store(app.config, app.instance_path, asynchronous=True)
        config = session_config(app.config, app.permanent_session_lifetime)
        interface = CoatcheckSessionInterface(app, store, config)
        app.session_interface = interface  # type: ignore[assignment]
        app.extensions["coatcheck"] = interface
        for hooks in (app.before_request_funcs, app.before_websocket_funcs):
            hooks.setdefault(None, []).insert(0, _guard)
        if config.csrf == "token":  # the token the check wants, whatever else offered one
            app.jinja_env.globals["csrf_token"] = csrf_token
        else:
            app.jinja_env.globals.setdefault("csrf_token", csrf_token)
        if app.config.get("COATCHECK_STORE") is None:  # a store of its own: closed with the app
            app.after_serving(interface.store.close)
