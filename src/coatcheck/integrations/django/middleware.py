"""Django's ``SessionMiddleware``, answering 503 instead of 500 when the session store fails,
and keeping responses that carry a session out of caches."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse

from ... import exchange
from ...cookies import needs_no_store
from ...stores.base import StoreError

logger = logging.getLogger("coatcheck")


def unavailable(exc: StoreError) -> HttpResponse:
    """The response to a request whose session could not be loaded or saved."""
    refusal = exchange.unavailable(exc)
    response = HttpResponse(refusal.body, status=refusal.status)
    for name, value in refusal.headers:
        response[name] = value
    return response


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]  # Django is untyped
    """Django's own session middleware (cookie handling unchanged), with store failures
    (:class:`~coatcheck.stores.StoreError`, from a view's session access or from the save after
    it) answered ``503 Service Unavailable`` with ``Retry-After``, never a 500.

    Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``.

    A request with a session cookie has its session loaded as it starts (the store call
    anything reading the session would make), so a failing store is answered here, before
    other middleware reads the session (``CsrfViewMiddleware`` with ``CSRF_USE_SESSIONS``,
    whose own failure Django would answer with a 500). Responses that set or expire the cookie,
    and those to a request whose live session was read (unless the view chose its own
    ``Cache-Control``), are marked ``Cache-Control: no-store``, as every coatcheck adapter does.
    """

    def process_request(self, request: HttpRequest) -> Any:
        super().process_request(request)
        session = request.session
        if session.session_key is None:
            return None
        try:
            session.keys()  # load now: a failing store is a 503 before anything else runs
        except StoreError as exc:
            return unavailable(exc)
        session.accessed = False  # loaded, not yet read by the application
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> Any:
        try:
            response = super().process_response(request, response)
        except StoreError as exc:
            return unavailable(exc)
        session = getattr(request, "session", None)
        if session is not None:
            live = session.accessed and session.session_key is not None
            handed_out = settings.SESSION_COOKIE_NAME in response.cookies
            if needs_no_store(live, handed_out, response.has_header("Cache-Control")):
                response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, StoreError):
            return unavailable(exception)
        return None
