"""Flask integration: ``flask.session`` kept on the server by coatcheck; replaces Flask-Session.

``Session(app)`` (or ``Session().init_app(app)``) installs a Flask session interface backed by
coatcheck's engine and a sync store. ``flask.session`` stays a mapping with Flask's ``permanent``,
``new``, ``modified`` and ``accessed``, and gains coatcheck's ``regenerate()``, ``login()`` and
``logout()``; :func:`current_session` gives it typed. With Flask-Login installed, ``login_user``
gives the session a new ID (session fixation defence) and ``logout_user`` destroys it.

Configuration comes from ``app.config``, read when ``init_app`` runs unless noted:

- ``COATCHECK_STORE`` (a sync :class:`~coatcheck.stores.Store`), else ``COATCHECK_STORE_URL``
  (see :func:`coatcheck.stores.from_url`), else SQLite in ``app.instance_path``.
- ``PERMANENT_SESSION_LIFETIME`` (Flask's key; 31 days by default) is the idle timeout unless
  ``COATCHECK_IDLE_TIMEOUT`` is set, and no longer than ``COATCHECK_ABSOLUTE_TIMEOUT`` when that
  is set; ``COATCHECK_ABSOLUTE_TIMEOUT`` defaults to 12 hours, or to the idle timeout when that
  is longer. Only ``COATCHECK_IDLE_TIMEOUT`` longer than ``COATCHECK_ABSOLUTE_TIMEOUT`` is
  refused. ``COATCHECK_TOUCH_INTERVAL`` (60 s, at most half the idle
  timeout), ``COATCHECK_MAX_SIZE``, ``COATCHECK_HASH_SECRET`` as in
  :class:`~coatcheck.config.SessionConfig`. ``COATCHECK_FLASK_LOGIN`` (True) hooks Flask-Login.
  ``COATCHECK_ON_EVENT``: called with every :class:`~coatcheck.events.SessionEvent`.
- Binding and limits, as in :class:`~coatcheck.config.SessionConfig`: ``COATCHECK_BIND_TO``,
  ``COATCHECK_BINDING_ACTION``, ``COATCHECK_IPV4_PREFIX``, ``COATCHECK_IPV6_PREFIX``,
  ``COATCHECK_TRUSTED_PROXIES`` (whose ``X-Forwarded-For`` is believed: the client's address is
  read from the WSGI ``REMOTE_ADDR`` and that header, whether or not the app uses ProxyFix),
  ``COATCHECK_MAX_CREATIONS_PER_CLIENT``, ``COATCHECK_MAX_REJECTIONS_PER_CLIENT``,
  ``COATCHECK_MAX_CREATIONS``, ``COATCHECK_MAX_SESSIONS_PER_USER``,
  ``COATCHECK_SESSION_LIMIT_POLICY`` and ``COATCHECK_LIMIT_WINDOW``. A request over a limit gets
  :class:`SessionLimited` (429, or 403 for a login refused by ``max_sessions_per_user``).
- CSRF, checked by a ``before_request`` on unsafe methods (POST, PUT, PATCH, DELETE) with
  :mod:`coatcheck.csrf`, as the core middleware checks them: ``COATCHECK_CSRF`` (``"origin"``:
  refuse what the browser marks cross-site; ``"token"``: also require the session's token;
  ``"off"``), ``COATCHECK_CSRF_HEADER`` (``X-CSRF-Token``), ``COATCHECK_CSRF_FIELD``
  (``csrf_token``), ``COATCHECK_CSRF_EXEMPT`` (path prefixes) and ``COATCHECK_TRUSTED_ORIGINS``.
  A refused request gets :class:`CsrfRefused` (403) and a ``rejected`` audit event. Templates
  embed the token with ``{{ csrf_token() }}`` (:func:`csrf_token`).
- Read at every request, as Flask does: ``SESSION_PERMANENT`` (Flask-Session's key: whether a
  session without ``_permanent`` is permanent; True), ``SESSION_REFRESH_EACH_REQUEST`` and every
  ``SESSION_COOKIE_*`` key (name, domain, path or ``APPLICATION_ROOT``, secure, httponly,
  samesite, partitioned).

Values may be anything Flask's own cookie session stores (tuples, bytes, datetimes, UUIDs,
Markup, nested JSON): they are stored with Flask's tagged JSON. A store failure gives a 503.
Neither gives a 500, whether it happens as the session is loaded or as it is committed.

>>> import flask
>>> from coatcheck.stores import MemoryStore
>>> app = flask.Flask(__name__)
>>> app.config["COATCHECK_STORE"] = MemoryStore()
>>> @app.get("/")
... def visits() -> str:
...     flask.session["visits"] = flask.session.get("visits", 0) + 1
...     return str(flask.session["visits"])
>>> Session(app)
<coatcheck.integrations.flask.Session object at ...>
>>> client = app.test_client()
>>> client.get("/").text, client.get("/").text
('1', '2')
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import flask
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import NullSession, SessionInterface, SessionMixin, session_json_serializer
from flask.wrappers import Request, Response
from werkzeug.datastructures import Headers
from werkzeug.exceptions import (
    Forbidden,
    HTTPException,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)

from .. import csrf
from ..config import SessionConfig
from ..cookies import find_cookie
from ..engine import SessionEngine, run
from ..exchange import (
    CSRF_REFUSAL,
    INVALID_TOKEN,
    LIMITED_BODY,
    REFUSED,
    STORE_DOWN,
    UNAVAILABLE_BODY,
    Exchange,
    Refusal,
)
from ..exchange import Unauthorized as TokenRefused
from ..limits import LimitExceeded
from ..session import BearerSession
from ..session import Session as CoatcheckSession
from ..stores import Store, StoreError
from ..wsgi import client_source
from .app_config import (
    OPTION_KEYS,
    browser_of,
    configured_store,
    engines,
    exchange_of,
    report_cookie,
    session_config,
)

__all__ = [
    "OPTION_KEYS",
    "CoatcheckSessionInterface",
    "CsrfRefused",
    "FlaskSession",
    "InvalidAccessToken",
    "Session",
    "SessionLimitRefused",
    "SessionLimited",
    "SessionStoreUnavailable",
    "csrf_token",
    "current_session",
]

logger = logging.getLogger("coatcheck")

PERMANENT_KEY = "_permanent"
"""Where Flask keeps ``session.permanent`` in the data (written only when it differs from the
default, so an anonymous visitor never gets a session for it)."""
REFUSAL_KEY = "coatcheck.refusal"
"""Set in the WSGI environ, to the answer the request gets, when its session could not be loaded
(read without touching the session, which would mark it accessed)."""


class _Refused(HTTPException):
    """A refusal of the core's (:mod:`coatcheck.exchange`) as a werkzeug exception, so that
    ``@app.errorhandler`` applies to it: the same status, body and headers."""

    refusal: Refusal

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.refusal.body.decode()

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [(name, value) for name, value in self.refusal.headers if name != "Content-Length"]


class SessionStoreUnavailable(_Refused, ServiceUnavailable):
    """The 503 a request gets when the session store fails (``@app.errorhandler(503)`` applies)."""

    description = UNAVAILABLE_BODY.decode()

    def __init__(self, refusal: Refusal | None = None) -> None:
        super().__init__()
        self.refusal = refusal or STORE_DOWN


class _OverLimit(_Refused):
    """What the answers to a request over a session limit share."""

    description = LIMITED_BODY.decode()

    def __init__(self, exceeded: LimitExceeded, refusal: Refusal) -> None:
        super().__init__()
        self.exceeded = exceeded
        """The engine's :class:`~coatcheck.limits.LimitExceeded` (``reason``, ``retry_after``)."""
        self.refusal = refusal


