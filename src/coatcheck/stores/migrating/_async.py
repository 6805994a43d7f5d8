"""AsyncMigratingStore: an application moving from one async store to another, live.

This file is the source of the sync :class:`~coatcheck.stores.migrating.MigratingStore`:
``scripts/unasync.py`` generates ``_sync.py`` from it, and the test suite fails when that copy
is stale. What the composition guarantees, and why, is in :mod:`coatcheck.stores.migrating`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ..base import AsyncStore, Iterable, Purgeable, Record, UserIndex
from ._capabilities import (
    Capability,
    composed,
    iterable,
    lacking,
    offers,
    offloads,
    purgeable,
    user_index,
)


class AsyncMigratingStore(AsyncStore):
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

    def __init__(self, old: AsyncStore, new: AsyncStore, *, read_old: bool = True) -> None:
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

    async def load(self, key: str) -> Record | None:
        record = await self.new.load(key)
        if record is not None or not self.read_old:
            return record
        return await self._repair(key)

    async def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        record, touched = await self.new.load_touching(key, now, expires_at, min_gain)
        if record is None:
            return (await self._repair(key) if self.read_old else None), False
        if touched:  # the old copy's expiry follows
            await self.old.touch(key, record.expires_at)
        return record, touched

    async def _repair(self, key: str) -> Record | None:
        """The old store's record under ``key``, copied into the new store if it is live.

        The copy is ``create``: it never overwrites what a concurrent writer (another request's
        repair, ``coatcheck migrate``) put there first; that copy is then the answer. After
        copying, the old store is asked again: a delete takes the old copy first and the new
        one second, so if the old copy is gone the delete may have passed the new store before
        the copy landed, and the copy is undone. (If the old copy is still there, the delete's
        second step is yet to come, and removes the copy.)
        """
        record = await self.old.load(key)
        if record is None or record.expires_at <= time.time():
            return record  # nothing, or dead: not copied (the engine sees that it is dead)
        if not await self.new.create(record):
            return await self.new.load(key)
        if await self.old.load(key) is None:
            await self.new.delete(key)
            return None
        return record

    # -- writes ---------------------------------------------------------------------------------

    async def create(self, record: Record) -> bool:
        if not await self.new.create(record):
            return False
        if await self.old.create(record):
            return True
        # The old store holds the key (a session not copied yet): to the composition the key
        # exists, so nothing is created.
        await self.new.delete(record.key)
        return False

    async def save(self, record: Record, expected_version: int) -> bool:
        if not await self.new.save(record, expected_version):
            if not await self._copied_forward(record.key):
                return False
            if not await self.new.save(record, expected_version):
                return False
        await self._follow(record, expected_version, keeping_expiry=False)
        return True

    async def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        if not await self.new.save_keeping_expiry(record, expected_version):
            if not await self._copied_forward(record.key):
                return False
            if not await self.new.save_keeping_expiry(record, expected_version):
                return False
        await self._follow(record, expected_version, keeping_expiry=True)
        return True

    async def _copied_forward(self, key: str) -> bool:
        """After a refused save: whether the key was only in the old store and is now copied
        forward, so the save can be tried again (a tool that listed the old store's records
        writes one the application never read). False when the new store holds the key (a
        real conflict) or neither does (deleted: it stays deleted)."""
        if not self.read_old or await self.new.load(key) is not None:
            return False
        return await self._repair(key) is not None

    async def _follow(self, record: Record, expected_version: int, *, keeping_expiry: bool) -> None:
        """The old store follows a save the new one took.

        It never creates: a record the old store lacks was deleted there (a delete takes the
        old copy first) or expired, and must not come back. When the old copy's version has
        drifted (two writers' follow-ups crossing, one lost to a failure), the old copy is
        replaced if this save's version is newer, so it ends on the newest version written.
        """
        save = self.old.save_keeping_expiry if keeping_expiry else self.old.save
        if await save(record, expected_version):
            return
        current = await self.old.load(record.key)
        if current is not None and current.version < record.version:
            await self.old.save(record, current.version)

    async def touch(self, key: str, expires_at: float) -> None:
        await self.new.touch(key, expires_at)
        await self.old.touch(key, expires_at)

    async def delete(self, key: str) -> None:
        await self.old.delete(key)  # the old copy first: see _repair
        await self.new.delete(key)

    async def rotate(self, old_key: str, record: Record) -> bool:
        if not await self.new.create(record):
            return False
        if not await self.old.rotate(old_key, record):  # the old key leaves the old store first
            await self.new.delete(record.key)
            return False
        await self.new.delete(old_key)
        return True

    async def close(self) -> None:
        try:
            await self.new.close()
        finally:
            await self.old.close()

    # -- capabilities ---------------------------------------------------------------------------

    async def list_by_user(self, user_id: str) -> list[Record]:
        """The user's records in either store, the new store's copy where both have one."""
        self._require(UserIndex)
        records: dict[str, Record] = {}
        if self.read_old:
            records.update((r.key, r) for r in await user_index(self.old).list_by_user(user_id))
        records.update((r.key, r) for r in await user_index(self.new).list_by_user(user_id))
        return list(records.values())

    async def delete_by_user(self, user_id: str) -> int:
        """Delete the user's records from both stores, the old one first; the larger of the two
        counts (a session copied forward is in both, and counts once)."""
        self._require(UserIndex)
        deleted = await user_index(self.old).delete_by_user(user_id)
        return max(deleted, await user_index(self.new).delete_by_user(user_id))

    async def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Purge both stores (with ``read_old`` false, ``new`` and ``old`` if it can), up to
        ``limit`` records each; the larger of the two counts (a record in both counts once)."""
        self._require(Purgeable)
        counts = [
            await purgeable(store).purge_expired(now, limit)
            for store in (self.old, self.new)
            if offers(store, Purgeable)
        ]
        return max(counts)

    def iter_records(self) -> AsyncIterator[Record]:
        """Every record of the new store, then every record of the old one the new store did
        not list (the new store's keys are held in memory meanwhile)."""
        self._require(Iterable)
        new = iterable(self.new).iter_records()
        if not self.read_old:
            return new
        return self._union(new, iterable(self.old).iter_records())

    async def _union(
        self, new: AsyncIterator[Record], old: AsyncIterator[Record]
    ) -> AsyncIterator[Record]:
        listed: set[str] = set()
        async for record in new:
            listed.add(record.key)
            yield record
        async for record in old:
            if record.key not in listed:
                yield record
