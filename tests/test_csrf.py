"""CSRF: unsafe requests must come from the site itself and, in token mode, carry the session's
token; reads are never checked. The same rules through the ASGI and the WSGI middleware."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from coatcheck import ConfigError, SessionConfig
from coatcheck.asgi import SessionMiddleware as ASGISessionMiddleware
from coatcheck.asgi import session_of
from coatcheck.events import SessionEvent
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.wsgi import ENVIRON_KEY
from coatcheck.wsgi import SessionMiddleware as WSGISessionMiddleware

HOST = "shop.example"


async def form_page(request: Request) -> Response:
    return PlainTextResponse(session_of(request).csrf_token())


async def transfer(request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode()))  # the body still reaches the app
    session = session_of(request)
    session["paid"] = form.get("amount", "json")
    return JSONResponse({"paid": session["paid"]})


async def login(request: Request) -> Response:
    session_of(request).login("alice")
    return PlainTextResponse("ok")


def asgi_app(**options: Any) -> ASGISessionMiddleware:
    app = Starlette(
        routes=[
            Route("/form", form_page),
            Route("/transfer", transfer, methods=["POST"]),
            Route("/hooks/pay", transfer, methods=["POST"]),
            Route("/login", login, methods=["POST"]),
        ]
    )
    options.setdefault("secure", False)
    return ASGISessionMiddleware(app, store=MemoryStore(), **options)


def wsgi_route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session: Session = environ[ENVIRON_KEY]
    path = environ["PATH_INFO"]
    if path == "/form":
        body = session.csrf_token().encode()
    elif path == "/login":
        session.login("alice")
        body = b"ok"
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = dict(parse_qsl(environ["wsgi.input"].read(length).decode()))
        session["paid"] = form.get("amount", "json")
        body = json.dumps({"paid": session["paid"]}).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def wsgi_app(**options: Any) -> WSGISessionMiddleware:
    options.setdefault("secure", False)
    return WSGISessionMiddleware(wsgi_route, store=MemoryStore(), **options)


ClientFactory = Callable[..., Any]  # an httpx-style client (Starlette's TestClient for ASGI)


@pytest.fixture(params=["asgi", "wsgi"])
def make_client(request: pytest.FixtureRequest) -> Iterator[ClientFactory]:
    opened: list[Any] = []

    def make(**options: Any) -> Any:
        base = f"http://{HOST}"
        client: Any
        if request.param == "asgi":
            client = TestClient(asgi_app(**options), base_url=base)
        else:
            transport = httpx.WSGITransport(app=wsgi_app(**options))
            client = httpx.Client(transport=transport, base_url=base)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


# -- origin checks (the default) ---------------------------------------------------------------


def test_same_site_and_header_less_requests_pass_by_default(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.post("/transfer", data={"amount": "1"}).json() == {"paid": "1"}
    same = client.post("/transfer", data={"amount": "2"}, headers={"Origin": f"http://{HOST}"})
    assert same.status_code == 200
    fetch = client.post("/transfer", headers={"Sec-Fetch-Site": "same-origin"})
    assert fetch.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{HOST}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    ],
)
def test_cross_site_writes_are_refused_by_default(
    make_client: ClientFactory, headers: dict[str, str]
) -> None:
    client = make_client()
    response = client.post("/transfer", data={"amount": "100"}, headers=headers)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "set-cookie" not in response.headers  # nothing was stored for the forged request


def test_cross_site_reads_are_not_checked(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.get("/form", headers={"Origin": "https://evil.example"}).status_code == 200


def test_trusted_origins_and_exempt_paths(make_client: ClientFactory) -> None:
    client = make_client(
        trusted_origins=["https://app.example"], csrf_exempt=["/hooks/"], csrf="token"
    )
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert client.post("/hooks/pay", headers=evil).status_code == 200
    trusted = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    token = client.get("/form").text
    response = client.post("/transfer", headers={**trusted, "X-CSRF-Token": token})
    assert response.status_code == 200


def test_csrf_off_checks_nothing(make_client: ClientFactory) -> None:
    client = make_client(csrf="off")
    response = client.post("/transfer", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200


# -- token mode ---------------------------------------------------------------------------------


def test_a_form_carrying_the_token_passes_and_its_body_reaches_the_app(
    make_client: ClientFactory,
) -> None:
    client = make_client(csrf="token")
    token = client.get("/form").text
    response = client.post("/transfer", data={"csrf_token": token, "amount": "5"})
    assert response.status_code == 200
    assert response.json() == {"paid": "5"}


def test_the_token_may_come_in_a_header(make_client: ClientFactory) -> None:
    client = make_client(csrf="token")
    token = client.get("/form").text
    assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 200


def test_every_response_masks_the_token_afresh(make_client: ClientFactory) -> None:
    client = make_client(csrf="token")
    first, second = client.get("/form").text, client.get("/form").text
    assert first != second
    for token in (first, second):
        assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 200


@pytest.mark.parametrize("token", [None, "", "garbage", "A" * 86])
def test_a_missing_empty_or_forged_token_is_refused(
    make_client: ClientFactory, token: str | None
) -> None:
    client = make_client(csrf="token")
    client.get("/form")  # the session has a token; the request does not carry it
    data = {"amount": "100"} if token is None else {"amount": "100", "csrf_token": token}
    assert client.post("/transfer", data=data).status_code == 403


def test_another_sessions_token_is_refused(make_client: ClientFactory) -> None:
    attacker, victim = make_client(csrf="token"), make_client(csrf="token")
    stolen = attacker.get("/form").text
    victim.get("/form")
    assert victim.post("/transfer", data={"csrf_token": stolen}).status_code == 403


def test_a_request_without_a_session_has_no_token_to_match(make_client: ClientFactory) -> None:
    other = make_client(csrf="token")
    token = other.get("/form").text
    client = make_client(csrf="token")
    assert client.post("/transfer", headers={"X-CSRF-Token": token}).status_code == 403


def test_login_renews_the_token(make_client: ClientFactory) -> None:
    client = make_client(csrf="token")
    before = client.get("/form").text
    assert client.post("/login", headers={"X-CSRF-Token": before}).status_code == 200
    assert client.post("/transfer", headers={"X-CSRF-Token": before}).status_code == 403
    after = client.get("/form").text
    assert client.post("/transfer", headers={"X-CSRF-Token": after}).status_code == 200


def test_a_token_in_a_multipart_form_is_found(make_client: ClientFactory) -> None:
    client = make_client(csrf="token")
    token = client.get("/form").text
    response = client.post("/transfer", files={"csrf_token": (None, token), "f": ("a.txt", b"x")})
    assert response.status_code == 200


def test_a_refusal_is_an_audit_event(make_client: ClientFactory) -> None:
    events: list[SessionEvent] = []
    client = make_client(csrf="token", on_event=events.append)
    client.get("/form")
    client.post("/transfer", data={"csrf_token": "forged"})
    assert [(e.kind, e.reason) for e in events][-1] == ("rejected", "csrf: wrong CSRF token")


def test_bad_csrf_options_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="csrf must be"):
        SessionConfig(csrf="on")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="csrf_exempt"):
        SessionConfig(csrf_exempt=("hooks",))
    with pytest.raises(ConfigError, match="csrf_header"):
        SessionConfig(csrf_header="x csrf")


# -- WebSocket handshakes -------------------------------------------------------------------------


def websocket_app(**options: Any) -> TestClient:
    from .apps import starlette_app

    return TestClient(starlette_app(MemoryStore(), **options), base_url=f"http://{HOST}")


def test_a_websocket_from_another_site_is_refused_at_the_handshake() -> None:
    from starlette.websockets import WebSocketDisconnect

    with websocket_app() as client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws", headers={"Origin": "https://evil.example"}),
        ):
            pass  # pragma: no cover
        assert refused.value.code == 1008


def test_a_websocket_from_the_site_itself_is_accepted() -> None:
    same_site = {"Origin": "http://testserver"}  # the test client's Host on WebSocket handshakes
    with websocket_app() as client, client.websocket_connect("/ws", headers=same_site) as socket:
        socket.send_text("hi")
        assert json.loads(socket.receive_text()) == {"ws": "hi"}
