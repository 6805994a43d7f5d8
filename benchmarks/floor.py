"""A yardstick, not a session layer: the least any server-side session can do per request.

It finds the cookie, hashes the ID (a store keeps only hashes), looks the hash up and parses the
stored JSON (orjson); on the way out it serializes the data to see whether it changed and stores
it if so. Nothing else: no check of the ID's format, no expiry, no versions (so concurrent
writers lose updates), no CSRF check, no limits, no events, no response header but the cookie of
a new session. The store is a dict, or Redis: one ``GET`` on a read, ``GET`` then ``SET EX`` on
a write, through redis-py's asyncio client. The benchmarks count it beside the real layers: what
it adds to bare Starlette is the floor that issue 17's targets are multiples of.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from redis.asyncio import Redis

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _cookie(scope: Scope, marker: bytes) -> bytes | None:
    """The value of the cookie that ``marker`` (``b"name="``) begins, if the request sent it."""
    for header, value in scope["headers"]:
        if header == b"cookie":
            start = value.find(marker)
            if start == 0 or (start > 0 and value[start - 1] in b" ;"):
                start += len(marker)
                end = value.find(b";", start)
                found: bytes = value[start:] if end < 0 else value[start:end]
                return found
    return None


class FloorMiddleware:
    """Server-side sessions cut to the bone (see the module docstring): in a dict, or in Redis
    when given a ``client`` (keys under ``prefix``, each living ``ttl`` seconds)."""

    def __init__(
        self,
        app: ASGIApp,
        cookie_name: str = "session",
        *,
        client: Redis | None = None,
        prefix: str = "floor:",
        ttl: int = 1800,
    ) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.marker = f"{cookie_name}=".encode()
        self.store: dict[str, bytes] = {}
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = _cookie(scope, self.marker)
        key: str | None = None
        stored: bytes | str | None = None  # redis-py types what GET gives so
        data: dict[str, Any] = {}
        if value is not None:
            key = hashlib.sha256(value).hexdigest()
            if self.client is None:
                stored = self.store.get(key)
            else:
                stored = await self.client.get(self.prefix + key)
            if stored is not None:
                data = orjson.loads(stored)
        scope["session"] = data

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                body = orjson.dumps(data)
                if body != stored and (data or stored is not None):
                    key_now = key
                    if stored is None:  # a new session: a new ID, and its cookie
                        session_id = secrets.token_urlsafe(32)
                        key_now = hashlib.sha256(session_id.encode()).hexdigest()
                        cookie = f"{self.cookie_name}={session_id}; Path=/; HttpOnly; SameSite=Lax"
                        headers = [*message.get("headers", ()), (b"set-cookie", cookie.encode())]
                        message = {**message, "headers": headers}
                    assert key_now is not None
                    if self.client is None:
                        self.store[key_now] = body
                    else:
                        await self.client.set(self.prefix + key_now, body, ex=self.ttl)
            await send(message)

        await self.app(scope, receive, send_with_session)
