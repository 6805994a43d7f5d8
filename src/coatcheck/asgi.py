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
from .clients import Client, ClientSource, found_client, request_scheme
from .config import SessionConfig
from .cookies import NO_STORE, private_headers
from .engine import Plan, SessionEngine, run, run_async
from .limits import LimitExceeded
from .session import Session
from .stores.base import AsyncStore, AsyncStoreAdapter, Store, StoreError, as_async
from .transport import IdTransport

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
"""The messages that start a response: the session is committed before either is sent."""

UNAVAILABLE_BODY = b"Session store unavailable. Please retry shortly.\n"
LIMITED_BODY = b"Too many requests for new or unknown sessions. Please retry later.\n"


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
        self.store = as_async(store)
        # A sync store that does not block (memory, SQLite) is driven directly, with no
        # coroutine per store call.
        adapter = self.store
        self._inline: Store | None = None
        if isinstance(adapter, AsyncStoreAdapter) and not adapter.offload:
            self._inline = adapter.store
        self.engine = SessionEngine(config if config else SessionConfig.from_options(**options))
        self.unavailable_status = unavailable_status
        self.transport = IdTransport.of(self.engine.config)
        self._id_header = self.transport.request_header.encode("latin-1")
        self._joins = self.transport.cookie_name is not None  # cookies may be split in HTTP/2
        self._id_response_header = self.transport.response_header.encode("latin-1")
        self._proxies = self.engine.config.trusted_proxies
        # A subclass adding headers of its own is asked on every response, not only on those
        # with a session.
        self._extra_headers = type(self).session_headers is not SessionMiddleware.session_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        engine = self.engine
        cookie_value = self._session_id(scope)
        wanted = engine.fresh_needs_client if cookie_value is None else engine.load_needs_client
        client = self._client_source(scope) if wanted else None
        if cookie_value is None:
            session = engine.fresh(client)
        else:
            try:
                session = await self._carry_out(engine.load(cookie_value, client))
            except (StoreError, LimitExceeded) as exc:
                await self._refuse(scope, send, exc)
                return
        scope["session"] = session
        replaced = False

        async def send_with_session(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] in _STARTS:
                plan = self.plan_commit(session)
                try:
                    set_cookie = None if plan is None else await self._carry_out(plan)
                except (StoreError, LimitExceeded) as exc:
                    replaced = True
                    await self._refuse(scope, send, exc)
                    return
                if set_cookie is not None or session._key is not None or self._extra_headers:
                    message = self._with_headers(message, session, set_cookie)
            await send(message)

        if kind == "websocket" or scope["method"] in csrf.UNSAFE_METHODS:  # GET: no coroutine
            problem, receive = await self._csrf_check(kind, scope, receive, session)
            if problem is not None:
                engine.emit("rejected", session._key, session._user_id, f"csrf: {problem}")
                if kind == "websocket":  # closing before accepting refuses the handshake (403)
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await _plain(send_with_session, 403, csrf.FORBIDDEN_BODY)
                return
        await self.app(scope, receive, send_with_session)
        if kind == "websocket" and not replaced:
            # Changes made after the handshake are stored; no cookie can be set any more.
            try:
                await self._carry_out(self.plan_commit(session))
            except (StoreError, LimitExceeded) as exc:
                logger.error("could not store a WebSocket session: %s", exc)

    def _with_headers(self, message: Message, session: Session, set_cookie: str | None) -> Message:
        """The response's start ``message`` with its session's headers: the cookie, and
        ``Cache-Control: no-store`` where it must stay out of caches."""
        headers = message.get("headers", ())
        private = private_headers(headers, session, set_cookie, NO_STORE)
        added = (
            self.session_headers(session, set_cookie)
            if set_cookie is not None or self._extra_headers
            else ()
        )
        if private is not None:
            private.extend(added)
            return {**message, "headers": private}
        if added:
            return {**message, "headers": [*headers, *added]}
        return message

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
    ) -> tuple[str | None, Receive]:
        """Why the request fails its CSRF check (None if it passes or is not checked), and how
        to read its body from now on."""
        config = self.engine.config
        if (
            kind == "http"
            and scope["method"] in csrf.UNSAFE_METHODS
            and csrf.applies(config, scope["method"], scope["path"])
        ):
            return await self._csrf_problem(scope, receive, session)
        if kind == "websocket":  # cross-site WebSocket hijacking
            return self._websocket_origin_problem(scope), receive
        return None, receive

    async def _csrf_problem(
        self, scope: Scope, receive: Receive, session: Session
    ) -> tuple[str | None, Receive]:
        """Why an unsafe request fails the CSRF check (or None), and how to read its body."""
        config = self.engine.config
        wanted = {b"sec-fetch-site", b"origin", b"host", b"content-type", b"x-forwarded-proto"}
        token_header = config.csrf_header.encode("latin-1")
        found: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in wanted or name == token_header:
                found.setdefault(name, value.decode("latin-1"))
        submitted = found.get(token_header)
        if csrf.wants_form(config, submitted, found.get(b"content-type")):
            messages = await _read_body(receive, csrf.FORM_LIMIT)
            body = b"".join(m.get("body", b"") for m in messages)
            submitted = csrf.form_token(found[b"content-type"], body, config.csrf_field)
            receive = _replay(messages, receive)
        problem = csrf.verdict(
            config,
            session,
            sec_fetch_site=found.get(b"sec-fetch-site"),
            origin=found.get(b"origin"),
            host=found.get(b"host"),
            scheme=self._scheme(scope, found.get(b"x-forwarded-proto")),
            submitted=submitted,
        )
        return problem, receive

    def _scheme(self, scope: Scope, forwarded_proto: str | None) -> str:
        """The scheme the browser used: the scope's, or what a trusted proxy says it was."""
        received = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
        peer = scope.get("client")
        return request_scheme(received, peer[0] if peer else None, forwarded_proto, self._proxies)

    def _client_source(self, scope: Scope) -> ClientSource:
        """How to find the request's client when the engine asks. It holds the headers, not the
        scope: the scope holds the session, and a cycle would leave every request to the GC."""
        peer = scope.get("client")
        return partial(_client, scope["headers"], peer[0] if peer else None, self._proxies)

    def _websocket_origin_problem(self, scope: Scope) -> str | None:
        """Why a WebSocket handshake comes from another site (browsers always send Origin)."""
        origin = host = forwarded_proto = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"x-forwarded-proto":
                forwarded_proto = value.decode("latin-1")
        scheme = self._scheme(scope, forwarded_proto)
        return csrf.handshake_problem(self.engine.config, scope["path"], origin, host, scheme)

    def _session_id(self, scope: Scope) -> str | None:
        """The ID the request carries the transport's way (in its cookie, or its header)."""
        header: bytes | None = None
        wanted = self._id_header
        for name, value in scope["headers"]:
            if name == wanted:
                if not self._joins:
                    return self.transport.read(value.decode("latin-1"))
                # HTTP/2 may split cookies over several headers
                header = value if header is None else header + b"; " + value
        if header is None:
            return None
        return self.transport.read(header.decode("latin-1"))

    async def _refuse(self, scope: Scope, send: Send, exc: StoreError | LimitExceeded) -> None:
        """Answer instead of the app: 503 when the store failed, 429 (or 403) over a limit."""
        if isinstance(exc, LimitExceeded):
            status, body, retry = exc.status, LIMITED_BODY, exc.retry_after
        else:
            logger.error("session store failed: %s", exc)
            status, body, retry = self.unavailable_status, UNAVAILABLE_BODY, 5
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})
            return
        await _plain(send, status, body, [(b"retry-after", str(retry).encode())])


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


async def _plain(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with a short plain-text response that no cache keeps."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
