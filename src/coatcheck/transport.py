"""How the session ID travels between client and server: a cookie, or a header.

Browsers get the cookie (the default): the ID rides in ``Cookie`` and comes back in
``Set-Cookie``. API and mobile clients, which keep no cookie jar, get a header
(``transport="header"``): the ID rides in ``X-Session-Token`` (``session_header``), and a response
carries that header when the session was created or rotated (the new ID) or ended, or when the
request's ID named nothing (empty: forget it). A transport reads the ID only its own way, so an ID
cannot be smuggled in by the other one; everything after that (the format check, strict mode,
hashing, timeouts, rotation, limits) is the same. A header is nothing a browser attaches on its
own, so CSRF checks do not apply to it (:func:`coatcheck.csrf.applies`).

>>> from coatcheck.config import SessionConfig
>>> header = IdTransport.of(SessionConfig(transport="header"))
>>> header.request_header, header.read(" abc "), header.read("")
('x-session-token', 'abc', None)
>>> cookie = IdTransport.of(SessionConfig(secure=False))
>>> cookie.request_header, cookie.response_header, cookie.read("a=1; session=xyz")
('cookie', 'set-cookie', 'xyz')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .cookies import CookieWriter, find_cookie

if TYPE_CHECKING:
    from .config import SessionConfig


class HeaderWriter:
    """What a response's session header says: the ID when the client must take a new one,
    empty when it must forget the one it sent (the counterpart of :class:`CookieWriter`)."""

    __slots__ = ("_name",)

    def __init__(self, config: SessionConfig) -> None:
        self._name = config.session_header

    @property
    def name(self) -> str:
        """The header's name."""
        return self._name

    def issue(self, session_id: str, max_age: float) -> str:
        """The header value that gives the client ``session_id`` (it expires on the server)."""
        return session_id

    def expire(self) -> str:
        """The header value that makes the client drop its ID."""
        return ""


Writer = CookieWriter | HeaderWriter


def writer(config: SessionConfig) -> Writer:
    """The writer of the response header that carries the ID, for the configured transport."""
    return HeaderWriter(config) if config.transport == "header" else CookieWriter(config)


def _header_value(value: str) -> str | None:
    """The ID a session header carries (None when it is empty)."""
    return value.strip() or None


class IdTransport(NamedTuple):
    """Where a request carries the ID and where the response gives it back (header names in
    lower case), for one configuration."""

    request_header: str
    response_header: str
    cookie_name: str | None
    """The cookie's name when the ID travels in a cookie; None for the header transport."""
    parse: Callable[[str], str | None]
    """The ID in the request header's value (bound once: it runs on every request)."""

    @classmethod
    def of(cls, config: SessionConfig) -> IdTransport:
        if config.transport == "header":
            return cls(config.session_header, config.session_header, None, _header_value)
        name = config.cookie_key
        return cls("cookie", "set-cookie", name, functools.partial(find_cookie, name=name))

    def read(self, value: str | None) -> str | None:
        """The ID that the request header's ``value`` carries, or None when it carries none."""
        return None if value is None else self.parse(value)

    @property
    def environ_key(self) -> str:
        """The request header's key in a WSGI environ (``HTTP_COOKIE``)."""
        return "HTTP_" + self.request_header.upper().replace("-", "_")
