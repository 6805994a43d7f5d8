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

from coatcheck import ConfigError, SessionConfig, clients, csrf
from coatcheck.asgi import SessionMiddleware as ASGISessionMiddleware
from coatcheck.asgi import session_of
from coatcheck.events import SessionEvent
from coatcheck.session import Session
from coatcheck.stores import MemoryStore
from coatcheck.wsgi import ENVIRON_KEY
from coatcheck.wsgi import SessionMiddleware as WSGISessionMiddleware

from .servers import serve_asgi, serve_wsgi

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

    def make(peer: str = "127.0.0.1", **options: Any) -> Any:
        """A client of a fresh app with these options, connecting from ``peer``."""
        base = f"http://{HOST}"
        client: Any
        if request.param == "asgi":
            client = TestClient(asgi_app(**options), base_url=base, client=(peer, 50000))
        else:
            transport = httpx.WSGITransport(app=wsgi_app(**options), remote_addr=peer)
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


# -- the origin's scheme and port -------------------------------------------------------------


def test_an_origin_with_another_scheme_is_refused(make_client: ClientFactory) -> None:
    """The site over plain http is another origin than the same host over https (and the
    other way round): the scheme counts, not only the host."""
    events: list[SessionEvent] = []
    client = make_client(on_event=events.append)
    refused = client.post("/transfer", data={"amount": "1"}, headers={"Origin": f"https://{HOST}"})
    assert refused.status_code == 403
    assert events[-1].reason == "csrf: cross-origin request (Origin is not the request's origin)"
    same = client.post("/transfer", data={"amount": "2"}, headers={"Origin": f"http://{HOST}"})
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "passes"),
    [
        ("http://shop.example", "shop.example", "http", True),
        ("http://shop.example", "shop.example:80", "http", True),
        ("http://shop.example:80", "shop.example", "http", True),
        ("https://shop.example", "shop.example:443", "https", True),
        ("https://shop.example:443", "shop.example", "https", True),
        ("http://shop.example:8080", "shop.example:8080", "http", True),
        ("https://shop.example:8443", "SHOP.example:8443", "https", True),
        ("http://[::1]:8000", "[::1]:8000", "http", True),
        ("https://shop.example", "shop.example", "http", False),
        ("http://shop.example", "shop.example", "https", False),
        ("https://shop.example:8080", "shop.example:8080", "http", False),
        ("http://shop.example", "shop.example:443", "http", False),  # 443 is https's default
        ("https://shop.example", "shop.example:80", "https", False),  # 80 is http's default
        ("http://shop.example:443", "shop.example:443", "https", False),
        ("http://shop.example:8080", "shop.example", "http", False),
        ("http://shop.example", "shop.example:8080", "http", False),
        ("ftp://shop.example", "shop.example", "http", False),
        ("http://shop.example", "user@shop.example", "http", False),
        ("http://shop.example", "shop.example", "gopher", False),
    ],
)
def test_scheme_host_and_port_must_all_match_with_each_schemes_default_port(
    origin: str, host: str, scheme: str, passes: bool
) -> None:
    problem = csrf.origin_problem(None, origin, host, scheme=scheme)
    assert (problem is None) == passes, problem


@pytest.mark.parametrize(
    ("origin", "scheme", "passes"),
    [
        ("http://shop.example", "ws", True),
        ("https://shop.example", "wss", True),
        ("https://shop.example", "ws", False),
        ("http://shop.example", "wss", False),
    ],
)
def test_a_websocket_scheme_counts_as_the_pages_http_or_https(
    origin: str, scheme: str, passes: bool
) -> None:
    """A page at http://host opens ws://host, one at https://host opens wss://host."""
    problem = csrf.handshake_problem(SessionConfig(), "/ws", origin, "shop.example", scheme)
    assert (problem is None) == passes, problem


def test_trusted_origins_carry_their_own_scheme() -> None:
    policy = SessionConfig(trusted_origins=("https://app.example",))
    assert csrf.handshake_problem(policy, "/ws", "https://app.example", HOST, "ws") is None
    assert csrf.handshake_problem(policy, "/ws", "http://app.example", HOST, "ws") is not None


@pytest.mark.parametrize(
    ("received", "peer", "forwarded", "scheme"),
    [
        ("http", "10.0.0.2", "https", "https"),  # a trusted proxy terminated TLS
        ("https", "10.0.0.2", "http", "http"),
        ("http", "10.0.0.2", "HTTPS, http", "https"),  # the first value: the client's side
        ("http", "10.0.0.2", "ftp", "http"),  # neither http nor https: not believed
        ("http", "10.0.0.2", "", "http"),
        ("http", "10.0.0.2", None, "http"),
        ("ws", "10.0.0.2", None, "ws"),
        ("http", "198.51.100.7", "https", "http"),  # not a trusted proxy
        ("http", None, "https", "http"),
    ],
)
def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(
    received: str, peer: str | None, forwarded: str | None, scheme: str
) -> None:
    found = clients.request_scheme(received, peer, forwarded, trusted_proxies=("10.0.0.0/8",))
    assert found == scheme


def test_x_forwarded_proto_is_never_believed_without_trusted_proxies() -> None:
    assert clients.request_scheme("http", "10.0.0.2", "https") == "http"


def test_a_trusted_proxy_says_which_scheme_the_browser_used(make_client: ClientFactory) -> None:
    """Behind a proxy that terminates TLS the app is reached over http; the proxy's
    ``X-Forwarded-Proto`` says the browser used https, and only then is the https origin its own."""
    proxied = make_client(peer="10.0.0.2", trusted_proxies=["10.0.0.0/8"])
    https = {"Origin": f"https://{HOST}", "X-Forwarded-Proto": "https"}
    assert proxied.post("/transfer", headers=https).status_code == 200
    downgraded = {"Origin": f"http://{HOST}", "X-Forwarded-Proto": "https"}
    assert proxied.post("/transfer", headers=downgraded).status_code == 403
    direct = make_client(peer="198.51.100.7", trusted_proxies=["10.0.0.0/8"])
    assert direct.post("/transfer", headers=https).status_code == 403  # not from the proxy
    untrusting = make_client(peer="10.0.0.2")
    assert untrusting.post("/transfer", headers=https).status_code == 403  # no trusted proxies


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


def test_a_plain_ws_handshake_from_the_sites_https_origin_is_refused() -> None:
    from starlette.websockets import WebSocketDisconnect

    with websocket_app() as client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/ws", headers={"Origin": "https://testserver"}),
        ):
            pass  # pragma: no cover
        assert refused.value.code == 1008


# -- over real HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize("make_app", [asgi_app, wsgi_app], ids=["asgi", "wsgi"])
def test_a_plain_http_server_refuses_its_own_host_under_https(
    make_app: Callable[..., Any],
) -> None:
    """Served by uvicorn and by wsgiref on a loopback port: ``Origin: https://<host:port>``
    names another origin than the plain-http site on that host and port."""
    serve = serve_asgi if make_app is asgi_app else serve_wsgi
    with serve(make_app()) as url, httpx.Client(base_url=url) as http:
        netloc = url.removeprefix("http://")
        https = http.post(
            "/transfer", data={"amount": "1"}, headers={"Origin": f"https://{netloc}"}
        )
        assert https.status_code == 403
        assert http.post("/transfer", headers={"Origin": f"http://{netloc}"}).status_code == 200
