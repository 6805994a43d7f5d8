"""Small applications and a call-counting store that the HTTP-level tests share."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coatcheck.asgi import SessionMiddleware
from coatcheck.session import Session
from coatcheck.stores import AsyncStore, MemoryStore, Store
from coatcheck.testing import CountingStore

__all__ = ["CountingStore", "starlette_app"]


def session_of(request: Request) -> Session:
    session = request.session
    assert isinstance(session, Session)
    return session


async def read(request: Request) -> Response:
    return PlainTextResponse(json.dumps(request.session))


async def nothing(request: Request) -> Response:
    return PlainTextResponse("no session here")


async def write(request: Request) -> Response:
    body: dict[str, Any] = await request.json()
    delay = float(request.query_params.get("delay", "0"))
    if delay:
        await anyio.sleep(delay)  # hold the loaded version while other requests write
    request.session.update(body)
    return JSONResponse(dict(request.session))


async def login(request: Request) -> Response:
    session_of(request).login(request.path_params["user"])
    return PlainTextResponse("welcome")


async def logout(request: Request) -> Response:
    session_of(request).logout()
    return PlainTextResponse("bye")


async def logout_everywhere(request: Request) -> Response:
    session_of(request).logout(everywhere=True)
    return PlainTextResponse("bye, everywhere")


async def regenerate(request: Request) -> Response:
    session_of(request).regenerate()
    return PlainTextResponse("rotated")


async def whoami(request: Request) -> Response:
    session = session_of(request)
    return JSONResponse({"user": session.user_id, "new": session.is_new})


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    websocket.session["ws"] = await websocket.receive_text()
    await websocket.send_text(json.dumps(websocket.session))
    await websocket.close()


def starlette_app(store: Store | AsyncStore | None = None, **options: Any) -> SessionMiddleware:
    """A Starlette app with coatcheck's ASGI middleware on ``store``."""
    app = Starlette(
        routes=[
            Route("/read", read),
            Route("/nothing", nothing),
            Route("/write", write, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout-everywhere", logout_everywhere, methods=["POST"]),
            Route("/regenerate", regenerate, methods=["POST"]),
            Route("/whoami", whoami),
            WebSocketRoute("/ws", socket),
        ]
    )
    options.setdefault("secure", False)
    return SessionMiddleware(app, store=store if store is not None else MemoryStore(), **options)
