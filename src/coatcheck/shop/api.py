"""The shop's JSON API, beside the pages: the same session, the same cart, the same users.

FastAPI describes it at ``/openapi.json``. Errors are JSON ``{"detail": ...}``: 400 for a body
that is not JSON, 401 when logging in fails or a route needs a user, 404 for an unknown product
or session, 422 for a body of the wrong shape, 501 when the store keeps no user index, 503 when
the store is down.

API clients log in for tokens instead (:mod:`coatcheck.shop.tokens`): ``POST /api/token`` with
``{"username", "password"}`` gives an access token and a refresh token (no cookie),
``POST /api/token/refresh`` with ``{"refresh_token"}`` a new pair (401 for a refresh token that is
wrong, expired or already spent: spending one twice ends its session). A request sending
``Authorization: Bearer <access token>`` acts as the token's user, with no cookie session and no
CSRF token: ``/api/me``, ``/api/sessions``, ``/api/logout`` (ends the token's session),
``/api/logout-all`` and the cart (one per refresh-token session) accept it; a token that is
malformed, badly signed, expired or revoked is a 401 with ``WWW-Authenticate: Bearer
error="invalid_token"``. ``/api/csrf`` and ``/api/login`` are the browser's: a Bearer request there
is a 400. The token endpoints are left out of ``/openapi.json`` for now (they take no CSRF token,
and the document's tests expect every unsafe operation to ask for one).

The shop runs with ``csrf="token"``: every POST, PUT and DELETE must carry the session's token
in ``X-CSRF-Token`` (from ``GET /api/csrf``, renewed by the login's answer), or the session
middleware refuses it with a plain-text 403 before any route runs. One refusal is JSON
(:class:`LostSession`, still 403): a token sent with a session cookie that the instance which
answered holds no session for (on ``memory://``, one started by another instance; see
:mod:`coatcheck.shop.lost`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from ..asgi import session_of
from ..engine import run_async
from ..session import Session
from . import accounts, cart, tokens
from .catalog import PRODUCTS, Product
from .context import Shop, shop_of
from .devices import describe
from .users import authenticate

if TYPE_CHECKING:
    from ..tokens import Claims, TokenPair

router = APIRouter(prefix="/api", tags=["shop"])


class Problem(BaseModel):
    detail: str


class LostSession(BaseModel):
    """The 403 for a request whose session cookie names a session the instance that answered
    holds none for, so that the token it sends matches nothing there."""

    detail: str
    error: Literal["unknown_session"] = "unknown_session"
    instance: str = Field(description="the instance that answered, which never saw the session")
    try_again: str = Field(
        default="/api/csrf",
        description="where to get a new session and token, before sending the request again",
    )


def lost_body(shop: Shop) -> bytes:
    """The JSON body of the refusal :mod:`coatcheck.shop.lost` describes."""
    instance = shop.instance
    if shop.per_process:
        why = (
            f"{instance} has never seen this session: memory:// keeps each instance's sessions "
            "in its own process, so a session another instance started (or this one before a "
            "restart, or one that expired) is unknown here; a store shared by all instances "
            "(redis://, PostgreSQL, SQLite on one machine) keeps them wherever a request lands"
        )
    else:
        why = f"{instance} holds no session by the ID sent: it expired, or it was logged out"
    detail = f"{why}. Nothing was changed: GET /api/csrf for a new session and token, then retry."
    return LostSession(detail=detail, instance=instance).model_dump_json().encode()


class ProductOut(BaseModel):
    id: str
    name: str
    price_cents: int
    description: str

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls(**product._asdict())


class Credentials(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class Me(BaseModel):
    user: str
    instance: str
    created_at: float = Field(description="when the session was created (Unix seconds)")
    expires_at: float = Field(description="when the session expires if idle")
    absolute_deadline: float = Field(description="when it expires at the latest")


class CsrfToken(BaseModel):
    csrf_token: str = Field(
        description="send it in X-CSRF-Token with every POST, PUT and DELETE of this session"
    )


class LoggedIn(Me):
    csrf_token: str = Field(
        description="the session's new CSRF token: logging in renews it, so the old one is refused"
    )


class Item(BaseModel):
    product_id: str = Field(max_length=64)
    quantity: int = Field(default=1, ge=1, le=cart.MAX_QUANTITY)


class Quantity(BaseModel):
    quantity: int = Field(ge=0, le=cart.MAX_QUANTITY, description="0 removes the line")


class LineOut(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price_cents: int
    total_cents: int


class CartOut(BaseModel):
    items: list[LineOut]
    total_cents: int

    @classmethod
    def of(cls, session: Session | dict[str, Any]) -> CartOut:
        lines = [
            LineOut(
                product_id=line.product.id,
                name=line.product.name,
                quantity=line.quantity,
                unit_price_cents=line.product.price_cents,
                total_cents=line.total_cents,
            )
            for line in cart.lines(session)
        ]
        return cls(items=lines, total_cents=cart.total_cents(session))


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=512)


class TokenResponse(BaseModel):
    """An OAuth 2.0 token response (RFC 6749, section 5.1)."""

    access_token: str = Field(description="a JWT: send it in Authorization: Bearer")
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="the access token's lifetime, in seconds")
    refresh_token: str = Field(
        description="spend it at POST /api/token/refresh for a new pair, once: sent again, it "
        "ends its session"
    )


class SessionOut(BaseModel):
    fingerprint: str = Field(description="names the session; never its ID")
    device: str
    created_at: float
    last_active: float
    expires_at: float
    current: bool = Field(description="whether it is the session making this request")


class LoggedOut(BaseModel):
    sessions_ended: int


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: {"model": Problem, "description": "not logged in"}}
NOT_FOUND: Responses = {404: {"model": Problem, "description": "no such product"}}
NO_INDEX: Responses = {501: {"model": Problem, "description": "the store keeps no index of users"}}
FORBIDDEN: Responses = {
    403: {
        "model": LostSession,
        "description": "the CSRF check failed: no token, a wrong one, or a cross-site origin "
        "(plain text, from the session middleware); JSON when the session cookie names a "
        "session the instance that answered does not hold (memory:// behind a balancer)",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
CSRF_HEADER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": True,
    "description": "the session's CSRF token (GET /api/csrf, or the login's answer); the session "
    "middleware checks it before the route runs. Not needed with Authorization: Bearer",
    "schema": {"type": "string", "maxLength": 200},
}
UNSAFE: dict[str, Any] = {"openapi_extra": {"parameters": [CSRF_HEADER]}}
"""What every POST, PUT and DELETE adds to its OpenAPI description: the token header it needs.

