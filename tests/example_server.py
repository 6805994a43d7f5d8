"""The four behaviours every example must show, checked over real HTTP against a real process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running(command: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    """Start ``command`` (a server on 127.0.0.1:``port``); yield its base URL; stop it after."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    output = process.stdout.read() if process.stdout else b""
                    raise RuntimeError(f"the example did not start: {output.decode()}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def session_id(response: httpx.Response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert len(headers) == 1, response.headers
    return headers[0].split(";", 1)[0].split("=", 1)[1]


def check_the_four_behaviours(base: str) -> None:
    """Anonymous: no cookie; a write persists; login changes the ID; logout kills the old one."""
    with httpx.Client(base_url=base, timeout=10) as http:
        first = http.get("/")
        assert first.status_code == 200
        assert "set-cookie" not in first.headers
        assert first.json() == {"user": None, "cart": []}

        anonymous = session_id(http.post("/cart/apple"))
        cookie = {"Cookie": f"session={anonymous}"}
        http.cookies.clear()
        assert http.get("/", headers=cookie).json() == {"user": None, "cart": ["apple"]}
        assert "set-cookie" not in http.get("/", headers=cookie).headers

        signed_in = session_id(http.post("/login", data={"user": "alice"}, headers=cookie))
        http.cookies.clear()
        assert signed_in != anonymous
        mine = {"Cookie": f"session={signed_in}"}
        assert http.get("/", headers=mine).json() == {"user": "alice", "cart": ["apple"]}
        assert http.get("/", headers=cookie).json() == {"user": None, "cart": []}

        out = http.post("/logout", headers=mine)
        http.cookies.clear()
        assert "Max-Age=0" in out.headers["set-cookie"]
        assert http.get("/", headers=mine).json() == {"user": None, "cart": []}
