"""MigratingStore: an application moving from one store to another, live.

Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..base import Iterable, Purgeable, Record, Store, UserIndex
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


class MigratingStore(WithCapabilities, Store):
    """The new store in front, the old one behind it, for the time of a migration.

    Reads try ``new`` first and fall back to ``old``, copying what they find there into
    ``new`` (read repair) unless ``read_old`` is false. Writes go to ``new`` (the truth,
    compare-and-set) and then to ``old``, which follows; deletes and rotations reach both,
    ``old`` first, so a session ended here can never be read back from ``old``. The module's
    documentation, :mod:`coatcheck.stores.migrating`, gives the procedure and the reasoning.

    It offers a capability (a user index, a listing of every record, purging) when both
    stores have it; with ``read_old`` false, listing and purging need only ``new``. ``close``
    closes both stores.
    """

    def __init__(self, old: Store, new: Store, *, read_old: bool = True) -> None:
        self.old = old
        """The store the application leaves: still read (when ``read_old``), kept current."""
        self.new = new
        """The store the application moves to: the truth."""
        self.read_old = read_old
        """Whether a key the new store lacks is looked for in the old one (and copied)."""
        self.offload_async = offloads(old, new)

    def offers(self, capability: Capability) -> bool:
        """Whether this composition can honour ``capability`` (:class:`UserIndex`,
        :class:`Purgeable` or :class:`Iterable`) across its two stores."""
        return composed(self.old, self.new, capability, read_old=self.read_old)

    def _require(self, capability: Capability) -> None:
        if not self.offers(capability):
            raise lacking(self, capability)

    # -- reads ----------------------------------------------------------------------------------

    def load(self, key: str) -> Record | None:
        record = self.new.load(key)
        if record is not None or not self.read_old:
            return record
        return self._repair(key)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        record, touched = self.new.load_touching(key, now, expires_at, min_gain)
        if record is None:
            return (self._repair(key) if self.read_old else None), False
        if touched:  # the old copy's expiry follows
            self.old.touch(key, record.expires_at)
        return record, touched

    def _repair(self, key: str) -> Record | None:
        """The old store's record under ``key``, copied into the new store if it is live.

        The copy is ``create``: it never overwrites what a concurrent writer (another request's
        repair, ``coatcheck migrate``) put there first; that copy is then the answer. After
        copying, the old store is asked again: a delete takes the old copy first and the new
        one second, so if the old copy is gone the delete may have passed the new store before
        the copy landed, and the copy is undone. (If the old copy is still there, the delete's
        second step is yet to come, and removes the copy.)
        """
        record = self.old.load(key)
        if record is None or record.expires_at <= time.time():
            return record  # nothing, or dead: not copied (the engine sees that it is dead)
        if not self.new.create(record):
            return self.new.load(key)
        if self.old.load(key) is None:
            self.new.delete(key)
            return None
        return record

    # -- writes ---------------------------------------------------------------------------------

    def create(self, record: Record) -> bool:
        if not self.new.create(record):
            return False
        if self.old.create(record):
            return True
        # The old store holds the key (a session not copied yet): to the composition the key
        # exists, so nothing is created.
        self.new.delete(record.key)
        return False

    def save(self, record: Record, expected_version: int) -> bool:
        if not self.new.save(record, expected_version):
            if not self._copied_forward(record.key):
                return False
            if not self.new.save(record, expected_version):
                return False
        self._follow(record, expected_version, keeping_expiry=False)
        return True

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        if not self.new.save_keeping_expiry(record, expected_version):
            if not self._copied_forward(record.key):
                return False
            if not self.new.save_keeping_expiry(record, expected_version):
                return False
        self._follow(record, expected_version, keeping_expiry=True)
        return True

    def _copied_forward(self, key: str) -> bool:
        """After a refused save: whether the key was only in the old store and is now copied
        forward, so the save can be tried again (a tool that listed the old store's records
        writes one the application never read). False when the new store holds the key (a
        real conflict) or neither does (deleted: it stays deleted)."""
        if not self.read_old or self.new.load(key) is not None:
            return False
        return self._repair(key) is not None

    def _follow(self, record: Record, expected_version: int, *, keeping_expiry: bool) -> None:
        """The old store follows a save the new one took.

        It never creates: a record the old store lacks was deleted there (a delete takes the
        old copy first) or expired, and must not come back. When the old copy's version has
        drifted (two writers' follow-ups crossing, one lost to a failure), the old copy is
        replaced if this save's version is newer, so it ends on the newest version written.
        """
        save = self.old.save_keeping_expiry if keeping_expiry else self.old.save
        if save(record, expected_version):
            return
        current = self.old.load(record.key)
        if current is not None and current.version < record.version:
            self.old.save(record, current.version)

    def touch(self, key: str, expires_at: float) -> None:
        self.new.touch(key, expires_at)
        self.old.touch(key, expires_at)

    def delete(self, key: str) -> None:
        self.old.delete(key)  # the old copy first: see _repair
        self.new.delete(key)

    def rotate(self, old_key: str, record: Record) -> bool:
        if not self.new.create(record):
            return False
        if not self.old.rotate(old_key, record):  # the old key leaves the old store first
            self.new.delete(record.key)
            return False
        self.new.delete(old_key)
        return True

    def close(self) -> None:
        try:
            self.new.close()
        finally:
            self.old.close()

    # -- capabilities ---------------------------------------------------------------------------

    def list_by_user(self, user_id: str) -> list[Record]:
        """The user's records in either store, the new store's copy where both have one."""
        self._require(UserIndex)
        records: dict[str, Record] = {}
        if self.read_old:
            records.update((r.key, r) for r in user_index(self.old).list_by_user(user_id))
        records.update((r.key, r) for r in user_index(self.new).list_by_user(user_id))
        return list(records.values())

    def delete_by_user(self, user_id: str) -> int:
        """Delete the user's records from both stores, the old one first; the larger of the two
        counts (a session copied forward is in both, and counts once)."""
        self._require(UserIndex)
        deleted = user_index(self.old).delete_by_user(user_id)
        return max(deleted, user_index(self.new).delete_by_user(user_id))

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Purge both stores (with ``read_old`` false, ``new`` and ``old`` if it can), up to
        ``limit`` records each; the larger of the two counts (a record in both counts once)."""
        self._require(Purgeable)
        counts = [
            purgeable(store).purge_expired(now, limit)
            for store in (self.old, self.new)
            if offers(store, Purgeable)
        ]
        return max(counts)

    def iter_records(self) -> Iterator[Record]:
        """Every record of the new store, then every record of the old one the new store did
        not list (the new store's keys are held in memory meanwhile)."""
        self._require(Iterable)
        new = iterable(self.new).iter_records()
        if not self.read_old:
            return new
        return self._union(new, iterable(self.old).iter_records())

    def _union(self, new: Iterator[Record], old: Iterator[Record]) -> Iterator[Record]:
        listed: set[str] = set()
        for record in new:
            listed.add(record.key)
            yield record
        for record in old:
            if record.key not in listed:
                yield record
