"""Access tokens for the shop's API clients (a phone app, a script), beside the browser's cookie.

``POST /api/token`` with ``{"username", "password"}`` logs in and answers an OAuth 2.0 token
response (``access_token``, ``token_type: Bearer``, ``expires_in``, ``refresh_token``), setting
no cookie; ``POST /api/token/refresh`` with ``{"refresh_token"}`` spends a refresh token for a
new pair; ``GET /.well-known/jwks.json`` publishes the key the access tokens are signed with
(:mod:`coatcheck.tokens`). The refresh tokens' sessions live in the shop's own store, beside the
cookie sessions, under the same user index: "log out everywhere" ends both kinds.

A request under ``/api/`` carrying ``Authorization: Bearer <token>`` is an API client's:
:class:`BearerRoutes` sends it (and the token endpoints) to the routes *around* the cookie
session middleware, so it has no cookie session, no CSRF check and sets no cookie. Cross-site
request forgery rides on what a browser sends by itself (a cookie); an ``Authorization`` header
is never such a thing (a page of another site cannot set it without the shop's CORS consent,
which it never gives), and the token endpoints take their credentials in the body. A cookie
sent along with a Bearer token is ignored: the request acts as the token's user only.

Every Bearer request is checked against the store's revocation record (``revocation_lag`` 0),
so "log out everywhere" in the browser refuses a phone's live access token on its next call.

The signing key is made when the shop starts; with ``--instances``, the demo makes one and hands
it to every instance (:data:`SIGNING_KEY_ENV`, in their environment, never on a command line),
so a token one instance issued is accepted by all of them, as the JWKS each serves says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..asgi import ASGIApp, Receive, Scope, Send
from ..config import SessionConfig
from ..encryption import KeyRing, seal, unseal
from ..engine import SessionEngine, WriteConflict
from ..exchange import bearer_token
from ..ids import store_key
from ..stores import AsyncStore, Record

if TYPE_CHECKING:
    from ..tokens import Claims, Tokens

logger = logging.getLogger("coatcheck.shop")

ISSUER = "coatcheck-demo-shop"
"""The ``iss`` of the shop's access tokens."""
AUDIENCE = "coatcheck-demo-shop-api"
"""Their ``aud``: the shop's JSON API."""
TOKEN_PATH = "/api/token"  # noqa: S105 - a path
REFRESH_PATH = "/api/token/refresh"
JWKS_PATH = "/.well-known/jwks.json"
BEARER = "coatcheck.shop.bearer"
"""The ASGI scope key under which :class:`BearerRoutes` leaves a Bearer request's token."""
SIGNING_KEY_ENV = "COATCHECK_DEMO_TOKEN_KEY"
"""The environment variable that hands the instances of ``--instances`` their shared signing
key (a private JWK); an instance without it makes its own."""
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
"""The challenge of a 401 for a Bearer token that is malformed, badly signed, expired or
revoked (RFC 6750)."""


def make_tokens(config: SessionConfig, ttl: float | None = None) -> Tokens | None:
    """The shop's :class:`~coatcheck.tokens.Tokens`: refresh-token sessions in the cookie
    sessions' store (the same timeouts and secrets, the ID in a header), access tokens signed
    with an Ed25519 key made now, living ``ttl`` seconds (5 minutes by default), checked for
    revocation on every request. None when the ``tokens`` extra is not installed."""
    try:
        from ..tokens import ACCESS_TTL, TokenKey, TokenKeyRing, Tokens  # noqa: PLC0415
    except ImportError as exc:
        logger.warning("the shop's API tokens are off: %s", exc)
        return None
    engine = SessionEngine(dataclasses.replace(config, transport="header"))
    shared = os.environ.get(SIGNING_KEY_ENV)
    ring = TokenKeyRing([TokenKey.from_jwk(shared) if shared else TokenKey.generate("EdDSA")])
    return Tokens(
        engine,
        ring,
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=ACCESS_TTL if ttl is None else ttl,
        revocation_lag=0.0,
    )


def request_bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header (``""`` when it holds
    none); None when there is no such header."""
    for name, value in headers:
        if name.lower() == b"authorization":
            token = bearer_token(value.decode("latin-1"))
            if token is not None:
                return token
    return None


class BearerRoutes:
    """Sends the token endpoints, the JWKS and every ``/api/`` request carrying a Bearer token
    straight to ``app`` (its token in the scope at :data:`BEARER`), and everything else through
    ``sessions``, the cookie session middleware around the same ``app``."""

    def __init__(self, sessions: ASGIApp, app: ASGIApp) -> None:
        self.sessions = sessions
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path in (TOKEN_PATH, REFRESH_PATH, JWKS_PATH):
                await self.app(scope, receive, send)
                return
            if path.startswith("/api/"):
                token = request_bearer_token(scope.get("headers", ()))
                if token is not None:
                    await self.app({**scope, BEARER: token}, receive, send)
                    return
        await self.sessions(scope, receive, send)


CART_ATTEMPTS = 8
"""Compare-and-set attempts of one change to a Bearer client's cart."""


def cart_key(config: SessionConfig, user_id: str, sid: str) -> str:
    """The store key of the cart of a refresh-token session (named by its tokens' ``sid``, the
    same across refreshes), hashed as session keys are."""
    return store_key(f"coatcheck-shop:cart:{user_id}:{sid}", config.hash_secret)


async def token_cart(
    store: AsyncStore,
    config: SessionConfig,
    claims: Claims,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The cart of a Bearer client, after ``change`` (one of :mod:`coatcheck.shop.cart`'s
    functions, which take any mapping) when given: ``{"cart": {product_id: quantity}}``.

    A browser's cart is in its cookie session; an API client's is in a small record of its
    own, one per refresh-token session (whose ID the access token never carries), that lives
    an absolute timeout from its last change. Only a valid access token of that session
    reaches it. Changes are compare-and-set on the record's version, retried."""
    key = cart_key(config, claims.user_id, claims.sid)
    ring = KeyRing(config.encryption_keys) if config.encryption_keys else None
    for _ in range(CART_ATTEMPTS):
        now = time.time()
        record = await store.load(key)
        data: dict[str, Any] = {}
        if record is not None and record.expires_at > now:
            with contextlib.suppress(ValueError):
                decoded = json.loads(unseal(ring, record.data, key))
                if isinstance(decoded, dict):
                    data = decoded
        if change is None:
            return data
        before = json.dumps(data, sort_keys=True)
        change(data)
        if json.dumps(data, sort_keys=True) == before:
            return data
        until = now + config.absolute_timeout
        blob = seal(ring, json.dumps(data).encode(), key)
        if record is None:
            written = await store.create(Record(key, blob, until, 1, None, until))
        else:
            written = await store.save(
                Record(key, blob, until, record.version + 1, None, until), record.version
            )
        if written:
            return data
    raise WriteConflict(f"gave up changing a cart after {CART_ATTEMPTS} tries")
