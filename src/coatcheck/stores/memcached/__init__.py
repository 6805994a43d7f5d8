"""Memcached stores: :class:`MemcachedStore` (pymemcache) and :class:`AsyncMemcachedStore`
(aiomcache). Needs the ``memcached`` extra. No user index: log out everywhere is
:class:`~coatcheck.stores.NotSupported` here.
"""

from __future__ import annotations

from ._async import AsyncMemcachedStore
from ._sync import MemcachedStore

__all__ = ["AsyncMemcachedStore", "MemcachedStore"]
