"""WSGI middleware: a session at ``environ["coatcheck.session"]`` for every request.

The session is committed when the application calls ``start_response``, and the cookie is added
to the headers it passes. Changes made while the body is being iterated come too late to store.

>>> from coatcheck.stores import MemoryStore
>>> def app(environ, start_response):
...     environ["coatcheck.session"]["visits"] = 1
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [b"hello"]
>>> app = SessionMiddleware(app, store=MemoryStore(), secure=False)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import csrf
from ._observed import with_metrics
from .clients import ClientSource, found_client
from .config import SessionConfig
from .cookies import private_headers
from .engine import SessionEngine, run
from .exchange import REFUSED, Browser, Exchange, Refusal, Unauthorized
from .limits import LimitExceeded
from .session import Session
from .stores.base import Store, StoreError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import SessionOptions

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

ENVIRON_KEY = "coatcheck.session"
NO_STORE = ("cache-control", "no-store")


class SessionMiddleware:
    """Give every request a :class:`~coatcheck.session.Session` backed by a sync ``store``.

    Takes the same options as :class:`coatcheck.asgi.SessionMiddleware`.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        store: Store,
        config: SessionConfig | None = None,
        unavailable_status: int = 503,
        **options: Unpack[SessionOptions],
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"the WSGI middleware needs a sync Store, not {type(store).__name__}")
        self.app = app
        self.engine = SessionEngine(config if config else SessionConfig.from_options(**options))
        self.store = with_metrics(store, self.engine.config.metrics)
        self.unavailable_status = unavailable_status
        self.exchange = Exchange(self.engine, unavailable_status)
        self.transport = self.exchange.transport
        self._id_key = self.transport.environ_key
        self._parse_id = self.transport.parse
        self._id_response_header = _title(self.transport.response_header)
        self._bearer_on = self.exchange.tokens is not None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        engine, store = self.engine, self.store
        if self._bearer_on:
            token = self.exchange.bearer(environ.get("HTTP_AUTHORIZATION"))
            if token is not None:
                return self._serve_bearer(environ, start_response, token)
        header = environ.get(self._id_key)
        cookie_value = self._parse_id(header) if header else None
        wanted = engine.fresh_needs_client if cookie_value is None else engine.load_needs_client
        client = client_source(environ, engine) if wanted else None
        if cookie_value is None:
            session = engine.fresh(client)
        else:
            try:
                session = engine.load_from(store, cookie_value, client)
            except (StoreError, LimitExceeded) as exc:
                return self._refuse(start_response, exc)
        environ[ENVIRON_KEY] = session
        refused: list[bytes] | None = None

        def start_with_session(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            nonlocal refused
            if exc_info is None and refused is None:
                try:
                    done = engine.commit(session, store)  # a save made, or a plan
                    set_cookie = done if done is None or isinstance(done, str) else run(done, store)
                except (StoreError, LimitExceeded) as exc:
                    refused = self._refuse(start_response, exc)
                    return None
                private = private_headers(headers, session, set_cookie, NO_STORE)
                if private is not None:
                    headers = private
                if set_cookie is not None:
                    headers = [*headers, (self._id_response_header, set_cookie)]
                    if self.exchange.watching_secure:
                        self.exchange.cookie_set(
                            environ.get("wsgi.url_scheme", "http"),
                            environ.get("HTTP_HOST"),
                            environ.get("REMOTE_ADDR"),
                            environ.get("HTTP_X_FORWARDED_PROTO"),
                        )
            return start_response(status, headers, exc_info)

        method = environ.get("REQUEST_METHOD", "")
        if method in csrf.UNSAFE_METHODS and self.exchange.checks(
            method, environ.get("PATH_INFO", "")
        ):
            csrf_refused = self._csrf_refusal(environ, session)
            if csrf_refused is not None:
                start_with_session(csrf_refused.status_line, list(csrf_refused.headers))
                return refused if refused is not None else [csrf_refused.body]
        body = self.app(environ, start_with_session)
        if refused is not None:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return refused
        return body

    def _serve_bearer(
        self, environ: dict[str, Any], start_response: StartResponse, token: str
    ) -> Iterable[bytes]:
        """Serve a request authenticated by its access token: a read-only session of its user,
        no CSRF check, nothing committed or set; a 401 when the token is refused."""
        try:
            environ[ENVIRON_KEY] = run(self.exchange.authenticate(token), self.store)
        except REFUSED as exc:
            return self._refuse(start_response, exc)
        return self.app(environ, start_response)

    def _csrf_refusal(self, environ: dict[str, Any], session: Session) -> Refusal | None:
        """The 403 for an unsafe request that fails the CSRF check, or None (a form body is
        left re-readable)."""
        exchange, config = self.exchange, self.engine.config
        header_key = "HTTP_" + config.csrf_header.upper().replace("-", "_")
        submitted: str | None = environ.get(header_key)
        content_type: str | None = environ.get("CONTENT_TYPE")
        if exchange.wants_form(submitted, content_type):
            assert content_type is not None
            body = _read_body(environ, csrf.FORM_LIMIT)
            submitted = csrf.form_token(content_type, body, config.csrf_field)
        browser = Browser(
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("wsgi.url_scheme", "http"),
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_SEC_FETCH_SITE"),
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_HOST"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            submitted,
        )
        return exchange.csrf_refusal(session, browser)

    def _refuse(
        self, start_response: StartResponse, exc: StoreError | LimitExceeded | Unauthorized
    ) -> list[bytes]:
        """Answer instead of the app: 503 when the store failed, 429 (or 403) over a limit, 401
        for a refused access token."""
        refusal = self.exchange.refusal(exc)
        start_response(refusal.status_line, list(refusal.headers))
        return [refusal.body]


def client_source(environ: dict[str, Any], engine: SessionEngine) -> ClientSource:
    """How to find the request's client (X-Forwarded-For from trusted proxies), when binding
    or a limit asks. It holds the values, not ``environ``, which holds the session."""
    return partial(
        found_client,
        environ.get("REMOTE_ADDR"),
        environ.get("HTTP_X_FORWARDED_FOR"),
        environ.get("HTTP_USER_AGENT"),
        engine.config.trusted_proxies,
    )


def _title(name: str) -> str:
    """A header name as WSGI servers usually spell it (``Set-Cookie``, ``X-Session-Token``)."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """Read the request body (up to ``limit`` bytes) and put it back for the application."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0 or length > limit:
        return b""
    stream = environ["wsgi.input"]
    body: bytes = stream.read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body
