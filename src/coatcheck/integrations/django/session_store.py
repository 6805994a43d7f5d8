"""``SessionStore``: Django's session engine interface over a coatcheck store.

Django's ``SessionBase`` keeps its own flow (lazy load, ``save(must_create)``, ``cycle_key``,
``flush``); this class supplies the storage half of it with coatcheck's pieces: IDs from
:func:`coatcheck.ids.new_id`, stored only as :func:`coatcheck.ids.store_key` digests, data as
JSON envelopes (:mod:`coatcheck.codec`), and compare-and-set writes. Each operation is written
once, as a sans-I/O plan that :func:`coatcheck.engine.run` drives on the sync store and
:func:`coatcheck.engine.run_async` on its async face, so the ``a``-prefixed methods are the same
code as the sync ones.

No lost updates, as in every other integration: a save whose compare-and-set finds that another
request wrote the session meanwhile reloads it, replays only the keys this object changed
(compared with what it loaded or last saved: :func:`coatcheck.engine.replay`; after ``clear()``
its own view wins) and tries again after a short jittered pause. Keys it did not touch keep the
other writer's values; a key both changed gets this save's value.

Under coatcheck's ``SessionMiddleware``, which tells each session its request's client
(:attr:`SessionStore.client`), the engine's own plans also apply, as in every other
integration: a well-formed ID that names no session counts against
``max_rejections_per_client``, a new session against ``max_creations_per_client`` and
``max_creations`` (over a limit: :class:`~coatcheck.limits.LimitExceeded`, a 429), and with
``bind_to`` a session is bound to the client that created it (another client's request finds
none, or is :attr:`~SessionStore.flagged`). :meth:`SessionStore.regenerate` is coatcheck's plain
rotation: the old ID forwards requests already in flight to the new record for
``rotation_grace`` seconds; ``cycle_key`` (what ``django.contrib.auth.login`` calls) kills it at
once.

Semantics kept from Django's own engines: the expiry comes from ``get_expiry_age()``
(``SESSION_COOKIE_AGE`` or ``set_expiry``) at each save; a save never brings back a session
deleted meanwhile (``UpdateError``); ``save(must_create=True)`` only ever creates
(``CreateError``); an unknown or expired key loads as an empty session whose key is dropped
(never adopted).
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError

from ... import codec
from ...clients import ClientSource, client_of
from ...encryption import seal, unseal
from ...engine import (
    MAX_CREATE_ATTEMPTS,
    MAX_SAVE_ATTEMPTS,
    Plan,
    StoreCall,
    WriteConflict,
    backoff,
    replay,
    run,
    run_async,
)
from ...ids import fingerprint, is_well_formed, new_id, store_key
from ...session import BearerSession, ReadOnlySession
from ...stores.base import Purgeable, Record, StoreError
from .config import backing

AUTH_USER_KEY = "_auth_user_id"
"""Where ``django.contrib.auth`` keeps the logged-in user's ID; stored as the record's user."""

security_log = logging.getLogger("django.security.SuspiciousSession")


class Stored(NamedTuple):
    """What the store holds for the current key, as this object last saw it."""

    version: int
    created_at: float
    auth_at: float
    raw: bytes
    """The envelope as loaded or last written: the baseline this object's changes are measured
    against when a save has to replay them (decoded only then)."""
    binding: str | None = None
    """The client the session is bound to (``bind_to``)."""
    expires_at: float = 0.0


def _user_of(data: dict[str, Any]) -> str | None:
    user = data.get(AUTH_USER_KEY)
    return None if user is None else str(user)


class SessionStore(SessionBase):  # type: ignore[misc]  # Django ships no type information
    """A Django session kept in the coatcheck store that ``COATCHECK_STORE_URL`` names.

    Use it with ``SESSION_ENGINE = "coatcheck.integrations.django"``.
    """

    _session_key: str | None  # SessionBase's validating property
    _session_cache: dict[str, Any]

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._stored: Stored | None = None
        self._cleared = False  # since the last write: a save's own view wins over the store's
        self._moved_to: str | None = None
        """The store key the session lives under when the ID led there through a forward."""
        self.client: ClientSource = None
        """The request's client (or what finds it), as coatcheck's middleware tells it; None
        outside a request, where binding and the per-client limits do not apply."""
        self.flagged = False
        """Whether the request's client differs from the one the session is bound to (only with
        ``bind_to`` and ``binding_action="flag"``)."""
        self.forwarded = False
        """Whether the ID is a regenerated one in its grace window: the request reads and
        writes the session it was moved to, and the middleware hands out no ID."""

    # -- keys ----------------------------------------------------------------------------

    def _get_new_session_key(self) -> str:
        """A fresh coatcheck ID (256 random bits); a collision is caught by ``create``."""
        return new_id()

    @staticmethod
    def _store_key(session_key: str | None) -> str | None:
        """The at-rest key of ``session_key``; None for a key coatcheck never issues."""
        if session_key is None or not is_well_formed(session_key):
            return None
        return store_key(session_key, backing().config.hash_secret)

    def _forget_key(self) -> None:
        self._session_key = None
        self._stored = self._moved_to = None

    def _key(self) -> str | None:
        """Where the session is stored: its ID's key, or where a forward led."""
        return self._moved_to or self._store_key(self.session_key)

    def _binding(self) -> str | None:
        """What the request's client binds a session to (None outside a request, or without
        ``bind_to``)."""
        engine = backing().engine
        if not engine.binds or self.client is None:
            return None
        return engine.binding_of(client_of(self.client))

    # -- data ----------------------------------------------------------------------------

    def encode(self, session_dict: dict[str, Any]) -> str:
        """The session data as the JSON text coatcheck stores (no pickle, no signing)."""
        return codec.encode_data(session_dict, backing().config.max_size).decode("utf-8")

    def decode(self, session_data: str) -> dict[str, Any]:
        """The data :meth:`encode` wrote; an empty session, logged, for anything else."""
        try:
            data = codec.loads(session_data.encode("utf-8"))
        except (ValueError, UnicodeError):
            data = None
        if type(data) is not dict:
            security_log.warning("Session data corrupted")
            return {}
        return data

    def _revive(self, record: Record | None, now: float) -> dict[str, Any] | str:
        """The stored data, or why there is none (a reason, as in events)."""
        if record is None:
            return "unknown"
        if not record.data:  # a store that could not read the record's fields says so
            return "undecodable"
        if not record.expires_at > now:  # NaN too
            return "idle"
        try:
            plain = unseal(backing().ring, record.data, record.key)
            envelope = codec.decode_envelope(plain, record.user_id)
            data, created_at, auth_at, _, binding, user = envelope
            if user != _user_of(data):  # the column and the envelope agree; so must the data
                raise codec.Tampered("stored session's user disagrees with its data")
        except codec.DecodeError as exc:  # its message never quotes the stored bytes
            security_log.warning("Session data corrupted: %s: %s", fingerprint(record.key), exc)
            return "tampered" if isinstance(exc, codec.Tampered) else "undecodable"
        deadline = backing().deadline(auth_at)
        if deadline is not None and deadline <= now:
            return "absolute"
        expires_at = record.expires_at if deadline is None else min(record.expires_at, deadline)
        self._stored = Stored(record.version, created_at, auth_at, plain, binding, expires_at)
        return data

    def _record(
        self, key: str, data: dict[str, Any], expiry_age: float, version: int, stored: Stored
    ) -> tuple[Record, Stored]:
        """The record holding ``data`` for ``expiry_age`` seconds (capped by the deadline), and
        what this object will have stored once it is written."""
        base = backing()
        now = base.config.clock()
        user = _user_of(data)
        body = codec.encode_data(data, base.config.max_size)
        blob = codec.envelope(body, stored.created_at, stored.auth_at, None, stored.binding, user)
        deadline = base.deadline(stored.auth_at)
        expires_at = now + expiry_age if deadline is None else min(now + expiry_age, deadline)
        sealed = seal(base.ring, blob, key, base.config.compress_over)
        record = Record(key, sealed, expires_at, version, user, deadline)
        return record, stored._replace(version=version, raw=blob, expires_at=expires_at)

    # -- plans: each store operation once, for both faces ----------------------------------

    def _load(self) -> Plan[dict[str, Any]]:
        key = self._store_key(self.session_key)
        record = None if key is None else (yield ("load", (key,)))
        base = backing()
        now = base.config.clock()
        self._moved_to, self.forwarded = None, False
        if record is not None:
            target = base.engine.forward_target(record, now)
            if target:  # regenerated moments ago: follow to the new record (once)
                record = yield ("load", (target,))
                if record is not None and base.engine.forward_target(record, now) is not None:
                    record = None
                self._moved_to, self.forwarded = target, True
            elif target == "":  # and its grace window is over
                record = None
        data = self._revive(record, now) if key is not None else "malformed"
        if not isinstance(data, str):
            data = self._check_binding(key, data)
        if isinstance(data, str):  # why there is none
            if self.session_key is not None:  # a cookie that named no live session
                if data in ("idle", "absolute"):
                    assert record is not None
                    base.emit("expired", key, record.user_id, data)
                elif data != "binding":  # a record that is not what it claims names no user
                    base.emit("rejected", key, None, data)
                if data != "malformed":  # refused before any store call: nothing to count
                    yield from base.engine.count_rejection(client_of(self.client))
            self._forget_key()
            self.forwarded = False
            return {}
        return data

    def _check_binding(self, key: str | None, data: dict[str, Any]) -> dict[str, Any] | str:
        """``data``, or "binding" when the session is bound to another client and the action
        is to reject (with ``binding_action="flag"``, :attr:`flagged` is set instead)."""
        current, stored = self._binding(), self._stored
        if current is None or stored is None or stored.binding == current:
            return data
        base = backing()
        if stored.binding is None:  # stored before binding was on: bind it at the next save
            self._stored = stored._replace(binding=current)
        elif base.config.binding_action == "reject":
            base.emit("rejected", key, _user_of(data), "binding")
            return "binding"
        else:
            base.emit("flagged", key, _user_of(data), "binding")
            self.flagged = True
        return data

    def _exists(self, session_key: str | None) -> Plan[bool]:
        key = self._store_key(session_key)
        if key is None:
            return False
        record: Record | None = yield ("load", (key,))
        if record is None or not record.expires_at > backing().config.clock():
            return False
        return backing().engine.forward_target(record, backing().config.clock()) is None

    def _delete(self, session_key: str | None) -> Plan[None]:
        if session_key is None:
            session_key = self.session_key
            if session_key is None:
                return
        mine = session_key == self.session_key
        key = self._key() if mine else self._store_key(session_key)
        if key is not None:
            yield ("delete", (key,))
            user = _user_of(self._session_cache) if mine and self._has_cache() else None
            backing().emit("logged_out" if mine else "revoked", key, user)
        if mine:
            self._stored = self._moved_to = None

    def _write(self, data: dict[str, Any], expiry_age: float, must_create: bool) -> Plan[None]:
        key = self._key()
        if key is None:  # the load found nothing, or the key is not one coatcheck issued
            raise CreateError if must_create else UpdateError
        now = backing().config.clock()
        if must_create:
            times = self._stored  # cycle_key keeps the creation time
            if times is None:  # a new session: counted against the limits, bound to its client
                if self.client is not None:
                    yield from backing().engine.count_creation(client_of(self.client))
                times = Stored(0, now, now, b"", self._binding())
            record, written = self._record(key, data, expiry_age, 1, times)
            if not (yield ("create", (record,))):
                raise CreateError
            self._stored, self._cleared = written, False
            backing().emit("created", key, _user_of(data))
            return
        stored = self._stored
        if stored is None:  # no baseline (a clear() without a load): this view replaces the data
            _, stored = yield from self._current(key, now)
        for attempt in range(MAX_SAVE_ATTEMPTS):
            record, written = self._record(key, data, expiry_age, stored.version + 1, stored)
            if (yield ("save", (record, stored.version))):
                self._stored, self._cleared = written, False
                return
            # Deleted meanwhile, or another request saved: replay this object's changes onto
            # what is stored now, after a pause so that colliding writers take turns.
            yield backoff(attempt + 1)
            before = {} if self._cleared else codec.decode(stored.raw)[0]
            theirs, stored = yield from self._current(key, now)
            merged = replay(before, data, theirs, self._cleared)
            data.clear()  # the session's own dict: the request now sees what it will write
            data.update(merged)
            self._cleared = False  # measured from now on against what was just loaded
            expiry_age = self.get_expiry_age(expiry=data.get("_session_expiry"))
        raise WriteConflict(f"gave up saving a session after {MAX_SAVE_ATTEMPTS} conflicts")

    def _current(self, key: str, now: float) -> Plan[tuple[dict[str, Any], Stored]]:
        """The data stored under ``key`` now and its version; ``UpdateError`` when the session
        was deleted or ended meanwhile (a save never brings it back)."""
        current: Record | None = yield ("load", (key,))
        data = self._revive(current, now)
        if isinstance(data, str):
            raise UpdateError
        assert self._stored is not None
        return data, self._stored

    def _rotate(
        self, data: dict[str, Any], expiry_age: float, old_key: str, graced: bool = False
    ) -> Plan[None]:
        """Move the session to a fresh ID: in one store call, its login time restarting
        (``cycle_key``); or, ``graced``, leaving the old record forwarding to the new one for
        ``rotation_grace`` seconds, its login time kept (:meth:`regenerate`)."""
        base = backing()
        now = base.config.clock()
        old = self._stored
        created_at = old.created_at if old else now
        binding = old.binding if old else self._binding()
        stored = Stored(1, created_at, old.auth_at if graced and old else now, b"", binding)
        for _ in range(MAX_CREATE_ATTEMPTS):
            session_id = self._get_new_session_key()
            key = self._new_store_key(session_id)
            record, written = self._record(key, data, expiry_age, 1, stored)
            step: StoreCall = ("create", (record,)) if graced else ("rotate", (old_key, record))
            if (yield step):
                if graced and old is not None:
                    until = min(now + base.config.rotation_grace, old.expires_at)
                    yield from base.engine.forward(old_key, key, old.version, until)
                elif graced:  # nothing loaded to forward from: the old record just goes
                    yield ("delete", (old_key,))
                self._session_key, self._stored, self._cleared = session_id, written, False
                self._moved_to, self.forwarded = None, False
                self.modified = True  # so the middleware sends the new cookie
                base.emit("regenerated", record.key, _user_of(data))
                return
        raise StoreError(f"rotate reported {MAX_CREATE_ATTEMPTS} collisions of fresh random IDs")

    def _has_cache(self) -> bool:
        return hasattr(self, "_session_cache")

    @staticmethod
    def _new_store_key(session_id: str) -> str:
        return store_key(session_id, backing().config.hash_secret)

    # -- Django's interface, sync ----------------------------------------------------------

    def clear(self) -> None:
        """Empty the session: its next save writes this view whatever others wrote meanwhile."""
        super().clear()
        self._cleared = True

    def load(self) -> dict[str, Any]:
        return run(self._load(), backing().store)

    def exists(self, session_key: str | None) -> bool:
        return run(self._exists(session_key), backing().store)

    def create(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise StoreError(f"create reported {MAX_CREATE_ATTEMPTS} collisions of fresh random IDs")

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        expiry_age = self.get_expiry_age(expiry=data.get("_session_expiry"))
        run(self._write(data, expiry_age, must_create), backing().store)
        return None

    def delete(self, session_key: str | None = None) -> None:
        run(self._delete(session_key), backing().store)

    def cycle_key(self) -> None:
        """A new ID for the same data, the old record deleted (``login`` calls this)."""
        self._cycle(graced=False)

    def regenerate(self) -> None:
        """A new ID for the same data (coatcheck's plain regenerate): requests already in flight
        with the old ID are forwarded to it for ``rotation_grace`` seconds. Use ``cycle_key``
        (as ``django.contrib.auth.login`` does) for a change of privilege."""
        self._cycle(graced=backing().config.rotation_grace > 0)

    def _cycle(self, graced: bool) -> None:
        data = self._session
        old_key = self._key()
        if old_key is None:  # nothing stored yet: a new session with this data
            self._forget_key()
            self.create()
            return
        expiry_age = self.get_expiry_age(expiry=data.get("_session_expiry"))
        run(self._rotate(data, expiry_age, old_key, graced), backing().store)

    @classmethod
    def clear_expired(cls) -> int:
        """Delete expired sessions; a no-op (0) on stores that expire them by themselves."""
        base = backing()
        if not isinstance(base.store, Purgeable):
            return 0
        return base.store.purge_expired(base.config.clock())

    # -- Django's interface, async ---------------------------------------------------------

    async def aload(self) -> dict[str, Any]:
        return await run_async(self._load(), backing().async_store)

    async def aexists(self, session_key: str | None) -> bool:
        return await run_async(self._exists(session_key), backing().async_store)

    async def acreate(self) -> None:
        for _ in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise StoreError(f"create reported {MAX_CREATE_ATTEMPTS} collisions of fresh random IDs")

    async def asave(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return await self.acreate()
        data = await self._aget_session(no_load=must_create)
        expiry_age = await self.aget_expiry_age(expiry=data.get("_session_expiry"))
        await run_async(self._write(data, expiry_age, must_create), backing().async_store)
        return None

    async def adelete(self, session_key: str | None = None) -> None:
        await run_async(self._delete(session_key), backing().async_store)

    async def acycle_key(self) -> None:
        await self._acycle(graced=False)

    async def aregenerate(self) -> None:
        """:meth:`regenerate`, for async views."""
        await self._acycle(graced=backing().config.rotation_grace > 0)

    async def _acycle(self, graced: bool) -> None:
        data = await self._aget_session()
        old_key = self._key()
        if old_key is None:
            self._forget_key()
            await self.acreate()
            return
        expiry_age = await self.aget_expiry_age(expiry=data.get("_session_expiry"))
        await run_async(self._rotate(data, expiry_age, old_key, graced), backing().async_store)

    @classmethod
    async def aclear_expired(cls) -> int:
        base = backing()
        if not isinstance(base.store, Purgeable):
            return 0
        return await base.async_store.purge_expired(base.config.clock())


class BearerSessionStore(SessionBase):  # type: ignore[misc]  # Django ships no type information
    """``request.session`` for a request authenticated by its Bearer access token
    (``access_tokens``): no data, never stored, no cookie; :attr:`user_id` and :attr:`claims` are
    the token's. Writing to it, or cycling, flushing or saving it, raises
    :class:`~coatcheck.session.ReadOnlySession` (an API client logs out by revoking its tokens).
    """

    def __init__(self, bearer: BearerSession) -> None:
        super().__init__(None)
        self._session_cache: dict[str, Any] = {}
        self.user_id: str | None = bearer.user_id
        """The token's user (``sub``)."""
        self.claims: Any = bearer.claims
        """The verified token's :class:`~coatcheck.tokens.Claims` (``sid`` names the
        refresh-token session it came from, never by its ID)."""

    def _refuse(self, what: str) -> ReadOnlySession:
        return ReadOnlySession(f"a Bearer request's session is read-only ({what})")

    def __setitem__(self, key: str, value: Any) -> None:
        raise self._refuse(f"setting {key!r}")

    def __delitem__(self, key: str) -> None:
        raise self._refuse(f"removing {key!r}")

    def pop(self, key: str, default: Any = None) -> Any:
        raise self._refuse(f"removing {key!r}")

    def setdefault(self, key: str, value: Any) -> Any:
        raise self._refuse(f"setting {key!r}")

    def update(self, dict_: Any) -> None:
        raise self._refuse("update()")

    def clear(self) -> None:
        raise self._refuse("clear()")

    def load(self) -> dict[str, Any]:
        return {}

    def exists(self, session_key: str | None) -> bool:
        return False

    def create(self) -> None:
        raise self._refuse("create()")

    def save(self, must_create: bool = False) -> None:
        raise self._refuse("save()")

    def delete(self, session_key: str | None = None) -> None:
        raise self._refuse("delete(): revoke the tokens instead")

    def cycle_key(self) -> None:
        raise self._refuse("cycle_key()")

    def flush(self) -> None:
        raise self._refuse("flush(): revoke the tokens instead")
