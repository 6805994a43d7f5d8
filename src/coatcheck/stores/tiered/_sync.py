"""TieredStore: a fast store in front of a durable one.

Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from ..base import Iterable, Purgeable, Record, Store, StoreError, UserIndex
from ._capabilities import (
    Capability,
    WithCapabilities,
    composed,
    iterable,
    lacking,
    offers,
    offloads,
    purgeable,
    user_index,
)
from ._state import (
    EPOCH_KEY,
    PUT_ATTEMPTS,
    Clock,
    Epoch,
    TierEventHandler,
    TierState,
    TierStats,
    epoch_record,
)


class TieredStore(WithCapabilities, Store):
    """A fast store (Redis) in front of a durable one (PostgreSQL, MariaDB, SQLite).

    The durable store is the truth: every write goes to it first (compare-and-set there), then
    to the fast tier, which loads are read from; a load the fast tier cannot answer is read
    from the durable store and copied into the fast tier. The fast tier's keys are named for
    the current *epoch*, a record in the durable store that every failure of the fast tier
    moves on, so nothing the fast tier held before it failed is ever read again. The module's
    documentation, :mod:`coatcheck.stores.tiered`, gives the reasoning and its limits.

    Calls per store method, in the normal case (each is one round trip on Redis and on
    PostgreSQL, where ``rotate`` is two: a create and a delete):

    - ``load``: fast 1 when the fast tier holds the session; else fast 1, durable 1, and to copy
      a live record in, fast 1 and durable 1 more (the copy is checked against a logout).
    - ``save``, ``save_keeping_expiry``, ``create``, ``touch``, ``delete``, ``rotate``,
      ``delete_by_user``: durable 1, then fast 1.
    - and at most once per ``check_interval`` per instance, durable 1 to read the epoch.

    While the fast tier rests after a failure (``retry_interval`` seconds, then the next call
    tries it again), calls go to the durable store alone, and each change is followed by one
    more durable call that moves the epoch on.

    ``clock`` is what the two intervals are counted on (``time.monotonic``; tests give their
    own).

    ``on_event`` is called with a :class:`~coatcheck.stores.tiered.TierEvent` when the fast tier
    fails (``degraded``) and when it answers again (``recovered``); both are logged on the
    ``coatcheck.stores.tiered`` logger (a warning, and an info line), and :attr:`stats` counts
    hits, misses, failures and degraded calls. It offers a user index when both stores have
    one, and listing and purging when the durable store has them. ``close`` closes both.
    """

    def __init__(
        self,
        fast: Store,
        durable: Store,
        *,
        check_interval: float = 1.0,
        retry_interval: float = 2.0,
        on_event: TierEventHandler | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.fast = fast
        """The store loads are read from: a cache of the durable one."""
        self.durable = durable
        """The store that holds the truth: every write reaches it first."""
        self.state = TierState(
            check_interval=check_interval,
            retry_interval=retry_interval,
            on_event=on_event,
            clock=clock,
        )
        """This instance's view of the epoch and of the fast tier's health."""
        self.offload_async = offloads(fast, durable)
        self._epoch_lock = threading.Lock()

    @property
    def stats(self) -> TierStats:
        """Counters for metrics: hits, misses, failures, degraded calls, epoch reads and bumps."""
        return self.state.stats

    @property
    def degraded(self) -> bool:
        """Whether the fast tier's last call failed (sessions are served from the durable
        store alone until a call reaches it again)."""
        return self.state.degraded

    def offers(self, capability: Capability) -> bool:
        """Whether this composition can honour ``capability`` (:class:`UserIndex`,
        :class:`Purgeable` or :class:`Iterable`)."""
        return composed(self.fast, self.durable, capability)

    def _require(self, capability: Capability) -> None:
        if not self.offers(capability):
            raise lacking(self, capability)

    # -- the epoch ------------------------------------------------------------------------------

    def _namespace(self) -> str | None:
        """The prefix of this call's keys in the fast tier; None when the call must leave the
        fast tier alone (it rests after a failure)."""
        state = self.state
        if state.owed:
            self._bump()
        if state.resting():
            return None
        epoch = state.current()
        if epoch is None:
            epoch = self._read_epoch()
        return epoch.prefix

    def _read_epoch(self) -> Epoch:
        """The durable store's epoch, made if it has none (or one it cannot read)."""
        with self._epoch_lock:
            epoch = self.state.current()
            if epoch is not None:  # another call read it while this one waited
                return epoch
            record = self.durable.load(EPOCH_KEY)
            for _ in range(3):
                epoch = None if record is None else self.state.adopt(record, bumped=False)
                if epoch is not None:
                    return epoch
                new = epoch_record(1 if record is None else record.version + 1)
                if record is None:
                    made = self.durable.create(new)
                else:
                    made = self.durable.save(new, record.version)
                if made:
                    epoch = self.state.adopt(new, bumped=False)
                    assert epoch is not None
                    return epoch
                record = self.durable.load(EPOCH_KEY)
        raise StoreError("the durable store's epoch record kept changing while it was read")

    def _bump(self) -> None:
        """Move the durable epoch on, after a change the fast tier may have missed: from then
        on no instance trusts a key the fast tier holds (each within ``check_interval``).

        One durable call when this instance holds the latest epoch; else it reads the epoch and
        moves that. Refused then, another instance moved it after the read, which came after
        this call's change: that does as well.
        """
        with self._epoch_lock:
            state = self.state
            if state.epoch is not None and self._move(state.epoch.version):
                return
            current = self.durable.load(EPOCH_KEY)
            if current is None:
                new = epoch_record(1)
                if self.durable.create(new):
                    state.adopt(new, bumped=True)
                    return
            elif self._move(current.version):
                return
            state.moved_by_another()

    def _move(self, version: int) -> bool:
        new = epoch_record(version + 1)
        if not self.durable.save(new, version):
            return False
        self.state.adopt(new, bumped=True)
        return True

    def _fast_failed(self, error: StoreError) -> None:
        """The fast tier failed: rest it, say so, and move the epoch on, so that whatever it
        holds now (and holds again if it comes back with its old data) is never read."""
        self.state.failed(error)
        self._bump()

    # -- reads ----------------------------------------------------------------------------------

    def load(self, key: str) -> Record | None:
        prefix = self._namespace()
        if prefix is None:
            return self.durable.load(key)
        try:
            copy = self.fast.load(prefix + key)
        except StoreError as exc:
            self._fast_failed(exc)
            return self.durable.load(key)
        state = self.state
        state.reached()
        if copy is not None and state.trusted(copy):
            state.stats.fast_hits += 1
            return copy._replace(key=key)
        state.stats.fast_misses += 1
        record = self.durable.load(key)
        if record is None or record.expires_at <= time.time():
            return record  # nothing, or dead (the engine sees that it is): not copied
        return self._fill(prefix, record, copy)

    def _fill(self, prefix: str, record: Record, seen: Record | None) -> Record | None:
        """Copy a live durable record into the fast tier (``seen``: the expired copy the fast
        tier held, replaced), never over a newer copy a writer put there.

        Then the durable store is asked again: a delete takes the durable record first and the
        fast copy second, so if the record is gone now, the delete may have passed the fast tier
        before the copy landed, and the copy is undone. (If it is still there, the delete's
        second step is yet to come, and removes the copy.)
        """
        try:
            placed = self._put(prefix, record, None if seen is None else seen.version)
        except StoreError as exc:
            self._fast_failed(exc)
            return record
        if not placed:
            return record
        try:
            again = self.durable.load(record.key)
        except StoreError:
            with contextlib.suppress(StoreError):
                self.fast.delete(prefix + record.key)
            raise
        if again is None:
            self._fast_delete(prefix + record.key)
        return again

    # -- writes ---------------------------------------------------------------------------------

    def create(self, record: Record) -> bool:
        prefix = self._namespace()
        if not self.durable.create(record):
            return False
        self._follow(prefix, record, None)
        return True

    def save(self, record: Record, expected_version: int) -> bool:
        prefix = self._namespace()
        if not self.durable.save(record, expected_version):
            self._repair(prefix, record.key)
            return False
        self._follow(prefix, record, expected_version)
        return True

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        prefix = self._namespace()
        if not self.durable.save_keeping_expiry(record, expected_version):
            self._repair(prefix, record.key)
            return False
        self._follow(prefix, record, expected_version, keeping_expiry=True)
        return True

    def _follow(
        self,
        prefix: str | None,
        record: Record,
        expected_version: int | None,
        *,
        keeping_expiry: bool = False,
    ) -> None:
        """The fast tier follows a write the durable store took; if it cannot, or is resting,
        the epoch moves on."""
        if prefix is None:
            self._bump()
            return
        try:
            placed = self._put(prefix, record, expected_version, keeping_expiry)
        except StoreError as exc:
            self._fast_failed(exc)
            return
        self.state.reached()
        if placed is None:
            self._bump()

    def _put(
        self, prefix: str, record: Record, expected: int | None, keeping_expiry: bool = False
    ) -> bool | None:
        """Make the fast tier hold ``record`` unless it holds a live copy as new or newer.

        ``expected`` is the version the fast copy is thought to have (None: no copy). True when
        the fast tier now holds this record, False when it holds a newer one, None when other
        writers kept changing it (then the caller moves the epoch on).
        """
        copy = record._replace(key=prefix + record.key)
        fast = self.fast
        for attempt in range(PUT_ATTEMPTS):
            if expected is None:
                done = fast.create(copy)
            elif keeping_expiry and attempt == 0:
                done = fast.save_keeping_expiry(copy, expected)
            else:
                done = fast.save(copy, expected)
            if done:
                return True
            current = fast.load(copy.key)
            if current is None:
                expected = None
            elif current.version >= record.version and self.state.trusted(current):
                return False
            else:
                expected = current.version
        return None

    def _repair(self, prefix: str | None, key: str) -> None:
        """After a refused compare-and-set: the fast copy the engine loaded may be stale (see
        the module's documentation for when), so it is made the durable record's, or removed
        with it, before the engine loads again."""
        if prefix is None:
            return
        current = self.durable.load(key)
        if current is None or current.expires_at <= time.time():
            self._fast_delete(prefix + key)
            return
        self._follow(prefix, current, None)

    def touch(self, key: str, expires_at: float) -> None:
        prefix = self._namespace()
        self.durable.touch(key, expires_at)
        if prefix is None:
            self._bump()
            return
        try:
            self.fast.touch(prefix + key, expires_at)
        except StoreError as exc:
            self._fast_failed(exc)
            return
        self.state.reached()

    def delete(self, key: str) -> None:
        prefix = self._namespace()
        self.durable.delete(key)  # the durable record first: see _fill
        if prefix is None:
            self._bump()
            return
        self._fast_delete(prefix + key)

    def _fast_delete(self, fast_key: str) -> None:
        try:
            self.fast.delete(fast_key)
        except StoreError as exc:
            self._fast_failed(exc)
            return
        self.state.reached()

    def rotate(self, old_key: str, record: Record) -> bool:
        prefix = self._namespace()
        if not self.durable.rotate(old_key, record):
            return False
        if prefix is None:
            self._bump()
            return True
        try:
            if self.fast.rotate(prefix + old_key, record._replace(key=prefix + record.key)):
                self.state.reached()
                return True
            # The fast tier holds the new key (an expired copy): the old one goes all the same.
            self.fast.delete(prefix + old_key)
        except StoreError as exc:
            self._fast_failed(exc)
            return True
        self._follow(prefix, record, None)
        return True

    def close(self) -> None:
        try:
            self.fast.close()
        finally:
            self.durable.close()

    # -- capabilities ---------------------------------------------------------------------------

    def list_by_user(self, user_id: str) -> list[Record]:
        """The user's records, as the durable store lists them."""
        self._require(UserIndex)
        return user_index(self.durable).list_by_user(user_id)

    def delete_by_user(self, user_id: str) -> int:
        """Delete the user's records from the durable store, then from the fast tier; the
        durable store's count."""
        self._require(UserIndex)
        prefix = self._namespace()
        deleted = user_index(self.durable).delete_by_user(user_id)
        if prefix is None:
            self._bump()
            return deleted
        try:
            user_index(self.fast).delete_by_user(user_id)
        except StoreError as exc:
            self._fast_failed(exc)
            return deleted
        self.state.reached()
        return deleted

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Purge the durable store (and the fast tier too, if it can be purged: Redis expires
        its copies by itself); the durable store's count. From then on, no fast copy that
        expires by ``now`` answers a load."""
        self._require(Purgeable)
        if limit is not None and limit <= 0:
            return 0
        deleted = purgeable(self.durable).purge_expired(now, limit)
        self.state.purged(now)
        if offers(self.fast, Purgeable) and not self.state.resting():
            try:
                purgeable(self.fast).purge_expired(now, limit)
            except StoreError as exc:
                self._fast_failed(exc)
        return deleted

    def iter_records(self) -> Iterator[Record]:
        """Every record of the durable store but the epoch record."""
        self._require(Iterable)
        return self._sessions(iterable(self.durable).iter_records())

    def _sessions(self, records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            if record.key != EPOCH_KEY:
                yield record
