"""The :class:`Session`: a dict of JSON-compatible values with a lifecycle.

A Session is what the application sees. It records what the request asked for (changes,
regenerate, login, logout); it does no I/O. :mod:`coatcheck.engine` loads it and commits it.

Besides its data and its own facts (user, creation, CSRF token, client binding), a session's
state is two small values, which the engine reads and keeps current: :class:`Stored`, the
record the store holds for it (None until it is stored), and :class:`Asked`, what this request
asked of its lifecycle (a :class:`Rotation` and an :class:`Ending`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any, cast

from . import codec, csrf
from .codec import JSONValue, SessionTooLarge

if TYPE_CHECKING:
    from .clients import ClientSource

_MISSING: Any = object()
_UNKNOWN = -2
_DATA_KEY_LENGTH = len(codec.DATA_KEY)


@dataclass(slots=True)
class Stored:
    """The record a session is stored as, as the request's load or its last write left it.

    The engine keeps it current through the session's methods (:meth:`Session.adopt` a new
    record, :meth:`Session.saved`, :meth:`Session.touched`, :meth:`Session.rebase`). Slots, not a
    named tuple, and updated in place by a save: a slot is read without a lookup, and the engine
    reads and writes these on every request.
    """

    id: str
    """The session ID the client holds."""
    key: str
    """The store key: the ID, hashed."""
    version: int
    """The record's version, for compare-and-set."""
    raw: bytes
    """The envelope as stored (unsealed): this request's changes are measured against it."""
    expires_at: float
    """The idle deadline, never past the absolute one."""
    deadline: float
    """The absolute deadline: its login (or creation) plus ``absolute_timeout``."""
    forwarded: bool = False
    """Reached through a regenerated ID in its grace window: the client holds an older ID
    and must keep the newer cookie the rotating response gave it, so none is sent."""
    touched: bool = False
    """The load moved ``expires_at`` forward (a touch was due): the cookie's Max-Age slides."""


class Rotation(IntEnum):
    """Whether the session gets a new ID at commit, and why (a stronger one overrides)."""

    NONE = 0
    REGENERATE = 1
    """:meth:`Session.regenerate`: requests in flight with the old ID follow for a grace window."""
    PRIVILEGES = 2
    """:meth:`Session.privileges_changed`: the old ID dies at once."""
    LOGIN = 3
    """:meth:`Session.login`: as PRIVILEGES, and it counts as a login (events, per-user cap)."""


class Ending(IntEnum):
    """Which sessions the request ends (a wider one overrides)."""

    NONE = 0
    OTHERS = 1
    """:meth:`Session.password_changed`: the user's other sessions end; this one goes on."""
    LOGOUT = 2
    """The ID the client holds ends (:meth:`Session.logout`, or a cookie that named nothing):
    its record, if any, is deleted and the cookie expired, unless a new session is written."""
    EVERYWHERE = 3
    """``logout(everywhere=True)``: LOGOUT, and every other session of the user."""


@dataclass(slots=True, frozen=True)
class Asked:
    """What a request asked of its session's lifecycle."""

    rotation: Rotation = Rotation.NONE
    ending: Ending = Ending.NONE
    ended: str | None = None
    """The store key of the record a logout ends (None when it was never stored)."""
    ended_user: str | None = None
    """That record's user, whose other sessions EVERYWHERE ends."""
    ended_created: float | None = None
    """When that record's session was created (how long it lived, for the ``logged_out``
    event)."""


