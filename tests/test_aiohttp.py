"""coatcheck in aiohttp.web: ``request[SESSION_KEY]`` through a request's life, as a client sees it.

The clients here are pytest-aiohttp's, talking HTTP to a real aiohttp server on a loopback port.
aiohttp-session's own tests that apply run in test_aiohttp_upstream.py; its Redis storage tests
(which read and write aiohttp-session's key layout in Redis) have counterparts in TestOnRedis.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
import redis
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, make_mocked_request

from coatcheck.ids import new_id
from coatcheck.integrations.aiohttp import (
    SESSION_KEY,
    SessionMiddleware,
    get_session,
    new_session,
    session_of,
    setup,
)
from coatcheck.stores import AsyncStore, MemoryStore, Store, from_url
from coatcheck.testing import CountingStore, FakeClock

from .servers import free_port
from .services import REDIS_URL, require

pytestmark = pytest.mark.asyncio

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def session_cookie(response: Any) -> str | None:
    found = [h for h in response.headers.getall("Set-Cookie", ()) if h.startswith("session=")]
    assert len(found) <= 1
    return found[0] if found else None


def session_id(response: Any) -> str:
    header = session_cookie(response)
    assert header is not None, "expected a session cookie"
    return header.split(";", 1)[0].split("=", 1)[1]


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


async def read(request: web.Request) -> web.Response:
    return web.json_response(dict(await get_session(request)))


async def nothing(request: web.Request) -> web.Response:
    return web.Response(text="nothing")


async def write(request: web.Request) -> web.Response:
    session_of(request).update(await request.json())
    return web.Response(text="ok")


async def login(request: web.Request) -> web.Response:
    session_of(request).login(request.match_info["user"])
    return web.Response(text="ok")


async def logout(request: web.Request) -> web.Response:
    session_of(request).logout()
    return web.Response(text="ok")


async def whoami(request: web.Request) -> web.Response:
    session = request[SESSION_KEY]
    return web.json_response({"user": session.user_id, "data": dict(session)})


async def fresh(request: web.Request) -> web.Response:
    session = await new_session(request)
    session["fresh"] = True
    return web.Response(text="ok")


async def write_then_redirect(request: web.Request) -> web.Response:
    session_of(request)["flash"] = "saved"
    raise web.HTTPFound("/read")


async def write_then_crash(request: web.Request) -> web.Response:
    session_of(request)["half"] = "done"
    raise ValueError("a bug")


async def stream(request: web.Request) -> web.StreamResponse:
    session_of(request)["streamed"] = True
    response = web.StreamResponse()
    if "compressed" in request.query:
        response.enable_compression()
    await response.prepare(request)
    await response.write(b"chunk one, ")
    session_of(request)["after_headers"] = True  # stored, though no cookie can follow now
    await response.write(b"chunk two")
    await response.write_eof()
    return response


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    session_of(request)["opened"] = True
    await ws.prepare(request)
    text = await ws.receive_str()
    session_of(request)["ws"] = text
    await ws.send_json(dict(session_of(request)))
    await ws.close()
    return ws


ROUTES = {
    "/read": read,
    "/nothing": nothing,
    "/login/{user}": login,
    "/whoami": whoami,
    "/stream": stream,
    "/ws": socket,
}
POSTS = {
    "/write": write,
    "/logout": logout,
    "/new": fresh,
    "/write-then-redirect": write_then_redirect,
    "/write-then-crash": write_then_crash,
}


def make_app(store: Store | AsyncStore, *, install: bool = True, **options: Any) -> web.Application:
    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    for path, handler in POSTS.items():
        app.router.add_post(path, handler)
    if install:
        setup(app, store=store, secure=False, **options)
    else:
        app.middlewares.append(SessionMiddleware(store=store, secure=False, **options))
    return app


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest_asyncio.fixture
async def client(aiohttp_client: MakeClient, store: CountingStore) -> Client:
    return await aiohttp_client(make_app(store), cookie_jar=DummyCookieJar())


async def start_session(client: Client, **data: Any) -> str:
    return session_id(await client.post("/write", json=data or {"x": 1}))


async def data(client: Client, sid: str) -> Any:
    return await (await client.get("/read", headers=cookie(sid))).json()


class TestLifecycle:
    async def test_an_anonymous_request_makes_no_store_call_and_sets_no_cookie(
        self, client: Client, store: CountingStore
    ) -> None:
        response = await client.get("/read")
        assert await response.json() == {}
        assert "Set-Cookie" not in response.headers
        assert not store.calls

    async def test_a_write_sets_a_cookie_and_persists(self, client: Client) -> None:
        sid = await start_session(client, cart=["apple"])
        assert await data(client, sid) == {"cart": ["apple"]}

    async def test_a_read_only_request_sends_no_cookie(self, client: Client) -> None:
        sid = await start_session(client)
        assert session_cookie(await client.get("/read", headers=cookie(sid))) is None

    async def test_an_unknown_id_is_not_adopted_and_its_cookie_is_expired(
        self, client: Client
    ) -> None:
        planted = new_id()
        expired = session_cookie(await client.get("/read", headers=cookie(planted)))
        assert "Max-Age=0" in (expired or "")
        written = await client.post("/write", json={"a": 1}, headers=cookie(planted))
        assert session_id(written) != planted

    async def test_new_session_empties_the_session_and_destroys_the_old_one(
        self, client: Client
    ) -> None:
        old = await start_session(client, a=1)
        new = session_id(await client.post("/new", headers=cookie(old)))
        assert new != old
        assert await data(client, new) == {"fresh": True}
        assert await data(client, old) == {}


class TestResponses:
    async def test_a_raised_redirect_carries_the_session(self, client: Client) -> None:
        response = await client.post("/write-then-redirect", allow_redirects=False)
        assert response.status == 302
        assert await data(client, session_id(response)) == {"flash": "saved"}

    async def test_an_unhandled_error_commits_nothing(
        self, client: Client, store: CountingStore
    ) -> None:
        response = await client.post("/write-then-crash")
        assert response.status == 500
        assert session_cookie(response) is None
        assert not store.calls

    async def test_a_streamed_response_gets_the_cookie_before_its_headers_go(
        self, client: Client
    ) -> None:
        response = await client.get("/stream")
        assert await response.text() == "chunk one, chunk two"
        sid = session_id(response)
        assert await data(client, sid) == {"streamed": True, "after_headers": True}

    async def test_a_websocket_handshake_gets_the_cookie_and_later_changes_are_stored(
        self, client: Client
    ) -> None:
        sid = await start_session(client, a=1)
        async with client.ws_connect("/ws", headers=cookie(sid)) as ws:
            await ws.send_str("hello")
            assert await ws.receive_json() == {"a": 1, "opened": True, "ws": "hello"}
        assert await data(client, sid) == {"a": 1, "opened": True, "ws": "hello"}

    async def test_a_websocket_from_another_site_is_refused_at_the_handshake(
        self, client: Client
    ) -> None:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        host = client.make_url("/").host
        port = client.make_url("/").port
        async with client.ws_connect(
            "/ws", headers={"Origin": f"http://{host}:{port}"}
        ) as ws:  # the site itself
            await ws.send_str("hi")
            assert (await ws.receive_json())["ws"] == "hi"

    async def test_a_websocket_without_a_session_gets_one_at_the_handshake(
        self, client: Client
    ) -> None:
        async with client.ws_connect("/ws") as ws:
            sid = session_id(ws._response)
            await ws.send_str("hi")
            await ws.receive_json()
        assert await data(client, sid) == {"opened": True, "ws": "hi"}


class TestWithoutInstall:
    """The middleware alone, listed in ``web.Application(middlewares=...)`` without setup()."""

    @pytest_asyncio.fixture
    async def bare(self, aiohttp_client: MakeClient) -> Client:
        return await aiohttp_client(
            make_app(MemoryStore(), install=False), cookie_jar=DummyCookieJar()
        )

    async def test_ordinary_responses_work(self, bare: Client) -> None:
        sid = await start_session(bare, a=1)
        assert await data(bare, sid) == {"a": 1}

    async def test_a_stream_keeps_its_changes_but_a_new_cookie_is_lost_and_logged(
        self, bare: Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        sid = await start_session(bare, a=1)
        response = await bare.get("/stream", headers=cookie(sid))
        assert session_cookie(response) is None
        assert await data(bare, sid) == {"a": 1, "streamed": True, "after_headers": True}
        with caplog.at_level(logging.WARNING, logger="coatcheck"):
            await bare.get("/stream")
        assert "install the middleware with setup" in caplog.text

    async def test_session_of_says_what_is_missing(self, aiohttp_client: MakeClient) -> None:
        app = web.Application()
        app.router.add_get("/read", read)
        plain = await aiohttp_client(app)
        assert (await plain.get("/read")).status == 500
        with pytest.raises(RuntimeError, match="setup"):
            session_of(make_mocked_request("GET", "/read"))


class TestStoreFailure:
    """A store that cannot be reached: a real Redis client pointed at a port nobody listens on."""

    @pytest_asyncio.fixture
    async def down(self, aiohttp_client: MakeClient) -> AsyncIterator[Client]:
        store = from_url(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5", asynchronous=True)
        assert isinstance(store, AsyncStore)
        yield await aiohttp_client(make_app(store), cookie_jar=DummyCookieJar())
        await store.close()

    async def test_a_failing_load_is_a_503(self, down: Client) -> None:
        response = await down.get("/read", headers=cookie(new_id()))
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"

    async def test_a_failing_commit_is_a_503_not_the_handlers_response(self, down: Client) -> None:
        response = await down.post("/write", json={"a": 1})
        assert response.status == 503
        assert session_cookie(response) is None

    async def test_a_failing_commit_of_a_stream_is_a_503_before_any_byte(
        self, down: Client
    ) -> None:
        response = await down.get("/stream")
        assert response.status == 503
        assert "chunk" not in await response.text()

    async def test_the_503_replacing_a_stream_is_framed_for_the_next_request(
        self, down: Client
    ) -> None:
        """The same keep-alive connection serves a request after the replaced stream."""
        for path in ("/stream", "/stream?compressed", "/stream"):
            response = await down.get(path, headers={"Accept-Encoding": "gzip"})
            assert response.status == 503
            assert await response.text() == "Session store unavailable. Please retry shortly.\n"

    async def test_a_failing_commit_at_a_websocket_handshake_is_a_503(self, down: Client) -> None:
        response = await down.get(
            "/ws",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert response.status == 503

    async def test_a_failing_commit_behind_a_redirect_is_a_503(self, down: Client) -> None:
        response = await down.post("/write-then-redirect", allow_redirects=False)
        assert response.status == 503

    async def test_an_anonymous_request_needs_no_store(self, down: Client) -> None:
        assert (await down.get("/nothing")).status == 200


@pytest.fixture
def prefix() -> Any:
    """A Redis key prefix of this test's own, deleted afterwards."""
    parts = urlsplit(REDIS_URL)
    require("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    prefix = f"coatcheck-test-aiohttp-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=prefix + "*"))
    if names:
        client.delete(*names)
    client.close()


