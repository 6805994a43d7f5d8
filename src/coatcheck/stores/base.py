"""What a session store is: a :class:`Record`, the core store interfaces, optional capabilities.

A store keeps opaque records under hashed keys; it knows nothing of IDs, cookies, timeouts or
frameworks. The core interface is five calls (load, create, save, touch, delete) plus close, in a
sync form (:class:`Store`) and an async form (:class:`AsyncStore`). What not every backend can do
is a separate capability: :class:`UserIndex` (list and delete a user's sessions),
:class:`Purgeable` (delete expired records), :class:`Iterable` (every record, for migration).

A sync store gets its async face from :class:`AsyncStoreAdapter`, so no store is written twice.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple, TypeVar, cast

T = TypeVar("T")


class Record(NamedTuple):
    """One stored session.

    ``key`` is the hashed session ID, ``data`` the encoded envelope, ``expires_at`` Unix seconds
    after which the record is dead, ``version`` a counter bumped on every save (the
    compare-and-set token), ``user_id`` the user the session is bound to, if any.
    ``deadline`` is the absolute timeout's end, which ``expires_at`` never passes; a store may
    keep it to extend expiries by itself (see :meth:`Store.load_touching`), or ignore it.
    """

    key: str
    data: bytes
    expires_at: float
    version: int = 1
    user_id: str | None = None
    deadline: float | None = None


RecordFields = tuple[str, bytes, float, int, "str | None", "float | None"]

record_of = cast(Callable[[RecordFields], Record], functools.partial(tuple.__new__, Record))
"""``Record(*fields)`` from all six fields in order, without the Python frame a named tuple's
constructor costs (for the stores' and the engine's per-request paths)."""


def unreadable(key: str) -> Record:
    """What a store returns for a record whose own fields it cannot parse (corrupt, or altered
    by hand): no data, already expired. The engine rejects it as undecodable; tools that list
    records pass it by as expired."""
    return Record(key, b"", 0.0, 0, None)


def stored_number(text: bytes | str) -> float:
    """A number a store kept as text; ValueError unless it is finite (``nan``, ``inf`` are not)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("a stored number is not finite")
    return number


class StoreError(Exception):
    """A store failed. Subclasses say how."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or did not answer in time."""


class NotSupported(StoreError):
    """The store lacks the capability an operation needs (e.g. a user index)."""


class MissingExtra(ImportError, ValueError):
    """A store's driver is not installed; the message is one line naming the extra to install.

    Raised when the store is made, never at its first call. An ImportError, as a missing package
    is, and a ValueError, as everything :func:`~coatcheck.stores.from_url` cannot build is.
    """


def require_extra(extra: str, what: str, *modules: str) -> None:
    """Import each of ``modules``, the drivers ``what`` (a URL's ``scheme://``, say) runs on;
    raise :class:`MissingExtra` naming ``extra`` when one cannot be imported."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(
                f"{what} needs the {extra} extra: pip install 'coatcheck[{extra}]' ({exc})",
                name=module,
            ) from None


class Store(ABC):
    """A session store with blocking calls.

    Contracts every store meets (the conformance suite in :mod:`coatcheck.testing` checks them):

    - ``load`` returns the record under ``key`` or None. It may return an expired record; the
      engine checks ``expires_at`` itself.
    - ``create`` stores a new record and returns True, or returns False, changing nothing, when
      a record with that key exists.
    - ``save`` replaces the record under ``record.key`` only if the stored version equals
      ``expected_version``, and returns whether it did. It never creates a record: a session
      deleted meanwhile stays deleted.
    - ``touch`` sets a new ``expires_at`` without rewriting the data; no-op for a missing key.
    - ``delete`` removes a record; no-op for a missing key.
    - ``rotate`` creates ``record`` as ``create`` does and, if it did, deletes ``old_key``.
      The default makes the two calls; a store that can do both in one round trip overrides it.
    - ``save_keeping_expiry`` is ``save`` for a record whose expiry and user are those stored; a
      store may leave those two as they are (and a later expiry that a touch set meanwhile).
    """

    offload_async: bool = False
    """Whether async callers should run this store's calls in a worker thread."""

    @abstractmethod
    def load(self, key: str) -> Record | None: ...

    @abstractmethod
    def create(self, record: Record) -> bool: ...

    @abstractmethod
    def save(self, record: Record, expected_version: int) -> bool: ...

    @abstractmethod
    def touch(self, key: str, expires_at: float) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def rotate(self, old_key: str, record: Record) -> bool:
        """Move a session to a new key (regenerate, login): create, then delete the old."""
        if not self.create(record):
            return False
        self.delete(old_key)
        return True

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        """A :meth:`save` of a record whose ``expires_at`` and ``user_id`` are those stored (most
        writes leave the expiry where it was). A store whose indexes make writing those costly
        may leave them as they are; the default is a plain :meth:`save`.
        """
        return self.save(record, expected_version)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        """Load, and in the same round trip extend the expiry of a record still live at ``now``
        to ``min(expires_at, deadline)`` if that gains ``min_gain`` seconds or more; return the
        record and whether it did. An expired record is returned untouched.

        The default only loads; the engine then touches separately when a touch is due.
        """
        return self.load(key), False

    def close(self) -> None:
        """Release connections and files. The default does nothing."""


class UserIndex(ABC):
    """Capability: find and delete the sessions bound to one user without scanning them all."""

    @abstractmethod
    def list_by_user(self, user_id: str) -> list[Record]:
        """The user's records (expired ones may be included; callers check ``expires_at``)."""

    @abstractmethod
    def delete_by_user(self, user_id: str) -> int:
        """Delete every record of the user; return how many were deleted."""


