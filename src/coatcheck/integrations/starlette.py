"""Starlette: server-side sessions behind the signature of Starlette's own SessionMiddleware.

Moving from Starlette's signed-cookie sessions is one import line; ``store=`` says where the
sessions live (the cookie now carries only a random ID)::

    # from starlette.middleware.sessions import SessionMiddleware
    from coatcheck.integrations.starlette import SessionMiddleware

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SessionMiddleware, secret_key=SECRET, store=from_url(STORE_URL)),
        ],
    )

``request.session`` is then a :class:`~coatcheck.session.Session`: still a dict (``json.dumps``
works), with ``login``, ``logout`` and ``regenerate``; :func:`session_of` gives it typed.
Starlette's arguments keep their meaning:

- ``secret_key`` keys the hash under which session IDs are stored (HMAC-SHA-256 of the ID, with
  a key derived from the secret), so a leaked store cannot be replayed as cookies. It signs
  nothing: there is no data in the cookie to sign. None stores plain SHA-256 hashes.
- ``session_cookie`` is the cookie's name; with ``https_only`` (and no ``domain`` or sub-path) it
  gets the ``__Host-`` prefix, which browsers only accept from HTTPS with Path=/ and no Domain.
- ``max_age`` (seconds) is how long a session lives after its last request, and the cookie's
  Max-Age; each request that refreshes the expiry (at most once per ``touch_interval``) re-sends
  the cookie so both move together. ``None`` makes it a browser-session cookie; the server then
  ends the session after ``idle_timeout`` without a request (default 14 days).
- ``path``, ``same_site``, ``domain`` and ``partitioned`` are the cookie's attributes;
  ``https_only`` is its ``Secure``. The header is laid out as Starlette lays it out.

As with Starlette's sessions, a session left empty ends: ``request.session.clear()`` deletes
the stored record and expires the cookie (unless a user is logged in with ``login()``), and a
response that used ``request.session`` carries ``Vary: Cookie``.

coatcheck adds ``store`` (default: a :class:`~coatcheck.stores.MemoryStore`, which is logged as
a warning: it is lost on restart and not shared between worker processes, so give a real store
in production), ``absolute_timeout`` (default 30 days, or the idle timeout if longer: a session
ends that long after it was created or logged in, however active; given, it also cuts a longer
``max_age`` to it), ``touch_interval``,
``max_size``, ``clock`` and ``unavailable_status`` (503 when the store fails), and, passed as
they are to :class:`~coatcheck.config.SessionConfig`, the CSRF options of the core middleware
(``csrf="origin"`` by default, ``"token"`` or ``"off"``; ``csrf_header``, ``csrf_field``,
``csrf_exempt``, ``trusted_origins``) and ``on_event``. A session holding a CSRF token is not
ended for being empty: pages already carry its token.

>>> from starlette.applications import Starlette
>>> from coatcheck.stores import MemoryStore
>>> app = SessionMiddleware(Starlette(), secret_key="change me", store=MemoryStore())
>>> app.engine.config.idle_timeout, app.engine.config.secure, app.engine.config.cookie_key
(1209600.0, False, 'session')
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.datastructures import Secret

from coatcheck import asgi
from coatcheck.asgi import ASGIApp, session_of
from coatcheck.config import (
    ConfigError,
    DefenceOptions,
    SameSite,
    Seconds,
    SessionConfig,
    TransportOptions,
)
from coatcheck.cookies import CookieWriter
from coatcheck.engine import Plan
from coatcheck.session import Session
from coatcheck.stores import AsyncStore, MemoryStore, Store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from typing_extensions import Unpack

    from coatcheck.events import EventHandler

__all__ = [
    "CoatcheckOptions",
    "SessionMiddleware",
    "StarletteCookieWriter",
    "hash_secret_of",
    "session_of",
    "starlette_config",
]

logger = logging.getLogger("coatcheck")

DEFAULT_MAX_AGE = 14 * 24 * 60 * 60
"""Starlette's default ``max_age``: 14 days, in seconds."""
DEFAULT_ABSOLUTE_TIMEOUT = 30 * 24 * 60 * 60
"""The longest a session lives from creation or login, unless the idle timeout is longer."""
_KEY_CONTEXT = b"coatcheck.integrations.starlette: session IDs at rest"


