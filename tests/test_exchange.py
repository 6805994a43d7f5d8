"""The lifecycle's decisions that every adapter asks for (coatcheck.exchange), as values: the
refusals and their headers, which requests the CSRF check applies to, and what a response adds
for its session. The adapters' own tests show the same answers over HTTP."""

from __future__ import annotations

from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine
from coatcheck.events import SessionEvent
from coatcheck.exchange import LIMITED_BODY, UNAVAILABLE_BODY, Browser, Exchange
from coatcheck.limits import LimitExceeded
from coatcheck.stores.base import StoreUnavailable


def exchange(**options: object) -> tuple[Exchange, list[SessionEvent]]:
    events: list[SessionEvent] = []
    config = SessionConfig.from_options(secure=False, on_event=events.append, **options)
    return Exchange(SessionEngine(config)), events


def test_a_failed_store_is_a_503_that_no_cache_keeps_and_asks_to_retry() -> None:
    refusal = exchange()[0].refusal(StoreUnavailable("connection refused"))
    assert (refusal.status, refusal.status_line, refusal.body) == (
        503,
        "503 Service Unavailable",
        UNAVAILABLE_BODY,
    )
    assert dict(refusal.headers) == {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": str(len(UNAVAILABLE_BODY)),
        "Cache-Control": "no-store",
        "Retry-After": "5",
    }


def test_a_limit_is_a_429_or_a_403_for_a_refused_login() -> None:
    subject = exchange()[0]
    over = subject.refusal(LimitExceeded("new sessions", 12.2))
    assert (over.status, over.body, dict(over.headers)["Retry-After"]) == (429, LIMITED_BODY, "13")
    refused = subject.refusal(LimitExceeded("sessions per user", 0, status=403))
    assert refused.status_line == "403 Forbidden"


def test_the_unavailable_status_is_the_adapters_choice() -> None:
    config = SessionConfig(secure=False)
    refusal = Exchange(SessionEngine(config), 599).refusal(StoreUnavailable("down"))
    assert refusal.status == 599


def test_csrf_applies_to_unsafe_methods_and_handshakes_of_cookie_sessions_only() -> None:
    cookie, header = exchange()[0], exchange(transport="header")[0]
    assert cookie.checks("POST", "/cart")
    assert not cookie.checks("GET", "/cart")
    assert cookie.checks("GET", "/ws", websocket=True)
    assert not header.checks("POST", "/cart")
    assert not header.checks("GET", "/ws", websocket=True)
    assert not exchange(csrf_exempt=["/hooks/"])[0].checks("POST", "/hooks/pay")


def test_a_cross_site_request_is_refused_with_its_cause_and_an_event() -> None:
    subject, events = exchange()
    session = subject.engine.fresh()
    evil = Browser(
        "POST", "/cart", "http", None, "cross-site", "https://evil.example", "shop", None
    )
    refusal = subject.csrf_refusal(session, evil)
    assert refusal is not None
    assert (refusal.status, refusal.cause) == (403, "cross-site request (Sec-Fetch-Site)")
    assert [(e.kind, e.reason) for e in events] == [
        ("rejected", "csrf: cross-site request (Sec-Fetch-Site)")
    ]
    same = Browser("POST", "/cart", "http", None, "same-origin", "http://shop", "shop", None)
    assert subject.csrf_refusal(session, same) is None


def test_a_response_that_hands_out_an_id_carries_it_and_is_never_cached() -> None:
    cookie, header = exchange()[0], exchange(transport="header")[0]
    session = cookie.engine.fresh()
    assert cookie.headers(session, "session=abc; Path=/", app_cache_control=True) == (
        (("set-cookie", "session=abc; Path=/"),),
        True,
    )
    assert header.headers(session, "", app_cache_control=False) == (
        (("x-session-token", ""),),
        True,
    )
    assert cookie.headers(session, None, app_cache_control=False) == ((), False)
