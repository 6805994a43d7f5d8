"""CSRF defences: a synchronizer token per session, masked per response, and Origin checks.

The token lives with the session on the server (never in the data dict). Pages embed
``session.csrf_token()``, which is the token XORed with a fresh random pad, so no two
responses carry the same bytes (BREACH cannot recover it from compressed pages). The
middleware checks unsafe requests: first the browser's ``Sec-Fetch-Site`` and ``Origin``
headers, then, in ``csrf="token"`` mode, the token from a header or a form field.

>>> token = new_token()
>>> first, second = mask(token), mask(token)
>>> first != second and matches(first, token) and matches(second, token)
True
>>> matches(mask(new_token()), token)
False
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Collection
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

TOKEN_BYTES = 32
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
"""The scheme of the page whose origin a request comes from, by the request's scheme: a page
at ``http://host`` opens ``ws://host``, one at ``https://host`` opens ``wss://host``."""
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def new_token() -> str:
    """A fresh secret token: 256 random bits, base64url."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def mask(token: str) -> str:
    """The token as one response carries it: a random pad, then the token XORed with it."""
    raw = _decode(token) or b""
    pad = secrets.token_bytes(len(raw))
    return _encode(pad + bytes(a ^ b for a, b in zip(pad, raw, strict=True)))


def matches(submitted: str, token: str) -> bool:
    """Whether ``submitted`` (as :func:`mask` made it) carries ``token``; constant time."""
    if not submitted or len(submitted) > 200 or not submitted.isascii():
        return False
    raw, expected = _decode(submitted), _decode(token)
    if raw is None or expected is None or len(raw) != 2 * len(expected) or not expected:
        return False
    pad, masked = raw[: len(expected)], raw[len(expected) :]
    return hmac.compare_digest(bytes(a ^ b for a, b in zip(pad, masked, strict=True)), expected)


Origin = tuple[str, str, int]
"""An origin as compared: scheme, host (lower case) and port (the scheme's default if none)."""


def _origin(url: str) -> Origin | None:
    """The scheme, host and port of an http or https ``url``; None for anything else."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None or not host:
        return None
    return parts.scheme, host, default if port is None else port


def _own_origin(scheme: str, host: str | None) -> Origin | None:
    """The origin a request was sent to: the page scheme of its ``scheme`` (http or https), the
    host and port of its ``Host`` header (the scheme's default port if it names none)."""
    page_scheme = PAGE_SCHEMES.get(scheme.strip().lower())
    host = None if host is None else host.strip()
    if page_scheme is None or not host or any(char in host for char in "/?#@\\"):
        return None
    return _origin(f"{page_scheme}://{host}")


def origin_problem(
    sec_fetch_site: str | None,
    origin: str | None,
    host: str | None,
    scheme: str,
    trusted_origins: Collection[str] = (),
) -> str | None:
    """Why an unsafe request's browser headers show it came from another site; None if not.

    ``Origin`` must name the request's own origin: the same scheme (``scheme`` is the one the
    browser used, see :func:`coatcheck.clients.request_scheme`; ``ws`` counts as ``http`` and
    ``wss`` as ``https``), host and port (``Host``, each scheme's default port when none is
    named), or be one of ``trusted_origins``.

    A request without these headers (an old browser, a non-browser client) passes this check;
    the token check is what stops a forged one.

    >>> origin_problem(None, "https://shop.example", "shop.example", "https") is None
    True
    >>> origin_problem(None, "https://shop.example", "shop.example", "http")
    "cross-origin request (Origin is not the request's origin)"
    """
    cross_site = sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site"
    if cross_site and (origin is None or origin.strip() not in trusted_origins):
        return "cross-site request (Sec-Fetch-Site)"
    if origin is None:
        return None
    origin = origin.strip()
    if origin in trusted_origins:
        return None
    if origin == "null":
        return "opaque origin (Origin: null)"
    claimed = _origin(origin)
    if claimed is None or claimed != _own_origin(scheme, host):
        return "cross-origin request (Origin is not the request's origin)"
    return None


_MULTIPART_FIELD = re.compile(
    rb'content-disposition:\s*form-data;\s*name="(?P<name>[^"]*)"\r\n\r\n(?P<value>[^\r]*)\r\n',
    re.IGNORECASE,
)


def form_token(content_type: str, body: bytes, field: str) -> str | None:
    """The token a submitted form carries in ``field``, or None."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=1000)
        except (UnicodeDecodeError, ValueError):
            return None
        for name, value in pairs:
            if name == field:
                return value
        return None
    if kind == "multipart/form-data":
        wanted = field.encode("ascii", "replace")
        for found in _MULTIPART_FIELD.finditer(body):
            if found["name"] == wanted:
                return found["value"].decode("ascii", "replace")
    return None


FORM_LIMIT = 1024 * 1024
"""Largest form body the middleware reads to find a token field (larger: send the header)."""


class CsrfPolicy(Protocol):
    """The options a CSRF check reads (a :class:`~coatcheck.config.SessionConfig`)."""

    @property
    def csrf(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def csrf_exempt(self) -> tuple[str, ...]: ...
    @property
    def trusted_origins(self) -> tuple[str, ...]: ...


class TokenHolder(Protocol):
    def csrf_matches(self, submitted: str | None) -> bool: ...


def applies(policy: CsrfPolicy, method: str, path: str) -> bool:
    """Whether a request is checked at all: an unsafe method on a path not exempted, with the
    session ID in a cookie (an ambient credential; a header is nothing a browser adds itself)."""
    return (
        policy.csrf != "off"
        and policy.transport == "cookie"
        and method in UNSAFE_METHODS
        and not any(path.startswith(prefix) for prefix in policy.csrf_exempt)
    )


def handshake_problem(
    policy: CsrfPolicy, path: str, origin: str | None, host: str | None, scheme: str
) -> str | None:
    """Why a WebSocket handshake comes from another site (cross-site WebSocket hijacking), or
    None. Browsers always send ``Origin`` on a handshake; ``csrf="off"`` and exempt paths skip
    the check. ``scheme`` is the one the browser used (``ws`` or ``wss``, or ``http`` or
    ``https`` as a server or a trusted proxy may report it)."""
    if (
        policy.csrf == "off"
        or policy.transport != "cookie"
        or any(path.startswith(prefix) for prefix in policy.csrf_exempt)
    ):
        return None
    return origin_problem(None, origin, host, scheme, policy.trusted_origins)


def wants_form(policy: CsrfPolicy, header_token: str | None, content_type: str | None) -> bool:
    """Whether the token must be looked for in the body: token mode, no header, a form."""
    return (
        policy.csrf == "token"
        and header_token is None
        and content_type is not None
        and content_type.split(";", 1)[0].strip().lower() in FORM_TYPES
    )


def verdict(
    policy: CsrfPolicy,
    session: TokenHolder,
    *,
    sec_fetch_site: str | None,
    origin: str | None,
    host: str | None,
    scheme: str,
    submitted: str | None,
) -> str | None:
    """Why a checked request is refused, or None when it passes (``scheme``: the one the
    browser used, see :func:`origin_problem`)."""
    problem = origin_problem(sec_fetch_site, origin, host, scheme, policy.trusted_origins)
    if problem is not None or policy.csrf != "token":
        return problem
    if not submitted:
        return "no CSRF token"
    if not session.csrf_matches(submitted):
        return "wrong CSRF token"
    return None


FORBIDDEN_BODY = b"Forbidden: the request failed its CSRF check.\n"
