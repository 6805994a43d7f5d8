"""aiohttp-session's own tests, from the sdist of the installed version, run against coatcheck.

Each file's ``from aiohttp_session import ...`` is replaced by coatcheck's counterparts (below,
``COUNTERPARTS``): ``get_session`` and the session key are coatcheck's, ``session_middleware(
storage)`` builds coatcheck's middleware on a MemoryStore (coatcheck keeps no data in cookies, so
the storage argument has no counterpart and is ignored), and ``Session(...)`` makes a fresh
coatcheck session. The tests then run unchanged. What runs, and what is left out and why:

test_http_exception.py
    test_exceptions: runs (a raised HTTPFound carries the session written before it).
test_response_types.py
    test_bad_response_type: runs (a handler returning a non-response is a RuntimeError).
    test_stream_response: EXCLUDED. It asserts aiohttp-session sets no cookie on a returned,
    unprepared StreamResponse; coatcheck commits the session for every kind of response, and
    the assertion would pass vacuously anyway (it looks for aiohttp-session's cookie name).
    test_prepared_response_type: EXCLUDED. It expects a RuntimeError for a response the handler
    already prepared; coatcheck commits such responses as they are prepared (through
    ``on_response_prepare`` when installed with ``setup``), tested in test_aiohttp.py.
test_get_session.py
    test_get_stored_session, test_session_is_not_stored: run.
    test_storage_returns_not_session_on_load_session, test_get_new_session_no_storage,
    test_get_new_session_bad_return: EXCLUDED. They test the storage protocol
    (``request[STORAGE_KEY]``, ``AbstractStorage.load_session``/``new_session``), which
    coatcheck replaces with its engine and stores.
    test_get_new_session: EXCLUDED. It expects ``new_session`` to return another object;
    coatcheck's empties the request's one session in place (the old record is destroyed at
    commit), so ``request[SESSION_KEY]`` and earlier references stay the same session.
test_session_middleware.py
    test_session_middleware_bad_storage: EXCLUDED (``session_middleware(None)`` checks the
    storage's type; coatcheck's middleware takes a store, checked when it is first used).
test_session_dict.py, test_abstract_storage.py
    EXCLUDED: aiohttp-session's ``Session`` class and ``AbstractStorage`` cookie helpers, not
    part of coatcheck's API (coatcheck's Session has its own tests, tests/test_session.py).
test_cookie_storage.py, test_encrypted_cookie_storage.py, test_nacl_storage.py,
test_path_domain.py
    EXCLUDED: cookie storages, which keep the session data in the cookie; coatcheck never does.
test_redis_storage.py, test_memcached_storage.py
    EXCLUDED: they read and write aiohttp-session's key layout in Redis/Memcached directly and
    start servers with Docker. Their behaviours (fixation, invalidation, unknown keys, expiry)
    are specified on coatcheck's Redis store in test_aiohttp.py, TestOnRedis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from coatcheck.integrations.aiohttp import SESSION_KEY, SessionMiddleware, get_session
from coatcheck.session import Session as CoatcheckSession
from coatcheck.stores import MemoryStore

from .upstream import upstream_file

RUN = {
    "tests/test_http_exception.py": ["test_exceptions"],
    "tests/test_response_types.py": ["test_bad_response_type"],
    "tests/test_get_session.py": ["test_get_stored_session", "test_session_is_not_stored"],
}


def session_middleware(storage: object) -> SessionMiddleware:
    return SessionMiddleware(store=MemoryStore(), secure=False)


def simple_cookie_storage() -> None:
    return None


def session(identity: object, data: object, new: bool) -> CoatcheckSession:
    return CoatcheckSession.fresh(now=time.time(), max_size=64 * 1024)


AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]

COUNTERPARTS: dict[str, Any] = {
    "get_session": get_session,
    "session_middleware": session_middleware,
    "SimpleCookieStorage": simple_cookie_storage,
    "SESSION_KEY": SESSION_KEY,
    "Session": session,
    "AiohttpClient": AiohttpClient,
}

_IMPORTS = re.compile(
    r"^from aiohttp_session import \([^)]*\)\n|^from aiohttp_session import [^\n]*\n"
    r"|^from \.typedefs import [^\n]*\n",
    re.MULTILINE,
)


def _load(member: str) -> dict[str, Any]:
    """Run an upstream test file's text with its aiohttp-session imports swapped."""
    source, count = _IMPORTS.subn("", upstream_file("aiohttp-session", member))
    assert count >= 1, f"{member}: aiohttp-session's imports were not found"
    namespace: dict[str, Any] = {"__name__": f"aiohttp_session_upstream.{member}"}
    namespace.update(COUNTERPARTS)
    exec(compile(source, f"aiohttp-session/{member}", "exec"), namespace)
    return namespace


for _member, _names in RUN.items():
    _namespace = _load(_member)
    for _name in _names:
        _stem = _member.removeprefix("tests/test_").removesuffix(".py")
        globals()[f"test_{_stem}__{_name.removeprefix('test_')}"] = pytest.mark.asyncio(
            _namespace[_name]
        )
