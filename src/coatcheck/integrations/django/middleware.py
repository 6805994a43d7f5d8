"""Django's ``SessionMiddleware``, answering 503 instead of 500 when the session store fails."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse

from ... import exchange
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
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> Any:
        try:
            return super().process_response(request, response)
        except StoreError as exc:
            return unavailable(exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, StoreError):
            return unavailable(exception)
        return None