NOTHING_ASKED = Asked()
"""The request asked nothing: the commit only saves changed data or touches."""
STALE_ID = Asked(ending=Ending.LOGOUT)
"""The request's ID named no session: its cookie is expired, unless a new session is written."""


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

    __slots__ = (  # noqa: RUF023 (grouped by what they are)
        # the two values the engine reads and keeps current
        "stored",
        "asked",
        # the session's own facts, sealed in its envelope
        "_user_id",
        "_created_at",
        "_auth_at",
        "_last_active",
        "_csrf",
        "_binding",
        # the request it serves
        "opened_at",
        "_max_size",
        "_client",
        "_flagged",
        "_accessed",
        # this request's changes to the data, and what is known of its size
        "_modified",
        "_forced",
        "_cleared",
        "_reenvelope",
        "_offset",
        "_size",
    )

    stored: Stored | None
    """The record the store holds for this session; None until it is first written."""
    asked: Asked
    """What this request asked of the lifecycle (:data:`NOTHING_ASKED` when nothing)."""
    _user_id: str | None
    _created_at: float
    _auth_at: float
    _last_active: float
    _csrf: str | None
    _binding: str | None
    opened_at: float
    """When the request loaded the session (or started it): the time its lifecycle steps
    (a login's time, a reset) take, and what the engine's commit compares with the next purge
    check (``purge_interval``). Read-only."""
    _max_size: int
    _client: ClientSource
    _flagged: bool
    _accessed: bool
    _modified: bool
    _forced: bool
    _cleared: bool
    _reenvelope: bool
    _offset: int
    _size: int | None

    @classmethod
    def fresh(
        cls,
        *,
        now: float,
        max_size: int,
        stale_id: bool = False,
        client: ClientSource = None,
        binding: str | None = None,
    ) -> Session:
        """A new, empty session that exists nowhere until it is written to.

        ``stale_id``: the request's ID named no session, so its cookie is to be expired.
        ``client`` is the request's (for per-client limits), ``binding`` what it binds to.
        """
        session = cls()  # every slot set once, here (what _reset does, inline): this runs on
        # every request that brings no cookie
        session.stored, session._user_id, session._csrf = None, None, None
        session._offset, session._size = -1, 2  # "{}"
        session._created_at = session._auth_at = session._last_active = session.opened_at = now
        session._modified = session._forced = session._cleared = False
        session._reenvelope = session._flagged = session._accessed = False
        session._max_size, session._client, session._binding = max_size, client, binding
        session.asked = STALE_ID if stale_id else NOTHING_ASKED
        return session

    @classmethod
    def load(
        cls,
        data: dict[str, JSONValue],
        stored: Stored,
        created_at: float,
        auth_at: float,
        last_active: float,
        user_id: str | None,
        csrf_token: str | None,
        binding: str | None,
        now: float,
        max_size: int,
        client: ClientSource,
        flagged: bool = False,
        rebound: bool = False,
    ) -> Session:
        """A session loaded from a store, as ``stored``; ``rebound``: its ``binding`` is new
        (it was stored before binding was on) and goes into its envelope at the next write."""
        session = cls(data)  # every slot is set once, here: this runs on every request
        session.stored, session.asked = stored, NOTHING_ASKED
        session._created_at, session._auth_at, session._last_active = (
            created_at,
            auth_at,
            last_active,
        )
        session._user_id, session._csrf, session._binding = user_id, csrf_token, binding
        session.opened_at, session._max_size, session._client = now, max_size, client
        session._flagged, session._reenvelope = flagged, rebound
        session._offset = session._size = _UNKNOWN
        session._modified = session._forced = session._cleared = session._accessed = False
        return session

    def _reset(self, now: float) -> None:
        self.stored, self._user_id, self._csrf, self._binding = None, None, None, None
        self._offset, self._size = -1, 2  # "{}"
        self._created_at = self._auth_at = self._last_active = self.opened_at = now
        self._modified = self._forced = self._cleared = self._reenvelope = self._flagged = False

    # -- for the engine: what it stores, and what it learns from the store -----------------------

    @property
    def client(self) -> ClientSource:
        """The request's client (or what resolves it), as the middleware gave it."""
        return self._client

    @property
    def binding(self) -> str | None:
        """The keyed digest of the client this session is bound to (``bind_to``), or None."""
        return self._binding

    @property
    def worth_storing(self) -> bool:
        """Whether an unstored session holds anything to store: data, a user or a CSRF token."""
        return bool(self) or self._user_id is not None or self._csrf is not None

    @property
    def cleared(self) -> bool:
        """Whether :meth:`clear` emptied the data this request (then its view wins a replay)."""
        return self._cleared

    def unchanged_as(self, body: bytes) -> bool:
        """Whether the store holds exactly ``body`` as the data, and nothing forces a write."""
        stored = self.stored  # what _holds does, inline: this runs on every request
        if self._forced or stored is None:
            return False
        raw = stored.raw  # ends with body + "}", checked without making that string
        if raw[-1:] != b"}" or not raw.endswith(body, 0, -1):
            return False
        offset = self._offset
        if offset == _UNKNOWN:  # what codec.data_offset does, inline (the raw ends with "}")
            at = raw.find(codec.DATA_KEY)
            offset = self._offset = -1 if at < 0 else at + _DATA_KEY_LENGTH
        return offset == len(raw) - len(body) - 1

    def holds(self, body: bytes) -> bool:
        """Whether the stored bytes hold exactly ``body`` as their data."""
        return self._holds(body)

    def envelope(self, body: bytes) -> bytes:
        """The bytes to store: ``body`` as the data, in an envelope of this session's facts."""
        return codec.envelope(
            body, self._created_at, self._auth_at, self._csrf, self._binding, self._user_id
        )

    def rewrapped(self, body: bytes) -> bytes:
        """The stored envelope with ``body`` as its data (its facts reused as stored, unless
        this request changed one)."""
        offset = self._data_offset()
        stored = self.stored
        if stored is not None and offset > 0 and not self._reenvelope:
            return stored.raw[:offset] + body + b"}"
        return self.envelope(body)

    def adopt(self, stored: Stored, now: float) -> None:
        """Record that the store now holds this session as ``stored``, written at ``now``; what
        the request asked is done."""
        self.stored, self.asked, self._last_active = stored, NOTHING_ASKED, now
        self._offset = _UNKNOWN
        self._forced = self._cleared = self._reenvelope = False

    def saved(self, version: int, raw: bytes, expires_at: float, now: float) -> None:
        """Record that a save at ``now`` stored ``raw`` (the envelope) as ``version``, expiring
        at ``expires_at``, under the stored key; what the request asked is done."""
        stored = self.stored
        assert stored is not None
        stored.version, stored.raw, stored.expires_at, stored.touched = (
            version,
            raw,
            expires_at,
            False,
        )
        self._last_active, self._offset = now, _UNKNOWN
        self._forced = self._cleared = self._reenvelope = False

    def touched(self, expires_at: float, now: float) -> None:
        """Record that the store moved the session's expiry to ``expires_at`` at ``now``."""
        assert self.stored is not None
        self.stored.expires_at, self._last_active = expires_at, now

    def rebase(
        self,
        key: str,
        version: int,
        raw: bytes,
        expires_at: float,
        forwarded: bool,
        data: dict[str, JSONValue],
    ) -> None:
        """Take another writer's record as the baseline (under ``key``, where a forward may have
        led: ``forwarded``), with ``data`` (its data, this request's changes replayed onto it)
        as the session's: a save retries from there."""
        stored = self.stored
        assert stored is not None
        dict.clear(self)
        dict.update(self, data)
        stored.key, stored.version, stored.raw = key, version, raw
        stored.expires_at, stored.forwarded = expires_at, forwarded
        self._offset, self._size, self._cleared = _UNKNOWN, None, False

    def lost(self) -> None:
        """The store no longer holds the session (it expired, or was ended during the request):
        it becomes fresh and empty."""
        dict.clear(self)
        self._reset(self.opened_at)
        self.asked = NOTHING_ASKED

    def _data_offset(self) -> int:
        if self._offset == _UNKNOWN:
            stored = self.stored
            self._offset = codec.data_offset(stored.raw) if stored is not None else -1
        return self._offset

    def _holds(self, body: bytes) -> bool:
        stored = self.stored
        if stored is None or not stored.raw.endswith(body + b"}"):
            return False
        return self._data_offset() == len(stored.raw) - len(body) - 1

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def is_new(self) -> bool:
        """True until the session exists in the store (it is created on the first write)."""
        return self.stored is None

    @property
    def modified(self) -> bool:
        """Whether this request changed the data or asked for regenerate/login/logout.

        Set it to True to force a write (nested changes are detected without it).
        """
        asked = self.asked
        return self._modified or asked.rotation != 0 or asked.ended is not None

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
        stored = self.stored
        return stored.expires_at if stored is not None else None

    def regenerate(self) -> None:
        """Give the session a new ID at commit; the data stays, the old record is deleted.

        Neither the absolute timeout nor the creation time move. Call it on any privilege change.
        """
        if self.stored is not None:
            self._rotate(Rotation.REGENERATE)

    def _rotate(self, rotation: Rotation) -> None:
        asked = self.asked
        if rotation > asked.rotation:
            self.asked = replace(asked, rotation=rotation)

    def login(self, user_id: str) -> None:
        """Bind the session to ``user_id``: regenerate, and restart the absolute timeout."""
        if not isinstance(user_id, str) or not user_id:
            raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")
        self.privileges_changed()
        self._rotate(Rotation.LOGIN)  # a new session logged in is counted as a login too
        self._user_id = user_id
        self._auth_at = self.opened_at

    def privileges_changed(self) -> None:
        """Call on any change of role or permission: a new ID with no grace window for the old
        one, and a new CSRF token (an elevation must not carry over a token seen before it)."""
        if self.stored is not None:
            self._rotate(Rotation.PRIVILEGES)
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
        if self.asked.ending < Ending.OTHERS:
            self.asked = replace(self.asked, ending=Ending.OTHERS)

    def end_if_emptied(self, ignoring: Iterable[str] = ()) -> bool:
        """End a stored session that this request emptied: no data left (but the keys in
        ``ignoring``), no user, and no CSRF token (pages carry it); as Starlette's and Flask's
        own sessions drop an emptied session. Returns whether it did."""
        emptied = (
            self.stored is not None
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
        store's per-user index), as it does after :meth:`password_changed`. Anything written to
        the session afterwards starts a new, anonymous session.
        """
        asked, stored = self.asked, self.stored
        ended = stored.key if stored is not None else asked.ended
        user = self._user_id if self._user_id is not None else asked.ended_user
        created = self._created_at if stored is not None else asked.ended_created
        wide = everywhere or asked.ending in (Ending.OTHERS, Ending.EVERYWHERE)
        bound = self._binding  # the client stays the same one
        dict.clear(self)
        self._reset(self.opened_at)
        self._binding = bound
        ending = Ending.EVERYWHERE if wide and user is not None else Ending.LOGOUT
        self.asked = Asked(Rotation.NONE, ending, ended, user, created)

    # -- the dict, with every mutation checked and recorded ---------------------------------

    def _data_size(self) -> int:
        """An upper bound of the data's serialized size (exact when first computed)."""
        if self._size == _UNKNOWN:  # as loaded: read it off the stored bytes
            offset, stored = self._data_offset(), self.stored
            self._size = len(stored.raw) - offset - 1 if stored is not None and offset > 0 else None
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


class ReadOnlySession(TypeError):
    """A change asked of a :class:`BearerSession` (it is never stored)."""


class BearerSession(Session):
    """The session of a request authenticated by a Bearer access token
    (:mod:`coatcheck.tokens`): its user is the token's, and :attr:`claims` holds what the
    token says (``sid``, the handle of the refresh-token session it was issued from, names that
    session without being its ID). It has no data and is never stored: the request carries no
    session ID to store it under, and sets none. Writing to it, or asking it to log in, out or
    regenerate, raises :class:`ReadOnlySession` (an API client logs out by revoking its tokens;
    state an API client keeps belongs under its user or its ``sid``).
    """

    __slots__ = ("claims",)

    claims: Any
    """The verified token's :class:`~coatcheck.tokens.Claims`."""

    @classmethod
    def of(cls, claims: Any, now: float, max_size: int) -> BearerSession:
        """The session of a request whose access token gave ``claims`` (a ``user_id``)."""
        session = cast(BearerSession, cls.fresh(now=now, max_size=max_size))
        session._user_id = claims.user_id
        session.claims = claims
        return session

    @property
    def worth_storing(self) -> bool:
        """Never: a Bearer request's session is not stored."""
        return False

    def _refuse(self, what: str) -> ReadOnlySession:
        return ReadOnlySession(
            f"a Bearer request's session is read-only ({what}): the access token names no "
            "session to store it in"
        )

    def _grow(self, key: str, value: JSONValue) -> None:
        raise self._refuse(f"setting {key!r}")

    def _shrink(self, key: str) -> None:
        raise self._refuse(f"removing {key!r}")

    def clear(self) -> None:
        raise self._refuse("clear()")

    def regenerate(self) -> None:
        raise self._refuse("regenerate()")

    def _rotate(self, rotation: Rotation) -> None:
        raise self._refuse(rotation.name.lower())

    def privileges_changed(self) -> None:
        raise self._refuse("privileges_changed()")

    def logout(self, *, everywhere: bool = False) -> None:
        raise self._refuse("logout(): revoke the tokens instead")

    def csrf_token(self) -> str:
        raise self._refuse("csrf_token(): a Bearer request needs none")