class SessionLimited(_OverLimit, TooManyRequests):
    """The 429 a request gets over a rate limit (new sessions, or cookies naming none, per
    client or overall); ``@app.errorhandler(429)`` applies."""


class SessionLimitRefused(_OverLimit, Forbidden):
    """The 403 a login gets past ``max_sessions_per_user`` under the ``"refuse"`` policy."""


class InvalidAccessToken(_Refused, Unauthorized):
    """The 401 a request gets when its Bearer access token is refused (malformed, badly signed,
    expired or revoked), with ``WWW-Authenticate: Bearer error="invalid_token"``."""

    description = INVALID_TOKEN.body.decode()

    def __init__(self, refusal: Refusal | None = None) -> None:
        super().__init__()
        self.refusal = refusal or INVALID_TOKEN


def refusal_exception(
    exchange: Exchange, exc: StoreError | LimitExceeded | TokenRefused
) -> HTTPException:
    """The answer instead of the app's: 503 when the store failed, 429 (or 403) over a limit,
    401 for a refused access token."""
    refusal = exchange.refusal(exc)
    if isinstance(exc, StoreError):
        return SessionStoreUnavailable(refusal)
    if isinstance(exc, TokenRefused):
        return InvalidAccessToken(refusal)
    if exc.status == 403:
        return SessionLimitRefused(exc, refusal)
    return SessionLimited(exc, refusal)


