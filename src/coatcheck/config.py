"""The options of a session engine: one frozen object, validated when it is built.

Every adapter (ASGI, WSGI, framework integrations) takes the same keyword names and builds a
:class:`SessionConfig` from them, so a bad value is refused at start-up with a message naming it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from . import events
from .encryption import InvalidKey, parse_key
from .events import EventHandler

if TYPE_CHECKING:
    from .tokens import Tokens

SameSite = Literal["lax", "strict", "none"]
CsrfMode = Literal["off", "origin", "token"]
BindPart = Literal["user_agent", "network"]
BindingAction = Literal["reject", "flag"]
SessionLimitPolicy = Literal["evict_oldest", "refuse"]
Transport = Literal["cookie", "header"]
Seconds = float | int | timedelta

# RFC 6265 cookie-name: an RFC 7230 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"\.?{_LABEL}(\.{_LABEL})*")
_PATH = re.compile(r"/[\x21-\x3a\x3c-\x7e]*")  # no CTLs, spaces or ';'
HOST_PREFIX = "__Host-"
SECURE_PREFIX = "__Secure-"
IDLE_TIMEOUT = 30 * 60.0
"""The idle timeout nobody chose (seconds), or the absolute timeout when that is shorter."""
ABSOLUTE_TIMEOUT = 12 * 60 * 60.0
"""The absolute timeout nobody chose (seconds), or the idle timeout when that is longer."""
TOUCH_INTERVAL = 60.0
"""The touch interval nobody chose (seconds), or half the idle timeout when that is shorter."""


class TransportOptions(TypedDict, total=False):
    """How the session ID travels (the ``"transport"`` group of :class:`SessionConfig`)."""

    transport: Transport
    session_header: str
    access_tokens: Tokens | None


class CookieOptions(TypedDict, total=False):
    """The cookie's attributes (the ``"cookie"`` group)."""

    cookie_name: str
    secure: bool
    same_site: SameSite
    domain: str | None
    path: str
    partitioned: bool
    persistent: bool


class TimeoutOptions(TypedDict, total=False):
    """The timeouts (the ``"timeouts"`` group)."""

    idle_timeout: Seconds
    absolute_timeout: Seconds
    touch_interval: Seconds
    rotation_grace: Seconds


class StorageOptions(TypedDict, total=False):
    """What is stored and how (the ``"storage"`` group)."""

    max_size: int
    compress_over: int | None
    hash_secret: bytes | None
    encryption_keys: Sequence[bytes | str]
    purge_interval: Seconds | None
    purge_batch: int


class HookOptions(TypedDict, total=False):
    """The clock and the audit events (the ``"hooks"`` group)."""

    clock: Callable[[], float]
    on_event: EventHandler | None
    metrics: bool


class DefenceOptions(TypedDict, total=False):
    """CSRF, binding, trusted proxies and limits (the ``"defences"`` group)."""

    csrf: CsrfMode
    csrf_header: str
    csrf_field: str
    csrf_exempt: Sequence[str]
    trusted_origins: Sequence[str]
    bind_to: Sequence[BindPart]
    binding_action: BindingAction
    ipv4_prefix: int
    ipv6_prefix: int
    trusted_proxies: Sequence[str]
    limit_window: Seconds
    max_creations_per_client: int | None
    max_rejections_per_client: int | None
    max_creations: int | None
    max_sessions_per_user: int | None
    session_limit_policy: SessionLimitPolicy


class SessionOptions(
    TransportOptions, CookieOptions, TimeoutOptions, StorageOptions, HookOptions, DefenceOptions
):
    """The keyword options every coatcheck middleware and integration accepts: the fields of
    :class:`SessionConfig`, group by group, for type checkers (``tests/test_config.py`` holds
    the two to each other)."""


class ConfigError(ValueError):
    """An option has a value coatcheck refuses; the message names the option."""


class UnchosenSeconds(float):
    """A timeout nobody chose: its default, or what the chosen timeouts made of it.

    Every reader sees a float. :class:`SessionConfig` tells it from a chosen value, so that a
    timeout given alone is never refused over another's default, and so that
    ``dataclasses.replace`` derives it again from the new values.

    >>> SessionConfig(absolute_timeout=600).idle_timeout
    600.0
    """

    __slots__ = ()


