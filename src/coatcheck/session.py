"""The :class:`Session`: a dict of JSON-compatible values with a lifecycle.

A Session is what the application sees. It records what the request asked for (changes,
regenerate, login, logout); it does no I/O. :mod:`coatcheck.engine` loads it and commits it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import codec, csrf
from .codec import JSONValue, SessionTooLarge

if TYPE_CHECKING:
    from .clients import ClientSource

_MISSING: Any = object()
_UNKNOWN = -2


class Session(dict[str, JSONValue]):
    """A session's data, and its lifecycle controls.

    It is a real ``dict`` (so ``json.dumps(session)`` and ``isinstance(session, dict)`` work
    wherever Starlette's session does). Values must be JSON-compatible: assigning one that is not
    raises TypeError naming the key, and growing the data past ``max_size`` raises
    :class:`~coatcheck.codec.SessionTooLarge`.

    Changes inside a nested value (``session["cart"].append(item)``) are found at commit time by
    comparing serialized bytes, so ``modified = True`` is never required, only allowed.

    >>> session = Session.fresh(now=1000.0, max_size=1024)
    >>> session["cart"] = ["apple"]
    >>> session.modified, session.is_new
    (True, True)
    >>> session["when"] = object()
    Traceback (most recent call last):
    ...
    TypeError: session['when'] = object value cannot be stored: ...
    """

    __slots__ = (
        "_accessed",
        "_auth_at",
        "_binding",
        "_cleared",
        "_client",
        "_created_at",
        "_csrf",
        "_doomed_key",
        "_doomed_user",
        "_everywhere",
        "_expires_at",
        "_flagged",
        "_forced",
        "_forwarded",
        "_grace",
        "_id",
        "_key",
        "_last_active",
        "_login",
        "_max_size",
        "_modified",
        "_now",
        "_offset",
        "_others_out",
        "_raw",
        "_reenvelope",
        "_reject_cookie",
        "_rotate",
        "_size",
        "_touched",
        "_user_id",
        "_version",
    )

    _id: str | None
    _key: str | None
    _version: int
    _raw: bytes | None
    _offset: int
    _created_at: float
    _auth_at: float
    _expires_at: float | None
    _last_active: float
    _user_id: str | None
    _now: float
    _max_size: int
    _size: int | None
    _modified: bool
    _forced: bool
    _cleared: bool
    _rotate: bool
    _doomed_key: str | None
    _doomed_user: str | None
    _everywhere: bool
    _login: bool
    _reject_cookie: bool
    _csrf: str | None
    _binding: str | None
    _reenvelope: bool
    _flagged: bool
    _client: ClientSource
    _forwarded: bool
    _grace: bool
    _others_out: bool
    _touched: bool
    _accessed: bool

    @classmethod
    def fresh(cls, *, now: float, max_size: int, reject_cookie: bool = False) -> Session:
        """A new, empty session that exists nowhere until it is written to."""
        session = cls()
        session._reset(now)
        session._max_size = max_size
        session._reject_cookie = reject_cookie
        session._doomed_key = session._doomed_user = None
        session._everywhere = session._accessed = session._others_out = False
        session._client = None
        return session

    @classmethod
    def stored(
        cls,
        data: dict[str, JSONValue],
        session_id: str,
        key: str,
        version: int,
        raw: bytes,
        created_at: float,
        auth_at: float,
        expires_at: float,
        last_active: float,
        user_id: str | None,
        now: float,
        max_size: int,
        csrf: str | None = None,
        binding: str | None = None,
    ) -> Session:
        """A session loaded from a store."""
        session = cls(data)  # every slot is set once, here: this runs on every request
        session._id, session._key, session._version = session_id, key, version
        session._raw, session._offset, session._size = raw, _UNKNOWN, _UNKNOWN
        session._created_at, session._auth_at, session._now = created_at, auth_at, now
        session._expires_at, session._last_active = expires_at, last_active
        session._user_id, session._max_size = user_id, max_size
        session._csrf, session._binding = csrf, binding
        session._doomed_key = session._doomed_user = session._client = None
        session._modified = session._forced = session._cleared = session._rotate = False
        session._touched = session._login = session._everywhere = session._accessed = False
        session._reject_cookie = session._reenvelope = session._flagged = False
        session._forwarded = session._grace = session._others_out = False
        return session

    def _reset(self, now: float) -> None:
        self._id = self._key = self._raw = self._expires_at = self._user_id = None
        self._version, self._offset, self._size = 0, -1, 2  # "{}"
        self._created_at = self._auth_at = self._last_active = self._now = now
        self._modified = self._forced = self._cleared = self._rotate = self._touched = False
        self._login = self._reenvelope = self._flagged = self._forwarded = self._grace = False
        self._csrf = self._binding = None

    def _adopt(
        self,
        session_id: str,
        key: str,
        version: int,
        raw: bytes,
        expires_at: float,
        user_id: str | None,
    ) -> None:
        """Record that this session is now stored as described (after a load or a write)."""
        self._id, self._key, self._version = session_id, key, version
        self._rebase(raw)
        self._expires_at, self._user_id = expires_at, user_id
        self._forced = self._cleared = self._rotate = self._touched = self._reenvelope = False

    def _rebase(self, raw: bytes) -> None:
        """Take ``raw`` as the stored bytes this request's changes are measured against."""
        self._raw, self._offset = raw, _UNKNOWN

    def _data_offset(self) -> int:
        if self._offset == _UNKNOWN:
            self._offset = codec.data_offset(self._raw) if self._raw is not None else -1
        return self._offset

    def _holds(self, body: bytes) -> bool:
        """Whether the stored bytes hold exactly ``body`` as their data."""
        raw = self._raw
        if raw is None or not raw.endswith(body + b"}"):
            return False
        return self._data_offset() == len(raw) - len(body) - 1

    def _rewrap(self, body: bytes) -> bytes:
        """The stored envelope with ``body`` as its data (timestamps reused as stored)."""
        offset = self._data_offset()
        if self._raw is not None and offset > 0 and not self._reenvelope:
            return self._raw[:offset] + body + b"}"
        return codec.envelope(
            body, self._created_at, self._auth_at, self._csrf, self._binding, self._user_id
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_new(self) -> bool:
        """True until the session exists in the store (it is created on the first write)."""
        return self._key is None

    @property
    def modified(self) -> bool:
        """Whether this request changed the data or asked for regenerate/login/logout.

        Set it to True to force a write (nested changes are detected without it).
        """
        return self._modified or self._rotate or self._doomed_key is not None

    @modified.setter
    def modified(self, value: bool) -> None:
        self._modified = self._forced = bool(value)

    @property
    def accessed(self) -> bool:
        """Whether the response depends on the session: it was handed out or changed.

        Starlette's ``request.session`` calls :meth:`mark_accessed`; a response whose session
        was accessed should carry ``Vary: Cookie`` so that shared caches keep users apart.
        """
        return self._accessed or self.modified

    def mark_accessed(self) -> None:
        """Record that the request read the session (done by ``request.session``)."""
        self._accessed = True

    @property
    def user_id(self) -> str | None:
        """The user this session is bound to by :meth:`login`, or None when anonymous."""
        return self._user_id

    @property
    def created_at(self) -> float:
        """When the session was first created (Unix seconds); kept across :meth:`regenerate`."""
        return self._created_at

    @property
    def authenticated_at(self) -> float:
        """When the absolute timeout started: creation, or the last :meth:`login`."""
        return self._auth_at

    @property
    def last_active(self) -> float:
        """When the session was last written or touched (to within ``touch_interval``)."""
        return self._last_active

    @property
    def expires_at(self) -> float | None:
        """When the stored session expires if nothing else happens; None before it is stored."""
        return self._expires_at

    def regenerate(self) -> None:
        """Give the session a new ID at commit; the data stays, the old record is deleted.

        Neither the absolute timeout nor the creation time move. Call it on any privilege change.
        """
        if self._key is not None:
            self._rotate = True
            self._grace = not self._login  # requests in flight follow a plain rotation

    def login(self, user_id: str) -> None:
        """Bind the session to ``user_id``: regenerate, and restart the absolute timeout."""
        if not isinstance(user_id, str) or not user_id:
            raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")
        self._login = True
        self.privileges_changed()
        self._user_id = user_id
        self._auth_at = self._now

    def privileges_changed(self) -> None:
        """Call on any change of role or permission: a new ID with no grace window for the old
        one, and a new CSRF token (an elevation must not carry over a token seen before it)."""
        self.regenerate()
        self._grace = False
        self._modified = True
        if self._csrf is not None:
            self._csrf = csrf.new_token()
            self._reenvelope = True

    def password_changed(self) -> None:
        """Call after the user changed their password: :meth:`privileges_changed`, and every
        other session of the user ends (through the store's per-user index)."""
        if self._user_id is None:
            raise RuntimeError("password_changed() needs a logged-in session (see login())")
        self.privileges_changed()
        self._others_out = True

    def end_if_emptied(self, ignoring: Iterable[str] = ()) -> bool:
        """End a stored session that this request emptied: no data left (but the keys in
        ``ignoring``), no user, and no CSRF token (pages carry it); as Starlette's and Flask's
        own sessions drop an emptied session. Returns whether it did."""
        emptied = (
            self._key is not None
            and self.modified
            and self._user_id is None
            and self._csrf is None
            and not self.keys() - set(ignoring)
        )
        if emptied:
            self.logout()
        return emptied

    @property
    def flagged(self) -> bool:
        """Whether this request's client differs from the one the session is bound to (only
        with ``bind_to`` and ``binding_action="flag"``): ask for the password again, say."""
        return self._flagged

    def csrf_token(self) -> str:
        """This session's CSRF token, masked afresh: embed it in forms or send it in a header.

        The first call creates the token, which makes the session worth storing (even an
        anonymous one: login forms need a token too). It is renewed by :meth:`login`.
        """
        if self._csrf is None:
            self._csrf = csrf.new_token()
            self._reenvelope = self._forced = True
        return csrf.mask(self._csrf)

    def csrf_matches(self, submitted: str | None) -> bool:
        """Whether ``submitted`` carries this session's CSRF token (constant time)."""
        return (
            self._csrf is not None and submitted is not None and csrf.matches(submitted, self._csrf)
        )

    def logout(self, *, everywhere: bool = False) -> None:
        """Destroy the session on the server and expire the cookie.

        With ``everywhere=True``, every other session of the same user ends too (through the
        store's per-user index). Anything written to the session afterwards starts a new,
        anonymous session.
        """
        doomed = self._key if self._key is not None else self._doomed_key
        user = self._user_id if self._user_id is not None else self._doomed_user
        bound = self._binding  # the client stays the same one
        dict.clear(self)
        self._reset(self._now)
        self._binding = bound
        self._doomed_key, self._doomed_user = doomed, user
        self._everywhere = self._everywhere or (everywhere and user is not None)
        self._reject_cookie = True

    # -- the dict, with every mutation checked and recorded ---------------------------------

    def _data_size(self) -> int:
        """An upper bound of the data's serialized size (exact when first computed)."""
        if self._size == _UNKNOWN:  # as loaded: read it off the stored bytes
            offset = self._data_offset()
            raw = self._raw
            self._size = len(raw) - offset - 1 if raw is not None and offset > 0 else None
        if self._size is None:
            self._size = len(codec.dumps(self))
        return self._size

    def _grow(self, key: str, value: JSONValue) -> None:
        """Check that ``self[key] = value`` may happen, and account for its size."""
        size = self._data_size() + codec.entry_size(key, value) + 1  # a bound: old value kept
        if size > self._max_size:  # measure exactly before refusing
            size = len(codec.dumps({**self, key: value}))
        if size > self._max_size:
            raise SessionTooLarge(
                f"setting session[{key!r}] would make the session {size} bytes serialized, "
                f"over max_size={self._max_size}"
            )
        self._size = size
        self._modified = True

    def _shrink(self, key: str) -> None:
        try:
            size = self._data_size() - codec.entry_size(key, dict.__getitem__(self, key))
            self._size = size - (1 if len(self) > 1 else 0)
        except TypeError:
            self._size = None
        self._modified = True

    def __setitem__(self, key: str, value: JSONValue) -> None:
        self._grow(key, value)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._shrink(key)
        dict.__delitem__(self, key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key in self:
            self._shrink(key)
            return dict.pop(self, key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, JSONValue]:
        if not self:
            raise KeyError("popitem(): session is empty")
        key = next(reversed(self.keys()))
        return key, self.pop(key)

    def setdefault(self, key: str, default: JSONValue = None) -> JSONValue:
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: JSONValue) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        """Remove all data; the session itself (its ID and user) stays."""
        dict.clear(self)
        self._size = 2  # "{}"
        self._cleared = self._modified = True

    def copy(self) -> dict[str, JSONValue]:
        """A plain dict with the same data."""
        return dict(self)

    def __reduce__(self) -> Any:
        raise TypeError("sessions cannot be pickled")

    def __repr__(self) -> str:
        state = "new" if self.is_new else "stored"
        return f"<Session {state} user={self._user_id!r} {dict.__repr__(self)}>"

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> Any:
        """Not supported: sessions come from the middleware (or :meth:`fresh`)."""
        raise TypeError("use Session.fresh() or a session from the middleware")
