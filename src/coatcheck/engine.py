"""The session lifecycle as sans-I/O decisions: what to load, what to write, which cookie to set.

:meth:`SessionEngine.load` and :meth:`SessionEngine.commit` are generators. They *yield* the
store calls they need (a :class:`StoreCall`) and receive each call's result, so every decision is
written once. :func:`run` drives them against a sync store, :func:`run_async` against an async
one; those two loops are the only code the two faces do not share, but for the two commonest
steps, which the adapters carry out at once, without a generator: a session found
(:meth:`SessionEngine.load_from`, :meth:`SessionEngine.load_from_async`), and a save's first
attempt against a sync store (:meth:`SessionEngine.commit` given the store).

Round trips per request: no cookie 0; read-only 1 (plus a throttled touch, unless the store's
load does it: ``load_touching``); writing 2 (load, then
one compare-and-set save); regenerate/login 2 (load, rotate) where the store rotates in one
call, else 3 (load, create, delete); logout 2 (load, delete).
A commit with nothing to do makes no plan at all. With ``purge_interval``, one request per
interval per instance also checks the purge lease (a load, and a write when it takes it) and,
holding it, purges (one call); see :meth:`SessionEngine.commit`.

A store call that raises is thrown into the plan at its ``yield``: a plan may handle the
failure there (the purge does); one that does not fails as the call did.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Generator, Mapping
from typing import Any, Final, Literal, NamedTuple, TypeVar, cast, overload

from . import codec, events
from .clients import Client, ClientSource, binding, client_of, network_of
from .config import SessionConfig
from .encryption import KeyRing, seal, unseal
from .events import EventKind
from .ids import fingerprint, is_well_formed, new_id, store_key
from .limits import (
    MAX_COUNT_ATTEMPTS,
    LimitExceeded,
    count_of,
    counter_key,
    counter_record,
    lease_key,
    lease_record,
    window,
)
from .session import NOTHING_ASKED, Asked, Ending, Rotation, Session, Stored
from .stores.base import (
    AsyncStore,
    NotSupported,
    Record,
    Store,
    StoreError,
    anyio_module,
    record_of,
)
from .transport import writer

logger = logging.getLogger("coatcheck")

T = TypeVar("T")

MAX_SAVE_ATTEMPTS = 64
"""Compare-and-set attempts before a save gives up (each one reloads and replays)."""
MAX_BACKOFF = 0.05
"""Longest pause, in seconds, between two compare-and-set attempts (jittered, growing)."""
PAUSE: Final = "pause"
"""The one :class:`StoreCall` that is not a store method: the driver sleeps ``args[0]`` s."""
MAX_CREATE_ATTEMPTS = 4
"""Fresh IDs tried when ``create`` reports a collision (256-bit IDs never collide by chance)."""


StoreCall = (
    tuple[Literal["load"], tuple[str]]
    | tuple[Literal["load_touching"], tuple[str, float, float, float]]
    | tuple[Literal["create"], tuple[Record]]
    | tuple[Literal["save"], tuple[Record, int]]
    | tuple[Literal["save_keeping_expiry"], tuple[Record, int]]
    | tuple[Literal["rotate"], tuple[str, Record]]
    | tuple[Literal["touch"], tuple[str, float]]
    | tuple[Literal["delete"], tuple[str]]
    | tuple[Literal["list_by_user"], tuple[str]]
    | tuple[Literal["delete_by_user"], tuple[str]]
    | tuple[Literal["purge_expired"], tuple[float, int | None]]
    | tuple[Literal["pause"], tuple[float]]
)
"""One call the engine needs made on a store, ``(method, args)``: ``getattr(store, method)(*args)``
(or, for ``"pause"``, a sleep). A plain tuple, not a named one: building it costs nothing, and
every request yields one. Each method's tuple is typed as its parameters are in
:class:`~coatcheck.stores.Store` (and the capabilities :class:`~coatcheck.stores.base.UserIndex`
and :class:`~coatcheck.stores.base.Purgeable`), so mypy checks
every ``yield ("load", (key,))`` of a plan, and ``tests/test_store_calls.py`` that the two agree."""


Plan = Generator[StoreCall, Any, T]
"""A sans-I/O step: yields store calls, receives their results, returns a ``T``."""


class Forward(NamedTuple):
    """What a load found at a regenerated session's old key, in its grace window."""

    target: str


def _forwarding(raw: bytes, now: float) -> str | None:
    """The key a forwarding record points at; "" once its grace window is over; None if ``raw``
    is not a forwarding record."""
    found = codec.forwarded_to(raw)
    if found is None:
        return None
    target, until = found
    return target if now < until else ""


_new_stored = object.__new__


class WriteConflict(StoreError):
    """Concurrent writers kept changing the session; the save gave up after bounded retries."""


