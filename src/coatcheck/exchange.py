"""One request's session lifecycle, as the decisions every adapter asks for; no I/O.

An adapter (the ASGI and WSGI middleware, each framework integration) is glue: it reads what
the request carries, asks here what to do, carries out the engine's store plans, and writes
what it is told. The steps, in order:

1. **The ID**, read the transport's way (:class:`~coatcheck.transport.IdTransport`), or,
   with ``access_tokens``, a Bearer access token (:meth:`Exchange.bearer`), which stands for
   the ID: :meth:`Exchange.authenticate` gives its read-only session, or raises
   :class:`Unauthorized`; such a request has no CSRF check and sets nothing.
2. **Load**: :meth:`Exchange.open` gives a fresh session (no store call) or the engine's load
   plan; :meth:`Exchange.wants_client` says whether the request's client must be found for it.
3. **Refusals**: a store that fails, a limit, or a bad access token (any of :data:`REFUSED`) is
   answered by :meth:`Exchange.refusal` (503; 429, or 403 for a refused login; 401) instead of
   the application's response, never a 500.
4. **CSRF**: :meth:`Exchange.checks` says whether a request is checked at all; given what it
   carries (:class:`Browser`), :meth:`Exchange.csrf_refusal` gives the 403 (and reports the
   ``rejected`` event) or None.
5. **Commit** when the response starts: the engine's commit plan.
6. **Headers**: :meth:`Exchange.headers` gives what the response adds for its session (the
   cookie or the session header) and whether it must be ``Cache-Control: no-store``. A
   response that sets the cookie is reported to :meth:`Exchange.cookie_set`, which warns once
   when browsers will drop it (``Secure`` over plain http to a host other than localhost).

>>> from coatcheck.config import SessionConfig
>>> from coatcheck.engine import SessionEngine
>>> from coatcheck.stores.base import StoreUnavailable
>>> exchange = Exchange(SessionEngine(SessionConfig(secure=False)))
>>> refused = exchange.refusal(StoreUnavailable("down"))
>>> refused.status, refused.reason, dict(refused.headers)["Retry-After"]
(503, 'Service Unavailable', '5')
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import NamedTuple

from . import csrf
from .clients import ClientSource, request_scheme
from .cookies import needs_no_store
from .engine import Plan, SessionEngine
from .limits import LimitExceeded
from .session import BearerSession, Session
from .stores.base import StoreError
from .transport import IdTransport

logger = logging.getLogger("coatcheck")

UNAVAILABLE_BODY = b"Session store unavailable. Please retry shortly.\n"
LIMITED_BODY = b"Too many requests for new or unknown sessions. Please retry later.\n"
INVALID_TOKEN_BODY = b"Invalid access token.\n"
UNAVAILABLE_RETRY = 5
"""Seconds a client is asked to wait (``Retry-After``) when the store failed."""

Headers = tuple[tuple[str, str], ...]


class Refusal(NamedTuple):
    """The answer a request gets instead of the application's: a short plain text that no
    cache keeps."""

    status: int
    body: bytes
    headers: Headers
    """``Content-Type``, ``Content-Length``, ``Cache-Control`` (and ``Retry-After``)."""
    cause: str = ""
    """Why, for logs (a CSRF refusal's problem); never sent."""

    @property
    def reason(self) -> str:
        """The status's reason phrase (``Service Unavailable``)."""
        return HTTPStatus(self.status).phrase

    @property
    def status_line(self) -> str:
        """The status as WSGI writes it (``503 Service Unavailable``)."""
        return f"{self.status} {self.reason}"


def plain(status: int, body: bytes, *extra: tuple[str, str]) -> Refusal:
    """A :class:`Refusal` of ``status`` with ``body``, and ``extra`` headers."""
    return Refusal(
        status,
        body,
        (
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ),
    )


CSRF_REFUSAL = plain(403, csrf.FORBIDDEN_BODY)
"""The 403 for a request that fails its CSRF check."""

INVALID_TOKEN = plain(401, INVALID_TOKEN_BODY, ("WWW-Authenticate", 'Bearer error="invalid_token"'))
"""The 401 for a request whose Bearer access token is malformed, badly signed, expired or
revoked (RFC 6750)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header value (``""`` when it holds none); None
    without a value, or for another scheme.

    >>> bearer_token("Bearer abc"), bearer_token("bearer  abc "), bearer_token("Basic abc")
    ('abc', 'abc', None)
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class Unauthorized(Exception):
    """A request's Bearer access token was refused (why, in the message: never the token)."""


REFUSED = (StoreError, LimitExceeded, Unauthorized)
"""What loading (or committing) a request's session may raise that :meth:`Exchange.refusal`
answers: adapters catch these, and nothing else."""


STORE_DOWN = plain(503, UNAVAILABLE_BODY, ("Retry-After", str(UNAVAILABLE_RETRY)))
"""The 503 for a request whose session store failed."""


def unavailable(exc: StoreError, status: int = 503) -> Refusal:
    """The answer to a request whose session store failed (the failure is logged)."""
    logger.error("session store failed: %s", exc)
    return STORE_DOWN if status == 503 else STORE_DOWN._replace(status=status)


class Browser(NamedTuple):
    """What a request carries that the CSRF check reads (header values as sent, or None)."""

    method: str
    path: str
    scheme: str
    """The scheme the request was received on (``http``, ``https``, ``ws``, ``wss``)."""
    peer: str | None
    """The address the connection came from (a trusted proxy's ``X-Forwarded-Proto`` counts)."""
    sec_fetch_site: str | None
    origin: str | None
    host: str | None
    forwarded_proto: str | None
    submitted: str | None = None
    """The CSRF token the request carries (its header, or its form field)."""
    websocket: bool = False


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts whose plain-http responses Chrome and Firefox let set a ``Secure`` cookie (as if
secure); everywhere else over http, and in Safari even there, the cookie is dropped."""


def host_name(host: str) -> str:
    """A ``Host`` header's name, without its port (``[::1]:8000`` is ``::1``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def drops_secure_cookie(scheme: str, host: str | None) -> bool:
    """Whether browsers drop a ``Secure`` cookie set on a response to ``scheme://host``."""
    return scheme == "http" and host is not None and host_name(host).lower() not in LOOPBACK_HOSTS


class Exchange:
    """The lifecycle decisions for one engine (one per middleware or integration)."""

    __slots__ = (
        "config",
        "engine",
        "tokens",
        "transport",
        "unavailable_status",
        "watching_secure",
    )

    def __init__(self, engine: SessionEngine, unavailable_status: int = 503) -> None:
        self.engine = engine
        self.config = engine.config
        self.tokens = engine.config.access_tokens
        """Where Bearer access tokens are verified (``access_tokens``), or None."""
        self.transport = IdTransport.of(engine.config)
        self.unavailable_status = unavailable_status
        self.watching_secure = self.config.secure and self.transport.cookie_name is not None
        """Whether a response that sets the cookie is still to be checked for a ``Secure``
        cookie the browser will drop (until the one warning)."""

    # -- 1, 2: the ID and the load ------------------------------------------------------------

    def wants_client(self, session_id: str | None) -> bool:
        """Whether loading (or starting) the session needs the request's client: binding, the
        per-client limits."""
        engine = self.engine
        return engine.fresh_needs_client if session_id is None else engine.load_needs_client

    def bearer(self, authorization: str | None) -> str | None:
        """The access token of an ``Authorization: Bearer`` header value (``""`` when it holds
        none); None without ``access_tokens``, without the header, or with another scheme."""
        return None if self.tokens is None else bearer_token(authorization)

    def authenticate(self, token: str) -> Plan[Session]:
        """The plan that verifies an access token (and reads its user's revocation record,
        unless the tokens are stateless or cached): the request's read-only
        :class:`~coatcheck.session.BearerSession`, or :class:`Unauthorized`."""
        tokens = self.tokens
        assert tokens is not None, "authenticate() needs access_tokens"
        from .tokens import InvalidToken  # noqa: PLC0415 - loaded with the Tokens given

        try:
            claims = yield from tokens.authenticate(token)
        except InvalidToken as exc:
            raise Unauthorized(type(exc).__name__) from None
        config = self.config
        return BearerSession.of(claims, config.clock(), config.max_size)

    def open(self, session_id: str | None, client: ClientSource) -> Session | Plan[Session]:
        """A fresh session (no cookie: no store call), or the plan that loads the one named."""
        if session_id is None:
            return self.engine.fresh(client)
        return self.engine.load(session_id, client)

    # -- 3: refusals --------------------------------------------------------------------------

    def refusal(self, exc: StoreError | LimitExceeded | Unauthorized) -> Refusal:
        """The answer instead of the application's: 503 when the store failed (logged), 429 over
        a limit (403 for a login refused by ``max_sessions_per_user``), 401 for a refused access
        token."""
        if isinstance(exc, LimitExceeded):
            return plain(exc.status, LIMITED_BODY, ("Retry-After", str(exc.retry_after)))
        if isinstance(exc, Unauthorized):
            return INVALID_TOKEN
        return unavailable(exc, self.unavailable_status)

    # -- 4: CSRF ------------------------------------------------------------------------------

    def checks(self, method: str, path: str, websocket: bool = False) -> bool:
        """Whether the request's origin (and, in token mode, its token) is checked at all: an
        unsafe method, or a WebSocket handshake, with the ID in a cookie, on a path not exempt."""
        if websocket:
            return self.config.csrf != "off" and self.config.transport == "cookie"
        return csrf.applies(self.config, method, path)

    def wants_form(self, header_token: str | None, content_type: str | None) -> bool:
        """Whether the token must be looked for in the form body (the adapter reads it, up to
        :data:`coatcheck.csrf.FORM_LIMIT` bytes, with :func:`coatcheck.csrf.form_token`)."""
        return csrf.wants_form(self.config, header_token, content_type)

    def csrf_refusal(self, session: Session, browser: Browser) -> Refusal | None:
        """The 403 for a checked request whose browser headers (or token) show it came from
        another site, reported as a ``rejected`` event; None when it passes."""
        if type(session) is BearerSession:  # no ambient credential: nothing to forge
            return None
        config = self.config
        scheme = request_scheme(
            browser.scheme, browser.peer, browser.forwarded_proto, config.trusted_proxies
        )
        if browser.websocket:
            problem = csrf.handshake_problem(
                config, browser.path, browser.origin, browser.host, scheme
            )
        else:
            problem = csrf.verdict(
                config,
                session,
                sec_fetch_site=browser.sec_fetch_site,
                origin=browser.origin,
                host=browser.host,
                scheme=scheme,
                submitted=browser.submitted,
            )
        if problem is None:
            return None
        key = session.stored.key if session.stored is not None else None
        self.engine.emit("rejected", key, session.user_id, f"csrf: {problem}")
        return CSRF_REFUSAL._replace(cause=problem)

    # -- 5, 6: the commit and the response's headers -------------------------------------------

    def cookie_set(
        self, scheme: str, host: str | None, peer: str | None, forwarded_proto: str | None
    ) -> None:
        """Report that a response sets the session cookie, on a request received on ``scheme``
        for ``host`` (a trusted proxy's ``X-Forwarded-Proto`` counts). The first time a
        ``Secure`` cookie goes out over plain http to a host other than localhost, which
        browsers drop (so every request starts a new session, and login seems to do nothing),
        log one warning. Adapters call it only while :attr:`watching_secure`."""
        scheme = request_scheme(scheme, peer, forwarded_proto, self.config.trusted_proxies)
        if not drops_secure_cookie(scheme, host):
            return
        self.watching_secure = False
        logger.warning(
            "the session cookie is Secure, but this response goes over plain http to %s: "
            "browsers drop the cookie (only localhost is spared, and not by Safari), so every "
            "request starts a new session. Serve over https, list the TLS proxy in "
            "trusted_proxies if there is one, or set secure=False for local development.",
            host,
        )

    def commit(self, session: Session) -> Plan[str | None] | None:
        """The plan that stores what the request did (None: nothing to do); it gives the value
        of the response header that carries the ID, or None for none."""
        return self.engine.commit(session)

    def headers(
        self, session: Session, id_value: str | None, app_cache_control: bool
    ) -> tuple[Headers, bool]:
        """What a response adds for its session: the header carrying the ID (when the commit
        gave one), and whether its ``Cache-Control`` must become ``no-store`` (replacing the
        application's): a response that hands out an ID always; one to a request with a live
        session unless the application chose its own (``app_cache_control``)."""
        added: Headers = ()
        if id_value is not None:
            added = ((self.transport.response_header, id_value),)
        no_store = needs_no_store(not session.is_new, id_value is not None, app_cache_control)
        return added, no_store