Documentation only: the session middleware checks the token, before FastAPI sees the request.
"""
ProductId = Annotated[str, Path(max_length=64)]
Fingerprint = Annotated[str, Path(max_length=64)]


def logged_in(request: Request) -> tuple[Session, str]:
    session = session_of(request)
    if session.user_id is None:
        raise HTTPException(401, "not logged in")
    return session, session.user_id


class Caller(NamedTuple):
    """Who sent a request: a browser's logged-in cookie session, or a Bearer token's user."""

    user: str
    session: Session | None
    """The cookie session; None for a Bearer request."""
    claims: Claims | None
    """The access token's claims; None for a cookie session."""


def bearer_of(request: Request) -> str | None:
    """The Bearer token a request carries (:class:`~coatcheck.shop.tokens.BearerRoutes` left it
    in the scope); None for a browser's request, which has a cookie session instead."""
    token = request.scope.get(tokens.BEARER)
    return token if isinstance(token, str) else None


async def token_claims(request: Request, token: str) -> Claims:
    """The claims of a valid, unrevoked access token (the store's revocation record is read
    on every call); a 401 with the Bearer challenge otherwise."""
    shop = shop_of(request)
    if shop.tokens is not None:
        from ..tokens import InvalidToken  # noqa: PLC0415 - the extra is there: tokens exist

        try:
            return await run_async(shop.tokens.authenticate(token), shop.store)
        except InvalidToken:
            pass
    raise HTTPException(
        401, "invalid, expired or revoked access token", headers=tokens.INVALID_TOKEN
    )


async def caller(request: Request) -> Caller:
    """The logged-in user of a cookie session or of a Bearer token; 401 for neither."""
    token = bearer_of(request)
    if token is None:
        session, user = logged_in(request)
        return Caller(user, session, None)
    claims = await token_claims(request, token)
    return Caller(claims.user_id, None, claims)


