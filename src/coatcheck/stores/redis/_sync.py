"""RedisStore: sessions in Redis through redis-py's sync client.

Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis.cluster as cluster_module
import redis.sentinel as sentinel_module
from redis import Redis
from redis.exceptions import NoScriptError, RedisError

from ..base import Iterable, Record, Store, UserIndex
from . import layout
from .layout import DEFAULT_PREFIX, reported, session_key, user_key

logger = logging.getLogger("coatcheck")


class RedisStore(Store, UserIndex, Iterable):
    """Sessions in Redis (one round trip per call; see :mod:`~coatcheck.stores.redis.layout`).

    A failure to reach Redis, or an answer later than ``timeout``, raises
    :class:`~coatcheck.stores.StoreUnavailable`; the client reconnects by itself when Redis
    is back.
    """

    offload_async = True

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX, cluster: bool = False) -> None:
        self.client = client
        self.prefix = prefix
        self.cluster = cluster
        scripts = layout.CLUSTER if cluster else layout.SINGLE
        self._create = client.register_script(scripts.create)
        self._save = client.register_script(scripts.save)
        self._save_data = client.register_script(layout.SAVE_DATA)
        self._touch = client.register_script(scripts.touch)
        self._delete = client.register_script(scripts.delete)
        self._rotate = client.register_script(scripts.rotate)
        self._load_touching = client.register_script(scripts.load_touching)
        self._list_user = client.register_script(layout.LIST_USER)
        self._delete_user = client.register_script(layout.DELETE_USER)
        self._index_add = client.register_script(layout.INDEX_ADD)
        self._policy_checked = False

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0
    ) -> RedisStore:
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
    ) -> RedisStore:
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

    @classmethod
    def from_cluster(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = 2.0
    ) -> RedisStore:
        """A store on the Redis Cluster that ``url`` (``redis://`` of any node) reaches.

        Each session lives in one slot; a user's index lives in another, so the store updates
        it with a command of its own: not atomic with the session's, and repaired on read.
        """
        cluster_type: Any = cluster_module.RedisCluster  # redis-py leaves this untyped
        client = cluster_type.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, prefix=prefix, cluster=True)

    def _eval(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script: ``EVALSHA``, and its source once if Redis lacks it (after a
        restart). Straight to the client: redis-py's own wrapper costs more on every call."""
        client = self.client
        try:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = client.script_load(script.script)
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def _file(self, user: bytes | str | None, key: str, expires_at: float) -> None:
        """Cluster only: add a session to its user's index (the scripts cannot reach it)."""
        if self.cluster and user:
            name = user.decode() if isinstance(user, bytes) else user
            args = [layout.expiry_ms(expires_at), session_key(self.prefix, key)]
            self._eval(self._index_add, [user_key(self.prefix, name)], args)

    def _unfile(self, user: bytes | None, key: str) -> None:
        if self.cluster and user:
            self.client.zrem(user_key(self.prefix, user.decode()), session_key(self.prefix, key))

    def load(self, key: str) -> Record | None:
        with reported("load"):
            fields = self.client.hgetall(session_key(self.prefix, key))
        return layout.from_hash(key, fields)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        if not self._policy_checked:
            self._check_eviction()
        if min_gain >= layout.SCRIPTED_TOUCH_BELOW:  # most loads need no touch: no script
            return self.load(key), False
        args = [self.prefix, repr(expires_at), repr(min_gain), repr(now)]
        with reported("load"):
            row = self._eval(self._load_touching, [session_key(self.prefix, key)], args)
            record, touched = layout.from_touching(key, row)
            if touched and record is not None:
                self._file(record.user_id, key, record.expires_at)
        return record, touched

    def eviction_policy(self) -> str | None:
        """The ``maxmemory-policy`` under which this Redis may evict live sessions (any but
        ``noeviction`` once ``maxmemory`` is set), or None: one ``INFO memory``. None too when
        Redis will not say (a managed Redis may refuse INFO)."""
        try:
            info = self.client.info("memory")
        except RedisError:
            return None
        return layout.evicting_policy(info)

    def _check_eviction(self) -> None:
        """Warn, once per store, at its first request's load or first new session, when Redis
        may evict sessions; a failure to ask is no failure of the call."""
        self._policy_checked = True
        policy = self.eviction_policy()
        if policy is not None:
            logger.warning("%s", layout.eviction_warning(policy))

    def create(self, record: Record) -> bool:
        if not self._policy_checked:
            self._check_eviction()
        keys = [session_key(self.prefix, record.key)]
        with reported("create"):
            created = self._eval(self._create, keys, layout.write_args(self.prefix, record))
            if created == 1:
                self._file(record.user_id, record.key, record.expires_at)
        return bool(created == 1)

    def save(self, record: Record, expected_version: int) -> bool:
        keys = [session_key(self.prefix, record.key)]
        args = [*layout.write_args(self.prefix, record), expected_version]
        with reported("save"):
            saved = self._eval(self._save, keys, args)
            if saved == 1:
                self._file(record.user_id, record.key, record.expires_at)
        return bool(saved == 1)

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        keys = [session_key(self.prefix, record.key)]
        args = [record.data, record.version, expected_version]
        with reported("save"):
            saved = self._eval(self._save_data, keys, args)
        return bool(saved == 1)

    def touch(self, key: str, expires_at: float) -> None:
        keys = [session_key(self.prefix, key)]
        with reported("touch"):
            user = self._eval(self._touch, keys, layout.touch_args(self.prefix, expires_at))
            if user != 0:
                self._file(user, key, expires_at)

    def delete(self, key: str) -> None:
        with reported("delete"):
            user = self._eval(self._delete, [session_key(self.prefix, key)], [self.prefix])
            self._unfile(user, key)

    def rotate(self, old_key: str, record: Record) -> bool:
        if self.cluster:  # the two keys live in different slots: create, then delete
            return super().rotate(old_key, record)
        keys = [session_key(self.prefix, record.key), session_key(self.prefix, old_key)]
        with reported("rotate"):
            rotated = self._eval(self._rotate, keys, layout.write_args(self.prefix, record))
        return bool(rotated == 1)

    def list_by_user(self, user_id: str) -> list[Record]:
        index = user_key(self.prefix, user_id)
        if not self.cluster:
            with reported("list_by_user"):
                rows = self._eval(self._list_user, [index], [])
            return layout.from_rows(self.prefix, rows)
        with reported("list_by_user"):
            names = self.client.zrange(index, 0, -1)
            records = self._fetch(names, len(session_key(self.prefix, "")))
            found = {session_key(self.prefix, record.key).encode() for record in records}
            gone = [name for name in names if name not in found]
            if gone:
                self.client.zrem(index, *gone)
        return records

    def delete_by_user(self, user_id: str) -> int:
        index = user_key(self.prefix, user_id)
        if not self.cluster:
            with reported("delete_by_user"):
                deleted = self._eval(self._delete_user, [index], [])
            return int(deleted)
        with reported("delete_by_user"):
            names = self.client.zrange(index, 0, -1)
            deleted = 0
            for name in names:  # one slot each: no multi-key DEL across them
                deleted += self.client.delete(name)
            self.client.delete(index)
        return int(deleted)

    def iter_records(self) -> Iterator[Record]:
        start = len(session_key(self.prefix, ""))
        batch: list[bytes] = []
        with reported("iter_records"):
            for name in self.client.scan_iter(match=session_key(self.prefix, "*"), count=500):
                batch.append(name)
                if len(batch) == 500:
                    for record in self._fetch(batch, start):
                        yield record
                    batch = []
            for record in self._fetch(batch, start):
                yield record

    def _fetch(self, names: list[bytes], start: int) -> list[Record]:
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            rows = pipe.execute()
        found = (
            layout.from_hash(n.decode()[start:], row) for n, row in zip(names, rows, strict=True)
        )
        return [record for record in found if record is not None]

    def close(self) -> None:
        self.client.close()
