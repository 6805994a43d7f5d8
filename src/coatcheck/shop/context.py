"""What every route of the shop shares: the store, the session options, the instance's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from ..config import SessionConfig
from ..cookies import find_cookie
from ..engine import run_async
from ..stores import AsyncStore
from .accounts import current_key, end_all_sessions

if TYPE_CHECKING:
    from ..tokens import Tokens


@dataclass(frozen=True)
class Shop:
    """The shop's state, kept at ``app.state.shop``."""

    store: AsyncStore
    config: SessionConfig
    instance: str
    per_process: bool = False
    """Whether the store is this process's own memory (``memory://``): a session another
    instance (or this one before a restart) started is unknown here."""
    tokens: Tokens | None = None
    """The API clients' access and refresh tokens (:mod:`coatcheck.shop.tokens`); None without
    the ``tokens`` extra."""

    def current_key(self, request: Request) -> str | None:
        """The store key of the session the request's cookie names (None without one)."""
        header = request.headers.get("cookie")
        cookie = find_cookie(header, self.config.cookie_key) if header else None
        return current_key(cookie, self.config)

    async def end_all_sessions(self, user_id: str) -> int:
        """End every session of the user, cookie and refresh-token sessions alike, and revoke
        the user's live access tokens; how many sessions there were."""
        if self.tokens is None:
            return await end_all_sessions(self.store, user_id)
        return await run_async(self.tokens.logout_everywhere(user_id), self.store)


def shop_of(request: Request) -> Shop:
    """The shop a request reached."""
    shop: Shop = request.app.state.shop
    return shop
