"""Shared test set-up: assertion rewriting for the conformance suite, both JSON backends, and
limit tests on the real clock kept inside one counting window."""

import time

import pytest

from coatcheck import SessionConfig, codec

pytest.register_assert_rewrite("coatcheck.testing")


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
