"""What a composition of two stores can do: the capabilities it offers, the stores' faces typed
for a capability's calls, and (for the sync face) the class of each instance.

Sans I/O, and written once for both faces: ``_async.py`` and its generated twin ``_sync.py``
call the same helpers.
"""

from __future__ import annotations

from typing import Any, Union, overload

from ..base import (
    AsyncStore,
    AsyncStoreAdapter,
    Iterable,
    NotSupported,
    Purgeable,
    Store,
    UserIndex,
)

Capability = Union[type[UserIndex], type[Purgeable], type[Iterable]]  # noqa: UP007 - a runtime alias
CAPABILITIES: tuple[Capability, ...] = (UserIndex, Purgeable, Iterable)

_METHODS: dict[Capability, tuple[str, ...]] = {
    UserIndex: ("list_by_user", "delete_by_user"),
    Purgeable: ("purge_expired",),
    Iterable: ("iter_records",),
}


def offers(store: Store | AsyncStore, capability: Capability) -> bool:
    """Whether ``store`` has ``capability``. A sync store says so by its class; an async one by
    overriding :class:`~coatcheck.stores.AsyncStore`'s NotSupported default, an adapter by its
    sync store's class, and a composition (anything with an ``offers`` method) by asking it."""
    if isinstance(store, Store):
        return isinstance(store, capability)
    if isinstance(store, AsyncStoreAdapter):
        return offers(store.store, capability)
    own = getattr(store, "offers", None)
    if callable(own):
        return bool(own(capability))
    kind = type(store)
    return all(
        getattr(kind, name) is not getattr(AsyncStore, name) for name in _METHODS[capability]
    )


def composed(
    old: Store | AsyncStore, new: Store | AsyncStore, capability: Capability, *, read_old: bool
) -> bool:
    """Whether a composition of ``old`` and ``new`` can honour ``capability``: when both stores
    have it, since reads fall back to the old store (``read_old``) and deletes reach both.

    Ending a user's sessions in one store only would leave the other's copies to be read back.
    A purge that reached one store only would leave the other's expired copies for the fallback
    to return: purged, and still there. With ``read_old`` false nothing is read from the old
    store, so listing and purging need only the new one (the old one is purged too, if it can
    be).
    """
    if not read_old and capability is not UserIndex:
        return offers(new, capability)
    return offers(old, capability) and offers(new, capability)


def offloads(*stores: Store | AsyncStore) -> bool:
    """Whether async callers should run a composition's calls in a worker thread: when any of
    its sync stores blocks."""
    return any(isinstance(store, Store) and store.offload_async for store in stores)


def lacking(store: object, capability: Capability) -> NotSupported:
    return NotSupported(f"{type(store).__name__} has no {capability.__name__} across its stores")


# The faces of a store for a capability's calls: the sync store typed as having it (checked),
# the async one as it is (an async store lacking a capability raises NotSupported itself).


@overload
def user_index(store: Store) -> UserIndex: ...
@overload
def user_index(store: AsyncStore) -> AsyncStore: ...
def user_index(store: Store | AsyncStore) -> UserIndex | AsyncStore:
    if isinstance(store, Store) and not isinstance(store, UserIndex):
        raise lacking(store, UserIndex)
    return store


@overload
def purgeable(store: Store) -> Purgeable: ...
@overload
def purgeable(store: AsyncStore) -> AsyncStore: ...
def purgeable(store: Store | AsyncStore) -> Purgeable | AsyncStore:
    if isinstance(store, Store) and not isinstance(store, Purgeable):
        raise lacking(store, Purgeable)
    return store


@overload
def iterable(store: Store) -> Iterable: ...
@overload
def iterable(store: AsyncStore) -> AsyncStore: ...
def iterable(store: Store | AsyncStore) -> Iterable | AsyncStore:
    if isinstance(store, Store) and not isinstance(store, Iterable):
        raise lacking(store, Iterable)
    return store


class WithCapabilities:
    """For the sync face: each instance's class is a subclass that also derives from the
    capabilities its two stores let it honour (:func:`composed`), so ``isinstance(store,
    UserIndex)``, as the command line and Django's ``clearsessions`` ask, is true exactly when
    the calls work."""

    def __new__(
        cls, old: Store, new: Store, *args: Any, read_old: bool = True, **kwargs: Any
    ) -> Any:
        capabilities = tuple(c for c in CAPABILITIES if composed(old, new, c, read_old=read_old))
        return object.__new__(_with(cls, capabilities))


_KINDS: dict[tuple[type, tuple[Capability, ...]], type] = {}


def _with(cls: type, capabilities: tuple[Capability, ...]) -> type:
    """``cls`` deriving also from ``capabilities``: one class per combination."""
    if not capabilities:
        return cls
    kind = _KINDS.get((cls, capabilities))
    if kind is None:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        kind = _KINDS.setdefault(
            (cls, capabilities), type(cls.__name__, (cls, *capabilities), namespace)
        )
    return kind
