"""AsyncMemcachedStore: sessions in Memcached through aiomcache.

This file is the source of the sync :class:`~coatcheck.stores.memcached.MemcachedStore`:
``scripts/unasync.py`` generates ``_sync.py`` from it. The item layout is in
:mod:`coatcheck.stores.memcached.layout`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..base import AsyncStore, Record
from . import layout
from .layout import DEFAULT_PREFIX, AsyncClient, item_key, reported


class AsyncMemcachedStore(AsyncStore):
    """Sessions in Memcached: native expiry, compare-and-set through ``gets``/``cas``.

    Memcached cannot find a user's sessions, so ``list_by_user`` and ``delete_by_user`` (log
    out everywhere) raise :class:`~coatcheck.stores.NotSupported`.
    """

    offload_async = True

    def __init__(self, client: AsyncClient, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0, pool_size: int = 10
    ) -> AsyncMemcachedStore:
        """A store on the Memcached at ``memcached://host[:port]``."""
        parts = urlsplit(url)
        client = AsyncClient(
            parts.hostname or "127.0.0.1", parts.port or 11211, timeout=timeout, pool_size=pool_size
        )
        return cls(client, prefix=prefix)

    async def load(self, key: str) -> Record | None:
        with reported("load"):
            value, _ = await self.client.gets(item_key(self.prefix, key))
        return layout.decode(key, value)

    async def create(self, record: Record) -> bool:
        item = item_key(self.prefix, record.key)
        with reported("create"):
            return await self.client.add(
                item, layout.encode(record), layout.exptime(record.expires_at)
            )

    async def save(self, record: Record, expected_version: int) -> bool:
        item = item_key(self.prefix, record.key)
        with reported("save"):
            value, token = await self.client.gets(item)
            current = layout.decode(record.key, value)
            if current is None or token is None or current.version != expected_version:
                return False
            value = layout.encode(record)
            return await self.client.cas(item, value, token, layout.exptime(record.expires_at))

    async def touch(self, key: str, expires_at: float) -> None:
        item = item_key(self.prefix, key)
        with reported("touch"):
            value, token = await self.client.gets(item)
            current = layout.decode(key, value)
            if current is None or token is None:
                return
            value = layout.encode(layout.retouched(current, expires_at))
            await self.client.cas(item, value, token, layout.exptime(expires_at))

    async def delete(self, key: str) -> None:
        with reported("delete"):
            await self.client.delete(item_key(self.prefix, key))

    async def close(self) -> None:
        await self.client.close()
