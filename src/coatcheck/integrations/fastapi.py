"""FastAPI: the typed session as a dependency, over the Starlette integration's middleware.

Install :class:`SessionMiddleware` (the same class as in :mod:`coatcheck.integrations.starlette`,
with Starlette's SessionMiddleware arguments), then ask for :data:`SessionDep` in a route: it is
the request's :class:`~coatcheck.session.Session`, a dict with ``login``, ``logout`` and
``regenerate``, typed as such for editors and mypy::

    from fastapi import FastAPI
    from coatcheck.integrations.fastapi import SessionDep, SessionMiddleware
    from coatcheck.stores import from_url

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET, store=from_url(STORE_URL))

    @app.post("/login")
    def login(session: SessionDep) -> dict[str, str]:
        session.login("alice")  # a new session ID, bound to the user
        return {"user": "alice"}

It works in WebSocket routes too (changes made there are stored when the socket closes).

>>> from fastapi import FastAPI
>>> from fastapi.testclient import TestClient
>>> from coatcheck.stores import MemoryStore
>>> app = FastAPI()
>>> app.add_middleware(SessionMiddleware, secret_key="change me", store=MemoryStore())
>>> @app.post("/visit")
... def visit(session: SessionDep) -> dict[str, int]:
...     session["visits"] = session.get("visits", 0) + 1
...     return {"visits": session["visits"]}
>>> with TestClient(app) as client:
...     _ = client.post("/visit")
...     client.post("/visit").json()
{'visits': 2}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from coatcheck.asgi import session_of
from coatcheck.session import Session

from .starlette import SessionMiddleware

__all__ = ["SessionDep", "SessionMiddleware", "get_session"]


def get_session(connection: HTTPConnection) -> Session:
    """The request's (or websocket's) coatcheck session; the response then varies on Cookie."""
    session = session_of(connection)
    session.mark_accessed()
    return session


SessionDep = Annotated[Session, Depends(get_session)]
"""A route parameter typed ``SessionDep`` receives the request's session."""
