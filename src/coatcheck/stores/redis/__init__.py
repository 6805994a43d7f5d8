"""Redis stores: :class:`RedisStore` (sync) and :class:`AsyncRedisStore` (asyncio).

Needs the ``redis`` extra (``pip install 'coatcheck[redis]'``). The layout of keys and the
commands each call sends are documented in :mod:`coatcheck.stores.redis.layout`.
"""

from __future__ import annotations

from ._async import AsyncRedisStore
from ._sync import RedisStore
from .layout import DEFAULT_PREFIX

__all__ = ["DEFAULT_PREFIX", "AsyncRedisStore", "RedisStore"]