class CoatcheckOptions(TransportOptions, DefenceOptions, total=False):
    """coatcheck options Starlette has no argument for, given to SessionConfig as they are:
    the transport, the defences, and these (the others are Starlette's own arguments, or, as
    ``idle_timeout`` and ``clock``, keyword arguments of their own here)."""

    encryption_keys: Sequence[bytes | str]
    compress_over: int | None
    rotation_grace: Seconds
    on_event: EventHandler | None
    metrics: bool
    purge_interval: Seconds | None
    purge_batch: int


STARLETTE_OWNS = {
    "cookie_name": "session_cookie",
    "secure": "https_only",
    "same_site": "same_site",
    "domain": "domain",
    "path": "path",
    "partitioned": "partitioned",
    "persistent": "max_age (None: a browser-session cookie)",
    "idle_timeout": "max_age, or idle_timeout with max_age=None",
    "absolute_timeout": "absolute_timeout",
    "touch_interval": "touch_interval",
    "max_size": "max_size",
    "hash_secret": "secret_key (the hash secret is derived from it)",
    "clock": "clock",
}
"""The coatcheck options that Starlette's own arguments (or a keyword of their own here) set."""


def hash_secret_of(secret_key: str | Secret) -> bytes:
    """The key for the at-rest hash of IDs: an HMAC of a fixed label under ``secret_key``.

    Derived, so a secret of any length works; stable, so changing it (or this function) makes
    every stored session unreachable, as rotating Starlette's ``secret_key`` logged everyone out.
    """
    return hmac.new(str(secret_key).encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest()


def _seconds(name: str, value: Seconds) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    return float(value)


def starlette_config(
    secret_key: str | Secret | None,
    session_cookie: str = "session",
    max_age: int | None = DEFAULT_MAX_AGE,
    path: str = "/",
    same_site: SameSite = "lax",
    https_only: bool = False,
    domain: str | None = None,
    partitioned: bool = False,
    *,
    idle_timeout: Seconds | None = None,
    absolute_timeout: Seconds | None = None,
    touch_interval: Seconds = 60,
    max_size: int = 64 * 1024,
    clock: Callable[[], float] | None = None,
    **coatcheck_options: Unpack[CoatcheckOptions],
) -> SessionConfig:
    """The :class:`SessionConfig` that Starlette's SessionMiddleware arguments stand for.

    ``max_age`` must be positive (Starlette would issue a cookie that expires as it is set) or
    None; ``idle_timeout`` may only be given with ``max_age=None``, since ``max_age`` is it.
    ``max_age`` (or its default) longer than a given ``absolute_timeout`` is cut to it; only an
    ``idle_timeout`` longer than ``absolute_timeout``, both given, is refused.
    """
    if max_age is None:
        idle = _seconds("idle_timeout", DEFAULT_MAX_AGE if idle_timeout is None else idle_timeout)
    elif idle_timeout is not None:
        raise ConfigError("idle_timeout is max_age here: give idle_timeout only with max_age=None")
    else:
        idle = _seconds("max_age", max_age)
        if idle <= 0:
            raise ConfigError(
                f"max_age must be a positive number of seconds (or None for a browser-session "
                f"cookie), not {max_age!r}"
            )
    if absolute_timeout is None:
        absolute = max(idle, DEFAULT_ABSOLUTE_TIMEOUT)
    else:
        absolute = _seconds("absolute_timeout", absolute_timeout)
    if idle_timeout is None and absolute > 0:
        idle = min(idle, absolute)  # max_age gives way: no session outlives absolute_timeout
    options: dict[str, object] = {"clock": clock} if clock is not None else {}
    options.update(coatcheck_options)
    return SessionConfig.from_options(
        cookie_name=session_cookie,
        secure=https_only,
        same_site=same_site,
        domain=domain,
        path=path,
        partitioned=partitioned,
        persistent=max_age is not None,
        idle_timeout=idle,
        absolute_timeout=absolute,
        touch_interval=touch_interval,
        max_size=max_size,
        hash_secret=None if secret_key is None else hash_secret_of(secret_key),
        **options,
    )


class StarletteCookieWriter(CookieWriter):
    """Writes ``Set-Cookie`` as Starlette's SessionMiddleware does: Max-Age after the path, then
    lower-case flags (``name=ID; path=/; Max-Age=N; httponly; samesite=lax; secure``).

    Browsers read either layout alike; this one keeps tests written against Starlette's header
    passing.
    """

    __slots__ = ("_flags", "_path")

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._path = f"path={config.path}"
        flags = ["httponly", f"samesite={config.same_site}"]
        if config.secure:
            flags.append("secure")
        if config.domain is not None:
            flags.append(f"domain={config.domain}")
        if config.partitioned:
            flags.append("partitioned")
        self._flags = "; ".join(flags)

    def issue(self, session_id: str, max_age: float) -> str:
        if not self._persistent:
            return f"{self.name}={session_id}; {self._path}; {self._flags}"
        max_age = max(int(max_age), 1)
        return f"{self.name}={session_id}; {self._path}; Max-Age={max_age}; {self._flags}"

    def expire(self) -> str:
        return (
            f"{self.name}=; {self._path}; Max-Age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
            f"{self._flags}"
        )


class SessionMiddleware(asgi.SessionMiddleware):
    """Starlette's ``SessionMiddleware`` arguments, coatcheck's server-side sessions.

    See the module documentation for how each argument maps; ``store`` and the keywords after
    it are coatcheck's.
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Secret | None,
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE,
        path: str = "/",
        same_site: SameSite = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: Store | AsyncStore | None = None,
        idle_timeout: Seconds | None = None,
        absolute_timeout: Seconds | None = None,
        touch_interval: Seconds = 60,
        max_size: int = 64 * 1024,
        clock: Callable[[], float] | None = None,
        unavailable_status: int = 503,
        **coatcheck_options: Unpack[CoatcheckOptions],
    ) -> None:
        config = starlette_config(
            secret_key,
            session_cookie,
            max_age,
            path,
            same_site,
            https_only,
            domain,
            partitioned,
            idle_timeout=idle_timeout,
            absolute_timeout=absolute_timeout,
            touch_interval=touch_interval,
            max_size=max_size,
            clock=clock,
            **coatcheck_options,
        )
        if store is None:
            logger.warning(
                "coatcheck SessionMiddleware has no store=: sessions are kept in this process's "
                "memory, lost on restart and not shared between workers"
            )
            store = MemoryStore()
        super().__init__(app, store=store, config=config, unavailable_status=unavailable_status)
        if config.transport == "cookie":
            self.engine.cookies = StarletteCookieWriter(config)

    def plan_commit(self, session: Session) -> Plan[str | None] | None:
        """Commit as coatcheck does, except that a stored session left empty ends (unless it
        holds a CSRF token, which pages carry)."""
        if session.modified:
            session.mark_accessed()  # the response depends on it even once the commit resets it
        session.end_if_emptied()
        return super().plan_commit(session)

    def session_headers(
        self, session: Session, set_cookie: str | None
    ) -> Sequence[tuple[bytes, bytes]]:
        """The cookie, and ``Vary: Cookie`` when the response used the session."""
        headers = super().session_headers(session, set_cookie)
        if session.accessed:
            return (*headers, (b"vary", b"Cookie"))
        return headers
