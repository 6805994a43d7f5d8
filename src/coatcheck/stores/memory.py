"""MemoryStore: sessions in this process's memory. Fast, server-coupled, gone on restart.

Load, create, save, touch and delete are O(1). Expiry is indexed by time buckets (a heap of
bucket numbers, each bucket a list of keys), so purging costs O(expired), not a scan of every
session. A key is filed once, when it is created; when a touch or save moves its expiry later,
the key stays where it is until purge reaches that bucket, finds it alive and moves it on, so a
busy session costs no extra memory.

With ``max_entries`` the least recently used session is evicted to make room. A lock makes every
call atomic across threads; no call awaits, so tasks are safe too.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterator

from .base import Iterable, Purgeable, Record, Store, UserIndex, record_of

_Key = bytes | str


class _Entry:
    __slots__ = ("data", "expires_at", "user_id", "version")

    def __init__(self, data: bytes, expires_at: float, version: int, user_id: str | None) -> None:
        self.data = data
        self.expires_at = expires_at
        self.version = version
        self.user_id = user_id


def _pack(key: str) -> _Key:
    """Hex keys (the engine's hashed IDs) are kept as 32 raw bytes; other keys as they are."""
    if len(key) == 64:
        try:
            return bytes.fromhex(key)
        except ValueError:
            pass
    return key


def _unpack(key: _Key) -> str:
    return key.hex() if isinstance(key, bytes) else key


class MemoryStore(Store, UserIndex, Purgeable, Iterable):
    """Sessions in a dict of this process.

    >>> store = MemoryStore(max_entries=10_000)
    >>> store.create(Record("k" * 64, b"{}", expires_at=2e9))
    True
    >>> store.load("k" * 64).version
    1
    """

    offload_async = False

    def __init__(self, *, max_entries: int | None = None, bucket_seconds: float = 1.0) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        if bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be positive, not {bucket_seconds}")
        self.max_entries = max_entries
        self._bucket_seconds = bucket_seconds
        self._entries: dict[_Key, _Entry] = {}
        self._buckets: dict[int, list[_Key]] = {}
        self._bucket_heap: list[int] = []
        self._users: dict[str, set[_Key]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    # -- indexes (called with the lock held) -------------------------------------------------

    def _bucket(self, expires_at: float) -> int:
        return math.floor(expires_at / self._bucket_seconds)

    def _file_expiry(self, key: _Key, expires_at: float) -> None:
        bucket = self._bucket(expires_at)
        keys = self._buckets.get(bucket)
        if keys is None:
            self._buckets[bucket] = keys = []
            heapq.heappush(self._bucket_heap, bucket)
        keys.append(key)

    def _file_user(self, key: _Key, user_id: str | None, previous: str | None) -> None:
        if previous == user_id:
            return
        if previous is not None:
            self._unfile_user(key, previous)
        if user_id is not None:
            self._users.setdefault(user_id, set()).add(key)

    def _unfile_user(self, key: _Key, user_id: str) -> None:
        keys = self._users.get(user_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._users[user_id]

    def _move_expiry(self, key: _Key, entry: _Entry, expires_at: float) -> None:
        if self._bucket(expires_at) < self._bucket(entry.expires_at):
            self._file_expiry(key, expires_at)  # earlier: file it now (later: purge follows)
        entry.expires_at = expires_at

    def _remove(self, key: _Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.user_id is not None:
            self._unfile_user(key, entry.user_id)
        # Its expiry bucket keeps a stale pointer, dropped when that bucket is purged.

    def _used(self, key: _Key, entry: _Entry) -> None:
        if self.max_entries is not None:  # most recently used last
            del self._entries[key]
            self._entries[key] = entry

    # -- Store -------------------------------------------------------------------------------

    def load(self, key: str) -> Record | None:
        return self.load_touching(key, 0.0, 0.0, 0.0)[0]

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        """Only loads (the engine touches when one is due), in the one call the engine makes
        on every request that brings a cookie: hence written out here (what :func:`_pack`
        does, too)."""
        packed: _Key = key
        if len(key) == 64:
            try:
                packed = bytes.fromhex(key)
            except ValueError:
                packed = key
        with self._lock:
            entry = self._entries.get(packed)
            if entry is None:
                return None, False
            if self.max_entries is not None:
                self._used(packed, entry)
            return record_of(
                (key, entry.data, entry.expires_at, entry.version, entry.user_id, None)
            ), False

    def create(self, record: Record) -> bool:
        key = _pack(record.key)
        with self._lock:
            if key in self._entries:
                return False
            if self.max_entries is not None:
                while len(self._entries) >= self.max_entries:
                    self._remove(next(iter(self._entries)))
            entry = _Entry(record.data, record.expires_at, record.version, record.user_id)
            self._entries[key] = entry
            self._file_expiry(key, record.expires_at)
            self._file_user(key, record.user_id, None)
            return True

    def save(self, record: Record, expected_version: int) -> bool:
        key = _pack(record.key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != expected_version:
                return False
            self._move_expiry(key, entry, record.expires_at)
            self._file_user(key, record.user_id, entry.user_id)
            entry.data, entry.version, entry.user_id = record.data, record.version, record.user_id
            self._used(key, entry)
            return True

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        """A :meth:`save` whose expiry and user are those stored (most writes): the indexes
        stay as they are, only the data and the version change."""
        key = _pack(record.key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != expected_version:
                return False
            entry.data, entry.version = record.data, record.version
            if self.max_entries is not None:
                self._used(key, entry)
            return True

    def touch(self, key: str, expires_at: float) -> None:
        packed = _pack(key)
        with self._lock:
            entry = self._entries.get(packed)
            if entry is not None:
                self._move_expiry(packed, entry, expires_at)
                self._used(packed, entry)

    def delete(self, key: str) -> None:
        with self._lock:
            self._remove(_pack(key))

    # -- capabilities ------------------------------------------------------------------------

    def list_by_user(self, user_id: str) -> list[Record]:
        with self._lock:
            keys = self._users.get(user_id, ())
            return [
                Record(_unpack(k), e.data, e.expires_at, e.version, e.user_id)
                for k in keys
                if (e := self._entries.get(k)) is not None
            ]

    def delete_by_user(self, user_id: str) -> int:
        with self._lock:
            keys = list(self._users.get(user_id, ()))
            for key in keys:
                self._remove(key)
            return len(keys)

    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Delete expired sessions (at most ``limit``), visiting only the time buckets that
        have passed, earliest first.

        A live key found in a passed bucket (its expiry moved later) is filed where it now
        belongs; each key is visited about once per touch, never once per purge. A purge that
        reaches ``limit`` leaves the rest of its bucket for the next one.
        """
        purged = 0
        if limit is not None and limit <= 0:
            return purged
        current = self._bucket(now)
        with self._lock:
            heap, buckets, entries = self._bucket_heap, self._buckets, self._entries
            while heap and heap[0] <= current and purged != limit:
                bucket = heapq.heappop(heap)
                keys = buckets.pop(bucket)
                survivors = []
                for index, key in enumerate(keys):
                    if purged == limit:  # enough for this purge: the rest wait in the bucket
                        survivors.extend(keys[index:])
                        break
                    entry = entries.get(key)
                    if entry is None:
                        continue  # deleted since
                    if entry.expires_at <= now:
                        self._remove(key)
                        purged += 1
                    elif self._bucket(entry.expires_at) > bucket:
                        self._file_expiry(key, entry.expires_at)  # touched since: follow it
                    else:
                        survivors.append(key)  # only in the bucket that holds ``now``
                if survivors:
                    buckets[bucket] = survivors
                    heapq.heappush(heap, bucket)
                    break
        return purged

    def iter_records(self) -> Iterator[Record]:
        with self._lock:
            snapshot = [
                Record(_unpack(k), e.data, e.expires_at, e.version, e.user_id)
                for k, e in self._entries.items()
            ]
        return iter(snapshot)
