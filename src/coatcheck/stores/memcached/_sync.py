"""MemcachedStore: sessions in Memcached through pymemcache.

Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..base import Record, Store
from . import layout
from .layout import DEFAULT_PREFIX, Client, item_key, reported


class MemcachedStore(Store):
    """Sessions in Memcached: native expiry, compare-and-set through ``gets``/``cas``.

    Memcached cannot find a user's sessions, so ``list_by_user`` and ``delete_by_user`` (log
    out everywhere) raise :class:`~coatcheck.stores.NotSupported`.
    """

    offload_async = True

    def __init__(self, client: Client, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0, pool_size: int = 10
    ) -> MemcachedStore:
        """A store on the Memcached at ``memcached://host[:port]``."""
        parts = urlsplit(url)
        client = Client(
            parts.hostname or "127.0.0.1", parts.port or 11211, timeout=timeout, pool_size=pool_size
        )
        return cls(client, prefix=prefix)

    def load(self, key: str) -> Record | None:
        with reported("load"):
            value, _ = self.client.gets(item_key(self.prefix, key))
        return layout.decode(key, value)

    def create(self, record: Record) -> bool:
        item = item_key(self.prefix, record.key)
        with reported("create"):
            return self.client.add(item, layout.encode(record), layout.exptime(record.expires_at))

    def save(self, record: Record, expected_version: int) -> bool:
        item = item_key(self.prefix, record.key)
        with reported("save"):
            value, token = self.client.gets(item)
            current = layout.decode(record.key, value)
            if current is None or token is None or current.version != expected_version:
                return False
            value = layout.encode(record)
            return self.client.cas(item, value, token, layout.exptime(record.expires_at))

    def touch(self, key: str, expires_at: float) -> None:
        item = item_key(self.prefix, key)
        with reported("touch"):
            value, token = self.client.gets(item)
            current = layout.decode(key, value)
            if current is None or token is None:
                return
            value = layout.encode(layout.retouched(current, expires_at))
            self.client.cas(item, value, token, layout.exptime(expires_at))

    def delete(self, key: str) -> None:
        with reported("delete"):
            self.client.delete(item_key(self.prefix, key))

    def close(self) -> None:
        self.client.close()
