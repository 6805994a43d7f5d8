"""Shared test set-up: assertion rewriting for the conformance suite, and both JSON backends."""

import pytest

from coatcheck import codec

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
