"""The README's quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

README = Path(__file__).parent.parent / "README.md"


def test_the_quickstart_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    with TestClient(namespace["app"], base_url="https://testserver") as client:
        assert client.post("/cart/apple").json() == ["apple"]
        assert client.post("/cart/pear").json() == ["apple", "pear"]
        before = client.cookies["__Host-session"]
        client.post("/login")
        assert client.cookies["__Host-session"] != before
        assert client.post("/cart/fig").json() == ["apple", "pear", "fig"]
    assert (tmp_path / "sessions.db").exists()