class TestOnRedis:
    """What aiohttp-session's test_redis_storage.py checks of RedisStorage, on coatcheck's."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(1_800_000_000.0)

    @pytest_asyncio.fixture
    async def on_redis(
        self, aiohttp_client: MakeClient, prefix: str, clock: FakeClock
    ) -> AsyncIterator[Client]:
        store = from_url(f"{REDIS_URL}?prefix={prefix}", asynchronous=True)
        assert isinstance(store, AsyncStore)
        app = make_app(store, clock=clock, idle_timeout=10, touch_interval=1)
        yield await aiohttp_client(app, cookie_jar=DummyCookieJar())
        await store.close()

    async def test_a_session_fixation_cookie_is_never_reused(self, on_redis: Client) -> None:
        """Upstream's test_redis_session_fixation: a logged-out ID stays dead."""
        evil = await start_session(on_redis, k="v")
        await on_redis.post("/logout", headers=cookie(evil))
        written = await on_redis.post("/write", json={"k": "v"}, headers=cookie(evil))
        assert session_id(written) != evil

    async def test_the_data_is_kept_in_redis_under_a_hash_of_the_id(
        self, on_redis: Client, prefix: str
    ) -> None:
        sid = await start_session(on_redis, a=1, b=2)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = [key.decode() for key in client.scan_iter(match=prefix + "*")]
        finally:
            client.close()
        assert keys
        assert not any(sid in key for key in keys)  # the cookie value is not a key

    async def test_an_idle_session_expires(self, on_redis: Client, clock: FakeClock) -> None:
        """Upstream's test_load_session_dont_load_expired_session, with a clock, not a sleep."""
        sid = await start_session(on_redis, a=1)
        clock.advance(11)
        assert await data(on_redis, sid) == {}

    async def test_a_garbage_cookie_gives_an_anonymous_session(self, on_redis: Client) -> None:
        """Upstream's test_create_new_session_if_key_doesnt_exists_in_redis."""
        response = await on_redis.get("/read", headers=cookie("invalid_key"))
        assert response.status == 200
        assert await response.json() == {}
