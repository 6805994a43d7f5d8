"""Litestar 2.x: coatcheck sessions in ``request.session``, configured like Litestar's own.

:class:`CoatcheckSessionConfig` takes the place of Litestar's ``ServerSideSessionConfig`` (or
``CookieBackendConfig``): put its ``.middleware`` in ``Litestar(middleware=[...])``, or pass it
as ``session_backend_config`` to Litestar's ``SessionAuth``. Every request then gets a
:class:`~coatcheck.session.Session` (a real dict) in ``request.session``, and
:func:`session_of` gives it typed, for ``login``, ``logout`` and ``regenerate``.

Why not a Litestar ``Store`` adapter: Litestar's server-side backend would then pick the
session IDs, store them unhashed, write the whole session on every response, never rotate an
ID and adopt any ID a client sends. Those are exactly the things coatcheck's engine decides
(strict mode, hashed keys at rest, compare-and-set writes, regenerate on login, idle and
absolute timeouts), so the engine has to drive the request: the middleware here is
:class:`coatcheck.asgi.SessionMiddleware` (load before the handler, commit when the response
starts, 503 when the store fails) plus Litestar's route exclusions and a bridge for Litestar's
own session calls:

- ``request.set_session(data)`` replaces the data *and* regenerates the ID (it is Litestar's
  login idiom, and a replaced session must not keep an ID a client may have planted);
  ``data`` may be a dict or any data container Litestar serializes (msgspec Struct, dataclass,
  pydantic model, ...), stored as its JSON;
- ``request.clear_session()`` logs out: the stored session is deleted and the cookie expired;
- ``request.get_session_id()`` gives None: coatcheck never hands session IDs to application
  code (they change on every regenerate, and they are credentials).

Being coatcheck's ASGI middleware, it also refuses unsafe requests that fail the CSRF check
(``csrf="origin"`` by default, or ``"token"``, ``csrf_exempt``, ...: see docs/csrf.md); routes
taken off the middleware by ``exclude`` are not checked.

>>> from litestar import Litestar, Request, get
>>> from coatcheck.stores import MemoryStore
>>> sessions = CoatcheckSessionConfig(store=MemoryStore(), secure=False)
>>> @get("/visits", sync_to_thread=False)
... def visits(request: Request) -> int:
...     request.session["visits"] = request.session.get("visits", 0) + 1
...     return request.session["visits"]
>>> app = Litestar([visits], middleware=[sessions.middleware])
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.session.base import BaseBackendConfig, BaseSessionBackend
from litestar.serialization import decode_json, encode_json
from litestar.types import Empty
from litestar.utils import get_serializer_from_scope

from .. import asgi
from ..config import SessionConfig
from ..session import Session
from ..stores.base import AsyncStore, Store

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Scopes, ScopeSession, Send
    from typing_extensions import Unpack

    from ..config import SessionOptions

__all__ = [
    "CoatcheckSessionBackend",
    "CoatcheckSessionConfig",
    "CoatcheckSessionMiddleware",
    "provide_session",
    "session_of",
]

SESSION_KEY = "coatcheck.session"
"""Where the request's :class:`Session` is kept in the scope, whatever ``scope["session"]``
is made to hold by ``set_session`` or ``clear_session``."""


def session_of(connection: ASGIConnection[Any, Any, Any, Any] | Mapping[str, Any]) -> Session:
    """The typed coatcheck session of a Litestar request, websocket or scope.

    Changes made through ``request.set_session`` or ``request.clear_session`` are applied to it
    first, so it is always the session that will be committed.
    """
    scope = cast(
        "dict[str, Any]", connection.scope if isinstance(connection, ASGIConnection) else connection
    )
    session = scope.get(SESSION_KEY)
    if not isinstance(session, Session):
        raise RuntimeError(
            "no coatcheck session here: add CoatcheckSessionConfig(...).middleware to the app"
        )
    _take_over(scope, session)
    return session


def _provide_session(scope: Scope) -> Session:
    return session_of(cast("Mapping[str, Any]", scope))


provide_session = Provide(_provide_session, sync_to_thread=False)
"""A dependency giving handlers the typed session: ``dependencies={"session": provide_session}``
on any layer, then a ``session: Session`` parameter."""


def _take_over(scope: dict[str, Any], session: Session) -> None:
    """Fold what the handler left in ``scope["session"]`` into ``session``, and put it back."""
    current: ScopeSession = scope.get("session", session)
    if current is session:
        return
    if current is Empty or current is None:  # request.clear_session()
        if session.is_new and session.user_id is None:
            session.clear()  # nothing stored to destroy: no cookie to expire either
        else:
            session.logout()
    else:  # request.set_session(data): new data under a new ID
        data = current if isinstance(current, dict) else _as_json(current, scope)
        session.clear()
        session.update(data)
        session.privileges_changed()  # typically a login: the old ID dies at once
    scope["session"] = session


def _as_json(container: object, scope: dict[str, Any]) -> dict[str, Any]:
    """A data container (Struct, dataclass, model...) as the JSON object Litestar encodes."""
    serializer = get_serializer_from_scope(cast("Scope", scope))
    data = decode_json(encode_json(container, serializer))
    if not isinstance(data, dict):
        raise TypeError(f"a session must be a JSON object, not {type(container).__name__}")
    return data


class CoatcheckSessionBackend(BaseSessionBackend["CoatcheckSessionConfig"]):
    """What Litestar's ``SessionAuth`` builds from a config and hands to the middleware.

    Litestar's own ``SessionMiddleware`` would call its three hooks; coatcheck's middleware
    drives the lifecycle instead, so only :meth:`load_from_connection` does anything useful.
    """

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
        """None: session IDs are not given to application code."""
        return None

    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        """The session the middleware loaded for this connection."""
        return session_of(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        """Not used: sessions are committed by :class:`CoatcheckSessionMiddleware`."""
        raise NotImplementedError("coatcheck sessions are committed by CoatcheckSessionMiddleware")


class CoatcheckSessionConfig(BaseBackendConfig[CoatcheckSessionBackend]):
    """Sessions on a coatcheck store, for ``Litestar(middleware=[config.middleware])``.

    ``store`` is any coatcheck store (sync or async; ``coatcheck.stores.from_url(...)``).
    Session options are those of :class:`~coatcheck.config.SessionConfig` (``secure``,
    ``cookie_name``, ``idle_timeout``, ``absolute_timeout``, ...), or a ready ``config``.
    ``exclude`` (path patterns), ``exclude_opt_key`` (a route ``opt`` key) and ``scopes`` skip
    the middleware as they do for Litestar's own session configs. When the store fails the
    request gets ``unavailable_status`` (503), never a 500 or a response without its session.

    The cookie attributes Litestar's configs expose (``key``, ``max_age``, ``path``, ...) are
    read-only mirrors of the coatcheck options here.
    """

    _backend_class = CoatcheckSessionBackend

    def __init__(
        self,
        *,
        store: Store | AsyncStore,
        config: SessionConfig | None = None,
        exclude: str | list[str] | None = None,
        exclude_opt_key: str = "skip_session",
        scopes: Scopes | None = None,
        unavailable_status: int = 503,
        **options: Unpack[SessionOptions],
    ) -> None:
        self.store = store
        self.session_config = (
            config if config is not None else SessionConfig.from_options(**options)
        )
        self.exclude = exclude
        self.exclude_opt_key = exclude_opt_key
        self.scopes = set(scopes) if scopes is not None else {ScopeType.HTTP, ScopeType.WEBSOCKET}
        self.unavailable_status = unavailable_status

    @property
    def key(self) -> str:  # type: ignore[override]
        """The cookie's name as sent (``__Host-`` prefix included when it applies)."""
        return self.session_config.cookie_key

    @property
    def max_age(self) -> int:  # type: ignore[override]
        return int(self.session_config.idle_timeout)

    @property
    def path(self) -> str:  # type: ignore[override]
        return self.session_config.path

    @property
    def domain(self) -> str | None:  # type: ignore[override]
        return self.session_config.domain

    @property
    def secure(self) -> bool:  # type: ignore[override]
        return self.session_config.secure

    @property
    def httponly(self) -> bool:  # type: ignore[override]
        return True

    @property
    def samesite(self) -> Literal["lax", "strict", "none"]:  # type: ignore[override]
        return self.session_config.same_site

    @property
    def middleware(self) -> DefineMiddleware:
        """The middleware to list in ``Litestar(middleware=[...])`` (or a router's, a handler's)."""
        return DefineMiddleware(
            CoatcheckSessionMiddleware, backend=self._backend_class(config=self)
        )


