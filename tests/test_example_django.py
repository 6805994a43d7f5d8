"""examples/django/app.py over real HTTP: Django's own server in a process on a loopback port.

Sessions are in coatcheck's SQLite store (a temporary file); login and logout go through
``django.contrib.auth``, with CSRF protection on, as a browser would meet them.
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

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django" / "app.py"
COOKIE = "sessionid"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scratch = tmp_path_factory.mktemp("django-example")
    port = free_port()
    env = {
        **os.environ,
        "COATCHECK_STORE_URL": f"sqlite:///{scratch}/sessions.db",
        "DEMO_DATABASE": str(scratch / "users.sqlite3"),
    }
    command = [sys.executable, str(EXAMPLE), "runserver", "--noreload", f"127.0.0.1:{port}"]
    log = scratch / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the example did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)


class Browser:
    """Sends exactly the session cookie a test chooses, plus the CSRF cookie and token."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.csrf_cookie = ""
        self.csrf_token = ""

    def refresh_csrf(self) -> None:
        response = self.http.get("/login")
        self.csrf_cookie = response.cookies["csrftoken"]
        self.csrf_token = response.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]

    def request(
        self, method: str, path: str, session: str | None, data: dict[str, str] | None = None
    ) -> httpx.Response:
        cookies = [f"csrftoken={self.csrf_cookie}"] if self.csrf_cookie else []
        if session is not None:
            cookies.append(f"{COOKIE}={session}")
        headers = {"Cookie": "; ".join(cookies)} if cookies else {}
        if method == "POST":
            headers["X-CSRFToken"] = self.csrf_token
        return self.http.request(method, path, headers=headers, data=data)


def session_cookie(response: httpx.Response) -> str | None:
    """The value the response sets for the session cookie ('' when it deletes it), or None."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.split(";", 1)[0].strip('"')
    return None


def test_anonymous_visit_sets_no_cookie(base_url: str) -> None:
    response = httpx.get(base_url + "/")
    assert response.json() == {"user": None, "visits": 0}
    assert "set-cookie" not in response.headers


def test_writes_persist_login_regenerates_and_logout_ends_the_session(base_url: str) -> None:
    browser = Browser(base_url)
    browser.refresh_csrf()

    first = browser.request("POST", "/visit", None)
    anonymous_id = session_cookie(first)
    assert anonymous_id is not None
    assert browser.request("POST", "/visit", anonymous_id).json() == {"visits": 2}
    assert browser.request("GET", "/", anonymous_id).json() == {"user": None, "visits": 2}

    login = browser.request(
        "POST", "/login", anonymous_id, {"username": "ada", "password": "lovelace"}
    )
    assert login.json() == {"user": "ada"}
    user_id = session_cookie(login)
    assert user_id is not None
    assert user_id != anonymous_id, "login must give the session a new ID"
    assert browser.request("GET", "/", user_id).json() == {"user": "ada", "visits": 2}
    replayed = browser.request("GET", "/", anonymous_id).json()
    assert replayed == {"user": None, "visits": 0}, "the pre-login ID must be dead"

    browser.refresh_csrf()  # login rotates the CSRF secret
    logout = browser.request("POST", "/logout", user_id)
    assert logout.json() == {"user": None}
    assert session_cookie(logout) == ""  # Django deletes the cookie
    assert browser.request("GET", "/", user_id).json() == {"user": None, "visits": 0}