class SessionEngine:
    """Decides the lifecycle of sessions for one :class:`SessionConfig`.

    >>> from coatcheck.stores import MemoryStore
    >>> engine, store = SessionEngine(SessionConfig(secure=False)), MemoryStore()
    >>> session = run(engine.load(None), store)
    >>> session["cart"] = ["apple"]
    >>> set_cookie = run(engine.commit(session), store)
    >>> set_cookie.startswith("session=")
    True
    """

    def __init__(self, config: SessionConfig | None = None) -> None:
        self.config = config if config is not None else SessionConfig()
        self.cookies = writer(self.config)
        """Writes the response header that gives the client its ID (a cookie, or a header)."""
        keys = self.config.encryption_keys
        self._ring = KeyRing(keys) if keys else None
        self._on_event = self.config.on_event
        config = self.config
        self.binds = bool(config.bind_to)
        self.fresh_needs_client = self.binds or config.max_creations_per_client is not None
        """Whether :meth:`fresh` wants the request's :class:`~coatcheck.clients.Client`
        (binding, the per-client creation limit)."""
        # The timeouts as plain floats for every request's arithmetic: one nobody chose is a
        # float subclass in the config (UnchosenSeconds), which the interpreter's fast float
        # operations do not take.
        self._idle_seconds = float(config.idle_timeout)
        self._absolute_seconds = float(config.absolute_timeout)
        self._touch_seconds = float(config.touch_interval)
        self._least_touch = max(self._touch_seconds, 1e-9)
        """The least move of the expiry that makes a touch due (touch_interval=0: any move)."""
        self._compress_over = config.compress_over
        self.load_needs_client = (
            self.fresh_needs_client or config.max_rejections_per_client is not None
        )
        """Whether :meth:`load` wants it (also for the per-client guessing throttle)."""
        self._purge_after = -math.inf if config.purge_interval is not None else math.inf
        """When this instance next checks the purge lease (``purge_interval``): at its first
        request, then an interval after each check; never without the option."""
        self._lease_key = lease_key(config.hash_secret)

    def emit(
        self,
        kind: EventKind,
        key: str | None,
        user_id: str | None = None,
        reason: str | None = None,
        count: int = 1,
        *,
        created: float | None = None,
    ) -> None:
        """Report a lifecycle step to the audit log and to ``on_event``; never raises.
        ``created``: when the session an ending event ends was created (the event's ``lived``)."""
        at = self.config.clock()
        events.emit(self._on_event, at, kind, key, user_id, reason, count, created)

    def _created(self, record: Record | None) -> float | None:
        """When the session in ``record`` was created, for an event that ends it: None when no
        one listens (then nothing is decoded) or the record does not say."""
        if record is None or self._on_event is None:
            return None
        try:
            return codec.decode(unseal(self._ring, record.data, record.key))[1]
        except codec.DecodeError:
            return None

    # -- load --------------------------------------------------------------------------------

    def fresh(self, client: ClientSource = None) -> Session:
        """A new, empty session, for a request that brought no cookie (no store call)."""
        bound = self.binding_of(client_of(client)) if self.binds else None
        config = self.config
        return Session.fresh(
            now=config.clock(), max_size=config.max_size, client=client, binding=bound
        )

    def binding_of(self, client: Client | None) -> str:
        """What a session started by ``client`` is bound to (``bind_to``): a keyed digest."""
        config = self.config
        return binding(
            client if client is not None else Client(None, None),
            user_agent="user_agent" in config.bind_to,
            network="network" in config.bind_to,
            ipv4_prefix=config.ipv4_prefix,
            ipv6_prefix=config.ipv6_prefix,
            secret=config.hash_secret,
        )

    def _rejected(self, now: float, current: str | None, source: ClientSource) -> Plan[Session]:
        """A fresh session for a request whose cookie named none; its cookie will be expired.

        Such cookies are counted per ``client`` (when given): past
        ``max_rejections_per_client`` in a window, the guessing is refused with
        :class:`LimitExceeded`.
        """
        client = client_of(source)
        yield from self.count_rejection(client)
        max_size = self.config.max_size
        return Session.fresh(
            now=now, max_size=max_size, stale_id=True, client=client, binding=current
        )

    def count_rejection(self, client: Client | None) -> Plan[None]:
        """Count a well-formed ID that named no session against ``client`` (when known):
        :class:`LimitExceeded` past ``max_rejections_per_client`` in a window."""
        limit = self.config.max_rejections_per_client
        if limit is not None and client is not None and client.address:
            yield from self._bump(f"reject:{self._network(client)}", limit, "invalid session IDs")

    @staticmethod
    def _network(client: Client) -> str:
        """What per-client limits count by: the address (an IPv6 client by its /64)."""
        return network_of(client.address, ipv4_prefix=32, ipv6_prefix=64) or "unknown"

    def _bump(self, name: str, limit: int, what: str) -> Plan[None]:
        """Count one more of ``name`` in this window; :class:`LimitExceeded` past ``limit``."""
        config = self.config
        now = config.clock()
        number, ends = window(now, config.limit_window)
        key = counter_key(name, number, config.hash_secret)
        for _ in range(MAX_COUNT_ATTEMPTS):
            current: Record | None = yield ("load", (key,))
            count = count_of(current)
            if count >= limit:
                break
            version = 1 if current is None else current.version + 1
            record = counter_record(key, count + 1, ends + 1, version)
            if current is None:
                stored = yield ("create", (record,))
            else:
                stored = yield ("save", (record, current.version))
            if stored:
                return
        self.emit("rejected", None, reason=f"limit: {what}")
        raise LimitExceeded(what, ends - now)

    def load(self, cookie_value: str | None, client: ClientSource = None) -> Plan[Session]:
        """Find the session a request's cookie value names; a fresh one when there is none.

        A value not exactly of the ID format is refused before any store call. An ID the store
        does not know, an expired session, or stored data that does not decode, all give a
        fresh session whose cookie is expired on the response (strict mode: the client's ID
        is never adopted).
        """
        if cookie_value is None:
            return self.fresh(client)
        config = self.config
        now = config.clock()
        if self.binds:  # needed now: resolve the client once
            client = client_of(client)
            current: str | None = self.binding_of(client)
        else:
            current = None
        if not is_well_formed(cookie_value):  # refused before any store call: nothing to count
            self.emit("rejected", None, reason="malformed" if cookie_value else "ambiguous")
            return (yield from self._rejected(now, current, None))
        key = store_key(cookie_value, config.hash_secret)
        # A store that can extends the expiry in the same round trip when a touch is due.
        candidate = now + self._idle_seconds
        loaded = yield ("load_touching", (key, now, candidate, self._touch_seconds))
        record, touched = loaded
        session = self._revive(record, cookie_value, now, current, client, False, touched)
        if type(session) is Session:
            return session
        return (
            yield from self._unrevived(session, record, key, cookie_value, now, current, client)
        )

    def load_from(self, store: Store, cookie_value: str, client: ClientSource = None) -> Session:
        """:meth:`load`, carried out at once against a sync ``store`` (what :func:`run` does with
        its plan): a session found, or a fresh one, without the plan's generator, which costs
        more than the rest of a request's load. Only the common steps are written here (and in
        :meth:`load_from_async`); binding, a refused ID and every session not found go through
        :meth:`load`'s own."""
        if self.binds or not is_well_formed(cookie_value):
            return run(self.load(cookie_value, client), store)
        now = self.config.clock()
        key = store_key(cookie_value, self.config.hash_secret)
        record, touched = store.load_touching(
            key, now, now + self._idle_seconds, self._touch_seconds
        )
        session = self._revive(record, cookie_value, now, None, client, False, touched)
        if type(session) is Session:
            return session
        return run(self._unrevived(session, record, key, cookie_value, now, None, client), store)

    async def load_from_async(
        self, store: AsyncStore, cookie_value: str, client: ClientSource = None
    ) -> Session:
        """:meth:`load_from` against an async ``store``."""
        if self.binds or not is_well_formed(cookie_value):
            return await run_async(self.load(cookie_value, client), store)
        now = self.config.clock()
        key = store_key(cookie_value, self.config.hash_secret)
        record, touched = await store.load_touching(
            key, now, now + self._idle_seconds, self._touch_seconds
        )
        session = self._revive(record, cookie_value, now, None, client, False, touched)
        if type(session) is Session:
            return session
        plan = self._unrevived(session, record, key, cookie_value, now, None, client)
        return await run_async(plan, store)

    def _unrevived(
        self,
        session: Session | Forward | str,
        record: Record | None,
        key: str,
        cookie_value: str,
        now: float,
        current: str | None,
        client: ClientSource,
    ) -> Plan[Session]:
        """The rest of a load whose record was not a session: where it moved, or why not."""
        if type(session) is Forward:  # regenerated moments ago: follow to the new record (once)
            record = yield ("load", (session.target,))
            session = self._revive(record, cookie_value, now, current, client, True, False)
            if type(session) is Forward:
                session = "unknown"
        if type(session) is str:  # why it could not be revived
            if session != "binding":  # whose event _revive gave, with the user
                expired = session in ("idle", "absolute")
                kind: EventKind = "expired" if expired else "rejected"
                # A record that is not what it claims names no user: its user column is
                # untrusted.
                user = record.user_id if record and expired else None
                created = self._created(record) if expired else None
                self.emit(kind, key, user, session, created=created)
            return (yield from self._rejected(now, current, client))
        assert isinstance(session, Session)
        return session

    def forward_target(self, record: Record, now: float) -> str | None:
        """Where a forwarding record points while its grace window lasts; None for a session
        record, and "" for a forwarder whose window is over (however long it lingers)."""
        try:
            raw = unseal(self._ring, record.data, record.key)
        except codec.DecodeError:
            return None
        return _forwarding(raw, now)

    def _revive(
        self,
        record: Record | None,
        session_id: str,
        now: float,
        current: str | None,
        client: ClientSource,
        forwarded: bool,
        touched: bool,
    ) -> Session | Forward | str:
        """The stored session, where it moved, or why there is none (a reason, as in events).

        ``current`` is what the request's client binds to (None without ``bind_to``): a session
        bound to another client is rejected ("binding", its event given here) or flagged.
        """
        if record is None:
            return "unknown"
        if not record.data:  # a store that could not read the record's fields says so
            return "undecodable"
        expires_at = record.expires_at
        if not expires_at > now:  # NaN too
            return "idle"
        try:
            raw = record.data  # what unseal does, inline: this runs on every request
            if self._ring is not None or raw[0] == 0:  # sealed, or compressed
                raw = unseal(self._ring, raw, record.key)
            if raw.startswith(b'{"m":'):
                target = _forwarding(raw, now)
                if target is not None:
                    return Forward(target) if target else "unknown"
            envelope = codec.decode_envelope(raw, record.user_id)
        except codec.DecodeError as exc:  # its message never quotes the stored bytes
            logger.warning("discarding stored session %s: %s", fingerprint(record.key), exc)
            return "tampered" if isinstance(exc, codec.Tampered) else "undecodable"
        data, created_at, auth_at, token, bound, user_id = envelope
        config = self.config
        deadline = auth_at + self._absolute_seconds
        if deadline <= now:
            return "absolute"
        # The expiry column is the store's; the deadline comes from the envelope.
        # min() and max() are calls: written out, as this runs on every request
        expires_at = deadline if deadline < expires_at else expires_at
        flagged = rebound = False
        if current is not None and bound != current:
            if bound is None:  # stored before binding was on: bind it now
                bound, rebound = current, True
            elif config.binding_action == "reject":
                self.emit("rejected", record.key, user_id, "binding")
                return "binding"
            else:
                self.emit("flagged", record.key, user_id, "binding")
                flagged = True
        # The last touch set expires_at to min(then + idle, deadline): recover "then".
        if touched:
            last_active = now
        else:  # max(created_at, min(then, now))
            then = expires_at - self._idle_seconds
            last_active = then if then < now else now
            last_active = created_at if last_active < created_at else last_active
        # Built slot by slot: a dataclass __init__ is a Python frame, and this runs on every
        # request that brings a cookie.
        stored = _new_stored(Stored)
        stored.id, stored.key, stored.version, stored.raw = (
            session_id,
            record.key,
            record.version,
            raw,
        )
        stored.expires_at, stored.deadline = expires_at, deadline
        stored.forwarded, stored.touched = forwarded, touched
        return Session.load(  # positionally: this runs on every request
            data,
            stored,
            created_at,
            auth_at,
            last_active,
            user_id,
            token,
            bound,
            now,
            config.max_size,
            client,
            flagged,
            rebound,
        )

    # -- commit ------------------------------------------------------------------------------

    @overload
    def commit(self, session: Session) -> Plan[str | None] | None: ...
    @overload
    def commit(self, session: Session, store: Store) -> Plan[str | None] | str | None: ...
    def commit(self, session: Session, store: Store | None = None) -> Plan[str | None] | str | None:
        """Plan the writes the request's changes need; None when there is nothing to do.

        The plan returns the ``Set-Cookie`` value, or None for no cookie. The common case, a
        stored session read and left unchanged with no touch due, is decided here with no plan.
        A request forwarded from a regenerated ID sets no cookie: the rotating response gives
        the client its new one.

        With a sync ``store`` (one that runs inline), a save is carried out at once, without
        the plan's generator (which costs more than the rest of the save): the cookie, or None,
        is returned instead of a plan. A conflict, and every other write, is still a plan.

        With ``purge_interval``, the commit of the first request an interval after this
        engine's last check (any request, even one with nothing to write) gives a plan that
        also runs the purge step (:meth:`due_purge`) after the request's own writes. Otherwise
        the check costs one comparison, of the time the request's session was loaded.
        """
        if session.opened_at >= self._purge_after:  # a purge is due (purge_interval)
            return self._purging(session)
        stored = session.stored
        if stored is None or session.asked is not NOTHING_ASKED:
            # A new session left empty (the commonest case) needs nothing.
            if stored is None and session.asked is NOTHING_ASKED and not session.worth_storing:
                return None
            return self._rebind(session)
        config = self.config
        now = config.clock()
        expires_at = now + self._idle_seconds  # no later than the deadline (min(), written out)
        expires_at = stored.deadline if stored.deadline < expires_at else expires_at
        if expires_at <= now:  # the absolute deadline passed during the request
            return self._destroy(session, stored)
        try:  # the cap applies to what is written, not what was
            body = codec.dumps(session)
        except TypeError:  # a nested value changed in place: name the culprit
            body = codec.serialize(session)
        kept = stored.expires_at
        # A load that touched moved the expiry for this request (even at touch_interval=0):
        # no second round trip to move it again.
        due = not stored.touched and expires_at - kept >= self._least_touch
        if not session.unchanged_as(body):
            # A write slides the expiry as a read does, at most once per touch_interval: most
            # saves leave the stored expiry where it was (unless a store rounded it past the
            # one computed now).
            keep = not due and kept <= expires_at
            if len(body) > config.max_size:
                codec.check_size(body, config.max_size)  # raises
            expires_at = kept if keep else expires_at
            if store is None:
                return self._save(session, stored, body, expires_at, now)
            return self._save_now(store, session, stored, body, expires_at, now)
        if not due:
            if stored.touched and config.persistent:  # the load touched: slide the cookie
                return _done(self._issue(stored, now))
            return None
        return self._touch(session, stored, expires_at, now)

    def commit_to(self, store: Store, session: Session) -> str | None:
        """:meth:`commit`, carried out against a sync ``store``: the cookie, or None."""
        done = self.commit(session, store)
        if done is None or isinstance(done, str):
            return done
        return run(done, store)

    def _save_now(
        self,
        store: Store,
        session: Session,
        stored: Stored,
        body: bytes,
        expires_at: float,
        now: float,
    ) -> Plan[str | None] | str | None:
        """A save's first attempt, made at once against ``store``; the plan of its retries
        when another writer came first."""
        version, previous, touched = stored.version, stored.expires_at, stored.touched
        blob = session.rewrapped(body)
        record = self._write(stored.key, blob, expires_at, version + 1, session.user_id, stored)
        save = store.save_keeping_expiry if expires_at == previous else store.save
        if save(record, version):
            return self._saved(session, stored, blob, expires_at, now, previous, touched)
        return self._save(session, stored, body, expires_at, now, tried=True)

    # -- purge (purge_interval) ------------------------------------------------------------

    def _purging(self, session: Session) -> Plan[str | None] | None:
        """The request's commit, then the purge step that is due."""
        now = max(self.config.clock(), session.opened_at)
        purge = self.due_purge(now)  # moves the next check past the session's time
        plan = self.commit(session)
        return plan if purge is None else self._then(plan, purge)  # None: another thread's

    @staticmethod
    def _then(plan: Plan[str | None] | None, purge: Plan[None]) -> Plan[str | None]:
        result = None if plan is None else (yield from plan)
        yield from purge
        return result

    def due_purge(self, now: float) -> Plan[None] | None:
        """The purge step when one is due at ``now`` (``purge_interval`` after this engine's
        last check; never without the option), else None. :meth:`commit` runs it on its own;
        an adapter that commits sessions otherwise (Django's) asks for it once per request.

        The step never fails: on a store that cannot purge (it expires records itself) it does
        nothing; otherwise it takes the purge lease (compare-and-set on a small record that
        expires after the interval), so that one instance of those sharing the store purges
        per interval, and then deletes up to ``purge_batch`` expired records, reported as a
        ``purged`` event. A store error on the way is logged (the lease, left to expire, lets
        the next interval try again).
        """
        interval = self.config.purge_interval
        if now < self._purge_after or interval is None:
            return None
        self._purge_after = now + interval
        return self._purge(interval)

    def _purge(self, interval: float) -> Plan[None]:
        config = self.config
        now = config.clock()
        try:
            # Can the store purge? A limit of 0 asks with no round trip; NotSupported: no.
            yield ("purge_expired", (now, 0))
        except NotSupported:
            return
        except Exception as exc:  # e.g. a store of its own whose purge takes no limit
            logger.warning("could not purge expired sessions: %s", exc)
            return
        try:
            if not (yield from self._lease(now, interval)):
                return  # another instance purged within the interval
            count = yield ("purge_expired", (now, config.purge_batch))
        except StoreError as exc:
            logger.warning("could not purge expired sessions: %s", exc)
            return
        except Exception:
            logger.exception("could not purge expired sessions")
            return
        self.emit("purged", None, count=count)

    def _lease(self, now: float, interval: float) -> Plan[bool]:
        """Take the purge lease until ``now + interval`` unless another instance holds it."""
        key = self._lease_key
        current: Record | None = yield ("load", (key,))
        if current is None:
            return bool((yield ("create", (lease_record(key, now + interval, 1),))))
        if current.expires_at > now:
            return False
        taken = lease_record(key, now + interval, current.version + 1)
        return bool((yield ("save", (taken, current.version))))

    # -- rebind ------------------------------------------------------------------------------

    def _rebind(self, session: Session) -> Plan[str | None]:
        """Create, rotate or destroy: the session's ID changes or goes."""
        now = self.config.clock()
        asked = session.asked
        ended, user = asked.ended, asked.ended_user
        if ended is not None:
            yield ("delete", (ended,))
            self.emit("logged_out", ended, user, created=asked.ended_created)
        if asked.ending == Ending.EVERYWHERE and user is not None:
            count = yield ("delete_by_user", (user,))
            self.emit("revoked", None, user, "logout everywhere", count)
        elif asked.ending == Ending.OTHERS and session.user_id is not None:
            count = yield ("delete_by_user", (session.user_id,))
            self.emit("revoked", None, session.user_id, "password changed", count)
        rotation = asked.rotation
        session.asked = NOTHING_ASKED if rotation == Rotation.NONE else Asked(rotation)
        replaces = session.stored
        if replaces is None:
            if session.worth_storing:
                return (yield from self._create(session, now, rotation))
            return self.cookies.expire() if asked.ending >= Ending.LOGOUT else None
        return (yield from self._create(session, now, rotation, replaces))

    def _issue(self, stored: Stored, now: float) -> str | None:
        """The cookie naming ``stored``, with Max-Age to its expiry (none for a forwarded
        request)."""
        if stored.forwarded:
            return None
        return self.cookies.issue(stored.id, math.ceil(stored.expires_at - now))

    def current_cookie(self, session: Session) -> str | None:
        """The cookie naming ``session`` as it stands (its ID, Max-Age to its expiry), for a
        framework that re-sends the cookie on responses that change no ID (Flask's
        ``SESSION_REFRESH_EACH_REQUEST``); None for a session not stored, or for a request
        forwarded from a regenerated ID, whose client must keep the newer cookie it holds."""
        stored = session.stored
        return None if stored is None else self._issue(stored, self.config.clock())

    def _reissue(self, stored: Stored, previous: float, now: float) -> str | None:
        """Re-send the cookie when its Max-Age moved by a touch interval or more."""
        config = self.config
        if config.persistent and stored.expires_at - previous >= self._touch_seconds:
            return self._issue(stored, now)
        return None

    def _create(
        self,
        session: Session,
        now: float,
        rotation: Rotation,
        replaces: Stored | None = None,
    ) -> Plan[str | None]:
        """Store the session under a fresh ID; with ``replaces``, the old record goes too."""
        config = self.config
        deadline = session.authenticated_at + self._absolute_seconds
        expires_at = min(now + self._idle_seconds, deadline)
        if expires_at <= now:
            if replaces is not None:
                yield ("delete", (replaces.key,))
            return self._gone(session)
        body = codec.serialize(session)
        if not session.holds(body):  # data stored before a lower max_size may move as it is
            codec.check_size(body, config.max_size)
        blob = session.envelope(body)
        user = session.user_id
        if replaces is None:
            yield from self.count_creation(client_of(session.client))
        login = rotation == Rotation.LOGIN
        if login and config.max_sessions_per_user is not None:
            assert user is not None
            old_key = replaces.key if replaces is not None else None
            yield from self._make_room(user, old_key, config.max_sessions_per_user)
        graced = (
            replaces is not None and rotation == Rotation.REGENERATE and config.rotation_grace > 0
        )
        for _ in range(MAX_CREATE_ATTEMPTS):
            session_id = new_id()
            key = store_key(session_id, self.config.hash_secret)
            sealed = seal(self._ring, blob, key, self._compress_over)
            record = Record(key, sealed, expires_at, 1, user, deadline)
            call: StoreCall
            if replaces is None or graced:
                call = ("create", (record,))
            else:
                call = ("rotate", (replaces.key, record))
            if (yield call):
                if graced:
                    assert replaces is not None
                    until = min(now + config.rotation_grace, replaces.expires_at)
                    yield from self.forward(replaces.key, key, replaces.version, until)
                # A rotation reached through a forwarded (old) ID hands out the new cookie:
                # the new ID is this response's own, and no other client holds it.
                stored = Stored(session_id, key, 1, blob, expires_at, deadline)
                session.adopt(stored, now)
                self.emit("created" if replaces is None else "regenerated", key, user)
                if login:
                    self.emit("logged_in", key, user)
                return self._issue(stored, now)
        raise StoreError(f"create reported {MAX_CREATE_ATTEMPTS} collisions of fresh random IDs")

    def forward(self, old_key: str, new_key: str, version: int, until: float) -> Plan[None]:
        """Leave the old record pointing at the new one until ``until`` (the grace window).

        If a request in flight wrote the old record meanwhile, it is simply deleted.
        """
        data = seal(self._ring, codec.forwarder(new_key, until), old_key)
        record = Record(old_key, data, until, version + 1, None, until)
        if not (yield ("save", (record, version))):
            yield ("delete", (old_key,))

    def count_creation(self, client: Client | None) -> Plan[None]:
        """Count a new session against ``client`` (when known) and against all clients:
        :class:`LimitExceeded` past ``max_creations_per_client`` or ``max_creations``."""
        config = self.config
        per_client = config.max_creations_per_client
        if per_client is not None and client is not None and client.address:
            yield from self._bump(f"create:{self._network(client)}", per_client, "new sessions")
        if config.max_creations is not None:
            yield from self._bump("create", config.max_creations, "new sessions (all clients)")

    def _make_room(self, user_id: str, replaces: str | None, limit: int) -> Plan[None]:
        """Before a login: end the user's least recently active sessions, or refuse it."""
        records: list[Record] = yield ("list_by_user", (user_id,))
        others = sorted((r for r in records if r.key != replaces), key=lambda r: r.expires_at)
        excess = len(others) - (limit - 1)
        if excess <= 0:
            return
        if self.config.session_limit_policy == "refuse":
            self.emit("rejected", None, user_id, "limit: sessions per user")
            raise LimitExceeded("sessions per user", 0, status=403)
        for record in others[:excess]:
            yield ("delete", (record.key,))
            self.emit(
                "revoked", record.key, user_id, "sessions per user", created=self._created(record)
            )

    def _destroy(self, session: Session, stored: Stored) -> Plan[str | None]:
        yield ("delete", (stored.key,))
        self.emit("expired", stored.key, session.user_id, "absolute", created=session.created_at)
        return self._gone(session)

    def _touch(
        self, session: Session, stored: Stored, expires_at: float, now: float
    ) -> Plan[str | None]:
        previous = stored.expires_at
        yield ("touch", (stored.key, expires_at))
        session.touched(expires_at, now)  # updates stored
        return self._reissue(stored, previous, now)

    def _write(
        self,
        key: str,
        blob: bytes,
        expires_at: float,
        version: int,
        user: str | None,
        stored: Stored,
    ) -> Record:
        """The record a save writes: ``blob`` sealed, as ``version``."""
        ring, over = self._ring, self._compress_over  # seal() only when it has work to do
        if ring is not None or (over is not None and len(blob) > over):
            blob = seal(ring, blob, key, over)
        return record_of((key, blob, expires_at, version, user, stored.deadline))

    def _saved(
        self,
        session: Session,
        stored: Stored,
        blob: bytes,
        expires_at: float,
        now: float,
        previous: float,
        touched: bool,
    ) -> str | None:
        """After a save of ``blob`` (the session was ``stored``, expiring at ``previous``, as
        loaded): the session records it, and the cookie slides when its expiry moved."""
        session.saved(stored.version + 1, blob, expires_at, now)  # updates stored
        if touched and self.config.persistent:
            return self._issue(stored, now)  # the load moved the expiry: slide
        return self._reissue(stored, previous, now)

    def _save(
        self,
        session: Session,
        stored: Stored,
        body: bytes,
        expires_at: float,
        now: float,
        tried: bool = False,
    ) -> Plan[str | None]:
        """Save with compare-and-set, replaying this request's changes over a concurrent
        writer's until one attempt holds. ``tried``: a first attempt was made (by
        :meth:`commit` given a store) and found another writer: start by reloading."""
        key, version, previous = stored.key, stored.version, stored.expires_at
        touched, user = stored.touched, session.user_id
        held = (previous, user)  # the expiry and user the store holds
        blob = session.rewrapped(body)
        for attempt in range(MAX_SAVE_ATTEMPTS):
            if attempt:  # writers colliding on one session take turns instead of spinning
                yield backoff(attempt)
            if attempt or not tried:
                record = self._write(key, blob, expires_at, version + 1, user, stored)
                kept = (expires_at, user) == held
                step: StoreCall = (
                    ("save_keeping_expiry", (record, version))
                    if kept
                    else ("save", (record, version))
                )
                if (yield step):
                    return self._saved(session, stored, blob, expires_at, now, previous, touched)
            current: Record | None = yield ("load", (key,))
            target = self.forward_target(current, now) if current is not None else None
            forwarded = stored.forwarded
            if target == "":  # regenerated, and even its grace window is over: gone
                current = None
            elif target and current is not None and current.expires_at > now:
                # Regenerated by another request meanwhile: follow it, and set no cookie.
                key, forwarded = target, True
                current = yield ("load", (key,))
            if current is None or current.expires_at <= now:
                # Deleted or expired meanwhile: never resurrect it.
                created = session.created_at
                self.emit("expired", key, user, "ended during the request", created=created)
                return self._gone(session)
            raw, merged = self._replay(session, current)
            # Never move back an expiry the other writer slid.
            expires_at = max(expires_at, current.expires_at)
            held, version = (current.expires_at, current.user_id), current.version
            session.rebase(key, version, raw, current.expires_at, forwarded, merged)
            blob = session.rewrapped(codec.encode_data(merged, self.config.max_size))
        raise WriteConflict(f"gave up saving a session after {MAX_SAVE_ATTEMPTS} conflicts")

    def _replay(self, session: Session, current: Record) -> tuple[bytes, dict[str, Any]]:
        """Apply this request's changes to the record another request just wrote: its unsealed
        bytes, and the merged data.

        Changes are the keys whose values differ from what this request loaded; keys it did
        not touch keep the other writer's values. After ``clear()`` this request's view wins.
        """
        raw = current.data
        try:
            raw = unseal(self._ring, current.data, current.key)
            theirs, _, _ = codec.decode(raw)
        except codec.DecodeError:
            theirs = {}
        stored = session.stored
        if session.cleared or stored is None:
            ours_before: dict[str, Any] = {}
        else:
            ours_before, _, _ = codec.decode(stored.raw)
        return raw, replay(ours_before, session, theirs, session.cleared)

    def _gone(self, session: Session) -> str:
        session.lost()
        return self.cookies.expire()


