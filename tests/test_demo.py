"""`coatcheck demo` over real HTTP: a real process on a loopback port, on the SQLite store."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import free_port


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coatcheck.cli",
            "demo",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{tmp_path}/demo.db",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
                raise RuntimeError(f"demo did not start: {output.decode()}") from None
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)


def sid_of(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def test_the_demo_walks_through_a_session(demo: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=demo, follow_redirects=False) as http:
        first = http.get("/")
        assert first.status_code == 200
        assert "set-cookie" not in first.headers  # an anonymous visit creates nothing
        added = http.post("/add/apple")
        anonymous = sid_of(added)
        cookie = {"Cookie": f"session={anonymous}"}
        assert "Apple x 1" in http.get("/", headers=cookie).text
        logged_in = http.post("/login", data={"user": "alice"}, headers=cookie)
        user_sid = sid_of(logged_in)
        assert user_sid != anonymous  # login regenerated the ID
        page = http.get("/", headers={"Cookie": f"session={user_sid}"}).text
        assert "Logged in as <b>alice</b>" in page
        assert "Apple x 1" in page
        assert "<h2>Cart</h2><p>empty</p>" in http.get("/", headers=cookie).text  # old ID dead
        out = http.post("/logout", headers={"Cookie": f"session={user_sid}"})
        assert "Max-Age=0" in out.headers["set-cookie"]
        replay = http.get("/", headers={"Cookie": f"session={user_sid}"}).text
        assert "Anonymous." in replay
    assert (tmp_path / "demo.db").exists()


def test_a_bad_store_url_is_one_line_and_a_nonzero_exit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", "demo", "--store", "nope://x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
