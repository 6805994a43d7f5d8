"""Session stores, and :func:`from_url` to pick one by URL.

>>> from_url("memory://?max_entries=100")
<coatcheck.stores.memory.MemoryStore object at ...>
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from .base import (
    AsyncStore,
    AsyncStoreAdapter,
    Iterable,
    NotSupported,
    Purgeable,
    Record,
    Store,
    StoreError,
    StoreUnavailable,
    UserIndex,
    as_async,
)
from .file import FileStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncStore",
    "AsyncStoreAdapter",
    "FileStore",
    "Iterable",
    "MemoryStore",
    "NotSupported",
    "Purgeable",
    "Record",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UserIndex",
    "as_async",
    "from_url",
]

_TRUE = {"1", "true", "yes", "on"}


def _flag(value: str) -> bool:
    return value.lower() in _TRUE


def from_url(url: str, *, asynchronous: bool = False) -> Store | AsyncStore:
    """Build the store a URL names.

    - ``memory://`` (``?max_entries=N``)
    - ``file:///absolute/dir`` or ``file:relative/dir``
    - ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (as SQLAlchemy spells them),
      with ``?table=NAME`` and ``?offload=true``
    - ``redis://[user:password@]host[:port][/db]`` and ``rediss://`` (TLS), with
      ``?prefix=NAME:`` and ``?timeout=SECONDS``; ``redis+sentinel://[:password@]host:port
      [,host:port...]/service[/db]`` finds the master through Sentinel;
      ``redis+cluster://host:port`` (any node) uses a Redis Cluster
    - ``postgresql://[user[:password]@]host[:port]/dbname``, ``mysql://...`` and
      ``mariadb://...``, with ``?table=NAME``, ``?timeout=SECONDS`` and ``?pool_size=N``
      (other options go to libpq)
    - ``memcached://host[:port]``, with ``?prefix=NAME:``, ``?timeout=SECONDS``,
      ``?pool_size=N`` (no user index: log out everywhere is NotSupported)

    ``asynchronous=True`` gives a server store's asyncio face.

    Stores without a native async face ignore ``asynchronous``: the middleware adapts them.
    A URL coatcheck cannot use raises ValueError naming the scheme, never echoing credentials.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    try:
        if scheme == "memory":
            max_entries = query.pop("max_entries", None)
            store: Store = MemoryStore(
                max_entries=int(max_entries) if max_entries is not None else None
            )
        elif scheme == "file":
            path = unquote(parts.path)
            if not path:
                raise ValueError("file:// needs a directory path, e.g. file:///var/lib/sessions")
            store = FileStore(path)
        elif scheme == "sqlite":
            path = unquote(parts.path)
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise ValueError("sqlite:// needs a database path, e.g. sqlite:///sessions.db")
            store = SQLiteStore(
                path,
                table=query.pop("table", "coatcheck_sessions"),
                offload=_flag(query.pop("offload", "false")),
            )
        elif scheme in ("redis", "rediss", "redis+sentinel", "redis+cluster"):
            return _redis(url, query, asynchronous)
        elif scheme in ("postgresql", "postgres", "mysql", "mariadb"):
            return _sql(scheme, url, query, asynchronous)
        elif scheme == "memcached":
            return _memcached(url, query, asynchronous)
        else:
            raise ValueError(
                f"unknown session store scheme {scheme + '://' if scheme else 'in URL'}; "
                "coatcheck knows memory://, file://, sqlite://, redis://, rediss://, "
                "redis+sentinel://, redis+cluster://, "
                "postgresql://, mysql://, mariadb://, memcached://"
            )
    except ValueError as exc:
        raise ValueError(f"bad store URL ({scheme}://...): {exc}") from None
    if query:
        raise ValueError(f"bad store URL ({scheme}://...): unknown option(s) {sorted(query)}")
    return store


def _redis(url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    try:
        from .redis import DEFAULT_PREFIX, AsyncRedisStore, RedisStore  # noqa: PLC0415
    except ImportError:
        raise ValueError("redis:// needs the redis extra: pip install 'coatcheck[redis]'") from None
    prefix = query.pop("prefix", DEFAULT_PREFIX)
    timeout = float(query.pop("timeout", "2"))
    if query:
        raise ValueError(f"unknown option(s) {sorted(query)}")
    parts = urlsplit(url)
    kind = AsyncRedisStore if asynchronous else RedisStore
    if parts.scheme.lower() == "redis+sentinel":
        return kind.from_sentinel(**_sentinel_address(parts), prefix=prefix, timeout=timeout)
    if parts.scheme.lower() == "redis+cluster":
        node_url = parts._replace(scheme="redis", query="").geturl()
        return kind.from_cluster(node_url, prefix=prefix, timeout=timeout)
    server_url = parts._replace(query="").geturl()  # redis-py gets no coatcheck options
    return kind.from_url(server_url, prefix=prefix, timeout=timeout)


def _sentinel_address(parts: SplitResult) -> dict[str, Any]:
    """``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``."""
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        sentinels.append((name or "127.0.0.1", int(port or 26379)))
    service, _, db = parts.path.strip("/").partition("/")
    if not service:
        raise ValueError("redis+sentinel:// needs a service name, e.g. .../mymaster")
    return {"sentinels": sentinels, "service": service, "db": int(db or 0), "password": password}


def _sql(scheme: str, url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    try:
        from .sql import DEFAULT_TABLE, AsyncSQLStore, SQLStore  # noqa: PLC0415
    except ImportError:
        extra = "postgresql" if scheme.startswith("postgres") else "mysql"
        raise ValueError(
            f"{scheme}:// needs the {extra} extra: pip install 'coatcheck[{extra}]'"
        ) from None
    table = query.pop("table", DEFAULT_TABLE)
    timeout = float(query.pop("timeout", "5"))
    max_size = int(query.pop("pool_size", "10"))
    if query and not scheme.startswith("postgres"):
        raise ValueError(f"unknown option(s) {sorted(query)}")
    rest = "&".join(f"{k}={v}" for k, v in query.items())  # libpq's own options pass through
    server_url = urlsplit(url)._replace(query=rest).geturl()
    kind = AsyncSQLStore if asynchronous else SQLStore
    return kind.from_url(server_url, table=table, timeout=timeout, max_size=max_size)


def _memcached(url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    try:
        from .memcached import AsyncMemcachedStore, MemcachedStore  # noqa: PLC0415
        from .memcached.layout import DEFAULT_PREFIX  # noqa: PLC0415
    except ImportError:
        raise ValueError(
            "memcached:// needs the memcached extra: pip install 'coatcheck[memcached]'"
        ) from None
    prefix = query.pop("prefix", DEFAULT_PREFIX)
    timeout = float(query.pop("timeout", "2"))
    pool_size = int(query.pop("pool_size", "10"))
    if query:
        raise ValueError(f"unknown option(s) {sorted(query)}")
    kind = AsyncMemcachedStore if asynchronous else MemcachedStore
    return kind.from_url(url, prefix=prefix, timeout=timeout, pool_size=pool_size)
