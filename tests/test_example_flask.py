"""examples/flask/app.py over real HTTP: ``flask run`` in its own process on a local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("flask-example")
    port = free_port()
    env = {**os.environ, "COATCHECK_STORE_URL": f"sqlite:///{folder / 'sessions.db'}"}
    env.pop("FLASK_DEBUG", None)
    command = [sys.executable, "-m", "flask", "--app", "examples/flask/app.py", "run"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-reload", "--no-debugger"]
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if server.poll() is not None:
                raise RuntimeError((folder / "server.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def session_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith("session=")
    return header.split(";", 1)[0].split("=", 1)[1]


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


def test_an_anonymous_visit_sets_no_cookie(base_url: str) -> None:
    response = httpx.get(base_url + "/")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "set-cookie" not in httpx.get(base_url + "/me").headers


def test_a_write_persists_across_requests(base_url: str) -> None:
    first = httpx.post(base_url + "/cart", data={"item": "apple"})
    sid = session_cookie(first)
    second = httpx.post(base_url + "/cart", data={"item": "pear"}, headers=with_cookie(sid))
    assert second.json() == {"cart": ["apple", "pear"]}
    assert httpx.get(base_url + "/me", headers=with_cookie(sid)).json() == {
        "user": None,
        "cart": ["apple", "pear"],
    }


def test_login_regenerates_the_session_id_and_logout_makes_the_old_cookie_anonymous(
    base_url: str,
) -> None:
    anonymous = session_cookie(httpx.post(base_url + "/cart", data={"item": "apple"}))
    login = httpx.post(base_url + "/login", data={"user": "alice"}, headers=with_cookie(anonymous))
    logged_in = session_cookie(login)
    assert logged_in != anonymous
    assert login.json() == {"user": "alice", "cart": ["apple"]}
    # The pre-login ID is worth nothing now (session fixation defence).
    assert httpx.get(base_url + "/me", headers=with_cookie(anonymous)).json() == {
        "user": None,
        "cart": [],
    }
    assert httpx.get(base_url + "/me", headers=with_cookie(logged_in)).json()["user"] == "alice"

    logout = httpx.post(base_url + "/logout", headers=with_cookie(logged_in))
    assert session_cookie(logout) == ""  # the browser is told to drop the cookie
    replay = httpx.get(base_url + "/me", headers=with_cookie(logged_in))
    assert replay.json() == {"user": None, "cart": []}
