"""What the Django session engine is backed by: a coatcheck store and options, from settings.

Settings read (all optional):

- ``COATCHECK_STORE_URL``: the store, as :func:`coatcheck.stores.from_url` takes it; default
  ``sqlite:///coatcheck-sessions.sqlite3`` (a file in the working directory).
- ``COATCHECK_SESSION``: a dict of coatcheck options that Django has no setting for:
  ``hash_secret`` (bytes; default derived from ``SECRET_KEY``), ``max_size`` (bytes of JSON),
  ``encryption_keys``, ``absolute_timeout`` (seconds or a timedelta after creation or the last
  login at which a session ends however active it is; default none, as in Django),
  ``rotation_grace`` (for ``request.session.regenerate()``), ``transport`` and
  ``session_header`` (the ID in a header instead of the cookie), client binding (``bind_to``,
  ``binding_action``, the prefixes), the per-client limits (``max_creations_per_client``,
  ``max_rejections_per_client``, ``max_creations``, ``limit_window``), ``trusted_proxies``,
  ``on_event``, ``clock``, and ``purge_interval`` and ``purge_batch`` (expired sessions purged
  by the app itself). Binding, limits and the purge need coatcheck's ``SessionMiddleware``,
  which tells the session its request's client, and purges after a response when one is due.

The cookie, the expiry and CSRF are Django's (``SESSION_COOKIE_*``, ``SESSION_COOKIE_AGE``,
``set_expiry``; ``CsrfViewMiddleware``, best with ``CSRF_USE_SESSIONS = True``, which keeps its
secret in the coatcheck session): coatcheck's options for them are refused here with the Django
setting to use.
The store is built once per process, on first use, and again when a test overrides one of these
settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django import conf  # settings are read at call time (conf.settings), once configured
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.crypto import salted_hmac

from ... import events
from ..._observed import with_metrics
from ...config import ConfigError, SessionConfig, option_names
from ...encryption import KeyRing
from ...engine import SessionEngine
from ...events import EventKind
from ...exchange import Exchange
from ...stores import AsyncStore, Store, as_async, from_url

DEFAULT_STORE_URL = "sqlite:///coatcheck-sessions.sqlite3"
DJANGO_OWNS = {
    "cookie_name": "SESSION_COOKIE_NAME",
    "secure": "SESSION_COOKIE_SECURE",
    "same_site": "SESSION_COOKIE_SAMESITE",
    "domain": "SESSION_COOKIE_DOMAIN",
    "path": "SESSION_COOKIE_PATH",
    "persistent": "SESSION_EXPIRE_AT_BROWSER_CLOSE",
    "idle_timeout": "SESSION_COOKIE_AGE (and request.session.set_expiry)",
    "touch_interval": "SESSION_SAVE_EVERY_REQUEST",
    "csrf": "django.middleware.csrf.CsrfViewMiddleware in MIDDLEWARE, with CSRF_USE_SESSIONS",
    "csrf_header": "CSRF_HEADER_NAME",
    "csrf_field": "Django's csrfmiddlewaretoken field ({% csrf_token %})",
    "csrf_exempt": "django.views.decorators.csrf.csrf_exempt on the views",
    "trusted_origins": "CSRF_TRUSTED_ORIGINS",
}
NOT_YET = {
    "max_sessions_per_user": "the Django integration does not cap sessions per user yet",
    "session_limit_policy": "the Django integration does not cap sessions per user yet",
}
OPTIONS = frozenset(
    {
        *option_names("transport", "storage", "hooks", "defences"),
        "absolute_timeout",
        "rotation_grace",
    }
    - DJANGO_OWNS.keys()
    - NOT_YET.keys()
)
"""The coatcheck options ``COATCHECK_SESSION`` takes: how the ID travels, what is stored and
how, the hooks, binding and limits, and two timeouts (Django's own settings hold the rest:
:data:`DJANGO_OWNS`)."""
WATCHED_SETTINGS = frozenset({"COATCHECK_STORE_URL", "COATCHECK_SESSION", "SECRET_KEY"})


@dataclass(frozen=True)
class Backing:
    """The store the engine uses (both faces) and the coatcheck options it applies."""

    store: Store
    async_store: AsyncStore
    config: SessionConfig
    """The options above; its cookie, CSRF and idle timeout fields are unused (Django's)."""
    absolute_timeout: float | None
    ring: KeyRing | None = None
    """The key ring sealing records at rest, when ``encryption_keys`` are given."""

    exchange: Exchange = field(init=False, repr=False, compare=False)
    """The lifecycle decisions the middleware takes from coatcheck: the ID's transport,
    refusals; its engine's plans the session store shares (binding, limits, forwarding)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "exchange", Exchange(SessionEngine(self.config)))

    @property
    def engine(self) -> SessionEngine:
        return self.exchange.engine

    def emit(
        self, kind: EventKind, key: str | None, user_id: str | None, reason: str | None = None
    ) -> None:
        """Report a lifecycle step, as the engine does (audit log and ``on_event``)."""
        events.emit(self.config.on_event, self.config.clock(), kind, key, user_id, reason)

    def deadline(self, auth_at: float) -> float | None:
        """When a session authenticated (or created) at ``auth_at`` must end, if ever."""
        return None if self.absolute_timeout is None else auth_at + self.absolute_timeout


def _hash_secret_from(secret_key: str) -> bytes:
    """A key for hashing IDs at rest, derived from ``SECRET_KEY`` (so rotating it logs all out)."""
    digest: bytes = salted_hmac(
        "coatcheck.integrations.django", "session-id-at-rest", secret=secret_key, algorithm="sha256"
    ).digest()
    return digest


def _absolute_timeout(value: object) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ImproperlyConfigured(
            f"COATCHECK_SESSION['absolute_timeout'] must be positive seconds or a timedelta, "
            f"not {value!r}"
        )
    return float(seconds)


def build() -> Backing:
    """Read the settings and open the store they name."""
    options: dict[str, Any] = dict(getattr(conf.settings, "COATCHECK_SESSION", None) or {})
    for name in sorted(set(options) - OPTIONS):
        if name in DJANGO_OWNS:
            raise ImproperlyConfigured(
                f"COATCHECK_SESSION[{name!r}] is not used with Django: set {DJANGO_OWNS[name]}"
            )
        if name in NOT_YET:
            raise ImproperlyConfigured(f"COATCHECK_SESSION[{name!r}]: {NOT_YET[name]}")
        raise ImproperlyConfigured(
            f"COATCHECK_SESSION[{name!r}] is unknown; known: {', '.join(sorted(OPTIONS))}"
        )
    absolute_timeout = _absolute_timeout(options.pop("absolute_timeout", None))
    if "hash_secret" not in options:
        options["hash_secret"] = _hash_secret_from(conf.settings.SECRET_KEY)
    try:
        config = SessionConfig.from_options(**options)
    except ConfigError as exc:
        raise ImproperlyConfigured(f"COATCHECK_SESSION: {exc}") from None
    url = getattr(conf.settings, "COATCHECK_STORE_URL", None) or DEFAULT_STORE_URL
    try:
        store = from_url(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"COATCHECK_STORE_URL: {exc}") from None
    if not isinstance(store, Store):  # pragma: no cover - from_url gives sync stores by default
        raise ImproperlyConfigured("COATCHECK_STORE_URL must name a store with a sync face")
    ring = KeyRing(config.encryption_keys) if config.encryption_keys else None
    store = with_metrics(store, config.metrics)
    return Backing(store, as_async(store), config, absolute_timeout, ring)


_current: list[Backing] = []
_lock = threading.Lock()


def backing() -> Backing:
    """The process's backing, built on first use."""
    if not _current:
        with _lock:
            if not _current:
                _current.append(build())
    return _current[0]


def reset() -> None:
    """Close the store and forget it; the next session use builds it from settings again."""
    with _lock:
        if _current:
            _current.pop().store.close()


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting in WATCHED_SETTINGS:
        reset()


setting_changed.connect(_on_setting_changed, dispatch_uid="coatcheck.integrations.django")
