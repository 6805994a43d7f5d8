"""examples/starlette and examples/fastapi over real HTTP: uvicorn in a process of its own.

Each example runs once on its default store (SQLite under .demo/ in its working directory, a
temporary one here) and once on Redis (COATCHECK_STORE_URL, under a key prefix of its own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import free_port
from .services import REDIS_URL
from .test_redis import prefix  # noqa: F401  (the fixture: a Redis key prefix, deleted after)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def serve(example: str, cwd: Path, store_url: str | None) -> Iterator[str]:
    """Run ``uvicorn app:app`` for examples/<example>; yield its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "COATCHECK_STORE_URL"}
    if store_url is not None:
        env["COATCHECK_STORE_URL"] = store_url
    command = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES / example)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                output = process.stdout.read() if process.stdout else b""
                raise RuntimeError(f"{example} did not start: {output.decode()}") from None
            time.sleep(0.05)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(params=["starlette", "fastapi"])
def example(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def on_sqlite(example: str, tmp_path: Path) -> Iterator[str]:
    """The example on its default store, run from a temporary working directory."""
    yield from serve(example, tmp_path, None)
    assert (tmp_path / ".demo" / f"{example}-sessions.db").exists()


@pytest.fixture
def on_redis(example: str, tmp_path: Path, prefix: str) -> Iterator[str]:  # noqa: F811
    yield from serve(example, tmp_path, f"{REDIS_URL}?prefix={prefix}")
    assert not (tmp_path / ".demo").exists()


def session_id(response: httpx.Response) -> str:
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session=")
    return cookie.split(";", 1)[0].removeprefix("session=")


def walk_through_a_session(base: str) -> None:
    """Anonymous, a write, login, logout, as one browser would, then replaying old cookies."""
    with httpx.Client(base_url=base) as http:

        def as_(session: str) -> dict[str, str]:
            return {"Cookie": f"session={session}"}

        anonymous_visit = http.get("/")
        assert anonymous_visit.json() == {"user": None, "cart": []}
        assert "set-cookie" not in anonymous_visit.headers  # nothing is stored for a visit

        anonymous = session_id(http.post("/cart/apple"))
        again = http.get("/", headers=as_(anonymous))
        assert again.json() == {"user": None, "cart": ["apple"]}  # the write persisted
        assert "set-cookie" not in again.headers

        logged_in = session_id(http.post("/login", json={"user": "alice"}, headers=as_(anonymous)))
        assert logged_in != anonymous  # login regenerated the ID
        assert http.get("/", headers=as_(logged_in)).json() == {"user": "alice", "cart": ["apple"]}
        assert http.get("/", headers=as_(anonymous)).json() == {"user": None, "cart": []}

        out = http.post("/logout", headers=as_(logged_in))
        assert "Max-Age=0" in out.headers["set-cookie"]
        replay = http.get("/", headers=as_(logged_in))  # the old cookie is anonymous now
        assert replay.json() == {"user": None, "cart": []}


def test_the_example_on_its_default_sqlite_store(on_sqlite: str) -> None:
    walk_through_a_session(on_sqlite)


def test_the_example_on_redis(on_redis: str) -> None:
    walk_through_a_session(on_redis)
