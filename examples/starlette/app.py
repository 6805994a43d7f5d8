"""A Starlette app on coatcheck's server-side sessions: a cart, log in, log out.

Run it from the repository root (the sessions go to ``.demo/starlette-sessions.db``, SQLite,
unless ``COATCHECK_STORE_URL`` names another store, e.g. ``redis://127.0.0.1:6379/0``)::

    pip install 'coatcheck[starlette]' uvicorn
    uvicorn app:app --app-dir examples/starlette --port 8000

Then::

    curl -c jar -b jar http://127.0.0.1:8000/                  # anonymous: no cookie
    curl -c jar -b jar -X POST http://127.0.0.1:8000/cart/apple  # the first write: a cookie
    curl -c jar -b jar -X POST --json '{"user": "alice"}' http://127.0.0.1:8000/login
    curl -c jar -b jar -X POST http://127.0.0.1:8000/logout
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The one line that differs from Starlette's signed-cookie sessions:
# from starlette.middleware.sessions import SessionMiddleware
from coatcheck.integrations.starlette import SessionMiddleware, session_of
from coatcheck.stores import as_async, from_url


def store_url() -> str:
    """COATCHECK_STORE_URL, else an SQLite file under .demo/ in the working directory."""
    url = os.environ.get("COATCHECK_STORE_URL")
    if url:
        return url
    Path(".demo").mkdir(exist_ok=True)
    return "sqlite:///.demo/starlette-sessions.db"


STORE = as_async(from_url(store_url(), asynchronous=True))
SECRET_KEY = os.environ.get("SESSION_SECRET_KEY", "dev only: set SESSION_SECRET_KEY")


async def home(request: Request) -> Response:
    session = session_of(request)  # request.session, typed: a dict with login/logout
    return JSONResponse({"user": session.user_id, "cart": session.get("cart", [])})


async def add_to_cart(request: Request) -> Response:
    cart: list[str] = request.session.setdefault("cart", [])
    cart.append(request.path_params["item"])  # a nested change is saved too
    return JSONResponse({"cart": cart})


async def login(request: Request) -> Response:
    body = await request.json()
    user = str(body.get("user", "")).strip()
    if not user:  # a real app checks a password here
        return JSONResponse({"error": "who are you?"}, status_code=400)
    session_of(request).login(user)  # a new session ID, bound to the user
    return JSONResponse({"user": user})


async def logout(request: Request) -> Response:
    session_of(request).logout()  # deleted on the server; the cookie is expired
    return JSONResponse({"user": None})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await STORE.close()


app = Starlette(
    routes=[
        Route("/", home),
        Route("/cart/{item}", add_to_cart, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ],
    middleware=[
        # https_only=True in production (the cookie then also gets the __Host- prefix).
        Middleware(SessionMiddleware, secret_key=SECRET_KEY, store=STORE, https_only=False),
    ],
    lifespan=lifespan,
)
