"""An aiohttp.web shop with server-side sessions from coatcheck.

Run it from the repository's root::

    python examples/aiohttp/app.py --port 8080

Sessions go to SQLite in ``.demo/`` unless ``COATCHECK_STORE_URL`` names another store, e.g.
``COATCHECK_STORE_URL=redis://127.0.0.1:6379/0``. Then::

    curl -i -c jar -b jar localhost:8080/                          # no cookie
    curl -i -c jar -b jar -X POST localhost:8080/cart/apple         # a session
    curl -i -c jar -b jar -d user=alice localhost:8080/login        # a new session ID
    curl -i -c jar -b jar localhost:8080/
    curl -i -c jar -b jar -X POST localhost:8080/logout             # the session is gone
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from aiohttp import web

from coatcheck.integrations.aiohttp import get_session, setup
from coatcheck.stores import as_async, from_url

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    session = await get_session(request)
    return web.json_response({"user": session.user_id, "cart": session.get("cart", [])})


@routes.post("/cart/{item}")
async def add_to_cart(request: web.Request) -> web.Response:
    session = await get_session(request)
    cart = session.setdefault("cart", [])
    cart.append(request.match_info["item"])
    return web.json_response({"cart": cart})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    user = str((await request.post())["user"])
    # A real application checks a password here. login() gives the session a new ID.
    (await get_session(request)).login(user)
    return web.json_response({"user": user})


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    (await get_session(request)).logout()
    return web.json_response({"user": None})


def store_url() -> str:
    url = os.environ.get("COATCHECK_STORE_URL")
    if url is None:
        demo = Path(".demo")
        demo.mkdir(exist_ok=True)
        url = f"sqlite:///{demo / 'aiohttp-example.db'}"
    return url


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    store = from_url(store_url(), asynchronous=True)
    setup(
        app,
        store=store,
        idle_timeout=30 * 60,
        # Plain http on localhost; behind HTTPS leave secure at its default, True.
        secure=os.environ.get("COATCHECK_SECURE") == "1",
    )

    async def close_store(app: web.Application) -> None:
        await as_async(store).close()

    app.on_cleanup.append(close_store)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    arguments = parser.parse_args()
    web.run_app(make_app(), host=arguments.host, port=arguments.port)
