"""aiohttp: sessions bound to their client, and the per-client limits, as the core middleware has
them. The client is ``request.remote`` (``X-Forwarded-For`` only from a trusted proxy) and the
``User-Agent``; a request over a limit gets 429 (or 403) with ``Retry-After``, never a 500.

The clients are pytest-aiohttp's, over HTTP to a real aiohttp server on 127.0.0.1; where a test
needs several client addresses, the loopback is a trusted proxy and each request says, in
``X-Forwarded-For``, which client it relays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient

from coatcheck.events import SessionEvent
from coatcheck.exchange import LIMITED_BODY
from coatcheck.ids import new_id
from coatcheck.integrations.aiohttp import session_of, setup
from coatcheck.stores import MemoryStore
from coatcheck.testing import FakeClock

pytestmark = pytest.mark.asyncio

Client = TestClient[web.Request, web.Application]
Make = Callable[..., Awaitable[Client]]

FIREFOX, CHROME = "Mozilla/5.0 Firefox/140.0", "Mozilla/5.0 Chrome/150.0"
WINDOW = 60
LOOPBACK_IS_A_PROXY = {"trusted_proxies": ["127.0.0.0/8"]}


async def read(request: web.Request) -> web.Response:
    session = session_of(request)
    return web.json_response(
        {"data": dict(session), "user": session.user_id, "flagged": session.flagged}
    )


async def write(request: web.Request) -> web.Response:
    session_of(request).update(await request.json())
    return web.Response(text="ok")


async def write_stream(request: web.Request) -> web.StreamResponse:
    """A handler that prepares its response itself: the commit happens as it does."""
    session_of(request)["streamed"] = True
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"streamed")
    return response


async def login(request: web.Request) -> web.Response:
    session_of(request).login(request.match_info["user"])
    return web.Response(text="in")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def make(aiohttp_client: Make, clock: FakeClock) -> Make:
    """A client of an app set up with ``options`` (a fresh memory store, a fake clock)."""

    async def build(**options: Any) -> Client:
        app = web.Application()
        app.router.add_get("/read", read)
        app.router.add_post("/write", write)
        app.router.add_post("/stream", write_stream)
        app.router.add_post("/login/{user}", login)
        setup(app, store=MemoryStore(), secure=False, clock=clock, limit_window=WINDOW, **options)
        return await aiohttp_client(app, cookie_jar=DummyCookieJar())

    return build


def relayed(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


def cookie_of(response: Any) -> str | None:
    for header in response.headers.getall("Set-Cookie", ()):
        if header.startswith("session="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


async def start(client: Client, **headers: str) -> str:
    """A new session holding ``a=1``; its ID."""
    sid = cookie_of(await client.post("/write", json={"a": 1}, headers=headers))
    assert sid
    return sid


async def read_with(client: Client, sid: str, **headers: str) -> Any:
    return await client.get("/read", headers={"Cookie": f"session={sid}", **headers})


async def seen(client: Client, sid: str, **headers: str) -> Any:
    return await (await read_with(client, sid, **headers)).json()


async def guess(client: Client, **headers: str) -> int:
    status: int = (await read_with(client, new_id(), **headers)).status
    return status


async def assert_limited(response: Any, status: int = 429) -> None:
    assert response.status == status
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.read() == LIMITED_BODY
    assert cookie_of(response) is None


# -- binding ---------------------------------------------------------------------------------


async def test_a_cookie_replayed_from_another_browser_is_anonymous(make: Make) -> None:
    client = await make(bind_to=("user_agent",))
    sid = await start(client, **{"User-Agent": FIREFOX})
    stolen = await read_with(client, sid, **{"User-Agent": CHROME})
    assert (await stolen.json())["data"] == {}
    assert "Max-Age=0" in stolen.headers["Set-Cookie"]
    # The owner keeps the session.
    assert (await seen(client, sid, **{"User-Agent": FIREFOX}))["data"] == {"a": 1}


async def test_flag_mode_keeps_the_session_and_reports_it(make: Make) -> None:
    events: list[SessionEvent] = []
    client = await make(bind_to=("user_agent",), binding_action="flag", on_event=events.append)
    sid = await start(client, **{"User-Agent": FIREFOX})
    assert not (await seen(client, sid, **{"User-Agent": FIREFOX}))["flagged"]
    replayed = await seen(client, sid, **{"User-Agent": CHROME})
    assert replayed == {"data": {"a": 1}, "user": None, "flagged": True}
    assert (events[-1].kind, events[-1].reason) == ("flagged", "binding")


async def test_forwarded_for_is_believed_from_a_trusted_proxy(make: Make) -> None:
    client = await make(bind_to=("network",), **LOOPBACK_IS_A_PROXY)
    sid = await start(client, **relayed("203.0.113.5"))
    assert (await seen(client, sid, **relayed("203.0.113.77")))["data"] == {"a": 1}  # same /24
    assert (await seen(client, sid, **relayed("198.51.100.5")))["data"] == {}


async def test_forwarded_for_is_ignored_from_anyone_else(make: Make) -> None:
    """Without trusted proxies the peer is the client: a forged header changes nothing."""
    client = await make(bind_to=("network",), max_rejections_per_client=2)
    sid = await start(client, **relayed("203.0.113.5"))
    assert (await seen(client, sid, **relayed("198.51.100.5")))["data"] == {"a": 1}
    statuses = [await guess(client, **relayed(f"203.0.113.{n}")) for n in range(3)]
    assert statuses == [200, 200, 429]  # one client, whatever it claims


# -- limits ----------------------------------------------------------------------------------


async def test_guessing_ids_is_throttled_per_client(make: Make, clock: FakeClock) -> None:
    client = await make(max_rejections_per_client=3, **LOOPBACK_IS_A_PROXY)
    guesser, bystander = relayed("203.0.113.5"), relayed("198.51.100.7")
    mine = await start(client, **bystander)
    assert [await guess(client, **guesser) for _ in range(3)] == [200, 200, 200]
    await assert_limited(await read_with(client, new_id(), **guesser))
    # Another client, holding a real session, is unaffected.
    assert (await seen(client, mine, **bystander))["data"] == {"a": 1}
    assert await guess(client, **bystander) == 200
    clock.advance(WINDOW)
    assert await guess(client, **guesser) == 200  # a new window


async def test_a_creation_flood_is_throttled_per_client(make: Make) -> None:
    client = await make(max_creations_per_client=2, **LOOPBACK_IS_A_PROXY)
    flood, user = relayed("203.0.113.5"), relayed("198.51.100.7")
    mine = cookie_of(await client.post("/login/alice", headers=user))
    assert mine
    for _ in range(2):
        assert (await client.post("/write", json={"x": 1}, headers=flood)).status == 200
    await assert_limited(await client.post("/write", json={"x": 1}, headers=flood))
    # So is a response the handler prepares itself (committed as it is prepared).
    await assert_limited(await client.post("/stream", headers=flood))
    # A logged-in user at another address carries on, writes included.
    written = await client.post(
        "/write", json={"cart": [1]}, headers=relayed("198.51.100.7", Cookie=f"session={mine}")
    )
    assert written.status == 200
    assert await seen(client, mine, **user) == {
        "data": {"cart": [1]},
        "user": "alice",
        "flagged": False,
    }


async def test_a_global_creation_cap_answers_429_not_500(make: Make) -> None:
    client = await make(max_creations=2, **LOOPBACK_IS_A_PROXY)
    statuses = [
        (await client.post("/write", json={"n": n}, headers=relayed(f"203.0.113.{n}"))).status
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


async def login_from(client: Client, clock: FakeClock, address: str) -> str:
    sid = cookie_of(await client.post("/login/carol", headers=relayed(address)))
    assert sid
    clock.advance(1)
    return sid


async def test_a_login_past_max_sessions_per_user_ends_the_oldest(
    make: Make, clock: FakeClock
) -> None:
    client = await make(max_sessions_per_user=2, **LOOPBACK_IS_A_PROXY)
    oldest, middle, newest = [await login_from(client, clock, f"203.0.113.{n}") for n in range(3)]
    assert (await seen(client, oldest))["user"] is None
    assert (await seen(client, middle))["user"] == "carol"
    assert (await seen(client, newest))["user"] == "carol"


async def test_the_refuse_policy_answers_403_and_keeps_the_others(
    make: Make, clock: FakeClock
) -> None:
    client = await make(
        max_sessions_per_user=2, session_limit_policy="refuse", **LOOPBACK_IS_A_PROXY
    )
    logged_in = [await login_from(client, clock, f"203.0.113.{n}") for n in range(2)]
    refused = await client.post("/login/carol", headers=relayed("203.0.113.9"))
    assert refused.status == 403
    assert await refused.read() == LIMITED_BODY
    assert "Retry-After" in refused.headers
    assert cookie_of(refused) is None
    assert [(await seen(client, sid))["user"] for sid in logged_in] == ["carol", "carol"]
