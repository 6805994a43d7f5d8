"""`coatcheck demo` as the tests run it: a real subprocess, real HTTP, the programs it needs, and
how a client of the shop gets and sends its CSRF token.

Outside CI a missing nginx or Chromium skips the tests that need it; under ``CI=true`` it fails
them, since scripts/test installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .servers import free_port
from .services import REDIS_URL, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""How the browser tests launch Debian's Chromium (Playwright never downloads a browser)."""


def require_program(name: str, found: str | None, install: str) -> str:
    """Skip (or, under CI=true, fail) unless a program is installed; return its path."""
    if found is not None:
        return found
    message = f"{name} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide it (scripts/test installs it)", pytrace=False)
    pytest.skip(message)


def require_nginx() -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"])
    return require_program("nginx", shutil.which("nginx", path=path), "apt-get install nginx")


def require_chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else None
    return require_program("Chromium", found, "apt-get install chromium")


def pid_of(response: httpx.Response) -> int:
    """The process that answered, from the ``X-Instance`` header."""
    found = re.search(r"pid (\d+)", response.headers["x-instance"])
    assert found is not None, response.headers["x-instance"]
    return int(found.group(1))


@dataclass
class Demo:
    """A running `coatcheck demo`."""

    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def run_demo(*arguments: str, timeout: float = 30) -> Iterator[Demo]:
    """Run ``coatcheck demo ARGUMENTS`` on a free port until the shop answers; stop it after.

    Stopping it (SIGTERM) must stop everything it started: the test checks nothing is left.
    """
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) as log:
        command = [sys.executable, "-m", "coatcheck.cli", "demo", "--port", str(port)]
        process = subprocess.Popen(
            [*command, *arguments], stdout=log, stderr=subprocess.STDOUT, text=True
        )
    demo = Demo(f"http://127.0.0.1:{port}", process, Path(log.name))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(demo.url + "/api/products", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coatcheck demo did not start:\n{demo.output()}")
            time.sleep(0.05)
        yield demo
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the test
            process.kill()
            process.wait()
            raise
        finally:
            demo.log.unlink(missing_ok=True)


@contextmanager
def redis_store_url() -> Iterator[str]:
    """A Redis store URL with a key prefix of its own; its keys are deleted afterwards."""
    require("Redis", "127.0.0.1", 6379)
    import redis

    prefix = f"test-shop-{uuid.uuid4().hex[:12]}:"
    try:
        yield f"{REDIS_URL}?prefix={prefix}"
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
        client.close()


def csrf_token(http: httpx.Client) -> str:
    """Fetch the session's CSRF token (``GET /api/csrf``); ``http`` sends it from then on."""
    response = http.get("/api/csrf")
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    http.headers["x-csrf-token"] = token
    return token


def log_in(http: httpx.Client, user: str = "alice") -> dict[str, Any]:
    """Log in through the API as a client does: a token first, then the login, whose answer
    carries the session's new token (sent from then on). Returns that answer."""
    csrf_token(http)
    response = http.post("/api/login", json={"username": user, "password": "coatcheck"})
    assert response.status_code == 200, response.text
    me: dict[str, Any] = response.json()
    http.headers["x-csrf-token"] = me["csrf_token"]
    return me


def form_token(page: str) -> str:
    """The CSRF token in a page's first form."""
    found = re.search(r'<input type="hidden" name="csrf_token" value="([^"]+)">', page)
    assert found is not None, "the page has no form carrying a CSRF token"
    return found.group(1)
