"""A post naming a session that the instance which answered has never seen: the shop says so.

With ``memory://`` behind a round-robin balancer, a page comes from one instance, which keeps
the visitor's session and its forms' CSRF token in its own memory, and the form is posted to
another, which holds no session by that ID. coatcheck's session middleware refuses the post
before any route runs (the token matches no session there: ``csrf: wrong CSRF token``), with a
plain-text 403 that says nothing of why.

The shop keeps that refusal and changes only what it says. :class:`LostSessions` is the
middleware's :class:`~coatcheck.exchange.Exchange` (its CSRF decisions): when the request's
cookie named a session this instance does not hold and the token it sent therefore matched
nothing, the 403 is the shop's page (:func:`coatcheck.shop.pages.lost_page`), or under
``/api/`` a JSON body (:func:`coatcheck.shop.api.lost_body`), naming the instance and saying
why. The session stays anonymous and unstored, and the answer clears its cookie.

Every other refusal is the middleware's own plain text: a cross-site request (the origin check
comes first, so a forged post naming an unknown session is refused as cross-site), a post without
a token, a wrong token for a session this instance holds, a token posted with no session cookie.
"""

from __future__ import annotations

import logging

from ..engine import SessionEngine
from ..events import safe
from ..exchange import Browser, Exchange, Headers, Refusal
from ..session import STALE_ID, Session
from . import api, pages
from .context import Shop

logger = logging.getLogger("coatcheck.shop")

MISMATCH = "wrong CSRF token"
"""The cause :func:`coatcheck.csrf.verdict` gives when the origin check passed and a token came,
but not the session's: on a session this instance never saw, it is what every token gets."""


class LostSessions(Exchange):
    """The shop's :class:`~coatcheck.exchange.Exchange`: the same decisions, and its own answer
    to a post whose session this instance has never seen (see the module)."""

    __slots__ = ("shop",)

    def __init__(self, engine: SessionEngine, shop: Shop, unavailable_status: int = 503) -> None:
        super().__init__(engine, unavailable_status)
        self.shop = shop

    def csrf_refusal(self, session: Session, browser: Browser) -> Refusal | None:
        refusal = super().csrf_refusal(session, browser)
        if refusal is None or not unknown_here(session, refusal):
            return refusal
        shop = self.shop
        logger.warning(
            "%s: %s %s named a session this instance has never seen (%s): refused, the shop "
            "saying so",
            shop.instance,
            safe(browser.method, 10),
            safe(browser.path, 100),
            "memory:// keeps sessions per process" if shop.per_process else "expired or ended",
        )
        if browser.path.startswith("/api/"):
            return answer(refusal, api.lost_body(shop), "application/json")
        return answer(refusal, pages.lost_page(shop, browser.path), "text/html; charset=utf-8")


def unknown_here(session: Session, refusal: Refusal) -> bool:
    """Whether a CSRF refusal is of a token sent with a cookie naming no session here: the
    origin check passed, and the session is the fresh one the middleware gives such a cookie
    (whose answer clears it)."""
    return refusal.cause == MISMATCH and session.asked == STALE_ID and session.stored is None


def answer(refusal: Refusal, body: bytes, content_type: str) -> Refusal:
    """``refusal`` (its status and cause) with ``body`` in place of the plain text."""
    headers: Headers = (
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    )
    return refusal._replace(body=body, headers=headers)
