"""Litestar: coatcheck's CoatcheckSessionConfig against ServerSideSessionConfig, both on Redis.

Both store to the same Redis server: coatcheck through its AsyncRedisStore, Litestar through
``litestar.stores.redis.RedisStore``, with a 30-minute sliding lifetime each
(``renew_on_access=True`` for Litestar, coatcheck's idle timeout). uvicorn serves every app,
with the flags of section 1; ``from_env`` is the factory it calls.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, get
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.response import Response
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

from coatcheck.integrations.litestar import CoatcheckSessionConfig
from coatcheck.stores import from_url

from .. import apps
from ..http_load import SCENARIOS, LoadSettings, server_description
from . import FrameworkResult, brackets

TITLE = "Litestar: coatcheck against ServerSideSessionConfig on Redis"

COATCHECK = "coatcheck"
LITESTAR = "litestar-server-side"
VARIANTS = (
    brackets.Variant(apps.BARE, "bare Litestar, no session middleware"),
    brackets.Variant(COATCHECK, "`CoatcheckSessionConfig` + coatcheck's AsyncRedisStore"),
    brackets.Variant(
        LITESTAR, "`ServerSideSessionConfig(renew_on_access=True)` + Litestar's `RedisStore`"
    ),
)


def _session(request: Request[Any, Any, Any]) -> dict[str, Any]:
    session: dict[str, Any] | None = request.scope.get("session")  # type: ignore[assignment]
    return {} if session is None else session


@get("/anon", sync_to_thread=False)
def anonymous() -> Response[str]:
    return Response("hello", media_type="text/plain")


@get("/setup", sync_to_thread=False)
def setup(request: Request[Any, Any, Any]) -> Response[str]:
    _session(request).update(apps.SESSION_DATA)
    return Response("ok", media_type="text/plain")


@get("/read", sync_to_thread=False)
def read(request: Request[Any, Any, Any]) -> Response[str]:
    user = _session(request).get("user")
    return Response(user["name"] if user else "no session", media_type="text/plain")


@get("/write", sync_to_thread=False)
def write(request: Request[Any, Any, Any]) -> Response[str]:
    session = _session(request)
    session["counter"] = counter = session.get("counter", 0) + 1
    return Response(str(counter), media_type="text/plain")


def build(variant: str, prefix: str, redis_url: str = brackets.REDIS_URL) -> Litestar:
    """The app of ``variant``, its sessions in the Redis at ``redis_url`` under ``prefix``."""
    handlers = [anonymous, setup, read, write]
    if variant == apps.BARE:
        return Litestar(handlers)
    if variant == COATCHECK:
        store = from_url(f"{redis_url}?prefix={prefix}:coatcheck:", asynchronous=True)
        config = CoatcheckSessionConfig(
            store=store, secure=False, cookie_name=apps.COOKIE_NAME, idle_timeout=apps.IDLE_SECONDS
        )
        return Litestar(handlers, middleware=[config.middleware])
    if variant == LITESTAR:
        redis_store = RedisStore(Redis.from_url(redis_url), namespace=f"{prefix}:litestar")
        server_side = ServerSideSessionConfig(
            key=apps.COOKIE_NAME, max_age=apps.IDLE_SECONDS, renew_on_access=True
        )
        return Litestar(
            handlers, middleware=[server_side.middleware], stores={"sessions": redis_store}
        )
    raise ValueError(f"unknown Litestar variant {variant!r}")


def from_env() -> Litestar:
    """The app named by the environment (the factory uvicorn calls)."""
    return build(os.environ[brackets.VARIANT_ENV], os.environ[brackets.PREFIX_ENV])


def measure(settings: LoadSettings) -> FrameworkResult:
    flags, server = server_description()

    def command(port: int) -> list[str]:
        factory = ["-m", "uvicorn", "--factory", f"{__name__}:from_env"]
        return brackets.python(*factory, "--host", "127.0.0.1", "--port", str(port), *flags)

    prefix = brackets.run_prefix()
    try:
        result = brackets.measure(VARIANTS, command, settings, prefix)
    finally:
        brackets.forget(prefix)
    notes = """
*writing* spreads its requests over {writers} sessions in turn, so concurrent requests write
different sessions, as different clients do. (All {connections} connections writing one session
would measure contention instead: coatcheck's compare-and-set makes such writers take turns and
keeps the keys each of them set, where Litestar's backend lets the last writer's session win.
The counter these apps increment is one key, though, which takes the later save's value: its
concurrent increments would be lost with either.)

Litestar's server-side backend writes a session (and sets a cookie) on every response, even to
an anonymous request that never touches it, and rewrites the whole session on every request
that has one; coatcheck makes no store call for an anonymous request and, for a read-only one,
one round trip that also slides the expiry when due.
"""
    notes = notes.format(connections=settings.connections, writers=brackets.WRITERS)
    markdown = result.markdown(settings, server, "Redis, one local server") + notes
    targets = [result.versus(COATCHECK, LITESTAR, scenario) for scenario in SCENARIOS]
    return FrameworkResult(markdown, targets)
