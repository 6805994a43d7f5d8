"""Django's ``SessionMiddleware`` with coatcheck's lifecycle decisions: the ID by cookie or by
header, the request's client for binding and limits, 503 and 429 instead of a 500, and
responses that carry a session kept out of caches."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

from ... import exchange
from ...clients import found_client
from ...cookies import needs_no_store
from ...engine import run
from ...limits import LimitExceeded
from ...session import BearerSession
from ...stores.base import StoreError
from ...transport import IdTransport
from .config import backing
from .session_store import BearerSessionStore

logger = logging.getLogger("coatcheck")


def refused(refusal: exchange.Refusal) -> HttpResponse:
    """The response for one of the exchange's refusals (its status, body and headers)."""
    response = HttpResponse(refusal.body, status=refusal.status)
    for name, value in refusal.headers:
        response[name] = value
    return response


def unavailable(exc: StoreError | LimitExceeded | exchange.Unauthorized) -> HttpResponse:
    """The response to a request whose session could not be loaded or saved (503), that went
    over a limit (429), or whose access token was refused (401)."""
    return refused(backing().exchange.refusal(exc))


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]  # Django is untyped
    """Django's own session middleware, with coatcheck's lifecycle decisions.

    Use it in place of ``django.contrib.sessions.middleware.SessionMiddleware``.

    - **The ID** comes from Django's session cookie, or with ``COATCHECK_SESSION =
      {"transport": "header"}`` from the ``X-Session-Token`` request header and nowhere else;
      the response then gives a new or rotated ID back in that header (empty when the session
      ended, or the request's ID named none) and sets no cookie. A request whose ID came in the
      header carries nothing a browser attaches on its own, so Django's CSRF check does not
      apply to it.
    - **The client** (its address, ``X-Forwarded-For`` from ``trusted_proxies``, its user
      agent) is told to the session, found only if binding or a limit asks.
    - **Refusals**: a store failure (:class:`~coatcheck.stores.StoreError`, from a view's
      session access or from the save after it) is ``503 Service Unavailable`` with
      ``Retry-After``, a request over a limit ``429``, never a 500. A request with an ID has its
      session loaded as it starts, so a failing store is answered here, before other
      middleware reads the session (``CsrfViewMiddleware`` with ``CSRF_USE_SESSIONS``, whose
      own failure Django would answer with a 500).
    - **Caches**: responses that set or drop the ID, and those to a request whose live session
      was read (unless the view chose its own ``Cache-Control``), are marked
      ``Cache-Control: no-store``.
    - **A request forwarded from a regenerated ID** (in its grace window) is given no ID: the
      client keeps the newer one the rotating response gave it.
    - **Expired sessions**, with ``COATCHECK_SESSION["purge_interval"]``, are purged as a
      response goes out, once per interval (one process of those sharing the store purging, up
      to ``purge_batch`` of them): :meth:`coatcheck.engine.SessionEngine.due_purge`.
    """

    def process_request(self, request: HttpRequest) -> Any:
        base = backing()
        token = base.exchange.bearer(request.META.get("HTTP_AUTHORIZATION"))
        if token is not None:  # authenticated by its access token alone
            try:
                bearer = run(base.exchange.authenticate(token), base.store)
            except exchange.REFUSED as exc:
                return unavailable(exc)
            assert isinstance(bearer, BearerSession)
            request.session = BearerSessionStore(bearer)
            request._dont_enforce_csrf_checks = True  # no ambient credential to forge
            return None
        transport = base.exchange.transport
        if transport.cookie_name is None:  # the ID in a header, and never in a cookie
            session_key = transport.read(request.META.get(transport.environ_key))
            if session_key is not None:
                request._dont_enforce_csrf_checks = True  # no ambient credential to forge
        else:
            session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        session = self.SessionStore(session_key)
        meta = request.META
        session.client = partial(  # the values, not the request, which holds the session
            found_client,
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_X_FORWARDED_FOR"),
            meta.get("HTTP_USER_AGENT"),
            base.config.trusted_proxies,
        )
        request.session = session
        if session_key is None:
            return None
        try:
            session.keys()  # load now: a failing store is a 503 before anything else runs
        except (StoreError, LimitExceeded) as exc:
            return unavailable(exc)
        session.accessed = False  # loaded, not yet read by the application
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> Any:
        if isinstance(getattr(request, "session", None), BearerSessionStore):
            return response  # never stored, sets nothing (a cookie sent along is left alone)
        try:
            response = super().process_response(request, response)
        except (StoreError, LimitExceeded) as exc:
            return unavailable(exc)
        base = backing()
        if base.config.purge_interval is not None:
            purge = base.engine.due_purge(base.config.clock())
            if purge is not None:
                run(purge, base.store)  # never fails: a failed purge is logged
        session = getattr(request, "session", None)
        if session is None:
            return response
        name = settings.SESSION_COOKIE_NAME
        if getattr(session, "forwarded", False):  # its client holds a newer ID: keep it
            response.cookies.pop(name, None)
        transport = backing().exchange.transport
        if transport.cookie_name is None:
            _cookie_to_header(request, response, session, transport)
            handed_out = response.has_header(transport.response_header)
        else:
            handed_out = name in response.cookies
        live = session.accessed and session.session_key is not None
        if needs_no_store(live, handed_out, response.has_header("Cache-Control")):
            response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, StoreError | LimitExceeded):
            return unavailable(exception)
        return None


def _cookie_to_header(
    request: HttpRequest, response: HttpResponse, session: Any, transport: IdTransport
) -> None:
    """Give the ID back in the transport's header rather than the cookie Django's middleware
    set: the new ID, or empty when the session ended or the request's ID named none; and vary
    on the header, not on cookies."""
    header = transport.response_header
    morsel = response.cookies.pop(settings.SESSION_COOKIE_NAME, None)
    if morsel is not None:
        response[header] = "" if morsel["max-age"] == 0 else morsel.value
    elif session.session_key is None and transport.read(request.META.get(transport.environ_key)):
        response[header] = ""  # the request's ID named nothing, or was logged out
    vary = [v.strip() for v in response.get("Vary", "").split(",") if v.strip()]
    if any(v.lower() == "cookie" for v in vary) or response.has_header(header):
        del response["Vary"]
        kept = [v for v in vary if v.lower() != "cookie"]
        if kept:
            response["Vary"] = ", ".join(kept)
        patch_vary_headers(response, (header,))
