"""aiohttp: coatcheck's middleware against aiohttp-session's RedisStorage, both on Redis.

Both store to the same Redis server: coatcheck through its AsyncRedisStore, aiohttp-session
through ``aiohttp_session.redis_storage.RedisStorage`` (redis-py's asyncio client), with a
30-minute lifetime each. Every app runs under aiohttp's own server (``web.run_app``, no access
log), started as ``python -m benchmarks.frameworks.aiohttp PORT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp_session
from aiohttp import web
from aiohttp_session.redis_storage import RedisStorage
from redis.asyncio import Redis

from coatcheck.integrations import aiohttp as coatcheck_aiohttp
from coatcheck.stores import from_url

from .. import apps
from ..http_load import HOST, SCENARIOS, LoadSettings
from . import FrameworkResult, brackets

TITLE = "aiohttp: coatcheck against aiohttp-session's RedisStorage"

COATCHECK = "coatcheck"
AIOHTTP_SESSION = "aiohttp-session"
VARIANTS = (
    brackets.Variant(apps.BARE, "bare aiohttp.web, no session middleware"),
    brackets.Variant(COATCHECK, "`coatcheck.integrations.aiohttp.setup` + AsyncRedisStore"),
    brackets.Variant(AIOHTTP_SESSION, "`aiohttp_session.setup` + `RedisStorage`"),
)

SessionGetter = Callable[[web.Request], Awaitable[MutableMapping[str, Any]]]
SESSION_GETTER: web.AppKey[SessionGetter] = web.AppKey("session_getter")


async def no_session(request: web.Request) -> MutableMapping[str, Any]:
    return {}


async def anonymous(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def setup(request: web.Request) -> web.Response:
    (await request.app[SESSION_GETTER](request)).update(apps.SESSION_DATA)
    return web.Response(text="ok")


async def read(request: web.Request) -> web.Response:
    user = (await request.app[SESSION_GETTER](request)).get("user")
    return web.Response(text=user["name"] if user else "no session")


async def write(request: web.Request) -> web.Response:
    session = await request.app[SESSION_GETTER](request)
    session["counter"] = counter = session.get("counter", 0) + 1
    return web.Response(text=str(counter))


def build(variant: str, prefix: str, redis_url: str = brackets.REDIS_URL) -> web.Application:
    """The app of ``variant``, its sessions in the Redis at ``redis_url`` under ``prefix``."""
    app = web.Application()
    app.router.add_get("/anon", anonymous)
    app.router.add_get("/setup", setup)
    app.router.add_get("/read", read)
    app.router.add_get("/write", write)
    if variant == apps.BARE:
        app[SESSION_GETTER] = no_session
    elif variant == COATCHECK:
        store = from_url(f"{redis_url}?prefix={prefix}:coatcheck:", asynchronous=True)
        coatcheck_aiohttp.setup(
            app,
            store=store,
            secure=False,
            cookie_name=apps.COOKIE_NAME,
            idle_timeout=apps.IDLE_SECONDS,
        )
        app[SESSION_GETTER] = coatcheck_aiohttp.get_session
    elif variant == AIOHTTP_SESSION:
        storage = RedisStorage(
            Redis.from_url(redis_url),
            cookie_name=f"{prefix}-aiohttp",  # its Redis keys are this name + "_" + a UUID
            max_age=apps.IDLE_SECONDS,
        )
        aiohttp_session.setup(app, storage)
        app[SESSION_GETTER] = aiohttp_session.get_session
    else:
        raise ValueError(f"unknown aiohttp variant {variant!r}")
    return app


def measure(settings: LoadSettings) -> FrameworkResult:
    def command(port: int) -> list[str]:
        return brackets.python("-m", __name__, str(port))

    prefix = brackets.run_prefix()
    try:
        result = brackets.measure(VARIANTS, command, settings, prefix)
    finally:
        brackets.forget(prefix)
    notes = """
*writing* spreads its requests over {writers} sessions in turn, so concurrent requests write
different sessions, as different clients do. (All {connections} connections writing one session
would measure contention instead: coatcheck's compare-and-set makes such writers take turns and
keeps the keys each of them set, where aiohttp-session lets the last writer's session win.
The counter these apps increment is one key, though, which takes the later save's value: its
concurrent increments would be lost with either.)

aiohttp-session loads the session only when a handler asks for it and writes it only when it
changed, so its read-only requests neither slide the expiry nor re-send the cookie; coatcheck's
read-only requests do slide it (a touch after the load, at most once per touch interval).
"""
    server = "aiohttp's own server (`web.run_app`, asyncio loop, no access log), one process"
    notes = notes.format(connections=settings.connections, writers=brackets.WRITERS)
    markdown = result.markdown(settings, server, "Redis, one local server") + notes
    targets = [result.versus(COATCHECK, AIOHTTP_SESSION, scenario) for scenario in SCENARIOS]
    return FrameworkResult(markdown, targets)


if __name__ == "__main__":
    web.run_app(
        build(os.environ[brackets.VARIANT_ENV], os.environ[brackets.PREFIX_ENV]),
        host=HOST,
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
    )
