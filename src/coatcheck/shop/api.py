"""The shop's JSON API, beside the pages: the same session, the same cart, the same users.

FastAPI describes it at ``/openapi.json``. Errors are JSON ``{"detail": ...}``: 400 for a body
that is not JSON, 401 when logging in fails or a route needs a user, 404 for an unknown product
or session, 422 for a body of the wrong shape, 501 when the store keeps no user index, 503 when
the store is down.

The shop runs with ``csrf="token"``: every POST, PUT and DELETE must carry the session's token
in ``X-CSRF-Token`` (from ``GET /api/csrf``, renewed by the login's answer), or the session
middleware refuses it with a plain-text 403 before any route runs. One refusal is JSON
(:class:`LostSession`, still 403): a token sent with a session cookie that the instance which
answered holds no session for (on ``memory://``, one started by another instance; see
:mod:`coatcheck.shop.lost`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from ..asgi import session_of
from ..session import Session
from . import accounts, cart
from .catalog import PRODUCTS, Product
from .context import Shop, shop_of
from .devices import describe
from .users import authenticate

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
    def of(cls, session: Session) -> CartOut:
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
    "middleware checks it before the route runs",
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
NO_SESSION: Responses = {404: {"model": Problem, "description": "no such session"}}


@router.get("/csrf")
async def csrf_token(request: Request) -> CsrfToken:
    """The session's CSRF token, masked afresh on every call (each one is valid).

    A visitor without a session gets one, anonymous, holding only the token.
    """
    return CsrfToken(csrf_token=session_of(request).csrf_token())


@router.post("/login", responses={**WRONG_CREDENTIALS, **FORBIDDEN}, **UNSAFE)
async def login(request: Request, credentials: Credentials) -> LoggedIn:
    """Log in: the session gets a new ID bound to the user (the cart comes along) and a new
    CSRF token, in the answer.

    A failed login stores nothing and changes nothing.
    """
    user = authenticate(credentials.username, credentials.password)
    if user is None:
        raise HTTPException(401, "wrong username or password")
    session = session_of(request)
    session.login(user)
    session[accounts.DEVICE] = describe(request.headers.get("user-agent"))
    return LoggedIn(**me(request, session, user).model_dump(), csrf_token=session.csrf_token())


@router.get("/me", responses=UNAUTHORIZED)
async def who_am_i(request: Request) -> Me:
    """The logged-in user, the instance that answered and when the session expires."""
    session, user = logged_in(request)
    return me(request, session, user)


@router.get("/cart")
async def show_cart(request: Request) -> CartOut:
    """The cart (anonymous visitors have one too)."""
    return CartOut.of(session_of(request))


@router.post("/cart/items", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def add_to_cart(request: Request, item: Item) -> CartOut:
    """Add ``quantity`` of a product (a line holds at most 99)."""
    session = session_of(request)
    try:
        cart.add(session, item.product_id, item.quantity)
    except cart.UnknownProduct:
        raise HTTPException(404, "no such product") from None
    return CartOut.of(session)


@router.put("/cart/items/{product_id}", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def change_quantity(request: Request, product_id: ProductId, body: Quantity) -> CartOut:
    """Set a line's quantity; 0 removes it."""
    session = session_of(request)
    try:
        cart.set_quantity(session, product_id, body.quantity)
    except cart.UnknownProduct:
        raise HTTPException(404, "no such product") from None
    return CartOut.of(session)


@router.delete("/cart/items/{product_id}", responses={**NOT_FOUND, **FORBIDDEN}, **UNSAFE)
async def remove_from_cart(request: Request, product_id: ProductId) -> CartOut:
    """Take a product out of the cart."""
    session = session_of(request)
    try:
        cart.remove(session, product_id)
    except cart.UnknownProduct:
        raise HTTPException(404, "no such product") from None
    return CartOut.of(session)


@router.get("/sessions", responses={**UNAUTHORIZED, **NO_INDEX})
async def list_sessions(request: Request) -> list[SessionOut]:
    """The user's active sessions, the most recently active first."""
    _, user = logged_in(request)
    shop = shop_of(request)
    found = await accounts.active_sessions(shop.store, shop.config, user, shop.current_key(request))
    return [SessionOut(**summary._asdict()) for summary in found]


@router.delete(
    "/sessions/{fingerprint}",
    status_code=204,
    responses={**UNAUTHORIZED, **NO_SESSION, **NO_INDEX, **FORBIDDEN},
    **UNSAFE,
)
async def end_session(request: Request, fingerprint: Fingerprint) -> Response:
    """Log out one of the user's sessions (this one too, if named)."""
    session, user = logged_in(request)
    shop = shop_of(request)
    ended = await accounts.end_session(shop.store, user, fingerprint)
    if ended is None:
        raise HTTPException(404, "no such session")
    if ended.key == shop.current_key(request):
        session.logout()
    return Response(status_code=204)


@router.post("/logout", status_code=204, responses=FORBIDDEN, **UNSAFE)
async def logout(request: Request) -> Response:
    """End this session: it is deleted on the server and the cookie is expired."""
    session_of(request).logout()
    return Response(status_code=204)


@router.post("/logout-all", responses={**UNAUTHORIZED, **NO_INDEX, **FORBIDDEN}, **UNSAFE)
async def logout_everywhere(request: Request) -> LoggedOut:
    """End every session of the user, on every device."""
    session, user = logged_in(request)
    ended = await accounts.end_all_sessions(shop_of(request).store, user)
    session.logout()
    return LoggedOut(sessions_ended=ended)