def _keys(value: object) -> tuple[bytes, ...]:
    if isinstance(value, bytes | str) or not isinstance(value, tuple | list):
        raise ConfigError("encryption_keys must be a list of keys, newest first")
    try:
        return tuple(parse_key(key) for key in value)
    except InvalidKey as exc:
        raise ConfigError(f"encryption_keys: {exc}") from None


def _seconds(name: str, value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds or a timedelta, not {value!r}")
    return float(value)


def _group(name: str) -> dict[str, str]:
    return {"group": name}


_TRANSPORT = _group("transport")
_COOKIE = _group("cookie")
_TIMEOUTS = _group("timeouts")
_STORAGE = _group("storage")
_HOOKS = _group("hooks")
_DEFENCES = _group("defences")
_FOLLOWING = ("idle_timeout", "absolute_timeout", "touch_interval")
"""The timeouts that, when not given, follow the ones given (see :class:`UnchosenSeconds`)."""
GROUPS = ("transport", "cookie", "timeouts", "storage", "hooks", "defences")
"""How the options are grouped: how the ID travels, the cookie's attributes, the timeouts, what
is stored and how, the hooks (clock, events), and the defences (CSRF, binding, limits)."""


@dataclass(frozen=True, slots=True)
class _Counted(events.Chained):
    """The application's ``on_event`` behind the metrics (``metrics=True``): a config made
    from another (``dataclasses.replace``) takes it off before it chains its own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """How sessions behave. Every field has a safe default.

    >>> config = SessionConfig.from_options(idle_timeout=timedelta(minutes=15), secure=False)
    >>> config.idle_timeout, config.cookie_key
    (900.0, 'session')
    >>> SessionConfig(same_site="none", secure=False)
    Traceback (most recent call last):
    ...
    coatcheck.config.ConfigError: same_site='none' requires secure=True (browsers drop it otherwise)
    """

    transport: Transport = field(default="cookie", metadata=_TRANSPORT)
    """How the session ID travels (see :mod:`coatcheck.transport`): ``"cookie"`` for browsers;
    ``"header"`` for API and mobile clients: read from ``session_header`` and returned in it
    when the session is created, rotated or ended, never in a cookie (and, since a browser
    attaches no such header on its own, no CSRF checks)."""
    session_header: str = field(default="x-session-token", metadata=_TRANSPORT)
    """The header that carries the ID with ``transport="header"``."""
    access_tokens: Tokens | None = field(default=None, repr=False, metadata=_TRANSPORT)
    """Accept ``Authorization: Bearer <access token>`` (a :class:`~coatcheck.tokens.Tokens`,
    the ``tokens`` extra): such a request is authenticated by its token alone (its session is a
    read-only :class:`~coatcheck.session.BearerSession` of the token's user and claims, any
    cookie ignored), is not subject to CSRF checks (a browser never sends that header by
    itself), sets no cookie, and gets a 401 with ``WWW-Authenticate: Bearer
    error="invalid_token"`` when its token is malformed, badly signed, expired or revoked. The
    revocation check reads the store the middleware is given."""
    cookie_name: str = field(default="session", metadata=_COOKIE)
    """Base name of the cookie; ``__Host-`` is prefixed when the cookie qualifies for it."""
    secure: bool = field(default=True, metadata=_COOKIE)
    """Send the cookie over HTTPS only. Set False only for local development over plain http."""
    same_site: SameSite = field(default="lax", metadata=_COOKIE)
    domain: str | None = field(default=None, metadata=_COOKIE)
    path: str = field(default="/", metadata=_COOKIE)
    partitioned: bool = field(default=False, metadata=_COOKIE)
    """Mark the cookie Partitioned (CHIPS): a third-party context gets a cookie jar of its own
    per top-level site. Requires ``secure``."""
    persistent: bool = field(default=True, metadata=_COOKIE)
    """Give the cookie a Max-Age (the time left to the session); False makes it a browser-session
    cookie."""
    idle_timeout: float = field(default=UnchosenSeconds(IDLE_TIMEOUT), metadata=_TIMEOUTS)
    """Seconds without activity after which a session ends (sliding). Not given: 30 minutes,
    or ``absolute_timeout`` when that is shorter."""
    absolute_timeout: float = field(default=UnchosenSeconds(ABSOLUTE_TIMEOUT), metadata=_TIMEOUTS)
    """Seconds after creation, or after :meth:`Session.login`, after which a session ends. Not
    given: 12 hours, or ``idle_timeout`` when that is longer. Only an ``idle_timeout`` and an
    ``absolute_timeout`` both given, the idle one longer, are refused."""
    touch_interval: float = field(default=UnchosenSeconds(TOUCH_INTERVAL), metadata=_TIMEOUTS)
    """A request, reading or writing, moves the expiry at most once per this many seconds. Not
    given: 60, or half ``idle_timeout`` when that is shorter."""
    max_size: int = field(default=64 * 1024, metadata=_STORAGE)
    """Largest serialized session data, in bytes."""
    compress_over: int | None = field(default=1024, metadata=_STORAGE)
    """Store sessions larger than this many bytes compressed (zstd with the ``compression``
    extra, zlib otherwise; see :mod:`coatcheck.compression`); None never compresses. Records
    load whichever way they were written."""
    hash_secret: bytes | None = field(default=None, repr=False, metadata=_STORAGE)
    """Key the at-rest hash of IDs (HMAC-SHA-256) instead of plain SHA-256."""
    encryption_keys: tuple[bytes, ...] = field(default=(), repr=False, metadata=_STORAGE)
    """AES-256-GCM keys (32 bytes, or base64url text), newest first: when given, every record is
    encrypted at rest with the first and decrypts with any (see :mod:`coatcheck.encryption`)."""
    purge_interval: float | None = field(default=None, metadata=_STORAGE)
    """Seconds between purges of expired records run by the app itself (None: never, the
    default; run ``coatcheck purge`` from cron instead). When this long has passed since an
    instance last checked, the commit of its next request (any request) takes a lease in the
    store, so that one instance of all those sharing the store purges per interval, then
    deletes up to ``purge_batch`` expired records after the request's own writes. A failed
    purge is logged, never the request's failure. Stores that expire records themselves
    (Redis, Memcached) are left alone. See :meth:`~coatcheck.engine.SessionEngine.commit`."""
    purge_batch: int = field(default=1000, metadata=_STORAGE)
    """The most expired records one purge (``purge_interval``) deletes, those expired longest
    first: the bound on the work one request does for it."""
    clock: Callable[[], float] = field(default=time.time, repr=False, metadata=_HOOKS)
    """Where the current time (Unix seconds) comes from; tests inject their own."""
    on_event: EventHandler | None = field(default=None, repr=False, metadata=_HOOKS)
    """Called with every :class:`~coatcheck.events.SessionEvent` (created, logged in, rejected,
    ...), besides the ``coatcheck.audit`` log line each one gets. With ``metrics`` on, the
    config holds it behind the metrics' own listener (an :class:`~coatcheck.events.Chained`)."""
    metrics: bool = field(default=False, metadata=_HOOKS)
    """Count every event in Prometheus metrics (the ``metrics`` extra, on prometheus-client):
    ``coatcheck_session_events_total{event}`` and ``coatcheck_session_duration_seconds``, on
    prometheus-client's default registry, in front of ``on_event`` (see
    :mod:`coatcheck.metrics`, whose :func:`~coatcheck.metrics.instrumented` times the store's
    calls). Off, nothing of it is imported and no request does anything more."""
    csrf: CsrfMode = field(default="origin", metadata=_DEFENCES)
    """CSRF checks on unsafe methods (POST, PUT, PATCH, DELETE): ``"origin"`` refuses requests
    a browser marks as cross-site (``Sec-Fetch-Site``, ``Origin``); ``"token"`` also requires
    the session's token (:meth:`Session.csrf_token`) in ``csrf_header`` or form field
    ``csrf_field``; ``"off"`` checks nothing (only for apps with their own CSRF defence)."""
    csrf_header: str = field(default="x-csrf-token", metadata=_DEFENCES)
    csrf_field: str = field(default="csrf_token", metadata=_DEFENCES)
    csrf_exempt: tuple[str, ...] = field(default=(), metadata=_DEFENCES)
    """Path prefixes whose unsafe requests skip the CSRF checks (e.g. ``"/webhooks/"``)."""
    trusted_origins: tuple[str, ...] = field(default=(), metadata=_DEFENCES)
    """Other origins (``"https://app.example.com"``) allowed to send unsafe requests."""
    bind_to: tuple[BindPart, ...] = field(default=(), metadata=_DEFENCES)
    """Bind each session to its client's ``"user_agent"`` and/or ``"network"`` (see
    :mod:`coatcheck.clients`); a load from another client is handled per ``binding_action``.
    Off by default: mobile clients change networks, and browsers update their user agents."""
    binding_action: BindingAction = field(default="reject", metadata=_DEFENCES)
    """``"reject"``: a mismatching client gets a fresh session; ``"flag"``: it keeps the
    session, which reports :attr:`Session.flagged`, and a ``flagged`` event is sent."""
    ipv4_prefix: int = field(default=24, metadata=_DEFENCES)
    ipv6_prefix: int = field(default=48, metadata=_DEFENCES)
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=_DEFENCES)
    """Networks (``"10.0.0.0/8"``) of proxies whose ``X-Forwarded-For`` (the client) and
    ``X-Forwarded-Proto`` (the scheme the CSRF ``Origin`` check compares) are believed."""
    rotation_grace: float = field(default=10, metadata=_TIMEOUTS)
    r"""Seconds a :meth:`Session.regenerate`\ d ID keeps working for requests already in
    flight: they are forwarded to the new ID, so they neither fail nor fork the session. Login
    and privilege changes never have a grace window (the old ID dies at once). 0 disables it."""
    limit_window: float = field(default=60, metadata=_DEFENCES)
    """Seconds over which the rate limits below count (see :mod:`coatcheck.limits`)."""
    max_creations_per_client: int | None = field(default=None, metadata=_DEFENCES)
    """New sessions one client (an IPv4 address, an IPv6 /64; an IPv4-mapped ``::ffff:a.b.c.d``
    is its IPv4 address) may create per window; then 429. Each creation then costs two more
    store calls (the counter), so it is off by default."""
    max_rejections_per_client: int | None = field(default=120, metadata=_DEFENCES)
    """Well-formed cookies naming no live session (guesses, or cookies that outlived their
    session) one client may send per window; then 429. Only such requests pay for the count."""
    max_creations: int | None = field(default=None, metadata=_DEFENCES)
    """New sessions all clients together may create per window, so that a flood from many
    addresses cannot fill the store; set it from the store's capacity (off by default)."""
    max_sessions_per_user: int | None = field(default=None, metadata=_DEFENCES)
    """Sessions one user may have at once; a login past it follows ``session_limit_policy``."""
    session_limit_policy: SessionLimitPolicy = field(default="evict_oldest", metadata=_DEFENCES)
    """``"evict_oldest"`` ends the least recently active session; ``"refuse"`` refuses the
    login (403)."""

    def __post_init__(self) -> None:
        unchosen = {name for name in _FOLLOWING if isinstance(getattr(self, name), UnchosenSeconds)}
        for name in (
            "idle_timeout",
            "absolute_timeout",
            "touch_interval",
            "rotation_grace",
            "limit_window",
        ):
            object.__setattr__(self, name, _seconds(name, getattr(self, name)))
        if self.purge_interval is not None:
            object.__setattr__(
                self, "purge_interval", _seconds("purge_interval", self.purge_interval)
            )
        self._follow_the_chosen_timeouts(unchosen)
        object.__setattr__(self, "encryption_keys", _keys(self.encryption_keys))
        for name in ("csrf_exempt", "trusted_origins", "bind_to", "trusted_proxies"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "csrf_header", str(self.csrf_header).lower())
        object.__setattr__(self, "session_header", str(self.session_header).lower())
        self._validate()
        self._listen()

    def _listen(self) -> None:
        """Put the metrics' listener in front of ``on_event`` when ``metrics`` is on; take it
        off a handler an earlier config chained (``dataclasses.replace``) when it is not."""
        handler = self.on_event
        if isinstance(handler, _Counted):
            handler = handler.handler
        if self.metrics:
            from .metrics import default_metrics  # noqa: PLC0415 - the extra, only when on

            handler = _Counted(default_metrics().record, handler)
        object.__setattr__(self, "on_event", handler)

    def _follow_the_chosen_timeouts(self, unchosen: set[str]) -> None:
        """Give the timeouts nobody chose values that agree with the chosen ones: the idle
        timeout no longer than the absolute one, the touch interval below the idle timeout. (A
        chosen value that is itself bad is left for :meth:`_validate` to name.)"""
        if "idle_timeout" in unchosen:
            idle = IDLE_TIMEOUT
            if "absolute_timeout" not in unchosen and self.absolute_timeout > 0:
                idle = min(idle, self.absolute_timeout)
            object.__setattr__(self, "idle_timeout", UnchosenSeconds(idle))
        if "absolute_timeout" in unchosen:
            absolute = max(ABSOLUTE_TIMEOUT, self.idle_timeout)
            object.__setattr__(self, "absolute_timeout", UnchosenSeconds(absolute))
        if "touch_interval" in unchosen and self.idle_timeout > 0:
            touch = min(TOUCH_INTERVAL, self.idle_timeout / 2)
            object.__setattr__(self, "touch_interval", UnchosenSeconds(touch))

    def _validate(self) -> None:
        if not isinstance(self.cookie_name, str) or not _TOKEN.fullmatch(self.cookie_name):
            raise ConfigError(f"cookie_name must be a cookie token, not {self.cookie_name!r}")
        if self.same_site not in ("lax", "strict", "none"):
            raise ConfigError(
                f"same_site must be 'lax', 'strict' or 'none', not {self.same_site!r}"
            )
        if self.same_site == "none" and not self.secure:
            raise ConfigError("same_site='none' requires secure=True (browsers drop it otherwise)")
        if self.partitioned and not self.secure:
            raise ConfigError("partitioned=True requires secure=True (browsers drop it otherwise)")
        if self.domain is not None and (
            not isinstance(self.domain, str) or not _DOMAIN.fullmatch(self.domain)
        ):
            raise ConfigError(f"domain must be a host name, not {self.domain!r}")
        if not isinstance(self.path, str) or not _PATH.fullmatch(self.path):
            raise ConfigError(f"path must start with '/' and hold no ';' or spaces: {self.path!r}")
        self._validate_timeouts()
        self._validate_defences()

    def _validate_timeouts(self) -> None:
        if self.idle_timeout <= 0:
            raise ConfigError(f"idle_timeout must be positive, not {self.idle_timeout}")
        if self.absolute_timeout <= 0:
            raise ConfigError(f"absolute_timeout must be positive, not {self.absolute_timeout}")
        if self.idle_timeout > self.absolute_timeout:
            raise ConfigError(
                f"idle_timeout ({self.idle_timeout}) must not exceed "
                f"absolute_timeout ({self.absolute_timeout})"
            )
        if not 0 <= self.touch_interval < self.idle_timeout:
            raise ConfigError(
                f"touch_interval must be at least 0 and below idle_timeout, "
                f"not {self.touch_interval}"
            )
        interval = self.purge_interval
        if interval is not None and not 0 < interval < math.inf:
            raise ConfigError(f"purge_interval must be positive seconds or None, not {interval}")
        if (
            isinstance(self.purge_batch, bool)
            or not isinstance(self.purge_batch, int)
            or self.purge_batch < 1
        ):
            raise ConfigError(f"purge_batch must be a positive int, not {self.purge_batch!r}")
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int):
            raise ConfigError(f"max_size must be an int of bytes, not {self.max_size!r}")
        if self.max_size < 2:
            raise ConfigError(f"max_size must be at least 2 bytes, not {self.max_size}")

    def _validate_defences(self) -> None:
        if self.hash_secret is not None and (
            not isinstance(self.hash_secret, bytes) or len(self.hash_secret) < 16
        ):
            raise ConfigError("hash_secret must be bytes of at least 16 (random) bytes")
        if not callable(self.clock):
            raise ConfigError("clock must be a callable returning Unix seconds")
        if self.csrf not in ("off", "origin", "token"):
            raise ConfigError(f"csrf must be 'off', 'origin' or 'token', not {self.csrf!r}")
        if self.transport not in ("cookie", "header"):
            raise ConfigError(f"transport must be 'cookie' or 'header', not {self.transport!r}")
        if self.compress_over is not None and (
            isinstance(self.compress_over, bool)
            or not isinstance(self.compress_over, int)
            or self.compress_over < 0
        ):
            raise ConfigError(
                f"compress_over must be None or bytes (0 or more), not {self.compress_over!r}"
            )
        if self.access_tokens is not None and not callable(
            getattr(self.access_tokens, "authenticate", None)
        ):
            raise ConfigError("access_tokens must be a coatcheck.tokens.Tokens")
        for name in ("csrf_header", "csrf_field", "session_header"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _TOKEN.fullmatch(value):
                raise ConfigError(f"{name} must be a header or field name, not {value!r}")
        for name in ("csrf_exempt", "trusted_origins"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{name} must be a list of str, not {value!r}")
        if any(not prefix.startswith("/") for prefix in self.csrf_exempt):
            raise ConfigError("csrf_exempt holds path prefixes, each starting with '/'")
        if isinstance(self.bind_to, str) or any(
            part not in ("user_agent", "network") for part in self.bind_to
        ):
            raise ConfigError(f"bind_to holds 'user_agent' and/or 'network', not {self.bind_to!r}")
        if self.binding_action not in ("reject", "flag"):
            raise ConfigError(f"binding_action must be 'reject' or 'flag': {self.binding_action!r}")
        for name, top in (("ipv4_prefix", 32), ("ipv6_prefix", 128)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ConfigError(f"{name} must be an int from 0 to {top}, not {value!r}")
        if isinstance(self.trusted_proxies, str):
            raise ConfigError("trusted_proxies must be a list of networks")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(f"trusted_proxies: {proxy!r} is not a network") from None
        for name in (
            "max_creations_per_client",
            "max_rejections_per_client",
            "max_creations",
            "max_sessions_per_user",
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be a positive int or None, not {value!r}")
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be a positive int or None, not {value!r}")
        if self.rotation_grace < 0:
            raise ConfigError(f"rotation_grace must be 0 or more, not {self.rotation_grace}")
        if self.limit_window <= 0:
            raise ConfigError(f"limit_window must be positive, not {self.limit_window}")
        if self.session_limit_policy not in ("evict_oldest", "refuse"):
            raise ConfigError(
                f"session_limit_policy must be 'evict_oldest' or 'refuse': "
                f"{self.session_limit_policy!r}"
            )
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigError("on_event must be a callable taking a SessionEvent")
        if not isinstance(self.metrics, bool):
            raise ConfigError(f"metrics must be True or False, not {self.metrics!r}")

    @property
    def cookie_key(self) -> str:
        """The cookie's name as sent: ``__Host-`` + name when Secure, Path=/ and no Domain;
        ``__Secure-`` + name when Secure otherwise (a name already prefixed is kept)."""
        name = self.cookie_name
        if not self.secure or name.startswith((HOST_PREFIX, SECURE_PREFIX)):
            return name
        if self.path == "/" and self.domain is None:
            return HOST_PREFIX + name
        return SECURE_PREFIX + name

    @classmethod
    def from_options(cls, **options: Any) -> SessionConfig:
        """Build a config from keyword options (timeouts in seconds or as timedeltas).

        Unknown names are refused with a clear message.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown session option(s): {', '.join(unknown)}")
        return cls(**options)


def option_names(*groups: str) -> tuple[str, ...]:
    """The names of the options in ``groups`` (every option when none is named), in their
    declared order: integrations derive their own option lists and config keys from this.

    >>> option_names("transport")
    ('transport', 'session_header', 'access_tokens')
    """
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown option group(s): {', '.join(sorted(unknown))}")
    return tuple(
        f.name for f in fields(SessionConfig) if not groups or f.metadata.get("group") in groups
    )
