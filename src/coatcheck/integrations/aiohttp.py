"""aiohttp.web: coatcheck sessions in ``request[SESSION_KEY]``, installed with :func:`setup`.

``setup(app, store=...)`` adds a middleware that loads the request's session before the
handler and commits it as the response starts (for a streamed response or a websocket too,
through ``app.on_response_prepare``), adding its ``Set-Cookie`` to that response. When the store
fails the request gets a 503, never a 500 or a response without its session.

Sessions can be bound to their client and new or unknown sessions rate-limited per client, with
the options of the core middleware (``bind_to``, ``binding_action``, ``trusted_proxies``,
``max_creations_per_client``, ``max_rejections_per_client``, ``max_creations``,
``max_sessions_per_user``, ``session_limit_policy``, ``limit_window``). The client is
``request.remote`` (the connection's peer), or the ``X-Forwarded-For`` it relays when it is one
of the ``trusted_proxies``, and the ``User-Agent``. A request over a limit gets a 429 (a login
refused by ``max_sessions_per_user``, a 403) with ``Retry-After``.

Unsafe requests (POST, PUT, PATCH, DELETE) are checked against CSRF before the handler runs,
with :mod:`coatcheck.csrf` and the options of the core middleware (``csrf="origin"`` by default,
``"token"`` or ``"off"``; ``csrf_header``, ``csrf_field``, ``csrf_exempt``,
``trusted_origins``): a refused request gets a 403 and a ``rejected`` audit event. In token mode
a form's field is read with ``await request.post()``, which aiohttp caches for the handler.

``await get_session(request)`` and ``await new_session(request)`` keep aiohttp-session's call
shapes, so handlers move over by changing an import; :func:`session_of` is the same without the
``await``. The session is a :class:`~coatcheck.session.Session` (a real dict) with ``login``,
``logout`` and ``regenerate``.

Why a native middleware rather than an ``aiohttp_session.AbstractStorage``: a storage is handed
aiohttp-session's own ``Session`` and writes its own cookie, and aiohttp-session only saves a
session it saw ``changed`` into a response that is not yet prepared. coatcheck's engine must
decide the cookie (strict mode: an unknown ID is never adopted, IDs are hashed at rest), see
every request to slide the expiry, carry ``regenerate``/``login`` (which aiohttp-session's
``Session`` cannot express), write with compare-and-set, and turn a store failure into a 503.
Behind a storage, each of those would be fought for against the other library.

>>> from aiohttp import web
>>> from coatcheck.stores import MemoryStore
>>> async def visits(request: web.Request) -> web.Response:
...     session = await get_session(request)
...     session["visits"] = session.get("visits", 0) + 1
...     return web.Response(text=str(session["visits"]))
>>> app = web.Application()
>>> _ = app.router.add_get("/visits", visits)
>>> middleware = setup(app, store=MemoryStore(), secure=False)
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from aiohttp import hdrs, web

from .. import csrf
from .._observed import with_metrics
from ..clients import ClientSource, found_client
from ..config import SessionConfig
from ..engine import SessionEngine, run_async
from ..exchange import REFUSED, Browser, Exchange, Refusal, Unauthorized
from ..limits import LimitExceeded
from ..session import Session
from ..stores.base import AsyncStore, Store, StoreError, as_async

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler
    from typing_extensions import Unpack

    from ..config import SessionOptions

__all__ = ["SESSION_KEY", "SessionMiddleware", "get_session", "new_session", "session_of", "setup"]

SESSION_KEY: web.RequestKey[Session] = web.RequestKey("session", Session)
"""Where the request's session is: ``request[SESSION_KEY]`` (typed)."""

logger = logging.getLogger("coatcheck")


def session_of(request: web.Request) -> Session:
    """The request's session (``request[SESSION_KEY]``)."""
    session = request.get(SESSION_KEY)
    if not isinstance(session, Session):
        raise RuntimeError("no coatcheck session here: call coatcheck.integrations.aiohttp.setup")
    return session


async def get_session(request: web.Request) -> Session:
    """The request's session, awaited as with aiohttp-session (no store call happens here)."""
    return session_of(request)


async def new_session(request: web.Request) -> Session:
    """aiohttp-session's ``new_session``: an empty session; the old one is destroyed.

    Whatever is written to it next is stored under a new ID. To bind a session to a user,
    prefer ``session.login(user_id)``, which keeps the data and regenerates the ID.
    """
    session = session_of(request)
    session.logout()
    return session