class CsrfRefused(_Refused, Forbidden):
    """The 403 an unsafe request gets when it fails the CSRF check (``@app.errorhandler(403)``
    or ``@app.errorhandler(CsrfRefused)`` applies); ``reason`` says why, for logs only."""

    description = csrf.FORBIDDEN_BODY.decode()

    def __init__(self, reason: str, refusal: Refusal = CSRF_REFUSAL) -> None:
        super().__init__()
        self.reason = reason
        self.refusal = refusal


class UnavailableSession(NullSession):
    """The session of a request whose session could not be loaded: it reads as empty and refuses
    writes; the request is answered (:class:`SessionStoreUnavailable`, :class:`SessionLimited`)
    before any view runs."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        refusal = flask.request.environ.get(REFUSAL_KEY) if flask.has_request_context() else None
        raise refusal if isinstance(refusal, HTTPException) else SessionStoreUnavailable()

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail


class FlaskSession(SessionMixin):
    """What ``flask.session`` is: coatcheck's :class:`~coatcheck.session.Session` seen by Flask.

    Values go in and come out as with Flask's own session (through Flask's tagged JSON); a value
    read in a request is the same object until the response, so changes inside it are stored.
    """

    def __init__(
        self,
        session: CoatcheckSession,
        serializer: TaggedJSONSerializer,
        default_permanent: bool,
        cookie_value: str | None = None,
    ) -> None:
        self.coatcheck = session
        """The underlying coatcheck session (JSON data, as stored)."""
        self.accessed = False
        self._serializer = serializer
        self._default_permanent = default_permanent
        self._cookie_value = cookie_value
        self._live: dict[str, Any] = {}
        self._loaded_permanent = self.permanent

    # -- what Flask expects of a session ------------------------------------------------------

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser (``SESSION_PERMANENT`` unless set here).

        Changing it on a stored session gives the session a new ID, so the browser gets a new
        cookie with the right lifetime.
        """
        value = self.coatcheck.get(PERMANENT_KEY, self._default_permanent)
        return bool(value)

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if bool(value) != self.permanent:
            self[PERMANENT_KEY] = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True until the session is stored (it is created by its first write)."""
        return self.coatcheck.is_new

    @property
    def modified(self) -> bool:
        """Whether this request changed the session; set True to force a write."""
        return self.coatcheck.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self.coatcheck.modified = value

    # -- coatcheck's lifecycle -----------------------------------------------------------------

    @property
    def user_id(self) -> str | None:
        """The user the session is bound to by :meth:`login`, or None."""
        return self.coatcheck.user_id

    @property
    def flagged(self) -> bool:
        """Whether this request's client differs from the one the session is bound to (only
        with ``COATCHECK_BIND_TO`` and ``COATCHECK_BINDING_ACTION = "flag"``)."""
        return self.coatcheck.flagged

    def regenerate(self) -> None:
        """Give the session a new ID when the response is sent (the data stays)."""
        self.coatcheck.regenerate()

    def login(self, user_id: str) -> None:
        """Bind the session to ``user_id`` under a new ID (as Flask-Login's ``login_user`` does)."""
        self.coatcheck.login(user_id)

    def logout(self) -> None:
        """Destroy the session and expire its cookie; later writes start an anonymous one."""
        self._live.clear()
        self.coatcheck.logout()

    def csrf_token(self) -> str:
        """The session's CSRF token, masked afresh (see :meth:`coatcheck.Session.csrf_token`)."""
        return self.coatcheck.csrf_token()

    # -- the mapping -----------------------------------------------------------------------

    # Reads mark the session accessed (Vary: Cookie), as Flask's own session does; Flask also
    # marks it whenever ``flask.session`` is used, Quart does not.

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        stored = self.coatcheck[key]
        if key in self._live:
            return self._live[key]
        value = self._live[key] = _untag(self._serializer, stored)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.coatcheck[key] = self._serializer.tag(value)
        self._live[key] = value

    def __delitem__(self, key: str) -> None:
        del self.coatcheck[key]
        self._live.pop(key, None)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return key in self.coatcheck

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return iter(self.coatcheck)

    def __len__(self) -> int:
        self.accessed = True
        return len(self.coatcheck)

    def clear(self) -> None:
        self._live.clear()
        self.coatcheck.clear()

    def __repr__(self) -> str:
        return f"<FlaskSession of {self.coatcheck!r}>"

    # -- before the commit -------------------------------------------------------------------

    def settle(self) -> None:
        """Store what changed inside values read in this request, and apply Flask's rules: an
        emptied session is destroyed (unless it holds a CSRF token), and a change of
        ``permanent`` re-issues the cookie."""
        inner = self.coatcheck
        for key, value in self._live.items():
            if key in inner:
                tagged = self._serializer.tag(value)
                if tagged != inner[key]:
                    inner[key] = tagged
        if inner.user_id is None and not inner.keys() - {PERMANENT_KEY}:
            if inner.end_if_emptied(ignoring=(PERMANENT_KEY,)):
                self._live.clear()
            elif inner.is_new:
                dict.pop(inner, PERMANENT_KEY, None)  # no session just for the flag
            return
        if self.permanent != self._loaded_permanent:
            inner.regenerate()


def _untag(serializer: TaggedJSONSerializer, value: Any) -> Any:
    """A stored value as the application stored it (Flask's tagged JSON, decoded in depth)."""
    if isinstance(value, dict):
        return serializer.untag({key: _untag(serializer, item) for key, item in value.items()})
    if isinstance(value, list):
        return [_untag(serializer, item) for item in value]
    return value


class CoatcheckSessionInterface(SessionInterface):
    """Flask's session interface, backed by coatcheck's engine and a sync ``store``.

    Two engines share the store and differ only in the cookie they write: one for permanent
    sessions (Max-Age and Expires), one for browser-session cookies.
    """

    serializer = session_json_serializer
    """Flask's tagged JSON, so tags an app registers for its cookie sessions work here too."""
    null_session_class = UnavailableSession

    def __init__(self, app: flask.Flask, store: Store, config: SessionConfig) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"Flask needs a sync Store, not {type(store).__name__}")
        self.store = store
        self.config = config
        self.engines: dict[bool, SessionEngine] = engines(config, app, self)
        self.exchange = exchange_of(self.engines, app)
        """The lifecycle's decisions (refusals, CSRF), the same for both engines."""

    def open_session(self, app: flask.Flask, request: Request) -> FlaskSession | None:
        default_permanent = bool(app.config.get("SESSION_PERMANENT", True))
        token = self.exchange.bearer(request.headers.get("Authorization"))
        if token is not None:  # authenticated by its access token alone
            try:
                bearer = run(self.exchange.authenticate(token), self.store)
            except REFUSED as exc:
                request.environ[REFUSAL_KEY] = refusal_exception(self.exchange, exc)
                return None
            return FlaskSession(bearer, self.serializer, default_permanent, None)
        value = self._session_id(app, request)
        engine = self.engines[True]  # both engines want the same of a client
        wanted = self.exchange.wants_client(value)
        # Found only if binding or a limit asks (REMOTE_ADDR as the server saw it, and the raw
        # X-Forwarded-For judged against COATCHECK_TRUSTED_PROXIES, with or without ProxyFix).
        client = client_source(request.environ, engine) if wanted else None
        if value is None:
            session = engine.fresh(client)
        else:
            try:
                session = engine.load_from(self.store, value, client)
            except (StoreError, LimitExceeded) as exc:
                request.environ[REFUSAL_KEY] = refusal_exception(self.exchange, exc)
                return None  # Flask makes an UnavailableSession; the request gets the refusal
        return FlaskSession(session, self.serializer, default_permanent, value)

    def save_session(self, app: flask.Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession) or type(session.coatcheck) is BearerSession:
            return  # a Bearer request's session is never stored, and sets nothing
        transport = self.exchange.transport
        vary = "Cookie" if transport.cookie_name is not None else transport.request_header
        if session.accessed:
            response.vary.add(vary)
        session.settle()
        engine = self.engines[session.permanent]
        try:
            set_cookie = engine.commit_to(self.store, session.coatcheck)
        except (StoreError, LimitExceeded) as exc:
            _become(response, refusal_exception(self.exchange, exc))
            return
        if set_cookie is None and self._resends(app, session):
            set_cookie = engine.current_cookie(session.coatcheck)
        elif set_cookie is not None and self.exchange.watching_secure:
            report_cookie(self.exchange, flask.request)
        added, no_store = self.exchange.headers(
            session.coatcheck, set_cookie, "Cache-Control" in response.headers
        )
        for name, value in added:
            response.headers.add(name, value)
            response.vary.add(vary)
        if no_store:
            response.headers["Cache-Control"] = "no-store"

    def _session_id(self, app: flask.Flask, request: Request) -> str | None:
        """The ID the request carries: in Flask's session cookie, or in the session header."""
        transport = self.exchange.transport
        if transport.cookie_name is None:
            return transport.read(request.headers.get(transport.request_header))
        header = request.headers.get("Cookie")
        return find_cookie(header, self.get_cookie_name(app)) if header else None

    def _resends(self, app: flask.Flask, session: FlaskSession) -> bool:
        """Whether Flask would send the cookie again although its ID did not change: when the
        session was modified, or is permanent under ``SESSION_REFRESH_EACH_REQUEST`` (a
        session header is sent only when the ID changes)."""
        if self.exchange.transport.cookie_name is None:
            return False
        stored = not session.coatcheck.is_new and session._cookie_value is not None
        return stored and self.should_set_cookie(app, session)

    def regenerate(self, session: SessionMixin) -> None:
        """Flask-Session's spelling: ``app.session_interface.regenerate(flask.session)``."""
        if isinstance(session, FlaskSession):
            session.regenerate()


