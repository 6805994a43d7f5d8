"""Litestar's own server-side session tests, run against coatcheck's ``CoatcheckSessionConfig``.

Litestar's sdist ships no ``tests/``, so the files are vendored, unchanged, in
``tests/.upstream_files/litestar-<version>/`` (at their paths in Litestar's repository; its
README.txt says from which commit, how they were checked against the release, Litestar's MIT
license, and how to re-vendor them). They are read from there, with no network. The folder of
the installed version must be there, else the module fails and says to re-vendor: tests written
for another version are not run against this one. ``tests/.upstream_files/`` starts with a dot
so that pytest and mypy skip it (its ``ruff.toml`` keeps ruff out): the files run only from here.
Each file is run as its own module; the tests run unchanged, on these adaptations:

- the fixtures the files take from Litestar's ``tests/conftest.py``, ``session_backend_config``
  (there parametrized over its cookie and server-side configs) and
  ``session_backend_config_memory``, are defined here and give a ``CoatcheckSessionConfig`` on a
  coatcheck ``MemoryStore``, with ``secure=False`` (the test client speaks plain http) and the
  default cookie name, ``session``, as Litestar's;
- ``test_integration.py``: its module-level ``SessionAuth`` is built on that config instead of
  ``ServerSideSessionConfig()`` (one string replaced);
- ``test_session_auth.py``: ``from tests.models import User, UserFactory`` (``tests`` is
  coatcheck's package here) takes the two from Litestar's own ``tests/models.py``, vendored
  with them.

What runs, and what is left out and why:

tests/unit/test_middleware/test_session/test_middleware.py
    test_integration, test_middleware_exclude_pattern, test_middleware_exclude_flag,
    test_middleware_exclude_custom_key, test_does_not_override_cookies: run.
    test_session_middleware_not_installed_raises: runs (it installs no session middleware at
    all: Litestar's 500 when ``request.session`` has no middleware behind it).
    test_session_id_correctness: EXCLUDED. For a ``ServerSideSessionConfig`` it expects
    ``request.get_session_id()`` to give the handler the session cookie's value; coatcheck
    never hands session IDs to application code, ``get_session_id()`` is None
    (test_litestar.py, ``TestLitestarCalls.test_handlers_are_given_no_session_id``).
    test_keep_session_id: EXCLUDED. It expects two ``set_session(...)`` calls in a row to keep
    one session ID; coatcheck's ``set_session`` replaces the data *and* regenerates the ID (it
    is Litestar's login idiom, and a replaced session must not keep an ID a client may have
    planted: ``test_set_session_replaces_the_data_under_a_new_id``).
    (Both tests take another branch for configs that are not ``ServerSideSessionConfig``, written
    for the cookie backend; it would pass here, but is not what they test of a server-side
    backend, so they are not counted.)
    test_set_empty: EXCLUDED. It reads the result with the test client's
    ``get_session_data()``, which loads through the backend outside any request; a coatcheck
    session exists only inside the middleware's request, so Litestar's test-client session
    helpers do not work with it (docs/integrations/litestar.md). That ``set_session(Empty)``
    empties the session is ``test_set_session_to_empty_is_clear_session``.
tests/unit/test_middleware/test_session/test_integration.py
    test_options_request_with_session_auth: runs (``SessionAuth`` on coatcheck's config lets an
    OPTIONS request through).
tests/unit/test_security/test_session_auth.py
    test_authentication (``SessionAuth`` login with ``set_session``, 401 before it and after
    ``clear_session``, a session whose user is unknown stays 401), test_session_auth_openapi
    (the security scheme names the config's cookie): run.
tests/unit/test_middleware/test_session/test_server_side_backend.py
    EXCLUDED, every test: they test Litestar's ``ServerSideSessionBackend`` and its stores, not
    a middleware coatcheck could stand in for:
    test_non_default_store, test_set_store_name: name a store in Litestar's ``app.stores``
    registry (``store="some_store"``) and look the raw cookie value up in that Litestar
    ``MemoryStore``; coatcheck takes a store object, and keys its records by a hash of the ID,
    never the ID.
    test_get_set, test_get_set_multiple_returns_correct_identity, test_delete,
    test_delete_idempotence, test_get_renew_on_access, test_max_age_expires: call the
    backend's ``get``/``set``/``delete`` on a Litestar ``Store`` by a chosen ID (and its
    ``max_age``/``renew_on_access``, under ``time_machine``); coatcheck's backend has no such
    methods: its engine reads and writes coatcheck stores (tests/test_stores.py), with
    ``idle_timeout`` (always sliding) and ``absolute_timeout`` for Litestar's ``max_age`` and
    ``renew_on_access`` (test_asgi.py, ``test_idle_timeout``, ``test_absolute_timeout_...``).
    test_key_validation, test_max_age_validation: check the arguments of Litestar's
    ``ServerSideSessionConfig(key=..., max_age=...)`` and build no backend; coatcheck's
    ``cookie_name`` and ``idle_timeout`` are checked by ``SessionConfig`` (tests/test_config.py).
tests/unit/test_middleware/test_session/test_client_side_backend.py
    EXCLUDED, the whole file: Litestar's cookie backend (``CookieBackendConfig``), which keeps the
    session data in the cookie; coatcheck never does. The directory's ``conftest.py`` holds only
    that backend's ``session_test_cookies`` fixture.

Other Litestar tests that only use a ``ServerSideSessionConfig`` in passing (the flash plugin,
the logging middleware, the ``litestar sessions`` CLI commands, the docs' examples) are not part
of this selection.
"""