class CoatcheckSessionMiddleware:
    """coatcheck's ASGI session middleware for one Litestar route, with Litestar's exclusions."""

    def __init__(self, app: ASGIApp, backend: CoatcheckSessionBackend) -> None:
        config = backend.config
        self.app = app
        self.backend = backend
        self.scopes = config.scopes
        self.exclude_opt_key = config.exclude_opt_key
        self.exclude_pattern = _pattern(config.exclude)
        self.sessions = asgi.SessionMiddleware(
            _LitestarSessionBridge(cast("asgi.ASGIApp", app)),
            store=config.store,
            config=config.session_config,
            unavailable_status=config.unavailable_status,
        )

    def _bypassed(self, scope: Scope) -> bool:
        if scope["type"] not in self.scopes:
            return True
        handler = scope.get("route_handler")
        if handler is not None and handler.opt.get(self.exclude_opt_key):
            return True
        pattern = self.exclude_pattern
        return pattern is not None and pattern.search(scope["path"]) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._bypassed(scope):
            await self.app(scope, receive, send)
        else:
            await self.sessions(
                cast("asgi.Scope", scope), cast("asgi.Receive", receive), cast("asgi.Send", send)
            )


def _pattern(exclude: str | Iterable[str] | None) -> re.Pattern[str] | None:
    if exclude is None:
        return None
    return re.compile(exclude if isinstance(exclude, str) else "|".join(exclude))


class _LitestarSessionBridge:
    """Inside coatcheck's middleware: keeps the session where ``set_session`` cannot replace it,
    and folds Litestar's session calls into it before the response starts."""

    def __init__(self, app: asgi.ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        state = cast("dict[str, Any]", scope)
        session = state[SESSION_KEY] = state["session"]

        async def send_taken_over(message: asgi.Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                _take_over(state, session)
            await send(message)

        await self.app(scope, receive, send_taken_over)
        _take_over(state, session)  # a websocket's changes after the handshake are stored too
