"""A plain WSGI application using coatcheck's WSGI middleware, for the WSGI tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from coatcheck.session import Session
from coatcheck.stores import Store
from coatcheck.wsgi import ENVIRON_KEY, SessionMiddleware


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session: Session = environ[ENVIRON_KEY]
    path = environ["PATH_INFO"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if path == "/write":
        if "delay" in query:
            time.sleep(float(query.pop("delay")))
        session.update(query)
    elif path == "/login":
        session.login(query["user"])
    elif path == "/logout":
        session.logout()
    body = json.dumps({"data": session, "user": session.user_id}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def wsgi_app(store: Store, **options: Any) -> SessionMiddleware:
    options.setdefault("secure", False)
    return SessionMiddleware(application, store=store, **options)