from __future__ import annotations

import sys
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from coatcheck.integrations.litestar import CoatcheckSessionConfig
from coatcheck.stores import MemoryStore

SESSION_TESTS = "tests/unit/test_middleware/test_session/"
VENDORED_FILES = Path(__file__).parent / ".upstream_files"
VENDORED = VENDORED_FILES / f"litestar-{version('litestar')}"

pytestmark = pytest.mark.filterwarnings(
    # Upstream's handlers take ``data`` without a body marker, which Litestar now deprecates.
    "ignore:.*Reserved kwarg 'data' declared without a body marker"
)

if not VENDORED.is_dir():
    _vendored = ", ".join(sorted(p.name for p in VENDORED_FILES.glob("litestar-*"))) or "none"
    pytest.fail(
        f"Litestar {version('litestar')} is installed, but its session tests are not vendored "
        f"in {VENDORED} (vendored: {_vendored}). Re-vendor them for this version: see "
        f"{VENDORED_FILES}/litestar-*/README.txt, 'Re-vendoring'.",
        pytrace=False,
    )


def coatcheck_config() -> CoatcheckSessionConfig:
    """What the upstream tests get for a server-side session config."""
    return CoatcheckSessionConfig(store=MemoryStore(), secure=False)


def _load(member: str, swaps: dict[str, str], names: dict[str, Any]) -> types.ModuleType:
    """Run an upstream file's text, its ``swaps`` applied, as a module holding ``names``."""
    path = VENDORED / member
    source = path.read_text(encoding="utf-8")
    for original, replacement in swaps.items():
        if original not in source:
            raise AssertionError(f"Litestar's {member} no longer has {original!r}: review this")
        source = source.replace(original, replacement)
    module = types.ModuleType("litestar_upstream." + member.removesuffix(".py").replace("/", "."))
    module.__file__ = str(path)
    module.__dict__.update(names)
    sys.modules[module.__name__] = module  # for type hints resolved through the class's module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


MODELS = _load("tests/models.py", {}, {})

FILES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    f"{SESSION_TESTS}test_middleware.py": ({}, {}),
    f"{SESSION_TESTS}test_integration.py": (
        {
            "session_backend_config=ServerSideSessionConfig(),": (
                "session_backend_config=coatcheck_config(),"
            )
        },
        {"coatcheck_config": coatcheck_config},
    ),
    "tests/unit/test_security/test_session_auth.py": (
        {
            "from tests.models import User, UserFactory": (
                "User, UserFactory = litestar_models.User, litestar_models.UserFactory"
            )
        },
        {"litestar_models": MODELS},
    ),
    f"{SESSION_TESTS}test_server_side_backend.py": ({}, {}),
}

