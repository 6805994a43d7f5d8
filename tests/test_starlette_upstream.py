"""Starlette's own session tests, run against coatcheck's drop-in SessionMiddleware.

The file is tests/middleware/test_session.py from the sdist of the installed Starlette. Two
import lines change and nothing else: SessionMiddleware comes from
``coatcheck.integrations.starlette``, and ``TestClientFactory`` (Starlette's tests/types.py,
a type alias) is defined here. The ``test_client_factory`` fixture is Starlette's own, from its
tests/conftest.py.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Literal

import pytest
from starlette.testclient import TestClient

from .upstream import upstream_file

IMPORT_SWAPS = {
    "from starlette.middleware.sessions import Session, SessionMiddleware": (
        "from starlette.middleware.sessions import Session\n"
        "from coatcheck.integrations.starlette import SessionMiddleware"
    ),
    "from tests.types import TestClientFactory": (
        "import typing\nTestClientFactory = typing.Callable[..., TestClient]"
    ),
}

EXCLUDED = {
    "test_session_expires": (
        "uses max_age=-1, which coatcheck refuses at start-up (a session that expires as it is "
        "written); that an expired session's cookie is refused is "
        "test_starlette.py::test_an_expired_sessions_cookie_gives_an_empty_session"
    ),
    "test_session_zero_max_age": (
        "uses max_age=0, refused at start-up like any max_age <= 0 "
        "(test_starlette.py::test_a_max_age_that_is_not_positive_is_refused)"
    ),
    "test_session_tracks_modification": (
        "tests starlette.middleware.sessions.Session, Starlette's own class, not the middleware; "
        "coatcheck's Session has its own tests (tests/test_session.py), and how the middleware "
        "acts on changes is covered by the other tests here"
    ),
}


def _load() -> types.ModuleType:
    source = upstream_file("starlette", "tests/middleware/test_session.py")
    for original, replacement in IMPORT_SWAPS.items():
        if original not in source:
            raise AssertionError(f"Starlette's test file no longer has {original!r}")
        source = source.replace(original, replacement)
    module = types.ModuleType("starlette_upstream_test_session")
    exec(compile(source, "starlette/tests/middleware/test_session.py", "exec"), module.__dict__)
    return module


_upstream = _load()
_tests = {name: value for name, value in vars(_upstream).items() if name.startswith("test_")}
assert set(EXCLUDED) <= set(_tests), "an excluded test is gone upstream: drop its exclusion"
globals().update({name: test for name, test in _tests.items() if name not in EXCLUDED})


@pytest.fixture
def test_client_factory(
    anyio_backend_name: Literal["asyncio", "trio"], anyio_backend_options: dict[str, Any]
) -> Any:
    """Starlette's fixture: TestClient on the anyio backend under test."""
    return functools.partial(
        TestClient, backend=anyio_backend_name, backend_options=anyio_backend_options
    )


def test_the_upstream_file_really_uses_coatcheck() -> None:
    from coatcheck.integrations.starlette import SessionMiddleware

    assert _upstream.SessionMiddleware is SessionMiddleware
