"""The session cookie on the wire: finding it in a ``Cookie`` header and writing ``Set-Cookie``.

Parsing is deliberately strict and cheap: it never raises, whatever the header holds, and a
cookie sent twice with different values counts as no valid cookie at all (a planted duplicate
must not decide which session a request gets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, AnyStr

from .config import SessionConfig

if TYPE_CHECKING:
    from .session import Session

NO_STORE = (b"cache-control", b"no-store")
"""The header that keeps a response out of every cache (ASGI spelling; WSGI uses str)."""

AMBIGUOUS = ""
"""What :func:`find_cookie` returns when the cookie is present but cannot be trusted."""


def find_cookie(header: str, name: str) -> str | None:
    """Return the value of cookie ``name`` in a ``Cookie`` header, None when it is absent.

    Returns :data:`AMBIGUOUS` (an empty string, which is never a valid ID) when the cookie
    appears more than once with different values.

    >>> find_cookie("a=1; session=abc; b=2", "session")
    'abc'
    >>> find_cookie("session=abc; session=xyz", "session") == AMBIGUOUS
    True
    >>> find_cookie("xsession=abc", "session") is None
    True
    """
    if name not in header:
        return None
    found: str | None = None
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if not sep or key.strip() != name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if found is not None and value != found:
            return AMBIGUOUS
        found = value
    return found


class CookieWriter:
    """Builds the ``Set-Cookie`` values for one configuration (attributes computed once)."""

    __slots__ = ("_attributes", "_deletion", "_name", "_persistent")

    def __init__(self, config: SessionConfig) -> None:
        self._name = config.cookie_key
        self._persistent = config.persistent
        parts = [f"Path={config.path}"]
        if config.domain is not None:
            parts.append(f"Domain={config.domain}")
        parts.append("HttpOnly")
        if config.secure:
            parts.append("Secure")
        parts.append(f"SameSite={config.same_site.capitalize()}")
        if config.partitioned:
            parts.append("Partitioned")
        self._attributes = "; ".join(parts)
        self._deletion = (
            f"{self._name}=; {self._attributes}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )

    @property
    def name(self) -> str:
        """The cookie's name as sent, ``__Host-`` prefix included when it applies."""
        return self._name

    def issue(self, session_id: str, max_age: float) -> str:
        """The header value that gives the client ``session_id`` for ``max_age`` seconds."""
        if not self._persistent:
            return f"{self._name}={session_id}; {self._attributes}"
        return f"{self._name}={session_id}; {self._attributes}; Max-Age={max(int(max_age), 1)}"

    def expire(self) -> str:
        """The header value that makes the client drop the cookie."""
        return self._deletion


def needs_no_store(live: bool, handed_out: bool, app_chose: bool) -> bool:
    """Whether a response must be marked ``Cache-Control: no-store``.

    A response that hands out an ID (``handed_out``: it sets or expires the cookie, or carries
    the session header) is never cacheable, whatever the app said; one to a request that carried
    a ``live`` session is marked unless the app chose its own ``Cache-Control`` (``app_chose``:
    for assets that are the same for everyone).
    """
    return handed_out or (live and not app_chose)


def private_headers(
    headers: Sequence[tuple[AnyStr, AnyStr]],
    session: Session,
    set_cookie: str | None,
    no_store: tuple[AnyStr, AnyStr],
) -> list[tuple[AnyStr, AnyStr]] | None:
    """``headers`` with ``Cache-Control: no-store`` where :func:`needs_no_store` says so (a
    ``Cache-Control`` of the app's replaced); None when the headers need no change.
    ``no_store`` is the header, as bytes (ASGI) or as str (WSGI).
    """
    # needs_no_store, inline: this runs on every response to a session
    handed_out = set_cookie is not None
    if not handed_out and session.stored is None:  # not even without one
        return None
    name = no_store[0]
    chose = False
    for header in headers:
        if header[0].lower() == name:  # the app chose its own
            chose = True
            break
    if chose and not handed_out:
        return None
    kept = [h for h in headers if h[0].lower() != name] if chose else list(headers)
    kept.append(no_store)
    return kept