_STORE_REGISTRY = (
    "names a store in Litestar's app.stores and looks the raw cookie value up in it; coatcheck "
    "takes a store object and keys records by a hash of the ID"
)
_BACKEND_STORE_CALLS = (
    "calls ServerSideSessionBackend.get/set/delete on a Litestar Store; coatcheck's backend has "
    "no such methods (its engine drives coatcheck's stores)"
)
_CONFIG_ARGUMENTS = (
    "checks the arguments of Litestar's ServerSideSessionConfig, no backend involved; coatcheck's "
    "are checked in tests/test_config.py"
)
EXCLUDED = {
    "test_middleware.py::test_session_id_correctness": (
        "expects request.get_session_id() to be the cookie's value; coatcheck gives handlers no "
        "session ID (None)"
    ),
    "test_middleware.py::test_keep_session_id": (
        "expects set_session to keep the session ID; coatcheck's set_session regenerates it"
    ),
    "test_middleware.py::test_set_empty": (
        "reads through the test client's get_session_data(), which cannot see a coatcheck "
        "session outside a request"
    ),
    "test_server_side_backend.py::test_non_default_store": _STORE_REGISTRY,
    "test_server_side_backend.py::test_set_store_name": _STORE_REGISTRY,
    **{
        f"test_server_side_backend.py::{name}": _BACKEND_STORE_CALLS
        for name in (
            "test_get_set",
            "test_get_renew_on_access",
            "test_get_set_multiple_returns_correct_identity",
            "test_delete",
            "test_delete_idempotence",
            "test_max_age_expires",
        )
    },
    "test_server_side_backend.py::test_key_validation": _CONFIG_ARGUMENTS,
    "test_server_side_backend.py::test_max_age_validation": _CONFIG_ARGUMENTS,
}
EXCLUDED_FILES = {
    f"{SESSION_TESTS}test_client_side_backend.py": "Litestar's cookie backend: data in the cookie",
    f"{SESSION_TESTS}conftest.py": "only a fixture of the cookie backend",
    f"{SESSION_TESTS}__init__.py": "empty",
}


def _excluded(reason: str) -> Any:
    def excluded() -> None:
        pytest.skip(reason)

    return excluded


UPSTREAM = {member: _load(member, *adaptation) for member, adaptation in FILES.items()}
RUN: list[str] = []
_found: set[str] = set()
for _member, _module in UPSTREAM.items():
    _file = _member.rpartition("/")[2]
    _stem = _file.removeprefix("test_").removesuffix(".py")
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and callable(_test):
            _found.add(_upstream := f"{_file}::{_name}")
            _local = f"test_{_stem}__{_name.removeprefix('test_')}"
            if _upstream in EXCLUDED:  # reported as skipped, with the reason
                globals()[_local] = _excluded(EXCLUDED[_upstream])
            else:
                globals()[_local] = _test
                RUN.append(_upstream)
assert set(EXCLUDED) <= _found, f"gone upstream, drop the exclusion: {set(EXCLUDED) - _found}"


@pytest.fixture(autouse=True)
def _no_implicit_sync_to_thread_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Litestar's tests/conftest.py does (its handlers leave ``sync_to_thread`` unset)."""
    monkeypatch.setenv("LITESTAR_WARN_IMPLICIT_SYNC_TO_THREAD", "0")


@pytest.fixture
def session_backend_config() -> CoatcheckSessionConfig:
    """Litestar's fixture, parametrized there over its cookie and server-side configs."""
    return coatcheck_config()


@pytest.fixture
def session_backend_config_memory() -> CoatcheckSessionConfig:
    """Litestar's fixture: a server-side config (there on its memory store)."""
    return coatcheck_config()


def test_every_file_of_the_session_tests_is_run_or_excluded() -> None:
    """A file added upstream would otherwise go unnoticed (the whole directory is vendored)."""
    present = {
        path.relative_to(VENDORED).as_posix() for path in (VENDORED / SESSION_TESTS).glob("*.py")
    }
    assert present == {m for m in FILES if m.startswith(SESSION_TESTS)} | set(EXCLUDED_FILES)


def test_the_upstream_tests_really_use_coatcheck() -> None:
    """The one config an upstream file builds itself is coatcheck's, and tests ran."""
    integration = UPSTREAM[f"{SESSION_TESTS}test_integration.py"]
    assert isinstance(integration.session_auth.session_backend_config, CoatcheckSessionConfig)
    assert len(RUN) >= 9
