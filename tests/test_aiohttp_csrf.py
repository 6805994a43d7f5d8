"""CSRF through the aiohttp integration: the rules of tests/test_csrf.py (unsafe requests must
come from the site itself and, in token mode, carry the session's token; reads are never
checked), enforced by coatcheck's middleware before the handler, with the core's options.

The clients are pytest-aiohttp's, over HTTP to a real aiohttp server on a loopback port; each
sends ``Host: shop.example``, so that is the site's own origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from coatcheck.events import SessionEvent
from coatcheck.integrations.aiohttp import session_of, setup
from coatcheck.stores import MemoryStore

pytestmark = pytest.mark.asyncio

HOST = "shop.example"
Client = TestClient[web.Request, web.Application]
Make = Callable[..., Awaitable[Client]]


async def form_page(request: web.Request) -> web.Response:
    return web.Response(text=session_of(request).csrf_token())


async def transfer(request: web.Request) -> web.Response:
    form = await request.post()  # the form the middleware read is still there
    raw = await request.text() if request.content_type != "multipart/form-data" else ""
    session = session_of(request)
    session["paid"] = str(form.get("amount", "json"))
    return web.json_response({"paid": session["paid"], "raw": raw})


async def login(request: web.Request) -> web.Response:
    session_of(request).login("alice")
    return web.Response(text="ok")


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("open")
    await ws.close()
    return ws


def make_app(**options: Any) -> web.Application:
    app = web.Application()
    app.router.add_get("/form", form_page)
    app.router.add_post("/transfer", transfer)
    app.router.add_post("/hooks/pay", transfer)
    app.router.add_post("/login", login)
    app.router.add_get("/ws", socket)
    options.setdefault("secure", False)
    setup(app, store=MemoryStore(), **options)
    return app


@pytest.fixture
def make_client(aiohttp_client: Make) -> Make:
    async def make(**options: Any) -> Client:
        return await aiohttp_client(make_app(**options), headers={"Host": HOST})

    return make


# -- origin checks (the default) ---------------------------------------------------------------


async def test_a_plain_http_server_refuses_its_own_host_under_https(
    aiohttp_client: Make,
) -> None:
    """``Origin: https://<host:port>`` is another origin than the plain-http site on that host
    and port (the client sends its own ``Host`` here: the server's loopback address and port)."""
    client = await aiohttp_client(make_app())
    netloc = f"{client.host}:{client.port}"
    https = await client.post(
        "/transfer", data={"amount": "1"}, headers={"Origin": f"https://{netloc}"}
    )
    assert https.status == 403
    same = await client.post(
        "/transfer", data={"amount": "2"}, headers={"Origin": f"http://{netloc}"}
    )
    assert (await same.json())["paid"] == "2"


async def test_a_plain_websocket_handshake_from_the_https_origin_is_refused(
    make_client: Make,
) -> None:
    client = await make_client()
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={"Origin": f"https://{HOST}"})
    assert refused.value.status == 403
    async with client.ws_connect("/ws", headers={"Origin": f"http://{HOST}"}) as ws:
        assert await ws.receive_str() == "open"


@pytest.mark.parametrize(
    ("trusted_proxies", "origin", "status"),
    [
        (["127.0.0.0/8"], "https", 200),  # the proxy terminated TLS: the browser used https
        (["127.0.0.0/8"], "http", 403),
        ([], "https", 403),  # a header anyone can send, unless it comes from a trusted proxy
        (["10.0.0.0/8"], "https", 403),
    ],
    ids=["trusted-https", "trusted-but-http-origin", "no-trusted-proxies", "peer-not-trusted"],
)
async def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(
    make_client: Make, trusted_proxies: list[str], origin: str, status: int
) -> None:
    client = await make_client(trusted_proxies=trusted_proxies)
    headers = {"Origin": f"{origin}://{HOST}", "X-Forwarded-Proto": "https"}
    assert (await client.post("/transfer", headers=headers)).status == status


async def test_cross_site_reads_are_not_checked(make_client: Make) -> None:
    client = await make_client()
    assert (await client.get("/form", headers={"Origin": "https://evil.example"})).status == 200


