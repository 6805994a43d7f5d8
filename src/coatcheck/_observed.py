"""A store whose every call is reported to a probe: what :mod:`coatcheck.metrics` (a timer)
and :mod:`coatcheck.tracing` (a span per call) wrap a store in.

The wrapper keeps the store's face (a sync :class:`~coatcheck.stores.Store` stays sync, an
:class:`~coatcheck.stores.AsyncStore` async), how async callers drive it (``offload_async``),
and its capabilities: a sync wrapper is an instance of :class:`~coatcheck.stores.base.UserIndex`,
:class:`~coatcheck.stores.base.Purgeable` or :class:`~coatcheck.stores.base.Iterable` exactly
when its store is, so the engine and the command line see the same store they would without it.

A probe hears of each call twice: ``begin(operation)`` before, and ``end(operation, begun,
result, error)`` after, with what ``begin`` returned and the call's result or the exception it
raised (re-raised after). The operation is the store method's name, except that
``load_touching`` is a ``"load"`` (it may move the expiry in the same round trip) and
``save_keeping_expiry`` a ``"save"``. A probe hears no argument of a call: never a store key,
never a record.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar, cast, overload

from .stores.base import (
    AsyncStore,
    AsyncStoreAdapter,
    Iterable,
    Purgeable,
    Record,
    Store,
    UserIndex,
)
from .stores.migrating._capabilities import CAPABILITIES, Capability, offers

T = TypeVar("T")

OPERATIONS = (
    "load",
    "create",
    "save",
    "touch",
    "delete",
    "rotate",
    "list_by_user",
    "delete_by_user",
    "purge_expired",
)
"""The operations a probe hears of: the store's calls, ``load_touching`` counted as ``load`` and
``save_keeping_expiry`` as ``save``."""


class Probe(Protocol):
    """What hears of a store's calls (see the module's documentation)."""

    def begin(self, operation: str) -> Any: ...

    def end(self, operation: str, begun: Any, result: object, error: BaseException | None) -> None:
        """``error``: what the call raised (it is raised on), None when it returned ``result``."""


def store_name(store: Store | AsyncStore) -> str:
    """A short name for the kind of ``store``: ``"memory"``, ``"file"``, ``"sqlite"``,
    ``"redis"``, ``"postgresql"``, ``"mysql"``, ``"memcached"``, ``"migrating"``; for a store
    of another kind, its class's name without ``Async`` and ``Store``, in lower case.

    >>> from coatcheck.stores import MemoryStore, as_async
    >>> store_name(as_async(MemoryStore()))
    'memory'
    """
    while isinstance(store, AsyncStoreAdapter | Observed):
        store = store.store
    dialect = getattr(getattr(store, "pool", None), "dialect", None)  # the SQL stores' database
    if isinstance(dialect, str):
        return dialect
    name = type(store).__name__.removeprefix("Async").removesuffix("Store")
    return name.lower() or "store"


class Observed:
    """What a sync and an async observed store share: the store and its probe."""

    store: Store | AsyncStore

    def __init__(self, store: Store | AsyncStore, probe: Probe) -> None:
        self.store = store
        """The store observed."""
        self.probe = probe

    def offers(self, capability: Capability) -> bool:
        """Whether the store observed has ``capability`` (for a composition of stores, such as
        :class:`~coatcheck.stores.migrating.MigratingStore`, that asks)."""
        return offers(self.store, capability)


class ObservedStore(Observed, Store):
    """A sync :class:`~coatcheck.stores.Store` reporting every call to a probe."""

    store: Store

    def __init__(self, store: Store, probe: Probe) -> None:
        super().__init__(store, probe)
        self.offload_async = store.offload_async

    def _call(self, operation: str, function: Callable[..., T], *args: object) -> T:
        probe = self.probe
        begun = probe.begin(operation)
        try:
            result = function(*args)
        except BaseException as exc:
            probe.end(operation, begun, None, exc)
            raise
        probe.end(operation, begun, result, None)
        return result

    def load(self, key: str) -> Record | None:
        return self._call("load", self.store.load, key)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        return self._call("load", self.store.load_touching, key, now, expires_at, min_gain)

    def create(self, record: Record) -> bool:
        return self._call("create", self.store.create, record)

    def save(self, record: Record, expected_version: int) -> bool:
        return self._call("save", self.store.save, record, expected_version)

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        return self._call("save", self.store.save_keeping_expiry, record, expected_version)

    def touch(self, key: str, expires_at: float) -> None:
        self._call("touch", self.store.touch, key, expires_at)

    def delete(self, key: str) -> None:
        self._call("delete", self.store.delete, key)

    def rotate(self, old_key: str, record: Record) -> bool:
        return self._call("rotate", self.store.rotate, old_key, record)

    def close(self) -> None:
        self.store.close()


class _UserIndexCalls(ObservedStore, UserIndex):
    def list_by_user(self, user_id: str) -> list[Record]:
        return self._call("list_by_user", cast(UserIndex, self.store).list_by_user, user_id)

    def delete_by_user(self, user_id: str) -> int:
        return self._call("delete_by_user", cast(UserIndex, self.store).delete_by_user, user_id)


class _PurgeCalls(ObservedStore, Purgeable):
    def purge_expired(self, now: float, limit: int | None = None) -> int:
        return self._call("purge_expired", cast(Purgeable, self.store).purge_expired, now, limit)


class _IterCalls(ObservedStore, Iterable):
    def iter_records(self) -> Iterator[Record]:
        return cast(Iterable, self.store).iter_records()


_CALLS: dict[Capability, type[ObservedStore]] = {
    UserIndex: _UserIndexCalls,
    Purgeable: _PurgeCalls,
    Iterable: _IterCalls,
}


@functools.cache
def _kind(capabilities: tuple[Capability, ...]) -> type[ObservedStore]:
    """The observed store class with the calls of ``capabilities``: one per combination."""
    if not capabilities:
        return ObservedStore
    bases = tuple(_CALLS[capability] for capability in capabilities)
    return type("ObservedStore", bases, {"__module__": __name__})


class ObservedAsyncStore(Observed, AsyncStore):
    """An :class:`~coatcheck.stores.AsyncStore` reporting every call to a probe."""

    store: AsyncStore

    def __init__(self, store: AsyncStore, probe: Probe) -> None:
        super().__init__(store, probe)

    async def _call(
        self, operation: str, function: Callable[..., Awaitable[T]], *args: object
    ) -> T:
        probe = self.probe
        begun = probe.begin(operation)
        try:
            result = await function(*args)
        except BaseException as exc:
            probe.end(operation, begun, None, exc)
            raise
        probe.end(operation, begun, result, None)
        return result

    async def load(self, key: str) -> Record | None:
        return await self._call("load", self.store.load, key)

    async def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        return await self._call("load", self.store.load_touching, key, now, expires_at, min_gain)

    async def create(self, record: Record) -> bool:
        return await self._call("create", self.store.create, record)

    async def save(self, record: Record, expected_version: int) -> bool:
        return await self._call("save", self.store.save, record, expected_version)

    async def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        return await self._call("save", self.store.save_keeping_expiry, record, expected_version)

    async def touch(self, key: str, expires_at: float) -> None:
        await self._call("touch", self.store.touch, key, expires_at)

    async def delete(self, key: str) -> None:
        await self._call("delete", self.store.delete, key)

    async def rotate(self, old_key: str, record: Record) -> bool:
        return await self._call("rotate", self.store.rotate, old_key, record)

    async def close(self) -> None:
        await self.store.close()

    async def list_by_user(self, user_id: str) -> list[Record]:
        return await self._call("list_by_user", self.store.list_by_user, user_id)

    async def delete_by_user(self, user_id: str) -> int:
        return await self._call("delete_by_user", self.store.delete_by_user, user_id)

    async def purge_expired(self, now: float, limit: int | None = None) -> int:
        return await self._call("purge_expired", self.store.purge_expired, now, limit)

    def iter_records(self) -> AsyncIterator[Record]:
        return self.store.iter_records()


@overload
def observed(store: Store, probe: Probe) -> Store: ...
@overload
def observed(store: AsyncStore, probe: Probe) -> AsyncStore: ...
def observed(store: Store | AsyncStore, probe: Probe) -> Store | AsyncStore:
    """``store``, every call of it reported to ``probe``; of the same face and capabilities."""
    if isinstance(store, Store):
        capabilities = tuple(c for c in CAPABILITIES if isinstance(store, c))
        return _kind(capabilities)(store, probe)
    if isinstance(store, AsyncStore):
        return ObservedAsyncStore(store, probe)
    raise TypeError(f"not a coatcheck store: {type(store).__name__}")


@overload
def with_metrics(store: Store, metrics: bool) -> Store: ...
@overload
def with_metrics(store: AsyncStore, metrics: bool) -> AsyncStore: ...
@overload
def with_metrics(store: Store | AsyncStore, metrics: bool) -> Store | AsyncStore: ...
def with_metrics(store: Store | AsyncStore, metrics: bool) -> Store | AsyncStore:
    """The store a middleware or integration drives: with ``metrics`` (the option) on, its every
    call timed into the default metrics (:func:`coatcheck.metrics.instrumented`), unless the
    application already wrapped it so, and a tiered store's fast tier reported
    (:meth:`~coatcheck.metrics.SessionMetrics.watch_tiers`); as it is otherwise (nothing
    imported, nothing added)."""
    if not metrics:
        return store
    from .metrics import default_metrics, instrumented, is_timed  # noqa: PLC0415 - the extra
    from .stores.tiered import AsyncTieredStore, TieredStore  # noqa: PLC0415

    if isinstance(store, TieredStore | AsyncTieredStore):  # its fast tier's state, at scrapes
        default_metrics().watch_tiers(store)
    return store if is_timed(store) else instrumented(store)
