"""What every route of the shop shares: the store, the session options, the instance's name."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..config import SessionConfig
from ..cookies import find_cookie
from ..stores import AsyncStore
from .accounts import current_key


@dataclass(frozen=True)
class Shop:
    """The shop's state, kept at ``app.state.shop``."""

    store: AsyncStore
    config: SessionConfig
    instance: str
    per_process: bool = False
    """Whether the store is this process's own memory (``memory://``): a session another
    instance (or this one before a restart) started is unknown here."""

    def current_key(self, request: Request) -> str | None:
        """The store key of the session the request's cookie names (None without one)."""
        header = request.headers.get("cookie")
        cookie = find_cookie(header, self.config.cookie_key) if header else None
        return current_key(cookie, self.config)


def shop_of(request: Request) -> Shop:
    """The shop a request reached."""
    shop: Shop = request.app.state.shop
    return shop
