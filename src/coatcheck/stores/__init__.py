"""Session stores, :func:`from_url` to pick one by URL, and :func:`redacted` to print that URL.

>>> from_url("memory://?max_entries=100")
<coatcheck.stores.memory.MemoryStore object at ...>
>>> redacted("postgresql://app:s3cret@db/sessions?sslpassword=k3y&table=web")
'postgresql://app:***@db/sessions?sslpassword=***&table=web'
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, unquote_plus, urlsplit

from .base import (
    AsyncStore,
    AsyncStoreAdapter,
    Iterable,
    MissingExtra,
    NotSupported,
    Purgeable,
    Record,
    Store,
    StoreError,
    StoreUnavailable,
    UserIndex,
    as_async,
    require_extra,
)
from .file import FileStore
from .memory import MemoryStore
from .migrating import AsyncMigratingStore, MigratingStore
from .sqlite import SQLiteStore
from .tiered import AsyncTieredStore, TieredStore

__all__ = [
    "AsyncMigratingStore",
    "AsyncStore",
    "AsyncStoreAdapter",
    "AsyncTieredStore",
    "FileStore",
    "Iterable",
    "MemoryStore",
    "MigratingStore",
    "MissingExtra",
    "NotSupported",
    "Purgeable",
    "Record",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TieredStore",
    "UserIndex",
    "as_async",
    "from_url",
    "redacted",
    "scrubbed",
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
      ``mariadb://...``, with ``?table=NAME``, ``?timeout=SECONDS`` and ``?pool_size=N``;
      a PostgreSQL URL's other options go to libpq as written, a MySQL one's may be
      ``charset``, ``unix_socket``, ``ssl``, ``ssl_ca``, ``ssl_cert`` and ``ssl_key``
    - ``memcached://host[:port]``, with ``?prefix=NAME:``, ``?timeout=SECONDS``,
      ``?pool_size=N`` (no user index: log out everywhere is NotSupported)

    ``asynchronous=True`` gives a server store's asyncio face.

    Stores without a native async face ignore ``asynchronous``: the middleware adapts them.
    A URL coatcheck cannot use raises ValueError naming the scheme, never echoing credentials.
    A store whose driver is not installed raises :class:`MissingExtra` (a ValueError too), one
    line naming the extra to install.
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
    except MissingExtra:
        raise
    except ValueError as exc:
        raise ValueError(f"bad store URL ({scheme}://...): {scrubbed(str(exc), url)}") from None
    if query:
        raise ValueError(f"bad store URL ({scheme}://...): unknown option(s) {sorted(query)}")
    return store


def _redis(url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    require_extra("redis", f"{urlsplit(url).scheme.lower()}://", "redis")
    from .redis import DEFAULT_PREFIX, AsyncRedisStore, RedisStore  # noqa: PLC0415

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


_SQL_OPTIONS = ("table", "timeout", "pool_size")
"""The options of an SQL store's URL that are coatcheck's; the others are the driver's."""


def _sql(scheme: str, url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    from .sql import DEFAULT_TABLE, AsyncSQLStore, SQLStore  # noqa: PLC0415

    table = query.pop("table", DEFAULT_TABLE)
    timeout = float(query.pop("timeout", "5"))
    max_size = int(query.pop("pool_size", "10"))
    parts = urlsplit(url)
    driver_options = [  # as written: the driver decodes them (the pool refuses unknown ones)
        option
        for option in parts.query.split("&")
        if option and unquote_plus(option.partition("=")[0]) not in _SQL_OPTIONS
    ]
    server_url = parts._replace(query="&".join(driver_options)).geturl()
    kind = AsyncSQLStore if asynchronous else SQLStore
    return kind.from_url(server_url, table=table, timeout=timeout, max_size=max_size)


def _memcached(url: str, query: dict[str, str], asynchronous: bool) -> Store | AsyncStore:
    from .memcached import AsyncMemcachedStore, MemcachedStore  # noqa: PLC0415
    from .memcached.layout import DEFAULT_PREFIX  # noqa: PLC0415

    prefix = query.pop("prefix", DEFAULT_PREFIX)
    timeout = float(query.pop("timeout", "2"))
    pool_size = int(query.pop("pool_size", "10"))
    if query:
        raise ValueError(f"unknown option(s) {sorted(query)}")
    kind = AsyncMemcachedStore if asynchronous else MemcachedStore
    return kind.from_url(url, prefix=prefix, timeout=timeout, pool_size=pool_size)


# -- printing a store URL ------------------------------------------------------------------

REDACTED = "***"
"""What a credential is shown as."""

_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:)?(?://(?P<netloc>[^/?#]*))?"
    r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?",
    re.DOTALL,
)
"""RFC 3986's own split of a URI (appendix B): it matches any string, and never raises."""

