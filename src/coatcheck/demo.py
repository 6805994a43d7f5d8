"""The minimal demo app: a Starlette site that shows a session's lifecycle as it happens.

Visit, add to a cart, log in (which regenerates the ID), log out (which destroys the session).
Run it with ``coatcheck demo``; it uses the embedded SQLite store unless told otherwise.
"""

from __future__ import annotations

import html
import os
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .asgi import SessionMiddleware, session_of
from .stores import AsyncStore, Store

PRODUCTS = {"apple": "Apple", "pear": "Pear", "fig": "Fig"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coatcheck demo</title>
<style>body{{font:16px system-ui;max-width:40em;margin:2em auto}}
dt{{font-weight:bold}}form{{display:inline}}</style></head>
<body><h1>coatcheck demo</h1>
<p>Served by process {pid}. {who}</p>
<h2>Cart</h2><p>{cart}</p>
<p>{buttons}</p>
<h2>Account</h2><p>{account}</p>
<h2>Your session</h2><dl>{facts}</dl>
</body></html>"""


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "not stored yet"
    return time.strftime("%H:%M:%S", time.localtime(stamp)) + f" (in {stamp - time.time():.0f} s)"


def _button(action: str, label: str) -> str:
    return f'<form method="post" action="{action}"><button>{html.escape(label)}</button></form> '


async def home(request: Request) -> Response:
    session = session_of(request)
    cart: dict[str, int] = session.get("cart", {})
    items = ", ".join(f"{PRODUCTS[p]} x {n}" for p, n in cart.items() if p in PRODUCTS)
    if session.user_id:
        who = f"Logged in as <b>{html.escape(session.user_id)}</b>."
        account = _button("/logout", "Log out")
    else:
        who = "Anonymous."
        account = (
            '<form method="post" action="/login"><input name="user" placeholder="name" '
            'required maxlength="40"> <button>Log in</button></form>'
        )
    facts = {
        "new (nothing stored)": str(session.is_new),
        "user": str(session.user_id),
        "created": _when(None if session.is_new else session.created_at),
        "expires": _when(session.expires_at),
    }
    page = PAGE.format(
        pid=os.getpid(),
        who=who,
        cart=html.escape(items) or "empty",
        buttons="".join(_button(f"/add/{p}", f"Add {name}") for p, name in PRODUCTS.items()),
        account=account,
        facts="".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()),
    )
    return HTMLResponse(page)


async def add(request: Request) -> Response:
    product = request.path_params["product"]
    if product in PRODUCTS:
        cart: dict[str, int] = request.session.setdefault("cart", {})
        cart[product] = cart.get(product, 0) + 1
    return RedirectResponse("/", status_code=303)


async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    user = form.get("user", [""])[0].strip()[:40]
    if user:
        session_of(request).login(user)
    return RedirectResponse("/", status_code=303)


async def logout(request: Request) -> Response:
    session_of(request).logout()
    return RedirectResponse("/", status_code=303)


def create_app(store: Store | AsyncStore, **options: Any) -> SessionMiddleware:
    """The demo application on ``store`` (plain http, so ``secure=False`` by default)."""
    routes = [
        Route("/", home),
        Route("/add/{product}", add, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    options.setdefault("secure", False)
    return SessionMiddleware(Starlette(routes=routes), store=store, **options)
