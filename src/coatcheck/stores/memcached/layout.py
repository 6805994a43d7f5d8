"""What a Memcached store keeps, and the client set-up its two faces share.

One item per session, ``<prefix>s:<key>``, whose value is a header line
``<version> <expires_at> <user id or ->`` then the data, and whose Memcached expiry is the
session's (an absolute Unix time). Commands per call: load ``gets``; create ``add``; save and
touch ``gets`` then ``cas`` (a compare-and-set on Memcached's own token, after checking the
version in the header); delete ``delete``. Memcached cannot list keys, so there is no user
index and no iteration: :class:`~coatcheck.stores.NotSupported`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from ..base import Record, StoreUnavailable, require_extra, stored_number, unreadable

T = TypeVar("T")

DEFAULT_PREFIX = "coatcheck:"


def item_key(prefix: str, key: str) -> bytes:
    return f"{prefix}s:{key}".encode()


def exptime(expires_at: float) -> int:
    """Memcached's expiry: an absolute Unix time (anything over 30 days is read as one)."""
    return math.ceil(expires_at)


def encode(record: Record) -> bytes:
    user = record.user_id if record.user_id is not None else "-"
    return b"%d %r %s\n" % (record.version, record.expires_at, user.encode()) + record.data


def decode(key: str, value: bytes | None) -> Record | None:
    """A record from an item's value; None when missing or unreadable."""
    if not value:
        return None
    header, _, data = value.partition(b"\n")
    try:
        version, expires_at, user = header.decode().split(" ", 2)
        expires = stored_number(expires_at)
        return Record(key, data, expires, int(version), None if user == "-" else user)
    except ValueError:  # UnicodeDecodeError is one too
        return unreadable(key)


def retouched(record: Record, expires_at: float) -> Record:
    return record._replace(expires_at=expires_at)


def _client_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError, asyncio.TimeoutError]
    with contextlib.suppress(ImportError):
        import pymemcache.exceptions  # noqa: PLC0415

        errors.append(pymemcache.exceptions.MemcacheError)
    with contextlib.suppress(ImportError):
        import aiomcache.exceptions  # noqa: PLC0415

        errors.append(aiomcache.exceptions.ClientException)
    return tuple(errors)


CLIENT_ERRORS = _client_errors()


@contextlib.contextmanager
def reported(call: str) -> Iterator[None]:
    """Turn client errors (refused, timed out, protocol) into :class:`StoreUnavailable`."""
    try:
        yield
    except CLIENT_ERRORS as exc:
        raise StoreUnavailable(f"Memcached {call}: {type(exc).__name__}: {exc}") from exc


class AsyncClient:
    """aiomcache, with every call bounded by ``timeout``."""

    def __init__(self, host: str, port: int, *, timeout: float, pool_size: int) -> None:
        require_extra("memcached", "memcached://", "aiomcache")
        import aiomcache  # noqa: PLC0415

        self.timeout = timeout
        self._client = aiomcache.Client(host, port, pool_size=pool_size)

    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        return await asyncio.wait_for(awaitable, self.timeout)

    async def gets(self, key: bytes) -> tuple[bytes | None, int | None]:
        value, token = await self._bounded(self._client.gets(key))
        return value, token

    async def add(self, key: bytes, value: bytes, expire: int) -> bool:
        return bool(await self._bounded(self._client.add(key, value, expire)))

    async def cas(self, key: bytes, value: bytes, token: int, expire: int) -> bool:
        return bool(await self._bounded(self._client.cas(key, value, token, expire)))

    async def delete(self, key: bytes) -> None:
        await self._bounded(self._client.delete(key))

    async def close(self) -> None:
        await self._client.close()


class Client:
    """pymemcache's pooled client, with socket timeouts, replies awaited, and callers waiting
    (up to ``timeout``) for a free connection instead of failing when all are lent out."""

    def __init__(self, host: str, port: int, *, timeout: float, pool_size: int) -> None:
        require_extra("memcached", "memcached://", "pymemcache")
        from pymemcache.client.base import PooledClient  # noqa: PLC0415

        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(pool_size)
        self._client: Any = PooledClient(
            (host, port),
            connect_timeout=timeout,
            timeout=timeout,
            max_pool_size=pool_size,
            default_noreply=False,
        )

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.timeout):
            raise TimeoutError("no free Memcached connection")
        try:
            yield
        finally:
            self._slots.release()

    def gets(self, key: bytes) -> tuple[bytes | None, int | None]:
        with self._slot():
            value, token = self._client.gets(key)
        return value, token

    def add(self, key: bytes, value: bytes, expire: int) -> bool:
        with self._slot():
            return bool(self._client.add(key, value, expire))

    def cas(self, key: bytes, value: bytes, token: int, expire: int) -> bool:
        with self._slot():
            return bool(self._client.cas(key, value, token, expire))

    def delete(self, key: bytes) -> None:
        with self._slot():
            self._client.delete(key)

    def close(self) -> None:
        self._client.close()