async def test_trusted_origins_and_exempt_paths(make_client: Make) -> None:
    client = await make_client(
        trusted_origins=["https://app.example"], csrf_exempt=["/hooks/"], csrf="token"
    )
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await client.post("/hooks/pay", headers=evil)).status == 200
    trusted = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    token = await (await client.get("/form")).text()
    response = await client.post("/transfer", headers={**trusted, "X-CSRF-Token": token})
    assert response.status == 200


async def test_csrf_off_checks_nothing(make_client: Make) -> None:
    client = await make_client(csrf="off")
    response = await client.post("/transfer", headers={"Origin": "https://evil.example"})
    assert response.status == 200


# -- token mode ---------------------------------------------------------------------------------


async def test_a_form_carrying_the_token_passes_and_its_body_reaches_the_handler(
    make_client: Make,
) -> None:
    client = await make_client(csrf="token")
    token = await (await client.get("/form")).text()
    response = await client.post("/transfer", data={"csrf_token": token, "amount": "5"})
    assert response.status == 200
    body = await response.json()
    assert body["paid"] == "5"  # request.post() again in the handler
    assert "amount=5" in body["raw"]  # and request.text(): aiohttp cached the body


async def test_the_token_may_come_in_a_header(make_client: Make) -> None:
    client = await make_client(csrf="token")
    token = await (await client.get("/form")).text()
    assert (await client.post("/transfer", headers={"X-CSRF-Token": token})).status == 200


async def test_every_response_masks_the_token_afresh(make_client: Make) -> None:
    client = await make_client(csrf="token")
    first = await (await client.get("/form")).text()
    second = await (await client.get("/form")).text()
    assert first != second
    for token in (first, second):
        assert (await client.post("/transfer", headers={"X-CSRF-Token": token})).status == 200


@pytest.mark.parametrize("token", [None, "", "garbage", "A" * 86])
async def test_a_missing_empty_or_forged_token_is_refused(
    make_client: Make, token: str | None
) -> None:
    client = await make_client(csrf="token")
    await client.get("/form")  # the session has a token; the request does not carry it
    data = {"amount": "100"} if token is None else {"amount": "100", "csrf_token": token}
    assert (await client.post("/transfer", data=data)).status == 403


async def test_another_sessions_token_is_refused(make_client: Make) -> None:
    attacker, victim = await make_client(csrf="token"), await make_client(csrf="token")
    stolen = await (await attacker.get("/form")).text()
    await victim.get("/form")
    assert (await victim.post("/transfer", data={"csrf_token": stolen})).status == 403


async def test_a_request_without_a_session_has_no_token_to_match(make_client: Make) -> None:
    other = await make_client(csrf="token")
    token = await (await other.get("/form")).text()
    client = await make_client(csrf="token")
    assert (await client.post("/transfer", headers={"X-CSRF-Token": token})).status == 403


async def test_login_renews_the_token(make_client: Make) -> None:
    client = await make_client(csrf="token")
    before = await (await client.get("/form")).text()
    assert (await client.post("/login", headers={"X-CSRF-Token": before})).status == 200
    assert (await client.post("/transfer", headers={"X-CSRF-Token": before})).status == 403
    after = await (await client.get("/form")).text()
    assert (await client.post("/transfer", headers={"X-CSRF-Token": after})).status == 200


async def test_a_token_in_a_multipart_form_is_found_and_the_form_reaches_the_handler(
    make_client: Make,
) -> None:
    client = await make_client(csrf="token")
    token = await (await client.get("/form")).text()
    form = FormData()
    form.add_field("csrf_token", token)
    form.add_field("amount", "7")
    form.add_field("f", b"x", filename="a.txt")
    response = await client.post("/transfer", data=form)
    assert response.status == 200
    assert (await response.json())["paid"] == "7"


async def test_a_refusal_is_an_audit_event(make_client: Make) -> None:
    events: list[SessionEvent] = []
    client = await make_client(csrf="token", on_event=events.append)
    await client.get("/form")
    await client.post("/transfer", data={"csrf_token": "forged"})
    assert [(e.kind, e.reason) for e in events][-1] == ("rejected", "csrf: wrong CSRF token")
