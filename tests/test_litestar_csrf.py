"""CSRF through the Litestar integration: ``CoatcheckSessionConfig`` takes the core's CSRF
options and its middleware (coatcheck's ASGI middleware) enforces them (tests/test_csrf.py)."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar, Request, get, post
from litestar.testing import TestClient

from coatcheck.integrations.litestar import CoatcheckSessionConfig, session_of
from coatcheck.stores import MemoryStore

from .servers import serve_asgi

HOST = "shop.example"


@get("/form", sync_to_thread=False)
def form_page(request: Request[Any, Any, Any]) -> str:
    return session_of(request).csrf_token()


@post("/transfer")
async def transfer(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()  # the body the middleware read still reaches the handler
    request.session["paid"] = str(form.get("amount", "none"))
    return {"paid": request.session["paid"]}


@post("/public/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def app(**options: Any) -> Litestar:
    config = CoatcheckSessionConfig(store=MemoryStore(), secure=False, **options)
    return Litestar([form_page, transfer, ping], middleware=[config.middleware])


def client(**options: Any) -> TestClient[Litestar]:
    return TestClient(app(**options), base_url=f"http://{HOST}")


def test_a_plain_http_server_refuses_its_own_host_under_https() -> None:
    """Over real HTTP (uvicorn): ``Origin: https://<host:port>`` is another origin than the
    plain-http site on that host and port."""
    with serve_asgi(app()) as url, httpx.Client(base_url=url) as http:
        netloc = url.removeprefix("http://")
        https = http.post(
            "/transfer", data={"amount": "1"}, headers={"Origin": f"https://{netloc}"}
        )
        assert https.status_code == 403
        same = http.post("/transfer", data={"amount": "2"}, headers={"Origin": f"http://{netloc}"})
        assert same.json() == {"paid": "2"}


def test_token_mode_reads_the_header_or_the_form_field_before_the_handler() -> None:
    with client(csrf="token") as browser:
        token = browser.get("/form").text
        sent = browser.post("/transfer", data={"amount": "2"}, headers={"X-CSRF-Token": token})
        assert sent.json() == {"paid": "2"}
        form = {"csrf_token": browser.get("/form").text, "amount": "3"}
        assert browser.post("/transfer", data=form).json()["paid"] == "3"
        assert browser.post("/transfer", data={"amount": "4"}).status_code == 403


def test_paths_excluded_from_the_session_middleware_skip_its_csrf_check_too() -> None:
    """Litestar's ``exclude`` takes the whole middleware off a route: no session, no check."""
    with client(csrf="token", exclude=["/public/"]) as browser:
        assert browser.post("/public/ping", headers={"Origin": "null"}).status_code == 201