def browser_session(request: Request, instead: str) -> Session:
    """The cookie session of a browser's request; a 400 saying ``instead`` for a Bearer one."""
    if bearer_of(request) is not None:
        raise HTTPException(400, instead)
    return session_of(request)


async def change_cart(
    request: Request, change: Callable[[Session | dict[str, Any]], None] | None = None
) -> CartOut:
    """The cart after ``change``: the cookie session's, or the Bearer client's own
    (:func:`coatcheck.shop.tokens.token_cart`). An unknown product is a 404."""
    token = bearer_of(request)
    try:
        if token is None:
            session = session_of(request)
            if change is not None:
                change(session)
            return CartOut.of(session)
        claims = await token_claims(request, token)
        shop = shop_of(request)
        return CartOut.of(await tokens.token_cart(shop.store, shop.config, claims, change))
    except cart.UnknownProduct:
        raise HTTPException(404, "no such product") from None


def me(request: Request, session: Session, user: str) -> Me:
    """The user's view of the session; a session written by this request expires a full idle
    timeout from now (the write is committed as the response starts)."""
    config = shop_of(request).config
    deadline = session.authenticated_at + config.absolute_timeout
    expires_at = session.expires_at
    if expires_at is None or session.modified:
        expires_at = min(time.time() + config.idle_timeout, deadline)
    return Me(
        user=user,
        instance=shop_of(request).instance,
        created_at=session.created_at,
        expires_at=expires_at,
        absolute_deadline=deadline,
    )


@router.get("/products")
async def list_products() -> list[ProductOut]:
    """Everything the shop sells."""
    return [ProductOut.of(product) for product in PRODUCTS]


WRONG_CREDENTIALS: Responses = {401: {"model": Problem, "description": "wrong credentials"}}
BAD_REFRESH: Responses = {
    401: {"model": Problem, "description": "the refresh token is wrong, expired or spent"}
}
NO_TOKENS: Responses = {501: {"model": Problem, "description": "the tokens extra is missing"}}
BEARER_INSTEAD: Responses = {400: {"model": Problem, "description": "a Bearer request"}}
NO_SESSION: Responses = {404: {"model": Problem, "description": "no such session"}}


@router.get("/csrf", responses=BEARER_INSTEAD)
async def csrf_token(request: Request) -> CsrfToken:
    """The session's CSRF token, masked afresh on every call (each one is valid).

    A visitor without a session gets one, anonymous, holding only the token.
    """
    session = browser_session(request, "a Bearer client sends no CSRF token")
    return CsrfToken(csrf_token=session.csrf_token())


@router.post("/login", responses={**WRONG_CREDENTIALS, **FORBIDDEN, **BEARER_INSTEAD}, **UNSAFE)
async def login(request: Request, credentials: Credentials) -> LoggedIn:
    """Log in: the session gets a new ID bound to the user (the cart comes along) and a new
    CSRF token, in the answer.

    A failed login stores nothing and changes nothing.
    """
    session = browser_session(request, "a Bearer client logs in at POST /api/token")
    user = authenticate(credentials.username, credentials.password)
    if user is None:
        raise HTTPException(401, "wrong username or password")
    session.login(user)
    session[accounts.DEVICE] = describe(request.headers.get("user-agent"))
    return LoggedIn(**me(request, session, user).model_dump(), csrf_token=session.csrf_token())


def token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@router.post("/token", responses={**WRONG_CREDENTIALS, **NO_TOKENS}, include_in_schema=False)
async def token(request: Request, credentials: Credentials) -> TokenResponse:
    """Log in for tokens (an API client's login): an access token and a refresh token, and no
    cookie. No CSRF token is needed: the credentials are in the body, not sent by a browser
    on its own."""
    shop = shop_of(request)
    if shop.tokens is None:
        raise HTTPException(501, "the shop's API tokens need the tokens extra")
    user = authenticate(credentials.username, credentials.password)
    if user is None:
        raise HTTPException(401, "wrong username or password")
    pair = await run_async(shop.tokens.login(user), shop.store)
    return token_response(pair)


