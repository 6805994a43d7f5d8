"""examples/litestar/app.py under uvicorn, a real process on a loopback port, over real HTTP."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .example_server import check_the_four_behaviours, running
from .servers import free_port


def test_the_litestar_example_over_http(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "COATCHECK_STORE_URL": f"sqlite:///{tmp_path}/sessions.db"}
    command = [sys.executable, "-m", "uvicorn", "--app-dir", "examples/litestar", "app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with running(command, port, env) as base:
        check_the_four_behaviours(base)
    assert (tmp_path / "sessions.db").exists()