def _become(response: Response, refusal: HTTPException) -> None:
    """Turn the application's response into ``refusal`` (its body closed, its headers dropped)."""
    close = getattr(response.response, "close", None)
    if close is not None:
        close()
    assert refusal.code is not None
    response.status_code = refusal.code
    response.headers = Headers(refusal.get_headers())
    response.direct_passthrough = False
    response.set_data(refusal.get_body())


def _refuse_unavailable() -> None:
    """Answer (503, 429 or 403) before any view runs when the session could not be loaded."""
    refusal = flask.request.environ.get(REFUSAL_KEY)
    if refusal is not None:
        raise refusal


def _check_csrf() -> None:
    """Refuse an unsafe request that fails the CSRF check, before any view runs."""
    request = flask.request
    interface = flask.current_app.session_interface
    if not isinstance(interface, CoatcheckSessionInterface):
        return
    exchange = interface.exchange
    if not exchange.checks(request.method, request.path):
        return
    session = _coatcheck_session()
    if session is None:
        return
    field, headers = interface.config.csrf_field, request.headers
    submitted = headers.get(interface.config.csrf_header)
    content_type = headers.get("Content-Type")
    if exchange.wants_form(submitted, content_type):
        assert content_type is not None
        submitted = csrf.form_token(content_type, _form_body(request), field)
    refusal = exchange.csrf_refusal(session.coatcheck, browser_of(request, submitted))
    if refusal is not None:
        raise CsrfRefused(refusal.cause, refusal)