@router.post("/token/refresh", responses={**BAD_REFRESH, **NO_TOKENS}, include_in_schema=False)
async def refresh(request: Request, body: RefreshRequest) -> TokenResponse:
    """Spend a refresh token for a new access token and refresh token. Each refresh token is
    good once: presented again, it ends the session it became (someone copied it)."""
    shop = shop_of(request)
    if shop.tokens is None:
        raise HTTPException(501, "the shop's API tokens need the tokens extra")
    from ..tokens import RefreshFailed  # noqa: PLC0415 - the extra is there: tokens exist

    try:
        pair = await run_async(shop.tokens.refresh(body.refresh_token), shop.store)
    except RefreshFailed:
        raise HTTPException(401, "the refresh token is wrong, expired or spent") from None
    return token_response(pair)


@router.get("/me", responses=UNAUTHORIZED)
async def who_am_i(request: Request) -> Me:
    """The logged-in user, the instance that answered and when the session expires (for a
    Bearer client: when the access token was issued and when it expires)."""
    user, session, claims = await caller(request)
    if session is not None:
        return me(request, session, user)
    assert claims is not None
    return Me(
        user=user,
        instance=shop_of(request).instance,
        created_at=claims.issued_at,
        expires_at=claims.expires_at,
        absolute_deadline=claims.expires_at,
    )


@router.get("/cart")
async def show_cart(request: Request) -> CartOut:
    """The cart (anonymous visitors have one too; a Bearer client has its own)."""
    return await change_cart(request)


@router.post("/cart/items", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def add_to_cart(request: Request, item: Item) -> CartOut:
    """Add ``quantity`` of a product (a line holds at most 99)."""
    return await change_cart(request, lambda held: cart.add(held, item.product_id, item.quantity))


@router.put("/cart/items/{product_id}", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def change_quantity(request: Request, product_id: ProductId, body: Quantity) -> CartOut:
    """Set a line's quantity; 0 removes it."""
    return await change_cart(
        request, lambda held: cart.set_quantity(held, product_id, body.quantity)
    )


@router.delete("/cart/items/{product_id}", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def remove_from_cart(request: Request, product_id: ProductId) -> CartOut:
    """Take a product out of the cart."""
    return await change_cart(request, lambda held: cart.remove(held, product_id))


@router.get("/sessions", responses={**UNAUTHORIZED, **NO_INDEX})
async def list_sessions(request: Request) -> list[SessionOut]:
    """The user's active sessions, the most recently active first (a Bearer client's own
    refresh-token session is not marked current: its token names it by no key)."""
    user, session, _ = await caller(request)
    shop = shop_of(request)
    current = shop.current_key(request) if session is not None else None
    found = await accounts.active_sessions(shop.store, shop.config, user, current)
    return [SessionOut(**summary._asdict()) for summary in found]


@router.delete(
    "/sessions/{fingerprint}",
    status_code=204,
    responses={**UNAUTHORIZED, **NO_SESSION, **NO_INDEX, **FORBIDDEN},
    **UNSAFE,
)
async def end_session(request: Request, fingerprint: Fingerprint) -> Response:
    """Log out one of the user's sessions (this one too, if named)."""
    user, session, _ = await caller(request)
    shop = shop_of(request)
    ended = await accounts.end_session(shop.store, user, fingerprint)
    if ended is None:
        raise HTTPException(404, "no such session")
    if session is not None and ended.key == shop.current_key(request):
        session.logout()
    return Response(status_code=204)


@router.post("/logout", status_code=204, responses=FORBIDDEN, **UNSAFE)
async def logout(request: Request) -> Response:
    """End this session: it is deleted on the server and the cookie is expired. With a Bearer
    token: the token's refresh-token session ends, and none of its access tokens (this one
    included) is accepted any more."""
    token = bearer_of(request)
    if token is None:
        session_of(request).logout()
        return Response(status_code=204)
    claims = await token_claims(request, token)
    shop = shop_of(request)
    assert shop.tokens is not None  # the token was accepted
    await run_async(shop.tokens.revoke_session(claims.user_id, claims.sid), shop.store)
    return Response(status_code=204)


@router.post("/logout-all", responses={**UNAUTHORIZED, **NO_INDEX, **FORBIDDEN}, **UNSAFE)
async def logout_everywhere(request: Request) -> LoggedOut:
    """End every session of the user, on every device, and revoke their access tokens."""
    user, session, _ = await caller(request)
    ended = await shop_of(request).end_all_sessions(user)
    if session is not None:
        session.logout()
    return LoggedOut(sessions_ended=ended)
