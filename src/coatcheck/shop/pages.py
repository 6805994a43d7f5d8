"""The shop's HTML pages: server-rendered, plain forms, no JavaScript.

Every form posts and is answered with a redirect (303) to a page, so reloading never re-posts.
Every form carries the session's CSRF token in a hidden field (the session middleware refuses a
post without it), and every page's footer says which instance served it and when the session
expires. A form posted to an instance that has never seen the visitor's session is answered
with :func:`lost_page` (see :mod:`coatcheck.shop.lost`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from ..asgi import session_of
from ..session import Session
from ..stores import NotSupported
from . import accounts, cart
from .catalog import PRODUCTS, euros
from .context import Shop, shop_of
from .devices import describe
from .users import DEMO_PASSWORD, authenticate

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

NOTICES = {
    "logged-out": "You are logged out: this session is gone from the server.",
    "ended": "That session is logged out.",
    "everywhere": "Logged out everywhere: every session of yours is gone.",
    "login-first": "Log in to see your sessions.",
}
"""The notices a redirect may ask a page to show (by name, so a link cannot inject text)."""


def clock(stamp: float) -> str:
    """A moment as the pages show it: the time of day and how far away it is."""
    delta = stamp - time.time()
    if abs(delta) < 90:
        relative = f"{abs(delta):.0f} s"
    elif abs(delta) < 90 * 60:
        relative = f"{abs(delta) / 60:.0f} min"
    else:
        relative = f"{abs(delta) / 3600:.1f} h"
    when = f"in {relative}" if delta >= 0 else f"{relative} ago"
    return f"{time.strftime('%H:%M:%S', time.localtime(stamp))} ({when})"


class Forms:
    """What a page's forms carry: the session's CSRF token, masked afresh for each form.

    The first token a visitor is shown creates it, and so stores their session (anonymous,
    holding only the token): a form needs it, the login form included.
    """

    def __init__(self, session: Session, field: str) -> None:
        self.session = session
        self.field = field
        self.issued = False

    def csrf_field(self) -> Markup:
        """The hidden ``<input>`` a form posts its token in."""
        self.issued = True
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            self.field, self.session.csrf_token()
        )


def expiry(request: Request, session: Session, stored_now: bool) -> str:
    """What the footer says of the session's expiry; ``stored_now``: this response stores it."""
    config = shop_of(request).config
    deadline = session.authenticated_at + config.absolute_timeout
    if session.expires_at is not None:
        return f"expires at {clock(session.expires_at)} if idle, at the latest at {clock(deadline)}"
    if stored_now:
        idle = clock(min(time.time() + config.idle_timeout, deadline))
        return (
            f"new, holding only a CSRF token for the forms: expires at {idle} if idle, "
            f"at the latest at {clock(deadline)}"
        )
    return "none stored yet: nothing is kept until a page shows you a form"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    session = session_of(request)
    shop = shop_of(request)
    notice = NOTICES.get(request.query_params.get("done", ""))
    forms = Forms(session, shop.config.csrf_field)
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": session.user_id,
            "cart_count": cart.count(session),
            "instance": shop.instance,
            "csrf_field": forms.csrf_field,
            # Called by the footer, after every form above it has asked for its token.
            "expiry": lambda: expiry(request, session, forms.issued),
            "notice": notice,
            "euros": euros,
            "clock": clock,
            **context,
        },
        status_code=status_code,
    )


FORM_PAGES = (("/login", "/login"), ("/cart/items/", "/cart"), ("/sessions", "/sessions"))
"""Where each form is, by the path it posts to (prefixes; any other form is on "/", the
products' page): the page to load again for a new token."""


def page_of_form(path: str) -> str:
    """The page whose form posts to ``path``: one of the shop's own, whatever ``path`` is.

    >>> page_of_form("/cart/items/scarf/remove"), page_of_form("/cart/items")
    ('/cart', '/')
    """
    return next((page for prefix, page in FORM_PAGES if path.startswith(prefix)), "/")