_SECRET_OPTION = re.compile(
    r"pass|pwd|secret|token|auth|key|credential|signature|(?:^|[^a-z])sig(?:$|[^a-z])"
)
"""A query option whose name says it may hold a credential: ``password``, ``passwd``,
``sslpassword``, ``passfile``, ``secret``, ``client_secret``, ``token``, ``auth``,
``api_key``, ``access_key``, ``sslkey``, ``credentials``, ``sig``..."""


def _is_secret_option(name: str) -> bool:
    return _SECRET_OPTION.search(unquote_plus(name).lower()) is not None


def _redact(url: str) -> tuple[str, list[str]]:
    """``url`` with every credential shown as ``***``, and the credentials, as written."""
    parts = _URL.fullmatch(url)
    assert parts is not None  # every group is optional: the pattern matches any string
    shown, hidden = [parts["scheme"] or ""], []
    if parts["netloc"] is not None:
        after_slashes = url[len(shown[0]) + 2 :]
        # The userinfo ends at the netloc's last "@". A netloc without one that holds a ":" may
        # still be the start of a password with a "/", "?" or "#" left unencoded: then the last
        # "@" of the whole URL ends it, so that such a password is hidden whole, not cut there.
        netloc = parts["netloc"]
        within = after_slashes if "@" not in netloc and ":" in netloc else netloc
        userinfo, at, _ = within.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon:  # the user name stays: it says who connects, and is no secret
            shown.append(f"//{user}:{REDACTED}@")
            hidden.append(password)
            parts = _URL.fullmatch("//" + after_slashes[len(userinfo) + 1 :])
            assert parts is not None
            shown.append(parts["netloc"])
        else:
            shown.append("//" + parts["netloc"])
    shown.append(parts["path"])
    if parts["query"] is not None:  # split as the drivers split it, on "&" only
        options = []
        for option in parts["query"].split("&"):
            name, equals, value = option.partition("=")
            if value and _is_secret_option(name):
                options.append(f"{name}{equals}{REDACTED}")
                hidden.append(value)
            else:
                options.append(option)
        shown.append("?" + "&".join(options))
    if parts["fragment"]:  # no store reads one
        shown.append("#" + REDACTED)
        hidden.append(parts["fragment"])
    elif parts["fragment"] is not None:
        shown.append("#")
    return "".join(shown), hidden


def redacted(url: str) -> str:
    """``url`` fit to print or log: every credential it can carry shown as ``***``.

    That is the password of its userinfo (the user name stays), the value of every query
    option whose name says it may be a credential (``password``, ``passwd``, ``pass``,
    ``sslpassword``, ``secret``, ``token``, ``auth``, ``key``, ``access_key``, ``sig``... in
    any case), and a fragment. Everything else is shown as given. Any string is accepted.

    >>> redacted("redis://:hunter2@127.0.0.1:6379/0?prefix=app:")
    'redis://:***@127.0.0.1:6379/0?prefix=app:'
    """
    return _redact(url)[0]


def scrubbed(message: str, url: str) -> str:
    """``message`` (a driver's error, say) with every credential of ``url`` in it shown as
    ``***``, however it was spelled there: as written in the URL, or decoded."""
    spellings = {
        spelling
        for secret in _redact(url)[1]
        for spelling in (secret, unquote(secret), unquote_plus(secret))
        if spelling
    }
    for spelling in sorted(spellings, key=len, reverse=True):
        message = message.replace(spelling, REDACTED)
    return message