def replay(
    ours_before: Mapping[str, Any],
    ours_now: Mapping[str, Any],
    theirs: dict[str, Any],
    cleared: bool = False,
) -> dict[str, Any]:
    """A request's changes applied to the data another request wrote meanwhile (``theirs``,
    updated in place and returned): the keys whose values in ``ours_now`` differ from what the
    request loaded (``ours_before``) take its values, the keys it removed go, and the keys it
    left alone keep the other writer's values. After a ``clear()`` (``cleared``) the request's
    own view wins: a copy of ``ours_now``.

    >>> replay({"a": 1, "b": 2}, {"b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4})
    {'b': 5, 'd': 4, 'c': 3}
    """
    if cleared:
        return dict(ours_now)
    for key in ours_before.keys() - ours_now.keys():
        theirs.pop(key, None)
    for key, value in ours_now.items():
        if key not in ours_before or codec.dumps(ours_before[key]) != codec.dumps(value):
            theirs[key] = value
    return theirs


def backoff(attempt: int) -> StoreCall:
    """The pause before compare-and-set attempt ``attempt`` (1, 2, ...): jittered, growing,
    at most :data:`MAX_BACKOFF`, so writers colliding on one session take turns."""
    return (PAUSE, (random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt)),))


def _done(value: T) -> Plan[T]:
    """A plan with no store call that returns ``value``."""
    return value
    yield  # a generator, so the drivers can run it  # pragma: no cover


