"""What the Flask-style integrations (Flask, Quart) share, tied to neither framework: the
``COATCHECK_*`` keys of ``app.config``, the :class:`~coatcheck.config.SessionConfig` and store
built from them, and the engines that write the cookie with the app's ``SESSION_COOKIE_*``.

>>> from datetime import timedelta
>>> config = session_config({"COATCHECK_MAX_SIZE": 4096}, timedelta(minutes=30))
>>> config.max_size, config.idle_timeout, config.absolute_timeout, config.touch_interval
(4096, 1800.0, 43200.0, 60.0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from werkzeug.datastructures import Headers
from werkzeug.http import dump_cookie

from .._observed import with_metrics
from ..config import SessionConfig, option_names
from ..cookies import CookieWriter
from ..engine import SessionEngine
from ..exchange import Browser, Exchange
from ..stores import AsyncStore, SQLiteStore, Store, from_url

SQLITE_FILE = "coatcheck-sessions.db"
"""The default store: this file in the app's instance folder."""
OPTION_KEYS = {
    name: f"COATCHECK_{name.upper()}"
    for name in option_names()
    if name not in option_names("cookie")  # the app's SESSION_COOKIE_* and PERMANENT_* set these
}
"""coatcheck options read as they are from ``app.config`` (defaults: those of SessionConfig)."""


def session_config(settings: Mapping[str, Any], lifetime: timedelta) -> SessionConfig:
    """The engine's options from ``settings`` (an ``app.config``); cookie attributes are read
    per response.

    The idle timeout is ``COATCHECK_IDLE_TIMEOUT``, else the app's ``PERMANENT_SESSION_LIFETIME``
    (``lifetime``) capped at ``COATCHECK_ABSOLUTE_TIMEOUT``: only the two ``COATCHECK_`` keys
    can contradict each other. The absolute timeout and the touch interval, when not set, follow
    the idle timeout as in :class:`SessionConfig`.

    >>> config = session_config({"COATCHECK_ABSOLUTE_TIMEOUT": 600}, timedelta(days=31))
    >>> config.idle_timeout, config.absolute_timeout
    (600.0, 600.0)
    """
    options: dict[str, Any] = {
        option: settings[key] for option, key in OPTION_KEYS.items() if key in settings
    }
    if "idle_timeout" not in options:
        idle = _seconds(lifetime)
        absolute = options.get("absolute_timeout")
        if isinstance(absolute, int | float | timedelta) and _seconds(absolute) > 0:
            idle = min(idle, _seconds(absolute))
        options["idle_timeout"] = idle
    options["secure"] = False  # unused: AppCookieWriter writes SESSION_COOKIE_SECURE
    return SessionConfig.from_options(**options)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def configured_store(
    settings: Mapping[str, Any], instance_path: str, asynchronous: bool = False
) -> Store | AsyncStore:
    """``COATCHECK_STORE``, else the store ``COATCHECK_STORE_URL`` names (its async face when
    ``asynchronous``), else SQLite in the app's instance folder; timed into the metrics with
    ``COATCHECK_METRICS``."""
    store: Store | AsyncStore | None = settings.get("COATCHECK_STORE")
    if store is None:
        url = settings.get("COATCHECK_STORE_URL")
        if url is not None:
            store = from_url(url, asynchronous=asynchronous)
        else:
            os.makedirs(instance_path, exist_ok=True)
            store = SQLiteStore(os.path.join(instance_path, SQLITE_FILE))
    return with_metrics(store, bool(settings.get("COATCHECK_METRICS", False)))


class CookieSettings(Protocol):
    """What a Flask-style session interface says of the app's cookie (``SESSION_COOKIE_*``)."""

    def get_cookie_name(self, app: Any) -> str: ...
    def get_cookie_domain(self, app: Any) -> str | None: ...
    def get_cookie_path(self, app: Any) -> str: ...
    def get_cookie_secure(self, app: Any) -> bool: ...
    def get_cookie_httponly(self, app: Any) -> bool: ...
    def get_cookie_samesite(self, app: Any) -> str | None: ...
    def get_cookie_partitioned(self, app: Any) -> bool: ...


class AppCookieWriter(CookieWriter):
    """Writes the session cookie with the app's ``SESSION_COOKIE_*`` settings, read at each
    response as the framework's own session interface reads them."""

    def __init__(self, config: SessionConfig, app: Any, interface: CookieSettings) -> None:
        super().__init__(config)
        self._app, self._interface = app, interface

    @property
    def name(self) -> str:
        return self._interface.get_cookie_name(self._app)

    def _dump(self, value: str, max_age: int | None) -> str:
        app, interface = self._app, self._interface
        return dump_cookie(
            self.name,
            value,
            max_age=max_age,
            expires=0 if max_age == 0 else None,
            path=interface.get_cookie_path(app),
            domain=interface.get_cookie_domain(app),
            secure=interface.get_cookie_secure(app),
            httponly=interface.get_cookie_httponly(app),
            samesite=interface.get_cookie_samesite(app),
            partitioned=interface.get_cookie_partitioned(app),
        )

    def issue(self, session_id: str, max_age: float) -> str:
        return self._dump(session_id, max(int(max_age), 1) if self._persistent else None)

    def expire(self) -> str:
        return self._dump("", 0)


def engines(
    config: SessionConfig, app: Any, interface: CookieSettings
) -> dict[bool, SessionEngine]:
    """The two engines of a Flask-style interface, by ``session.permanent``: they share the store
    and differ only in the cookie (Max-Age and Expires, or a browser-session cookie)."""
    found = {}
    for persistent in (True, False):
        engine = SessionEngine(replace(config, persistent=persistent))
        if config.transport == "cookie":  # the app's SESSION_COOKIE_* attributes
            engine.cookies = AppCookieWriter(engine.config, app, interface)
        found[persistent] = engine
    return found


def exchange_of(found: dict[bool, SessionEngine], app: Any) -> Exchange:
    """The lifecycle's decisions for a Flask-style interface's engines (the same for both),
    watching for a ``Secure`` cookie sent over plain http when ``SESSION_COOKIE_SECURE`` makes
    the app's cookie Secure."""
    exchange = Exchange(found[True])
    secure = bool(app.config.get("SESSION_COOKIE_SECURE", False))
    exchange.watching_secure = secure and exchange.transport.cookie_name is not None
    return exchange


class WerkzeugRequest(Protocol):
    """What :func:`browser_of` reads of a Flask or Quart request (or WebSocket)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def remote_addr(self) -> str | None: ...
    @property
    def headers(self) -> Headers: ...


def report_cookie(exchange: Exchange, request: WerkzeugRequest) -> None:
    """Tell the exchange that the response to a Flask or Quart ``request`` sets the cookie."""
    headers = request.headers
    exchange.cookie_set(
        request.scheme, headers.get("Host"), request.remote_addr, headers.get("X-Forwarded-Proto")
    )


def browser_of(request: WerkzeugRequest, submitted: str | None, websocket: bool = False) -> Browser:
    """What the CSRF check reads of a Flask or Quart request, with the token it carries."""
    headers = request.headers
    return Browser(
        request.method,
        request.path,
        request.scheme,
        request.remote_addr,
        headers.get("Sec-Fetch-Site"),
        headers.get("Origin"),
        headers.get("Host"),
        headers.get("X-Forwarded-Proto"),
        submitted,
        websocket,
    )