def _form_body(request: Request) -> bytes:
    """A form's body (up to ``csrf.FORM_LIMIT``), cached: ``request.form`` and
    ``request.get_data()`` still give it to the view."""
    length = request.content_length
    if length is None or length > csrf.FORM_LIMIT:
        return b""
    return request.get_data(cache=True)


def csrf_token() -> str:
    """The current session's CSRF token, masked afresh; ``{{ csrf_token() }}`` in templates."""
    return current_session().csrf_token()


class Session:
    """The Flask extension: ``Session(app)`` or ``Session().init_app(app)``, as Flask-Session."""

    def __init__(self, app: flask.Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Install coatcheck's session interface on ``app``, configured from ``app.config``."""
        config = session_config(app.config, app.permanent_session_lifetime)
        interface = CoatcheckSessionInterface(app, _store(app), config)
        app.session_interface = interface
        app.extensions["coatcheck"] = interface
        app.before_request_funcs.setdefault(None, [])[:0] = [_refuse_unavailable, _check_csrf]
        _offer_csrf_token(app, interface.config)
        if app.config.get("COATCHECK_FLASK_LOGIN", True):
            _follow_flask_login(app)


def _offer_csrf_token(app: flask.Flask, config: SessionConfig) -> None:
    """Make ``csrf_token()`` a Jinja global: in token mode as the one to use (Flask-WTF's
    CSRFProtect would then check another token, so the two are refused together), else
    unless another extension already gave one."""
    if config.csrf != "token":
        app.jinja_env.globals.setdefault("csrf_token", csrf_token)
        return
    if "csrf" in app.extensions:
        raise RuntimeError(
            "COATCHECK_CSRF='token' with Flask-WTF's CSRFProtect: keep one of the two (set "
            "COATCHECK_CSRF='origin', or drop CSRFProtect and set WTF_CSRF_ENABLED=False)"
        )
    app.jinja_env.globals["csrf_token"] = csrf_token


def current_session() -> FlaskSession:
    """``flask.session``, typed as coatcheck's (with ``login``, ``logout``, ``regenerate``)."""
    session = flask.session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(session, FlaskSession):
        raise RuntimeError("no coatcheck session here: was Session(app) called?")
    return session


def _store(app: flask.Flask) -> Store:
    store = configured_store(app.config, app.instance_path)
    if not isinstance(store, Store):
        raise TypeError(f"COATCHECK_STORE must be a sync Store, not {type(store).__name__}")
    return store


# -- Flask-Login ----------------------------------------------------------------------------


def _follow_flask_login(app: flask.Flask) -> None:
    """Log the coatcheck session in and out with Flask-Login's signals, when it is installed."""
    try:
        from flask_login import signals  # noqa: PLC0415 (optional)
    except ImportError:
        return
    signals.user_logged_in.connect(_logged_in, app)
    signals.user_loaded_from_cookie.connect(_logged_in, app)
    signals.user_logged_out.connect(_logged_out, app)
    signals.session_protected.connect(_protected, app)


def _coatcheck_session() -> FlaskSession | None:
    session = flask.session._get_current_object()  # type: ignore[attr-defined]
    return session if isinstance(session, FlaskSession) else None


def _logged_in(sender: flask.Flask, user: Any = None, **extra: Any) -> None:
    """``login_user`` (or a remember-me cookie): a new session ID, bound to the user."""
    session = _coatcheck_session()
    if session is not None and user is not None:
        session.login(str(user.get_id()))


def _logged_out(sender: flask.Flask, user: Any = None, **extra: Any) -> None:
    """``logout_user``: the session is destroyed; Flask-Login's note to clear its remember-me
    cookie survives into the new, anonymous session."""
    session = _coatcheck_session()
    if session is None:
        return
    remember = session.get("_remember")
    session.logout()
    if remember is not None:
        session["_remember"] = remember


def _protected(sender: flask.Flask, **extra: Any) -> None:
    """Strong session protection removed the login: destroy the session as on logout."""
    session = _coatcheck_session()
    if session is not None and "_user_id" not in session and session.user_id is not None:
        _logged_out(sender)