@overload
def run(plan: Plan[T], store: Store) -> T: ...
@overload
def run(plan: None, store: Store) -> None: ...
def run(plan: Plan[T] | None, store: Store) -> T | None:
    """Carry out a plan against a sync store (None, the empty plan, gives None)."""
    if plan is None:
        return None
    try:
        name, args = plan.send(None)
        while True:
            if name == PAUSE:
                time.sleep(cast(float, args[0]))
                name, args = plan.send(None)
                continue
            method = getattr(store, name, None)
            try:
                if method is None:
                    raise _lacking(store, name)
                result = method(*args)
            except Exception as exc:  # the plan's to handle, at its yield, or to fail with
                name, args = plan.throw(exc)
            else:
                name, args = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()


@overload
async def run_async(plan: Plan[T], store: AsyncStore) -> T: ...
@overload
async def run_async(plan: None, store: AsyncStore) -> None: ...
async def run_async(plan: Plan[T] | None, store: AsyncStore) -> T | None:
    """Carry out a plan against an async store (None, the empty plan, gives None)."""
    if plan is None:
        return None
    try:
        name, args = plan.send(None)
        while True:
            if name == PAUSE:
                await _sleep(cast(float, args[0]))
                name, args = plan.send(None)
                continue
            method = getattr(store, name, None)
            try:
                if method is None:
                    raise _lacking(store, name)
                result = await method(*args)
            except Exception as exc:  # the plan's to handle, at its yield, or to fail with
                name, args = plan.throw(exc)
            else:
                name, args = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def _lacking(store: Store | AsyncStore, name: str) -> NotSupported:
    """The error for a store without the capability a plan needs."""
    return NotSupported(f"{type(store).__name__} cannot {name.replace('_', ' ')}")


async def _sleep(seconds: float) -> None:
    anyio = anyio_module()
    if anyio is None:  # pragma: no cover
        await asyncio.sleep(seconds)
    else:
        await anyio.sleep(seconds)
