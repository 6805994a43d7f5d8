"""A ``Secure`` cookie sent over plain http to a host other than localhost is dropped by
browsers (Chrome and Firefox spare only localhost; Safari not even that), so every request
starts a new session and login seems to do nothing. The first response that does it logs one
clear warning, in every adapter; localhost, https, a trusted TLS proxy and ``secure=False`` log
none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from coatcheck.exchange import drops_secure_cookie, host_name
from coatcheck.stores import MemoryStore

from .apps import starlette_app
from .test_flask import make_app as flask_app
from .wsgi_app import wsgi_app

WARNING = "the session cookie is Secure, but this response goes over plain http"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(WARNING)]


@pytest.mark.parametrize(
    ("scheme", "host", "dropped"),
    [
        ("http", "192.168.1.20:8000", True),
        ("http", "shop.internal", True),
        ("http", "[fd00::5]:8000", True),
        ("http", "localhost:8000", False),
        ("http", "127.0.0.1", False),
        ("http", "[::1]:8000", False),
        ("https", "192.168.1.20", False),
        ("http", None, False),
    ],
)
def test_which_responses_lose_a_secure_cookie(scheme: str, host: str | None, dropped: bool) -> None:
    assert drops_secure_cookie(scheme, host) is dropped


def test_a_host_header_is_read_without_its_port() -> None:
    assert [host_name(h) for h in ("a.b:80", "a.b", "[::1]:8000", "::1")] == [
        "a.b",
        "a.b",
        "::1",
        "::1",
    ]


def test_the_asgi_middleware_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app = starlette_app(MemoryStore(), secure=True)
    with TestClient(app, base_url="http://192.168.1.20:8000") as client:
        for _ in range(3):
            client.cookies.clear()
            assert client.post("/write", json={"a": 1}).status_code == 200
    assert len(warnings(caplog)) == 1
    assert "192.168.1.20:8000" in warnings(caplog)[0]
    assert "secure=False" in warnings(caplog)[0]


@pytest.mark.parametrize(
    ("base_url", "options"),
    [
        ("http://localhost:8000", {"secure": True}),
        ("https://192.168.1.20", {"secure": True}),
        ("http://192.168.1.20:8000", {"secure": False}),
        ("http://192.168.1.20:8000", {"secure": True, "transport": "header"}),
    ],
)
def test_no_warning_where_the_cookie_is_kept(
    caplog: pytest.LogCaptureFixture, base_url: str, options: dict[str, Any]
) -> None:
    with TestClient(starlette_app(MemoryStore(), **options), base_url=base_url) as client:
        assert client.post("/write", json={"a": 1}).status_code == 200
    assert warnings(caplog) == []


def test_a_trusted_tls_proxy_saying_https_is_believed(caplog: pytest.LogCaptureFixture) -> None:
    app = starlette_app(MemoryStore(), secure=True, trusted_proxies=["10.0.0.0/8"])
    with TestClient(app, base_url="http://shop.example", client=("10.1.2.3", 50000)) as client:
        headers = {"X-Forwarded-Proto": "https"}
        assert client.post("/write", json={"a": 1}, headers=headers).status_code == 200
    assert warnings(caplog) == []


def call_wsgi(app: Callable[..., Any], host: str) -> str:
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/write",
        "QUERY_STRING": "a=1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "192.168.1.7",
        "wsgi.url_scheme": "http",
    }
    b"".join(app(environ, lambda status, headers, exc=None: statuses.append(status)))
    return statuses[0]


def test_the_wsgi_middleware_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app = wsgi_app(MemoryStore(), secure=True)
    assert call_wsgi(app, "localhost:8000") == "200 OK"
    assert warnings(caplog) == []
    for _ in range(2):
        assert call_wsgi(app, "192.168.1.20:8000") == "200 OK"
    assert len(warnings(caplog)) == 1


def test_flask_with_a_secure_cookie_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app = flask_app(MemoryStore(), SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    for _ in range(2):
        client.delete_cookie("session")
        assert client.get("/write/a/1", base_url="http://192.168.1.20:5000").status_code == 200
    assert len(warnings(caplog)) == 1


@pytest.mark.asyncio
async def test_aiohttp_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient as AiohttpClient
    from aiohttp.test_utils import TestServer

    from coatcheck.integrations.aiohttp import get_session, setup

    async def write(request: web.Request) -> web.Response:
        (await get_session(request))["a"] = 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/write", write)
    setup(app, store=MemoryStore(), secure=True)
    async with AiohttpClient(TestServer(app)) as client:
        for _ in range(2):
            client.session.cookie_jar.clear()
            response = await client.get("/write", headers={"Host": "192.168.1.20:8080"})
            assert response.status == 200
    assert len(warnings(caplog)) == 1


def test_a_real_server_behind_a_lan_name(caplog: pytest.LogCaptureFixture) -> None:
    """Over real HTTP: the app reached as a LAN host gives the warning with the name it was
    reached by."""
    from .servers import serve_asgi

    with serve_asgi(starlette_app(MemoryStore(), secure=True)) as url:
        response = httpx.post(url + "/write", json={"a": 1}, headers={"Host": "shop.lan:8000"})
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]
    assert len(warnings(caplog)) == 1
    assert "shop.lan:8000" in warnings(caplog)[0]
