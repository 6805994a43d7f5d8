"""What a fast store in front of a durable one can do: the capabilities the composition offers
and, for the sync face, the class of each instance.

Sans I/O, shared by both faces. The faces of a store for a capability's calls, and the way a
sync composition's class derives from its capabilities, are the live migration's
(:mod:`coatcheck.stores.migrating`), reused here.
"""

from __future__ import annotations

from typing import Any

from ..base import AsyncStore, Store, UserIndex
from ..migrating._capabilities import (
    CAPABILITIES,
    Capability,
    _with,
    iterable,
    lacking,
    offers,
    offloads,
    purgeable,
    user_index,
)

__all__ = [
    "Capability",
    "WithCapabilities",
    "composed",
    "iterable",
    "lacking",
    "offers",
    "offloads",
    "purgeable",
    "user_index",
]


def composed(fast: Store | AsyncStore, durable: Store | AsyncStore, capability: Capability) -> bool:
    """Whether ``TieredStore(fast, durable)`` can honour ``capability``.

    Listing and purging are the durable store's: it holds every record, and a copy the fast
    tier keeps of an expired record is never trusted (it expires there too, or is purged with
    it). A user's sessions must end in both stores, or the fast tier would go on serving them:
    the user index needs both.
    """
    if capability is UserIndex:
        return offers(fast, UserIndex) and offers(durable, UserIndex)
    return offers(durable, capability)


class WithCapabilities:
    """For the sync face: each instance's class is a subclass that also derives from the
    capabilities its two stores let it honour (:func:`composed`), so ``isinstance(store,
    UserIndex)`` is true exactly when the calls work."""

    def __new__(cls, fast: Store, durable: Store, *args: Any, **kwargs: Any) -> Any:
        capabilities = tuple(c for c in CAPABILITIES if composed(fast, durable, c))
        return object.__new__(_with(cls, capabilities))
