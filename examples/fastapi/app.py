"""A FastAPI app on coatcheck's server-side sessions: a cart, log in, log out.

Run it from the repository root (the sessions go to ``.demo/fastapi-sessions.db``, SQLite,
unless ``COATCHECK_STORE_URL`` names another store, e.g. ``redis://127.0.0.1:6379/0``)::

    pip install 'coatcheck[fastapi]' uvicorn
    uvicorn app:app --app-dir examples/fastapi --port 8000

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
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from coatcheck.integrations.fastapi import SessionDep, SessionMiddleware
from coatcheck.stores import as_async, from_url


def store_url() -> str:
    """COATCHECK_STORE_URL, else an SQLite file under .demo/ in the working directory."""
    url = os.environ.get("COATCHECK_STORE_URL")
    if url:
        return url
    Path(".demo").mkdir(exist_ok=True)
    return "sqlite:///.demo/fastapi-sessions.db"


STORE = as_async(from_url(store_url(), asynchronous=True))
SECRET_KEY = os.environ.get("SESSION_SECRET_KEY", "dev only: set SESSION_SECRET_KEY")


class Credentials(BaseModel):
    user: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await STORE.close()


app = FastAPI(lifespan=lifespan)
# https_only=True in production (the cookie then also gets the __Host- prefix).
app.add_middleware(SessionMiddleware, secret_key=SECRET_KEY, store=STORE, https_only=False)


@app.get("/")
def home(session: SessionDep) -> dict[str, Any]:
    return {"user": session.user_id, "cart": session.get("cart", [])}


@app.post("/cart/{item}")
def add_to_cart(item: str, session: SessionDep) -> dict[str, Any]:
    cart: list[str] = session.setdefault("cart", [])
    cart.append(item)  # a nested change is saved too
    return {"cart": cart}


@app.post("/login")
def login(credentials: Credentials, session: SessionDep) -> dict[str, Any]:
    user = credentials.user.strip()
    if not user:  # a real app checks a password here
        raise HTTPException(400, "who are you?")
    session.login(user)  # a new session ID, bound to the user
    return {"user": user}


@app.post("/logout")
def logout(session: SessionDep) -> dict[str, Any]:
    session.logout()  # deleted on the server; the cookie is expired
    return {"user": None}