class Purgeable(ABC):
    """Capability: delete expired records (stores without native expiry)."""

    @abstractmethod
    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Delete records with ``expires_at <= now``, at most ``limit`` of them (None: all),
        those expired longest first; return how many.

        ``limit=0`` deletes nothing and returns 0 with no round trip: the engine asks it to
        learn whether a store can purge (:class:`NotSupported` if not) before it takes the
        purge lease (``purge_interval``).
        """


class Iterable(ABC):
    """Capability: every record, for migration, statistics and the CLI."""

    @abstractmethod
    def iter_records(self) -> Iterator[Record]: ...


class AsyncStore(ABC):
    """A session store with async calls; the same contracts as :class:`Store`."""

    @abstractmethod
    async def load(self, key: str) -> Record | None: ...

    @abstractmethod
    async def create(self, record: Record) -> bool: ...

    @abstractmethod
    async def save(self, record: Record, expected_version: int) -> bool: ...

    @abstractmethod
    async def touch(self, key: str, expires_at: float) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    async def rotate(self, old_key: str, record: Record) -> bool:
        """Move a session to a new key (regenerate, login): create, then delete the old."""
        if not await self.create(record):
            return False
        await self.delete(old_key)
        return True

    async def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        """As :meth:`Store.save_keeping_expiry`; the default is a plain :meth:`save`."""
        return await self.save(record, expected_version)

    async def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        """As :meth:`Store.load_touching`; the default only loads."""
        return await self.load(key), False

    async def close(self) -> None:
        """Release connections. The default does nothing."""

    # Optional capabilities; NotSupported unless the store has them.

    async def list_by_user(self, user_id: str) -> list[Record]:
        raise NotSupported(f"{type(self).__name__} has no user index")

    async def delete_by_user(self, user_id: str) -> int:
        raise NotSupported(f"{type(self).__name__} has no user index")

    async def purge_expired(self, now: float, limit: int | None = None) -> int:
        raise NotSupported(f"{type(self).__name__} cannot purge")

    def iter_records(self) -> AsyncIterator[Record]:
        raise NotSupported(f"{type(self).__name__} cannot list its records")


@functools.cache
def anyio_module() -> Any | None:
    """anyio when installed (so trio works too), else None; looked up once."""
    try:
        import anyio.to_thread  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover
        return None
    return anyio


async def _in_thread(function: Callable[..., T], *args: object) -> T:
    anyio = anyio_module()
    if anyio is None:  # pragma: no cover
        return await asyncio.to_thread(function, *args)
    result: T = await anyio.to_thread.run_sync(function, *args)
    return result


class AsyncStoreAdapter(AsyncStore):
    """The async face of a sync :class:`Store`.

    Calls run inline when the store is non-blocking (memory) and in a worker thread when
    ``offload`` (default: the store's ``offload_async``) says so.
    """

    def __init__(self, store: Store, *, offload: bool | None = None) -> None:
        self.store = store
        self.offload = store.offload_async if offload is None else offload

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        if self.offload:
            return await _in_thread(function, *args)
        return function(*args)

    async def load(self, key: str) -> Record | None:
        return await self._call(self.store.load, key)

    async def create(self, record: Record) -> bool:
        return await self._call(self.store.create, record)

    async def save(self, record: Record, expected_version: int) -> bool:
        return await self._call(self.store.save, record, expected_version)

    async def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        return await self._call(self.store.save_keeping_expiry, record, expected_version)

    async def touch(self, key: str, expires_at: float) -> None:
        await self._call(self.store.touch, key, expires_at)

    async def delete(self, key: str) -> None:
        await self._call(self.store.delete, key)

    async def rotate(self, old_key: str, record: Record) -> bool:
        return await self._call(self.store.rotate, old_key, record)

    async def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        return await self._call(self.store.load_touching, key, now, expires_at, min_gain)

    async def close(self) -> None:
        await self._call(self.store.close)

    async def list_by_user(self, user_id: str) -> list[Record]:
        if not isinstance(self.store, UserIndex):
            return await super().list_by_user(user_id)
        return await self._call(self.store.list_by_user, user_id)

    async def delete_by_user(self, user_id: str) -> int:
        if not isinstance(self.store, UserIndex):
            return await super().delete_by_user(user_id)
        return await self._call(self.store.delete_by_user, user_id)

    async def purge_expired(self, now: float, limit: int | None = None) -> int:
        if not isinstance(self.store, Purgeable):
            return await super().purge_expired(now, limit)
        if limit is not None and limit <= 0:  # nothing to delete: no hop to a worker thread
            return 0
        return await self._call(self.store.purge_expired, now, limit)

    def iter_records(self) -> AsyncIterator[Record]:
        if not isinstance(self.store, Iterable):
            return super().iter_records()
        return self._iter_records(self.store.iter_records())

    async def _iter_records(self, records: Iterator[Record]) -> AsyncIterator[Record]:
        while batch := await self._call(_take, records, 500):
            for record in batch:
                yield record


def _take(records: Iterator[Record], count: int) -> list[Record]:
    return [record for _, record in zip(range(count), records, strict=False)]


def as_async(store: Store | AsyncStore) -> AsyncStore:
    """Return the async face of ``store``: itself when it is async, else an adapter."""
    if isinstance(store, AsyncStore):
        return store
    return AsyncStoreAdapter(store)
