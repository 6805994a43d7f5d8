"""The Flask apps of the Flask benchmark: the same routes behind coatcheck or Flask-Session.

Both keep sessions in one Redis, each under its own key prefix, with the same lifetime and
Flask's defaults otherwise (permanent sessions, ``SESSION_REFRESH_EACH_REQUEST``). The routes and
session data are those of :mod:`benchmarks.apps`. gunicorn serves one with
``benchmarks.frameworks.flask_apps:from_env()``, the variant named by ``COATCHECK_BENCH_APP``,
the Redis URL and key prefix by ``COATCHECK_BENCH_REDIS`` and ``COATCHECK_BENCH_PREFIX``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import flask
import redis
from flask_session import Session as FlaskSessionExtension

from coatcheck.integrations.flask import Session as CoatcheckExtension

from ..apps import APP_ENV, BARE, IDLE_SECONDS, SESSION_DATA

COATCHECK = "coatcheck"
FLASK_SESSION = "flask-session"
VARIANTS = (FLASK_SESSION, COATCHECK)
DESCRIPTIONS = {
    COATCHECK: "coatcheck.integrations.flask.Session, store redis://",
    FLASK_SESSION: 'Flask-Session, SESSION_TYPE="redis" (msgpack)',
}
REDIS_ENV = "COATCHECK_BENCH_REDIS"
PREFIX_ENV = "COATCHECK_BENCH_PREFIX"


def build(variant: str, redis_url: str, prefix: str) -> flask.Flask:
    if variant == BARE:
        return bare()
    app = flask.Flask(__name__)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=IDLE_SECONDS)
    if variant == COATCHECK:
        app.config["COATCHECK_STORE_URL"] = f"{redis_url}?prefix={prefix}"
        CoatcheckExtension(app)
    elif variant == FLASK_SESSION:
        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(redis_url),
            SESSION_KEY_PREFIX=prefix,
        )
        FlaskSessionExtension(app)
    else:
        raise ValueError(f"unknown Flask variant {variant!r}; known: {', '.join(VARIANTS)}")

    @app.get("/anon")
    def anonymous() -> str:
        return "hello"

    @app.get("/setup")
    def setup() -> str:
        flask.session.update(SESSION_DATA)
        return "ok"

    @app.get("/read")
    def read() -> str:
        user = flask.session.get("user")
        return str(user["name"]) if user else "no session"

    @app.get("/write")
    def write() -> str:
        flask.session["counter"] = counter = flask.session.get("counter", 0) + 1
        return str(counter)

    return app


def bare() -> flask.Flask:
    """The same routes with no session layer (the instruction count's baseline; the HTTP
    benchmark does not serve it): each handler's session is a throwaway dict, and Flask's
    default session interface, given no secret key, makes its null session and never saves."""
    app = flask.Flask(__name__)

    @app.get("/anon")
    def anonymous() -> str:
        return "hello"

    @app.get("/setup")
    def setup() -> str:
        session: dict[str, Any] = {}
        session.update(SESSION_DATA)
        return "ok"

    @app.get("/read")
    def read() -> str:
        session: dict[str, Any] = {}
        user = session.get("user")
        return str(user["name"]) if user else "no session"

    @app.get("/write")
    def write() -> str:
        session: dict[str, Any] = {}
        session["counter"] = counter = session.get("counter", 0) + 1
        return str(counter)

    return app


def from_env() -> flask.Flask:
    """The app named by the environment (what gunicorn calls)."""
    return build(os.environ[APP_ENV], os.environ[REDIS_ENV], os.environ[PREFIX_ENV])
