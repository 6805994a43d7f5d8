"""ASGI middleware: a session at ``scope["session"]`` for every HTTP and WebSocket connection.

Starlette's and FastAPI's ``request.session`` read ``scope["session"]``, so they work unchanged.
The session is committed when the response starts (before any byte of it is sent), and the
cookie is added to that same ``http.response.start`` message.

>>> from starlette.applications import Starlette
>>> from coatcheck.stores import MemoryStore
>>> app = SessionMiddleware(Starlette(), store=MemoryStore(), secure=False)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import csrf
from ._observed import with_metrics
from .clients import Client, ClientSource, found_client
from .config import SessionConfig
from .cookies import NO_STORE, find_cookie, private_headers
from .engine import Plan, SessionEngine, run, run_async
from .exchange import REFUSED, Browser, Exchange, Refusal, Unauthorized
from .limits import LimitExceeded
from .session import Session
from .stores.base import AsyncStore, AsyncStoreAdapter, Store, StoreError, as_async

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import SessionOptions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("coatcheck")

T = TypeVar("T")

_STARTS = ("http.response.start", "websocket.accept")
_CSRF_HEADERS = frozenset(
    {b"sec-fetch-site", b"origin", b"host", b"content-type", b"x-forwarded-proto"}
)
"""The request headers the CSRF check reads (with the token's, which is configurable)."""
"""The messages that start a response: the session is committed before either is sent."""


def session_of(connection: Any) -> Session:
    """The typed session of a request, a websocket or a raw ASGI scope.

    ``request.session`` is typed as a plain dict by frameworks; this gives the
    :class:`~coatcheck.session.Session` with ``login``, ``logout`` and ``regenerate``.
    """
    scope = connection if isinstance(connection, MutableMapping) else connection.scope
    session = scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError("no coatcheck session here: is coatcheck's SessionMiddleware installed?")
    session.mark_accessed()
    return session


class SessionMiddleware:
    """Give every request a :class:`~coatcheck.session.Session` backed by ``store``.

    Options are those of :class:`~coatcheck.config.SessionConfig` (``cookie_name``, ``secure``,
    ``same_site``, ``domain``, ``path``, ``idle_timeout``, ``absolute_timeout``,
    ``touch_interval``, ``max_size``, ...), or a ready ``config``. When the store fails, the
    request gets a 503 (``unavailable_status``), never the application's response without its
    session.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store | AsyncStore,
        config: SessionConfig | None = None,
        unavailable_status: int = 503,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.app = app
        self.engine = SessionEngine(config if config else SessionConfig.from_options(**options))
        self.store = as_async(with_metrics(store, self.engine.config.metrics))
        # A sync store that does not block (memory, SQLite) is driven directly, with no
        # coroutine per store call.
        adapter = self.store
        self._inline: Store | None = None
        if isinstance(adapter, AsyncStoreAdapter) and not adapter.offload:
            self._inline = adapter.store
        self.unavailable_status = unavailable_status
        self.exchange = Exchange(self.engine, unavailable_status)
        self.transport = self.exchange.transport
        self._id_header = self.transport.request_header.encode("latin-1")
        self._parse_id = self.transport.parse
        self._by_header = self.transport.cookie_name is None
        self._cookie_name = self.transport.cookie_name or ""
        self._id_response_header = self.transport.response_header.encode("latin-1")
        self._proxies = self.engine.config.trusted_proxies
        # A subclass adding headers of its own is asked on every response, not only on those
        # with a session.
        self._extra_headers = type(self).session_headers is not SessionMiddleware.session_headers
        self._bearer_on = self.exchange.tokens is not None
        # The engine's commit, called directly unless a subclass adapts it; against an inline
        # store, carried out at once (a save without the plan's generator).
        self._plain_commit = type(self).plan_commit is SessionMiddleware.plan_commit
        self._commit_inline: Callable[[Session, Store], Plan[str | None] | str | None] = (
            self.engine.commit if self._plain_commit else self._planned
        )
        self._plan: Callable[[Session], Plan[str | None] | None] = (
            self.engine.commit if self._plain_commit else self.plan_commit
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        engine = self.engine
        if self._bearer_on and await self._served_bearer(scope, receive, send):
            return
        cookie_value = self._session_id(scope)
        wanted = engine.fresh_needs_client if cookie_value is None else engine.load_needs_client
        client = self._client_source(scope) if wanted else None
        inline = self._inline
        if cookie_value is None:
            session = engine.fresh(client)
        else:
            try:
                # A store driven inline costs no coroutine (this runs on every request).
                if inline is not None:
                    session = engine.load_from(inline, cookie_value, client)
                else:
                    session = await engine.load_from_async(self.store, cookie_value, client)
            except (StoreError, LimitExceeded) as exc:
                await self._refuse(scope, send, exc)
                return
        scope["session"] = session
        replaced = False

        # A plain function that returns what to await (not a coroutine of its own): each
        # message then costs the app no extra coroutine. Only a commit that must wait on an
        # async store, or a refusal, gives a coroutine of its own.
        def send_with_session(message: Message) -> Awaitable[None]:
            nonlocal replaced
            if replaced:
                return _sent()
            if message["type"] in _STARTS:
                if inline is not None:
                    try:
                        done = self._commit_inline(session, inline)  # a save made, or a plan
                        set_cookie = (
                            done if done is None or isinstance(done, str) else run(done, inline)
                        )
                    except (StoreError, LimitExceeded) as exc:
                        replaced = True
                        return self._refuse(scope, send, exc)
                elif (plan := self._plan(session)) is None:
                    set_cookie = None
                else:

                    async def committed(plan: Plan[str | None], message: Message) -> None:
                        nonlocal replaced
                        try:
                            set_cookie = await run_async(plan, self.store)
                        except (StoreError, LimitExceeded) as exc:
                            replaced = True
                            await self._refuse(scope, send, exc)
                            return
                        await send(self._started(scope, message, session, set_cookie))

                    return committed(plan, message)
                if set_cookie is not None or session.stored is not None or self._extra_headers:
                    message = self._started(scope, message, session, set_cookie)
            return send(message)

        if kind == "websocket" or scope["method"] in csrf.UNSAFE_METHODS:  # GET: no coroutine
            refused, receive = await self._csrf_check(kind, scope, receive, session)
            if refused is not None:
                return await self._refuse_cross_site(kind, send, send_with_session, refused)
        await self.app(scope, receive, send_with_session)
        if kind == "websocket" and not replaced:
            await self._store_after_handshake(session)

    async def _served_bearer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve a request that carries a Bearer access token, and say whether it did: a
        read-only session of the token's user, no CSRF check, nothing committed or set; a 401
        when the token is refused."""
        token = self.exchange.bearer(_header(scope, b"authorization"))
        if token is None:
            return False
        try:
            session = await self._carry_out(self.exchange.authenticate(token))
        except REFUSED as exc:
            await self._refuse(scope, send, exc)
            return True
        scope["session"] = session
        await self.app(scope, receive, send)
        return True

    async def _refuse_cross_site(
        self, kind: str, send: Send, send_with_session: Send, refused: Refusal
    ) -> None:
        """Answer a request that failed its CSRF check with its refusal."""
        if kind == "websocket":  # closing before accepting refuses the handshake (403)
            await send({"type": "websocket.close", "code": 1008})
        else:
            await _plain(send_with_session, refused)

    async def _store_after_handshake(self, session: Session) -> None:
        """Store the changes a WebSocket made after its handshake (no cookie can be set any
        more); a failure is logged, the connection being over."""
        try:
            await self._carry_out(self.plan_commit(session))
        except (StoreError, LimitExceeded) as exc:
            logger.error("could not store a WebSocket session: %s", exc)

    def _started(
        self, scope: Scope, message: Message, session: Session, set_cookie: str | None
    ) -> Message:
        """The response's start ``message`` once its session is committed, with the session's
        headers: the cookie it sets (``set_cookie``, or None), and ``Cache-Control: no-store``
        where the response must stay out of caches."""
        if set_cookie is not None and self.exchange.watching_secure:
            self._report_cookie(scope)
        headers = message.get("headers", ())
        private = private_headers(headers, session, set_cookie, NO_STORE)
        added = (
            self.session_headers(session, set_cookie)
            if set_cookie is not None or self._extra_headers
            else ()
        )
        if private is not None:
            if added:
                private.extend(added)
            return {**message, "headers": private}
        if added:
            return {**message, "headers": [*headers, *added]}
        return message

    def _planned(self, session: Session, store: Store) -> Plan[str | None] | None:
        """A subclass's :meth:`plan_commit`, as the inline commit is called."""
        return self.plan_commit(session)

    def plan_commit(self, session: Session) -> Plan[str | None] | None:
        """The plan that stores what the request did to its session (integrations adapt it)."""
        return self.engine.commit(session)

    def session_headers(
        self, session: Session, set_cookie: str | None
    ) -> Sequence[tuple[bytes, bytes]]:
        """The headers the response gets for its session: the cookie (or, with the header
        transport, the session header), when there is one."""
        if set_cookie is None:
            return ()
        return ((self._id_response_header, set_cookie.encode("latin-1")),)

    @overload
    async def _carry_out(self, plan: Plan[T]) -> T: ...
    @overload
    async def _carry_out(self, plan: None) -> None: ...
    async def _carry_out(self, plan: Plan[T] | None) -> T | None:
        """Run a plan: inline against a non-blocking sync store, else through the async face."""
        if plan is None:
            return None
        if self._inline is not None:
            return run(plan, self._inline)
        return await run_async(plan, self.store)

    async def _csrf_check(
        self, kind: str, scope: Scope, receive: Receive, session: Session
    ) -> tuple[Refusal | None, Receive]:
        """The 403 for a request that fails its CSRF check (None if it passes or is not
        checked), and how to read its body from now on."""
        exchange, websocket = self.exchange, kind == "websocket"
        if not exchange.checks(scope.get("method", "GET"), scope["path"], websocket):
            return None, receive
        token_header = self.engine.config.csrf_header.encode("latin-1")
        found: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in _CSRF_HEADERS or name == token_header:
                found.setdefault(name, value.decode("latin-1"))
        submitted = found.get(token_header)
        if not websocket and exchange.wants_form(submitted, found.get(b"content-type")):
            messages = await _read_body(receive, csrf.FORM_LIMIT)
            body = b"".join(m.get("body", b"") for m in messages)
            submitted = csrf.form_token(found[b"content-type"], body, self.engine.config.csrf_field)
            receive = _replay(messages, receive)
        peer = scope.get("client")
        browser = Browser(
            scope.get("method", "GET"),
            scope["path"],
            scope.get("scheme") or ("ws" if websocket else "http"),
            peer[0] if peer else None,
            found.get(b"sec-fetch-site"),
            found.get(b"origin"),
            found.get(b"host"),
            found.get(b"x-forwarded-proto"),
            submitted,
            websocket,
        )
        return exchange.csrf_refusal(session, browser), receive

    def _report_cookie(self, scope: Scope) -> None:
        """Tell the exchange that this response sets the cookie, and where it goes."""
        found = {
            name: value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"host", b"x-forwarded-proto")
        }
        peer = scope.get("client")
        self.exchange.cookie_set(
            scope.get("scheme") or "http",
            found.get(b"host"),
            peer[0] if peer else None,
            found.get(b"x-forwarded-proto"),
        )

    def _client_source(self, scope: Scope) -> ClientSource:
        """How to find the request's client when the engine asks. It holds the headers, not the
        scope: the scope holds the session, and a cycle would leave every request to the GC."""
        peer = scope.get("client")
        return partial(_client, scope["headers"], peer[0] if peer else None, self._proxies)

    def _session_id(self, scope: Scope) -> str | None:
        """The ID the request carries the transport's way (in its cookie, or its header)."""
        header: bytes | None = None
        wanted = self._id_header
        for name, value in scope["headers"]:
            if name == wanted:
                if self._by_header:
                    return self._parse_id(value.decode("latin-1"))
                # HTTP/2 may split cookies over several headers
                header = value if header is None else header + b"; " + value
        if header is None:
            return None
        return find_cookie(header.decode("latin-1"), self._cookie_name)

    async def _refuse(
        self, scope: Scope, send: Send, exc: StoreError | LimitExceeded | Unauthorized
    ) -> None:
        """Answer instead of the app: 503 when the store failed, 429 (or 403) over a limit, 401
        for a refused access token."""
        refusal = self.exchange.refusal(exc)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        await _plain(send, refusal)


def _header(scope: Scope, wanted: bytes) -> str | None:
    """The value of the request's first header named ``wanted`` (lowercase), or None."""
    for name, value in scope["headers"]:
        if name == wanted:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _client(
    headers: Sequence[tuple[bytes, bytes]], peer: str | None, proxies: Sequence[str]
) -> Client:
    """The client of a request with these headers from ``peer`` (``X-Forwarded-For`` counts
    only from ``proxies``)."""
    forwarded = agent = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
        elif name == b"user-agent":
            agent = value.decode("latin-1")
    return found_client(peer, forwarded, agent, proxies)


async def _sent() -> None:
    """Nothing to send (the response was replaced by a refusal)."""


async def _plain(send: Send, refusal: Refusal) -> None:
    """Answer with a refusal: a short plain-text response that no cache keeps."""
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in refusal.headers
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


async def _read_body(receive: Receive, limit: int) -> list[Message]:
    """The request's body messages, up to about ``limit`` bytes (the rest is left unread)."""
    messages: list[Message] = []
    size = 0
    while size <= limit:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
        size += len(message.get("body", b""))
    return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` again, then what ``receive`` gives."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
