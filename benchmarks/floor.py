"""A yardstick, not a session layer: the least any server-side session can do per request.

It finds the cookie, checks the ID's format, hashes it (the store keeps only hashes), looks the
hash up in a dict and parses the stored JSON; on the response it serializes the data to see
whether it changed, stores it if so, and marks the response ``Cache-Control: no-store``. It has
no expiry, no versions (so concurrent writers lose updates), no CSRF check, no limits and no
events. The HTTP benchmark runs it beside the real layers: its ratio to bare Starlette is a
ceiling that no server-side session of this design reaches on this machine.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ID = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
NO_STORE = (b"cache-control", b"no-store")


def _cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope["headers"]:
        if header == b"cookie":
            text: str = value.decode("latin-1")
            for pair in text.split(";"):
                key, _, found = pair.partition("=")
                if key.strip() == name:
                    return found.strip()
    return None


class FloorMiddleware:
    """Server-side sessions cut to the bone (see the module docstring); for benchmarks only."""

    def __init__(self, app: ASGIApp, cookie_name: str = "session") -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.store: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = _cookie(scope, self.cookie_name)
        key: str | None = None
        stored: bytes | None = None
        data: dict[str, Any] = {}
        if value is not None and _ID.fullmatch(value):
            key = hashlib.sha256(value.encode()).hexdigest()
            stored = self.store.get(key)
            if stored is not None:
                data = orjson.loads(stored)
        scope["session"] = data

        async def send_with_session(message: Message) -> None:
            nonlocal key
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                body = orjson.dumps(data)
                if body != stored and (data or stored is not None):
                    if stored is None:
                        session_id = secrets.token_urlsafe(32)
                        key = hashlib.sha256(session_id.encode()).hexdigest()
                        cookie = f"{self.cookie_name}={session_id}; Path=/; HttpOnly; SameSite=Lax"
                        headers.append((b"set-cookie", cookie.encode()))
                    assert key is not None
                    self.store[key] = body
                if stored is not None or key is not None:
                    headers.append(NO_STORE)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_session)
