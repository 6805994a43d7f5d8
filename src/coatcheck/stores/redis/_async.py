"""AsyncRedisStore: sessions in Redis through redis-py's asyncio client.

This file is the source of the sync :class:`~coatcheck.stores.redis.RedisStore`:
``scripts/unasync.py`` generates ``_sync.py`` from it, and the test suite fails when that copy
is stale. The key layout and the scripts are in :mod:`coatcheck.stores.redis.layout`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio.sentinel as sentinel_module
from redis.asyncio import Redis

from ..base import AsyncStore, Record
from . import layout
from .layout import DEFAULT_PREFIX, reported, session_key, user_key


class AsyncRedisStore(AsyncStore):
    """Sessions in Redis (one round trip per call; see :mod:`~coatcheck.stores.redis.layout`).

    A failure to reach Redis, or an answer later than ``timeout``, raises
    :class:`~coatcheck.stores.StoreUnavailable`; the client reconnects by itself when Redis
    is back.
    """

    offload_async = True

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._create = client.register_script(layout.CREATE)
        self._save = client.register_script(layout.SAVE)
        self._touch = client.register_script(layout.TOUCH)
        self._delete = client.register_script(layout.DELETE)
        self._rotate = client.register_script(layout.ROTATE)
        self._load_touching = client.register_script(layout.LOAD_TOUCHING)
        self._list_user = client.register_script(layout.LIST_USER)
        self._delete_user = client.register_script(layout.DELETE_USER)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0
    ) -> AsyncRedisStore:
        """A store on the Redis at ``url`` (``redis://`` or ``rediss://``), pooled."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry_on_timeout=False,
        )
        return cls(client, prefix=prefix)

    @classmethod
    def from_sentinel(
        cls,
        sentinels: list[tuple[str, int]],
        service: str,
        *,
        db: int = 0,
        password: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 2.0,
    ) -> AsyncRedisStore:
        """A store on the master that Sentinel names ``service``, followed through failovers."""
        sentinel_type: Any = sentinel_module.Sentinel  # redis-py leaves these calls untyped
        sentinel = sentinel_type(
            sentinels,
            socket_timeout=timeout,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        )
        client: Redis = sentinel.master_for(
            service,
            db=db,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return cls(client, prefix=prefix)

    async def load(self, key: str) -> Record | None:
        with reported("load"):
            fields = await self.client.hgetall(session_key(self.prefix, key))
        return layout.from_hash(key, fields)

    async def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        args = [self.prefix, repr(expires_at), repr(min_gain), repr(now)]
        with reported("load"):
            row = await self._load_touching(keys=[session_key(self.prefix, key)], args=args)
        return layout.from_touching(key, row)

    async def create(self, record: Record) -> bool:
        keys = [session_key(self.prefix, record.key)]
        with reported("create"):
            created = await self._create(keys=keys, args=layout.write_args(self.prefix, record))
        return bool(created == 1)

    async def save(self, record: Record, expected_version: int) -> bool:
        keys = [session_key(self.prefix, record.key)]
        args = [*layout.write_args(self.prefix, record), expected_version]
        with reported("save"):
            saved = await self._save(keys=keys, args=args)
        return bool(saved == 1)

    async def touch(self, key: str, expires_at: float) -> None:
        keys = [session_key(self.prefix, key)]
        with reported("touch"):
            await self._touch(keys=keys, args=layout.touch_args(self.prefix, expires_at))

    async def delete(self, key: str) -> None:
        with reported("delete"):
            await self._delete(keys=[session_key(self.prefix, key)], args=[self.prefix])

    async def rotate(self, old_key: str, record: Record) -> bool:
        keys = [session_key(self.prefix, record.key), session_key(self.prefix, old_key)]
        with reported("rotate"):
            rotated = await self._rotate(keys=keys, args=layout.write_args(self.prefix, record))
        return bool(rotated == 1)

    async def list_by_user(self, user_id: str) -> list[Record]:
        with reported("list_by_user"):
            rows = await self._list_user(keys=[user_key(self.prefix, user_id)])
        return layout.from_rows(self.prefix, rows)

    async def delete_by_user(self, user_id: str) -> int:
        with reported("delete_by_user"):
            deleted = await self._delete_user(keys=[user_key(self.prefix, user_id)])
        return int(deleted)

    async def iter_records(self) -> AsyncIterator[Record]:
        start = len(session_key(self.prefix, ""))
        batch: list[bytes] = []
        with reported("iter_records"):
            async for name in self.client.scan_iter(match=session_key(self.prefix, "*"), count=500):
                batch.append(name)
                if len(batch) == 500:
                    for record in await self._fetch(batch, start):
                        yield record
                    batch = []
            for record in await self._fetch(batch, start):
                yield record

    async def _fetch(self, names: list[bytes], start: int) -> list[Record]:
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            rows = await pipe.execute()
        found = (
            layout.from_hash(n.decode()[start:], row) for n, row in zip(names, rows, strict=True)
        )
        return [record for record in found if record is not None]

    async def close(self) -> None:
        await self.client.aclose()
