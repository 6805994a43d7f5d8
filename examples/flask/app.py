"""A Flask shop with server-side sessions from coatcheck, logged in and out by Flask-Login.

Run it from the repository's root::

    flask --app examples/flask/app.py run

Sessions go to SQLite in ``.demo/`` unless ``COATCHECK_STORE_URL`` names another store, e.g.
``COATCHECK_STORE_URL=redis://127.0.0.1:6379/0``. Then::

    curl -i -c jar -b jar localhost:5000/                             # no cookie
    curl -i -c jar -b jar -d item=apple localhost:5000/cart            # a session
    curl -i -c jar -b jar -d user=alice localhost:5000/login           # a new session ID
    curl -i -c jar -b jar localhost:5000/me
    curl -i -c jar -b jar -X POST localhost:5000/logout                # the session is gone
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flask
import flask_login

from coatcheck.integrations.flask import Session

app = flask.Flask(__name__)
app.config.update(
    COATCHECK_STORE_URL=os.environ.get("COATCHECK_STORE_URL"),
    PERMANENT_SESSION_LIFETIME=30 * 60,  # the idle timeout: 30 minutes
    SESSION_COOKIE_SAMESITE="Lax",
    # Plain http on localhost; behind HTTPS set True (and name the cookie "__Host-session").
    SESSION_COOKIE_SECURE=os.environ.get("SESSION_COOKIE_SECURE") == "1",
)
if app.config["COATCHECK_STORE_URL"] is None:
    demo = Path(".demo")
    demo.mkdir(exist_ok=True)
    app.config["COATCHECK_STORE_URL"] = f"sqlite:///{demo / 'flask-example.db'}"
Session(app)

login_manager = flask_login.LoginManager(app)


class User(flask_login.UserMixin):  # type: ignore[misc]
    """Anyone who gives a name (a real app checks a password)."""

    def __init__(self, name: str) -> None:
        self.id = name


def load_user(user_id: str) -> User:
    return User(user_id)


login_manager.user_loader(load_user)


@app.get("/")
def home() -> str:
    """A page that does not touch the session: no store call, no cookie."""
    return "Welcome to the shop.\n"


@app.get("/me")
def me() -> dict[str, Any]:
    user = flask_login.current_user
    return {"user": user.get_id() if user.is_authenticated else None, "cart": cart()}


@app.post("/cart")
def add_to_cart() -> dict[str, Any]:
    flask.session.setdefault("cart", []).append(flask.request.form["item"])
    return {"cart": cart()}


@app.post("/login")
def login() -> dict[str, Any]:
    flask_login.login_user(User(flask.request.form["user"]))  # the session gets a new ID
    return {"user": flask_login.current_user.get_id(), "cart": cart()}


@app.post("/logout")
def logout() -> dict[str, Any]:
    flask_login.logout_user()  # the session is destroyed on the server
    return {"user": None, "cart": cart()}


def cart() -> list[str]:
    items: list[str] = flask.session.get("cart", [])
    return items