def lost_page(shop: Shop, path: str) -> bytes:
    """The page for a form posted to ``path`` that names a session this instance has never seen
    (see :mod:`coatcheck.shop.lost`), in the shop's layout, with a link back to the form's page.

    The session middleware renders it while it refuses the post, before any route runs: from
    the shop alone. The session is anonymous and stays unstored (the refusal clears its cookie),
    so the page shows no form.
    """
    return (
        templates.get_template("lost.html")
        .render(
            user=None,
            cart_count=0,
            instance=shop.instance,
            csrf_field=lambda: Markup(""),  # base.html's logout form is for a user: never here
            expiry=lambda: (
                "none on this instance: it holds no session by the ID your browser sent, and "
                "this answer clears that cookie"
            ),
            notice=None,
            per_process=shop.per_process,
            retry=page_of_form(path),
        )
        .encode()
    )


def see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def quantity_of(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


@router.get("/")
async def products(request: Request) -> Response:
    return render(request, "products.html", products=PRODUCTS)


@router.get("/cart")
async def show_cart(request: Request) -> Response:
    session = session_of(request)
    return render(request, "cart.html", lines=cart.lines(session), total=cart.total_cents(session))


@router.post("/cart/items")
async def add_to_cart(request: Request) -> Response:
    form = await request.form()
    try:
        cart.add(
            session_of(request),
            str(form.get("product_id", "")),
            quantity_of(form.get("quantity"), 1),
        )
    except cart.UnknownProduct:
        return render(request, "products.html", status_code=404, products=PRODUCTS)
    return see("/cart")


@router.post("/cart/items/{product_id}")
async def change_quantity(request: Request, product_id: str) -> Response:
    form = await request.form()
    quantity = quantity_of(form.get("quantity"), 1)
    try:
        cart.set_quantity(session_of(request), product_id, quantity)
    except cart.UnknownProduct:
        return see("/cart")
    return see("/cart")


@router.post("/cart/items/{product_id}/remove")
async def remove_from_cart(request: Request, product_id: str) -> Response:
    try:
        cart.remove(session_of(request), product_id)
    except cart.UnknownProduct:
        return see("/cart")
    return see("/cart")


@router.get("/login")
async def login_form(request: Request) -> Response:
    return render(request, "login.html", username="", error=None, demo_password=DEMO_PASSWORD)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", ""))[:64]
    user = authenticate(username, str(form.get("password", "")))
    if user is None:
        return render(
            request,
            "login.html",
            status_code=401,
            username=username,
            error="Wrong user or password.",
            demo_password=DEMO_PASSWORD,
        )
    session = session_of(request)
    session.login(user)  # a new ID, bound to the user; the cart comes along
    session[accounts.DEVICE] = describe(request.headers.get("user-agent"))
    return see("/")


@router.post("/logout")
async def logout(request: Request) -> Response:
    session_of(request).logout()
    return see("/login?done=logged-out")


@router.get("/sessions")
async def sessions(request: Request) -> Response:
    session = session_of(request)
    if session.user_id is None:
        return see("/login?done=login-first")
    shop = shop_of(request)
    current = shop.current_key(request)
    try:
        listed = await accounts.active_sessions(shop.store, shop.config, session.user_id, current)
    except NotSupported as exc:
        return render(request, "sessions.html", unsupported=str(exc), sessions=[])
    return render(request, "sessions.html", unsupported=None, sessions=listed)


@router.post("/sessions/logout-everywhere")
async def logout_everywhere(request: Request) -> Response:
    session = session_of(request)
    if session.user_id is None:
        return see("/login?done=login-first")
    await shop_of(request).end_all_sessions(session.user_id)
    session.logout()
    return see("/login?done=everywhere")


@router.post("/sessions/{fingerprint}/logout")
async def end_one(request: Request, fingerprint: str) -> Response:
    session = session_of(request)
    if session.user_id is None:
        return see("/login?done=login-first")
    shop = shop_of(request)
    ended = await accounts.end_session(shop.store, session.user_id, fingerprint)
    if ended is not None and ended.key == shop.current_key(request):
        session.logout()
        return see("/login?done=logged-out")
    return see("/sessions?done=ended")
