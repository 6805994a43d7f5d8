"""Shared test set-up: temporary directories in memory, one TLS context for the test's HTTP
clients, assertion rewriting for the conformance suite, both JSON backends, limit tests on the
real clock kept inside one counting window, and the shop's memory:// cluster."""

import os
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from coatcheck import SessionConfig, codec

from .shop_servers import Demo, require_nginx, run_demo

pytest.register_assert_rewrite("coatcheck.testing")


def _temporary_directories_in_memory() -> None:
    """Root ``tmp_path`` and ``tmp_path_factory`` in /dev/shm (tmpfs) where there is one.

    The stores the tests make there (SQLite, files, checkpoints, a private redis-server's
    append-only file) sync every write to disk; on the CI machine's virtual disk each sync
    costs milliseconds. In memory the same calls are made and answer at once. pytest's own
    ``PYTEST_DEBUG_TEMPROOT`` picks the root, so its numbered, per-user, locked directories
    (safe for runs side by side) and their retention stay as they are; a root given in the
    environment wins, and a /dev/shm with less than a gibibyte free (a container's) is passed by.
    """
    memory = "/dev/shm"
    if "PYTEST_DEBUG_TEMPROOT" in os.environ or not os.access(memory, os.W_OK | os.X_OK):
        return
    free = os.statvfs(memory)
    if free.f_bavail * free.f_frsize >= 2**30:
        os.environ["PYTEST_DEBUG_TEMPROOT"] = memory


_temporary_directories_in_memory()


def _one_tls_context_for_every_http_client() -> None:
    """Make httpx build its default TLS context once, not once per client.

    Every ``httpx.Client`` (each ``httpx.get`` too) reads a whole CA bundle into a new context
    of its own: tens of milliseconds, thousands of times a run. The tests speak plain HTTP to
    servers on loopback, so no certificate is ever checked with it; their clients share the
    first context made (for the same CA settings). A client given ``verify`` or ``cert`` of its
    own gets its own context, as before.
    """
    create = httpx.create_ssl_context
    made: dict[tuple[str | None, str | None], ssl.SSLContext] = {}

    def create_ssl_context(
        verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None or not trust_env:
            return create(verify=verify, cert=cert, trust_env=trust_env)
        settings = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if settings not in made:
            made[settings] = create(verify=verify, cert=cert, trust_env=trust_env)
        return made[settings]

    # Where httpx's transports look it up; should a later httpx move it, nothing breaks (the
    # clients make their own contexts again).
    pytest.MonkeyPatch().setattr(
        "httpx._transports.default.create_ssl_context", create_ssl_context, raising=False
    )


_one_tls_context_for_every_http_client()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["orjson", "stdlib"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with orjson, then again with the standard library's json module."""
    if request.param == "stdlib":
        monkeypatch.setattr(codec, "dumps", codec.stdlib_dumps)
        monkeypatch.setattr(codec, "loads", codec.stdlib_loads)
    return str(request.param)


@pytest.fixture
def fresh_limit_window() -> None:
    """Start a test that counts against a limit on the real clock well inside a counting window.

    Windows are aligned to the clock (``limit_window``, 60 seconds by default), so one ending
    mid-test would reset the count and let through what the test expects refused. If the current
    window ends within ten seconds, wait for the next one to begin.
    """
    window = SessionConfig().limit_window
    left = window - time.time() % window
    if left < 10:
        time.sleep(left + 0.1)


@pytest.fixture(scope="session")
def memory_cluster() -> Iterator[Demo]:
    """`coatcheck demo --store memory:// --instances 3` behind its nginx, started once for the
    shop's tests that show what per-process memory does behind a balancer (in the browser, over
    the API, on the lost-session page). None of them stops an instance, and each makes sessions
    of its own: what one leaves in an instance's memory, no other looks up."""
    require_nginx()
    with run_demo("--store", "memory://", "--instances", "3") as demo:
        yield demo