def setup(
    app: web.Application,
    *,
    store: Store | AsyncStore,
    config: SessionConfig | None = None,
    unavailable_status: int = 503,
    **options: Unpack[SessionOptions],
) -> SessionMiddleware:
    """Give every request of ``app`` a session on ``store``; returns the installed middleware.

    Options are those of :class:`~coatcheck.config.SessionConfig` (``secure``, ``cookie_name``,
    ``idle_timeout``, ...), or a ready ``config``.
    """
    middleware = SessionMiddleware(
        store=store, config=config, unavailable_status=unavailable_status, **options
    )
    middleware.install(app)
    return middleware


Destination = tuple[str, "str | None", "str | None", "str | None"]
"""A response's scheme, host, peer and ``X-Forwarded-Proto``."""


class _Pending:
    """One request's session on its way out: committed once, as its response starts."""

    __slots__ = ("closed", "destination", "failed", "session", "started")

    def __init__(self, session: Session, destination: Destination | None = None) -> None:
        self.session = session
        self.destination = destination
        """Where the response goes (scheme, host, peer, ``X-Forwarded-Proto``), while the
        exchange watches for a ``Secure`` cookie sent over plain http."""
        self.failed: web.StreamResponse | None = None
        """A response whose commit failed as it was being prepared."""
        self.started = False
        """The session was committed and its cookie put on a response's headers."""
        self.closed = False
        """The middleware is done with this request: a later response is not this one's."""


_PENDING_KEY: web.RequestKey[_Pending] = web.RequestKey("coatcheck.exchange", _Pending)


