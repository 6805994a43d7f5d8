"""The Starlette apps under test: one tiny app, bare or behind one of the session middlewares.

Every variant serves the same four routes, so only the session layer differs:

- ``GET /anon`` never touches the session (the anonymous scenario sends no cookie);
- ``GET /setup`` fills the session with :data:`SESSION_DATA` (about 200 bytes of JSON);
- ``GET /read`` reads one key (the read-only scenario);
- ``GET /write`` increments a counter (the writing scenario).

uvicorn serves a variant with ``--factory benchmarks.apps:from_env``, the variant named by the
``COATCHECK_BENCH_APP`` environment variable (and the SQLite file by ``COATCHECK_BENCH_SQLITE``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as SignedCookieMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starsessions import InMemoryStore, SessionAutoloadMiddleware
from starsessions import SessionMiddleware as StarsessionsMiddleware

from coatcheck.asgi import SessionMiddleware
from coatcheck.stores import AsyncStore, MemoryStore, SQLiteStore, Store

from .floor import FloorMiddleware

BARE = "bare"
COATCHECK_MEMORY = "coatcheck-memory"
COATCHECK_SQLITE = "coatcheck-sqlite"
STARSESSIONS = "starsessions"
SIGNED_COOKIE = "starlette-cookie"
FLOOR = "floor"
VARIANTS = (BARE, COATCHECK_MEMORY, COATCHECK_SQLITE, STARSESSIONS, SIGNED_COOKIE, FLOOR)
"""Every app the HTTP benchmark serves, bare Starlette first."""

DESCRIPTIONS = {
    BARE: "bare Starlette, no session middleware",
    COATCHECK_MEMORY: "coatcheck.asgi.SessionMiddleware + MemoryStore",
    COATCHECK_SQLITE: "coatcheck.asgi.SessionMiddleware + SQLiteStore (temp file, WAL)",
    STARSESSIONS: "starsessions SessionMiddleware + SessionAutoloadMiddleware + InMemoryStore",
    SIGNED_COOKIE: "starlette.middleware.sessions.SessionMiddleware (signed cookie)",
    FLOOR: "benchmarks.floor.FloorMiddleware: a yardstick, the least a server-side session does"
    " (find, hash, look up, parse; serialize to detect a change; no expiry, versions or checks)",
}

APP_ENV = "COATCHECK_BENCH_APP"
SQLITE_ENV = "COATCHECK_BENCH_SQLITE"

COOKIE_NAME = "session"
IDLE_SECONDS = 30 * 60
"""The session lifetime every middleware gets (coatcheck's default idle timeout)."""
SIGNING_KEY = "benchmark-only-signing-key-0123456789abcdef"

SESSION_DATA: dict[str, Any] = {
    "counter": 0,
    "user": {"id": 48213, "name": "Ada Lovelace", "email": "ada@example.org"},
    "csrf": "kq3X9vLw0pZt7nR2yB5cF8hJ1mD4sG6aE0uW3xQ9oIk",
    "locale": "en-GB",
    "roles": ["editor", "reader"],
    "cart": [1017, 2203, 3350],
}
"""What ``/setup`` stores; its compact JSON is about 200 bytes."""

READ_BODY = SESSION_DATA["user"]["name"]
"""What ``/read`` answers when the cookie named a session."""


def _session(request: Request) -> MutableMapping[str, Any]:
    """The request's session; a throwaway dict in the bare app, which has none."""
    session: MutableMapping[str, Any] | None = request.scope.get("session")
    return {} if session is None else session


async def anonymous(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def setup(request: Request) -> PlainTextResponse:
    _session(request).update(SESSION_DATA)
    return PlainTextResponse("ok")


async def read(request: Request) -> PlainTextResponse:
    user = _session(request).get("user")
    return PlainTextResponse(user["name"] if user else "no session")


async def write(request: Request) -> PlainTextResponse:
    session = _session(request)
    session["counter"] = counter = session.get("counter", 0) + 1
    return PlainTextResponse(str(counter))


ROUTES = [
    Route("/anon", anonymous),
    Route("/setup", setup),
    Route("/read", read),
    Route("/write", write),
]


def starlette_app(middleware: Sequence[Middleware] = ()) -> Starlette:
    """The benchmark app behind ``middleware`` (outermost first)."""
    return Starlette(routes=ROUTES, middleware=middleware)


def coatcheck_app(store: Store | AsyncStore, clock: Callable[[], float] = time.time) -> Starlette:
    """The app behind coatcheck's middleware on ``store``, over plain http."""
    return starlette_app(
        [
            Middleware(
                SessionMiddleware,
                store=store,
                secure=False,
                cookie_name=COOKIE_NAME,
                idle_timeout=IDLE_SECONDS,
                clock=clock,
            )
        ]
    )


def build(variant: str, sqlite_path: str | None = None) -> Starlette:
    """The app of one of :data:`VARIANTS`; ``coatcheck-sqlite`` needs ``sqlite_path``."""
    if variant == BARE:
        return starlette_app()
    if variant == COATCHECK_MEMORY:
        return coatcheck_app(MemoryStore())
    if variant == COATCHECK_SQLITE:
        if sqlite_path is None:
            raise ValueError(f"{variant} needs a database path")
        return coatcheck_app(SQLiteStore(sqlite_path))
    if variant == STARSESSIONS:
        return starlette_app(
            [
                Middleware(
                    StarsessionsMiddleware,
                    store=InMemoryStore(),
                    cookie_name=COOKIE_NAME,
                    cookie_https_only=False,
                    lifetime=IDLE_SECONDS,
                    rolling=True,
                ),
                Middleware(SessionAutoloadMiddleware),
            ]
        )
    if variant == SIGNED_COOKIE:
        return starlette_app(
            [
                Middleware(
                    SignedCookieMiddleware,
                    secret_key=SIGNING_KEY,
                    session_cookie=COOKIE_NAME,
                    https_only=False,
                    max_age=IDLE_SECONDS,
                )
            ]
        )
    if variant == FLOOR:
        return starlette_app([Middleware(FloorMiddleware, cookie_name=COOKIE_NAME)])
    raise ValueError(f"unknown app variant {variant!r}; known: {', '.join(VARIANTS)}")


def from_env() -> Starlette:
    """The app named by the environment (the factory uvicorn calls)."""
    return build(os.environ[APP_ENV], os.environ.get(SQLITE_ENV))
