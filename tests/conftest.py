"""Shared test set-up: assertion rewriting for the conformance suite, and both JSON backends."""

import importlib
import sys
from collections.abc import Iterator

import pytest

from coatcheck import codec

pytest.register_assert_rewrite("coatcheck.testing")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["orjson", "stdlib"])
def json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with orjson, then again with the standard library's json module."""
    if request.param == "stdlib":
        saved = sys.modules.get("orjson")
        sys.modules["orjson"] = None  # type: ignore[assignment]
        importlib.reload(codec)
        try:
            yield "stdlib"
        finally:
            if saved is None:
                del sys.modules["orjson"]
            else:
                sys.modules["orjson"] = saved
            importlib.reload(codec)
    else:
        yield "orjson"