class SessionMiddleware:
    """The aiohttp middleware; :meth:`install` it (or use :func:`setup`), since the middleware
    alone cannot reach responses that a handler prepares itself (streams, websockets)."""

    __middleware_version__: ClassVar[int] = 1  # a new-style middleware: (request, handler)

    def __init__(
        self,
        *,
        store: Store | AsyncStore,
        config: SessionConfig | None = None,
        unavailable_status: int = 503,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.engine = SessionEngine(config if config else SessionConfig.from_options(**options))
        self.store = as_async(with_metrics(store, self.engine.config.metrics))
        self.unavailable_status = unavailable_status
        self.exchange = Exchange(self.engine, unavailable_status)

    def install(self, app: web.Application) -> None:
        """Add the middleware and its ``on_response_prepare`` hook to ``app``."""
        app.middlewares.append(self)
        app.on_response_prepare.append(self._on_response_prepare)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        engine = self.engine
        token = self.exchange.bearer(request.headers.get(hdrs.AUTHORIZATION))
        if token is not None:
            return await self._serve_bearer(request, handler, token)
        cookie_value = self._session_id(request)
        wanted = self.exchange.wants_client(cookie_value)
        client = self._client_source(request) if wanted else None
        if cookie_value is None:
            session = engine.fresh(client)
        else:
            try:
                session = await engine.load_from_async(self.store, cookie_value, client)
            except (StoreError, LimitExceeded) as exc:
                return self._refusal(exc)
        destination: Destination | None = None
        if self.exchange.watching_secure:
            headers = request.headers
            destination = (
                request.scheme,
                headers.get(hdrs.HOST),
                request.remote,
                headers.get("X-Forwarded-Proto"),
            )
        pending = _Pending(session, destination)
        request[SESSION_KEY] = session
        request[_PENDING_KEY] = pending
        try:
            try:
                checked = request.method in csrf.UNSAFE_METHODS or _is_websocket_handshake(request)
                refusal = await self._csrf_refusal(request, session) if checked else None
                response = refusal if refusal is not None else await handler(request)
            except web.HTTPException as exc:  # a raised redirect carries the session too
                await self._start(pending, exc)
                raise
            if not isinstance(response, web.StreamResponse):
                raise RuntimeError(f"a handler returned {type(response).__name__}, no response")
            if response.prepared:
                await self._finish(pending)
            else:
                await self._start(pending, response)
            return response
        except (StoreError, LimitExceeded) as exc:
            if pending.started:  # the response is on its way: too late for a 503
                raise
            return self._refusal(exc, pending.failed)
        finally:
            pending.closed = True

    async def _serve_bearer(
        self, request: web.Request, handler: Handler, token: str
    ) -> web.StreamResponse:
        """Serve a request authenticated by its access token: a read-only session of its user,
        no CSRF check, nothing committed or set; a 401 when the token is refused."""
        try:
            request[SESSION_KEY] = await run_async(self.exchange.authenticate(token), self.store)
        except REFUSED as exc:
            return self._refusal(exc)
        return await handler(request)

    async def _csrf_refusal(self, request: web.Request, session: Session) -> web.Response | None:
        """The 403 for an unsafe request (or a WebSocket handshake: cross-site WebSocket
        hijacking) that fails the CSRF check; None when it passes or is not checked."""
        exchange, headers = self.exchange, request.headers
        websocket = _is_websocket_handshake(request)
        if not exchange.checks(request.method, request.path, websocket):
            return None
        submitted = headers.get(self.engine.config.csrf_header)
        if not websocket and exchange.wants_form(submitted, headers.get(hdrs.CONTENT_TYPE)):
            submitted = await _form_field(request, self.engine.config.csrf_field)
        browser = Browser(
            request.method,
            request.path,
            request.scheme,
            request.remote,
            headers.get("Sec-Fetch-Site"),
            headers.get(hdrs.ORIGIN),
            headers.get(hdrs.HOST),
            headers.get(hdrs.X_FORWARDED_PROTO),
            submitted,
            websocket,
        )
        refusal = exchange.csrf_refusal(session, browser)
        return None if refusal is None else _answer(refusal)

    async def _on_response_prepare(
        self, request: web.BaseRequest, response: web.StreamResponse
    ) -> None:
        """A response is about to send its headers (one a handler prepares itself, too)."""
        pending = request.get(_PENDING_KEY)
        if pending is not None and not pending.closed:
            try:
                await self._start(pending, response)
            except (StoreError, LimitExceeded):
                pending.failed = response  # its headers never go: the refusal takes its place
                raise

    async def _start(self, pending: _Pending, response: web.StreamResponse) -> None:
        """Commit the session and put its cookie on ``response``, once per request."""
        if pending.started:
            return
        session = pending.session
        plan = self.engine.commit(session)  # None, most often: no coroutine then
        set_cookie = None if plan is None else await run_async(plan, self.store)
        pending.started = True
        if set_cookie is not None and pending.destination and self.exchange.watching_secure:
            self.exchange.cookie_set(*pending.destination)
        headers = response.headers
        added, no_store = self.exchange.headers(session, set_cookie, hdrs.CACHE_CONTROL in headers)
        for name, value in added:
            headers.add(name, value)
        if no_store:
            headers[hdrs.CACHE_CONTROL] = "no-store"

    async def _finish(self, pending: _Pending) -> None:
        """Store changes made after the headers went (streaming, websockets); no cookie now."""
        try:
            set_cookie = await run_async(self.engine.commit(pending.session), self.store)
        except (StoreError, LimitExceeded) as exc:
            logger.error("could not store a session after its response started: %s", exc)
            return
        if set_cookie is not None and not pending.started:
            logger.warning(
                "a session cookie was lost: the handler prepared its response before the "
                "session was committed; install the middleware with setup(app, ...)"
            )

    def _session_id(self, request: web.BaseRequest) -> str | None:
        """The ID the request carries the transport's way (in its cookie, or its header)."""
        transport = self.exchange.transport
        headers = request.headers.getall(transport.request_header, ())
        if not headers:
            return None
        return transport.read("; ".join(headers) if transport.cookie_name else headers[0])

    def _client_source(self, request: web.BaseRequest) -> ClientSource:
        """How to find the request's client, for binding and per-client limits
        (``X-Forwarded-For`` only from ``trusted_proxies``). It holds the values, not the
        request, which holds the session."""
        return partial(
            found_client,
            request.remote,
            request.headers.get(hdrs.X_FORWARDED_FOR),
            request.headers.get(hdrs.USER_AGENT),
            self.engine.config.trusted_proxies,
        )

    def _refusal(
        self,
        exc: StoreError | LimitExceeded | Unauthorized,
        replaces: web.StreamResponse | None = None,
    ) -> web.Response:
        """The answer instead of the handler's: 503 when the store failed, 429 (or 403) over a
        limit, 401 for a refused access token. When it ``replaces`` a response that began
        preparing (a stream whose commit failed), it is framed as that one was, since the
        connection's writer already is."""
        response = _answer(self.exchange.refusal(exc))
        if replaces is not None:
            if replaces.chunked or replaces.content_length is None:
                response.enable_chunked_encoding()
            if replaces.compression:
                response.enable_compression()
        return response


def _answer(refusal: Refusal) -> web.Response:
    """A refusal as aiohttp's response (which counts its own Content-Length)."""
    headers = [(name, value) for name, value in refusal.headers if name != "Content-Length"]
    return web.Response(status=refusal.status, body=refusal.body, headers=headers)


def _is_websocket_handshake(request: web.Request) -> bool:
    return request.method == "GET" and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


async def _form_field(request: web.Request, field: str) -> str | None:
    """A text field of the request's form (up to ``csrf.FORM_LIMIT`` bytes), or None.

    ``request.post()`` caches the form, so the handler's own ``post()`` gives it again (and,
    for a urlencoded form, ``read()``/``text()`` give the body).
    """
    length = request.content_length
    if length is None or length > csrf.FORM_LIMIT:
        return None
    try:
        value = (await request.post()).get(field)
    except ValueError:  # a malformed multipart body
        return None
    return value if isinstance(value, str) else None
