"""A Litestar shop with server-side sessions from coatcheck.

Run it from the repository's root::

    uvicorn --app-dir examples/litestar app:app

Sessions go to SQLite in ``.demo/`` unless ``COATCHECK_STORE_URL`` names another store, e.g.
``COATCHECK_STORE_URL=redis://127.0.0.1:6379/0``. Then::

    curl -i -c jar -b jar localhost:8000/                          # no cookie
    curl -i -c jar -b jar -X POST localhost:8000/cart/apple         # a session
    curl -i -c jar -b jar -d user=alice localhost:8000/login        # a new session ID
    curl -i -c jar -b jar localhost:8000/
    curl -i -c jar -b jar -X POST localhost:8000/logout             # the session is gone
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from litestar import Litestar, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from coatcheck.integrations.litestar import CoatcheckSessionConfig, session_of
from coatcheck.stores import as_async, from_url


def store_url() -> str:
    url = os.environ.get("COATCHECK_STORE_URL")
    if url is None:
        demo = Path(".demo")
        demo.mkdir(exist_ok=True)
        url = f"sqlite:///{demo / 'litestar-example.db'}"
    return url


store = from_url(store_url(), asynchronous=True)
sessions = CoatcheckSessionConfig(
    store=store,
    idle_timeout=30 * 60,
    # Plain http on localhost; behind HTTPS leave secure at its default, True.
    secure=os.environ.get("COATCHECK_SECURE") == "1",
)


@get("/", sync_to_thread=False)
def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
    session = session_of(request)
    return {"user": session.user_id, "cart": session.get("cart", [])}


@post("/cart/{item:str}", sync_to_thread=False)
def add_to_cart(request: Request[Any, Any, Any]) -> dict[str, Any]:
    cart = request.session.setdefault("cart", [])
    cart.append(request.path_params["item"])
    return {"cart": cart}


@post("/login", sync_to_thread=False)
def login(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> dict[str, Any]:
    # A real application checks a password here. login() gives the session a new ID.
    session_of(request).login(data["user"])
    return {"user": data["user"]}


@post("/logout", sync_to_thread=False)
def logout(request: Request[Any, Any, Any]) -> dict[str, Any]:
    request.clear_session()  # the same as session_of(request).logout()
    return {"user": None}


async def close_store() -> None:
    await as_async(store).close()


app = Litestar(
    [home, add_to_cart, login, logout],
    middleware=[sessions.middleware],
    on_shutdown=[close_store],
)
