"""Flask's own session tests (``tests/test_basic.py`` of the installed Flask's sdist), run with
coatcheck's session interface installed on every app they use.

Every test whose name mentions the session or flashing runs; the few that cannot hold for a
server-side session are listed in :data:`EXCLUDED` with the reason, and reported as skipped.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest

from coatcheck.integrations.flask import Session
from coatcheck.stores import MemoryStore

from .upstream import upstream_file


def _load_upstream() -> types.ModuleType:
    module = types.ModuleType("flask_upstream_test_basic")
    module.__file__ = "flask/tests/test_basic.py"
    source = upstream_file("flask", "tests/test_basic.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


UPSTREAM = _load_upstream()
SELECTED = sorted(
    name
    for name, value in vars(UPSTREAM).items()
    if name.startswith("test_") and callable(value) and ("session" in name or "flash" in name)
)
EXCLUDED = {
    "test_missing_session": (
        "expects no session without SECRET_KEY; coatcheck's IDs are random and kept on the "
        "server, so it needs no secret key"
    ),
    "test_session_secret_key_fallbacks": (
        "expects a new SECRET_KEY to make the session unreadable and a fallback key to restore "
        "it; a server-side session does not depend on SECRET_KEY at all"
    ),
}


@pytest.fixture
def app(tmp_path: Path) -> flask.Flask:
    """The fixture of Flask's conftest, with coatcheck installed.

    ``SESSION_PERMANENT=False`` is Flask's own default (sessions are not permanent until
    ``session.permanent = True``), which these tests assume; coatcheck, like Flask-Session,
    defaults to permanent.
    """
    app = flask.Flask("flask_test", root_path=os.fspath(tmp_path))
    app.config.update(
        TESTING=True,
        SECRET_KEY="test key",
        COATCHECK_STORE=MemoryStore(),
        SESSION_PERMANENT=False,
    )
    Session(app)
    return app


@pytest.fixture
def client(app: flask.Flask) -> Any:
    return app.test_client()


@pytest.fixture
def app_ctx(app: flask.Flask) -> Any:
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def req_ctx(app: flask.Flask) -> Any:
    with app.test_request_context() as ctx:
        yield ctx


def test_the_selection_is_not_empty() -> None:
    """A renamed upstream file or test would otherwise run nothing."""
    assert len(SELECTED) >= 10
    assert set(EXCLUDED) <= set(SELECTED)


@pytest.mark.parametrize("name", SELECTED)
def test_flask_session_test_passes_with_coatcheck(
    name: str, request: pytest.FixtureRequest
) -> None:
    if name in EXCLUDED:
        pytest.skip(EXCLUDED[name])
    function: Callable[..., None] = getattr(UPSTREAM, name)
    fixtures = {
        param: request.getfixturevalue(param) for param in inspect.signature(function).parameters
    }
    function(**fixtures)
