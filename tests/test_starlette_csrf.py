"""CSRF through the Starlette (and FastAPI) integration: the core middleware's checks
(tests/test_csrf.py), configured with the same option names beside Starlette's arguments."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from coatcheck.events import SessionEvent
from coatcheck.integrations.starlette import SessionMiddleware, session_of
from coatcheck.stores import MemoryStore

from .servers import serve_asgi

HOST = "shop.example"


async def form_page(request: Request) -> Response:
    return PlainTextResponse(session_of(request).csrf_token())


async def search(request: Request) -> Response:
    """A form that writes nothing to the session."""
    form = await request.form()
    return PlainTextResponse(f"results for {form.get('q')}")


def app(**options: Any) -> SessionMiddleware:
    routes = [
        Route("/form", form_page),
        Route("/search", search, methods=["POST"]),
        Route("/hooks/pay", search, methods=["POST"]),
    ]
    return SessionMiddleware(
        Starlette(routes=routes), secret_key="not a secret", store=MemoryStore(), **options
    )


def client(**options: Any) -> TestClient:
    return TestClient(app(**options), base_url=f"http://{HOST}")


def test_a_plain_http_server_refuses_its_own_host_under_https() -> None:
    """Over real HTTP (uvicorn): ``Origin: https://<host:port>`` is another origin than the
    plain-http site on that host and port."""
    with serve_asgi(app()) as url, httpx.Client(base_url=url) as http:
        netloc = url.removeprefix("http://")
        https = http.post("/search", data={"q": "a"}, headers={"Origin": f"https://{netloc}"})
        assert https.status_code == 403
        same = http.post("/search", data={"q": "a"}, headers={"Origin": f"http://{netloc}"})
        assert same.text == "results for a"


def test_token_mode_and_its_options_are_taken_beside_starlettes_arguments() -> None:
    events: list[SessionEvent] = []
    browser = client(
        csrf="token",
        csrf_header="X-XSRF",
        csrf_field="_xsrf",
        csrf_exempt=["/hooks/"],
        trusted_origins=["https://app.example"],
        on_event=events.append,
    )
    token = browser.get("/form").text
    assert browser.post("/search", data={"_xsrf": token, "q": "a"}).text == "results for a"
    trusted = {"Origin": "https://app.example", "X-XSRF": token}
    assert browser.post("/search", headers=trusted).status_code == 200
    assert browser.post("/hooks/pay", headers={"Origin": "https://evil.example"}).status_code == 200
    assert browser.post("/search", data={"q": "a"}).status_code == 403
    assert (events[-1].kind, events[-1].reason) == ("rejected", "csrf: no CSRF token")


def test_a_session_holding_only_its_csrf_token_is_not_ended_as_empty() -> None:
    """Starlette ends a stored session left empty; one that holds a token that pages carry must
    stay, or the form shown on the second visit could never be sent."""
    browser = client(csrf="token")
    first = browser.get("/form").text
    second = browser.get("/form").text  # the stored session has no data, only its token
    assert browser.post("/search", data={"csrf_token": second, "q": "a"}).status_code == 200
    assert browser.post("/search", data={"csrf_token": first, "q": "b"}).status_code == 200
