"""The shop application: FastAPI routes for the pages and the JSON API, behind coatcheck's
session middleware, with every response saying which instance served it.

>>> from coatcheck.stores import MemoryStore
>>> app = create_app(MemoryStore(), instance="shop-1")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .._observed import Observed
from ..asgi import ASGIApp, Message, Receive, Scope, Send, SessionMiddleware
from ..stores import AsyncStore, AsyncStoreAdapter, MemoryStore, NotSupported, Store, StoreError
from . import api, pages
from .context import Shop
from .lost import LostSessions
from .tokens import JWKS_PATH, BearerRoutes, make_tokens

METRICS_PATH = "/metrics"
"""Where the shop serves its metrics (``metrics=True``)."""

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..config import SessionOptions


class InstanceHeader:
    """Adds ``X-Instance: <name>`` to every HTTP response, errors and 503s included."""

    def __init__(self, app: ASGIApp, instance: str) -> None:
        self.app = app
        self.header = (b"x-instance", instance.encode("ascii", "replace"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_instance(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_instance)


def default_instance_name() -> str:
    return f"shop (pid {os.getpid()})"


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    """Malformed JSON is a 400; a well-formed body of the wrong shape stays a 422."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return JSONResponse({"detail": "the request body is not valid JSON"}, status_code=400)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _not_supported(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=501)


async def _store_failed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": "session store unavailable, please retry shortly"},
        status_code=503,
        headers={"retry-after": "5"},
    )


def create_app(
    store: Store | AsyncStore,
    *,
    instance: str | None = None,
    token_ttl: float | None = None,
    **options: Unpack[SessionOptions],
) -> ASGIApp:
    """The shop on ``store``. Plain http by default (``secure=False``), CSRF tokens required
    (``csrf="token"``: every form carries one, API clients send ``X-CSRF-Token``); ``instance``
    names this process on every page and in the ``X-Instance`` header. The client is the peer:
    ``X-Forwarded-For`` counts only with ``trusted_proxies`` given. A post naming a session
    this instance has never seen is refused with the shop's page saying so
    (:mod:`coatcheck.shop.lost`).

    API clients may log in for tokens instead (``POST /api/token``) and send ``Authorization:
    Bearer``: those requests pass around the session middleware (:mod:`coatcheck.shop.tokens`);
    ``token_ttl`` is the access tokens' lifetime in seconds (5 minutes by default).

    With ``metrics=True`` the store's calls are timed too (:func:`coatcheck.metrics.instrumented`)
    and ``GET /metrics`` serves every metric of prometheus-client's default registry, in its
    text format."""
    options.setdefault("secure", False)
    options.setdefault("csrf", "token")
    # No X-Forwarded-For is believed unless the caller names its proxies: `coatcheck demo`
    # names loopback only for the instances behind its own nginx (--instances). A loopback
    # peer is anyone on this machine, so trusting it by default let any of them pick its
    # address, and so escape the per-client limits.
    name = instance or default_instance_name()
    app = FastAPI(
        title="coatcheck shop",
        summary="The demo shop of coatcheck: server-side sessions, one store, many instances.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(NotSupported, _not_supported)
    app.add_exception_handler(StoreError, _store_failed)
    if options.get("metrics"):
        from ..metrics import instrumented  # noqa: PLC0415 - the extra, only when on

        store = instrumented(store)
        app.add_api_route(METRICS_PATH, _metrics, methods=["GET"], include_in_schema=False)
    sessions = SessionMiddleware(app, store=store, **options)
    shop = Shop(
        store=sessions.store,
        config=sessions.engine.config,
        instance=name,
        per_process=_per_process(sessions.store),
        tokens=make_tokens(sessions.engine.config, token_ttl),
    )
    app.state.shop = shop
    if shop.tokens is not None:
        app.add_api_route(JWKS_PATH, _jwks, methods=["GET"], include_in_schema=False)
    # The middleware's CSRF decisions, unchanged; only the words of one refusal are the shop's.
    sessions.exchange = LostSessions(sessions.engine, shop, sessions.unavailable_status)
    return InstanceHeader(BearerRoutes(sessions, app), name)


async def _jwks(request: Request) -> Response:
    """The public keys the shop's access tokens are signed with (RFC 7517)."""
    from ..tokens import JWKS_CONTENT_TYPE, jwks_json  # noqa: PLC0415

    tokens = request.app.state.shop.tokens
    body = jwks_json(tokens.token_issuer.ring)
    return Response(body, media_type=JWKS_CONTENT_TYPE, headers={"cache-control": "max-age=300"})


async def _metrics(request: Request) -> Response:
    """The metrics, in Prometheus's text format (``metrics=True``)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest  # noqa: PLC0415

    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _per_process(store: AsyncStore) -> bool:
    """Whether ``store`` is this process's memory, which no other instance sees."""
    inner: object = store
    while isinstance(inner, AsyncStoreAdapter | Observed):  # through the metrics' wrapper too
        inner = inner.store
    return isinstance(inner, MemoryStore)
