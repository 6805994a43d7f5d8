"""examples/aiohttp/app.py run by its own ``web.run_app``, a real process, over real HTTP."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .example_server import check_the_four_behaviours, running
from .servers import free_port


def test_the_aiohttp_example_over_http(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "COATCHECK_STORE_URL": f"sqlite:///{tmp_path}/sessions.db"}
    command = [sys.executable, "examples/aiohttp/app.py", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    with running(command, port, env) as base:
        check_the_four_behaviours(base)
    assert (tmp_path / "sessions.db").exists()
