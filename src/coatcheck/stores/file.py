"""FileStore: one file per session in a directory. Survives restarts; coupled to one machine.

Layout: ``<root>/<key>`` holds a JSON header line ``{"v": version, "u": user_id}`` then the
data; the file's modification time *is* the expiry, so a touch is one ``utime`` and never a
rewrite. Writes go to a temporary file that is renamed into place (atomic); create, save and
delete hold an ``flock`` on one of 256 lock files (by key prefix), so several processes can share
a directory. POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import heapq
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from .base import Iterable, Purgeable, Record, Store, StoreUnavailable, UserIndex, unreadable

logger = logging.getLogger("coatcheck")

_SAFE_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")
_NS = 1_000_000_000


F = TypeVar("F", bound=Callable[..., Any])


def _unavailable_on_os_error(method: F) -> F:
    """Report a failing file system (gone, full, read-only) as :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(self: FileStore, *args: Any) -> Any:
        try:
            return method(self, *args)
        except OSError as exc:
            raise StoreUnavailable(f"FileStore {str(self.root)!r}: {exc}") from exc

    return cast(F, wrapper)


class FileStore(Store, UserIndex, Purgeable, Iterable):
    """Sessions as files under ``root`` (created if missing, mode 0700).

    >>> import tempfile
    >>> store = FileStore(tempfile.mkdtemp())
    >>> store.create(Record("a" * 64, b"{}", expires_at=2e9, user_id="alice"))
    True
    >>> [r.user_id for r in store.list_by_user("alice")]
    ['alice']
    """

    offload_async = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._locks = self.root / ".locks"
        self._locks.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.fullmatch(key):
            raise ValueError(f"FileStore keys must be 1-128 of [0-9A-Za-z_-]: {key!r}")
        return self.root / key

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        fd = os.open(self._locks / key[:2], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, path: Path, key: str) -> Record | None:
        try:
            with path.open("rb") as f:
                expires_ns = os.fstat(f.fileno()).st_mtime_ns
                header, _, data = f.read().partition(b"\n")
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(header)
            version, user_id = int(meta["v"]), meta["u"]
            if user_id is not None and not isinstance(user_id, str):
                raise TypeError("user id is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            # The reason's kind only: an error's text may quote what the file holds.
            logger.warning(
                "FileStore: unreadable session file %s (%s)", path.name, type(exc).__name__
            )
            return unreadable(key)
        return Record(key, data, expires_ns / _NS, version, user_id)

    def _write(self, record: Record) -> None:
        header = json.dumps({"v": record.version, "u": record.user_id}).encode()
        tmp = self.root / f".tmp-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header + b"\n" + record.data)
            expires_ns = round(record.expires_at * _NS)
            os.utime(tmp, ns=(expires_ns, expires_ns))
            os.replace(tmp, self._path(record.key))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- Store -------------------------------------------------------------------------------

    @_unavailable_on_os_error
    def load(self, key: str) -> Record | None:
        return self._read(self._path(key), key)

    @_unavailable_on_os_error
    def create(self, record: Record) -> bool:
        path = self._path(record.key)
        with self._locked(record.key):
            if path.exists():
                return False
            self._write(record)
            return True

    @_unavailable_on_os_error
    def save(self, record: Record, expected_version: int) -> bool:
        path = self._path(record.key)
        with self._locked(record.key):
            current = self._read(path, record.key)
            if current is None or current.version != expected_version:
                return False
            self._write(record)
            return True

    @_unavailable_on_os_error
    def touch(self, key: str, expires_at: float) -> None:
        expires_ns = round(expires_at * _NS)
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._path(key), ns=(expires_ns, expires_ns))

    @_unavailable_on_os_error
    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked(key):
            path.unlink(missing_ok=True)

    # -- capabilities (each a scan of the directory) -----------------------------------------

    def _keys(self) -> Iterator[str]:
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_file():
                    yield entry.name

    def iter_records(self) -> Iterator[Record]:
        for key in self._keys():
            record = self._read(self.root / key, key)
            if record is not None:
                yield record

    def _expired(self, now_ns: int) -> Iterator[tuple[int, str]]:
        """The expiry (ns) and key of each file that has expired by ``now_ns``."""
        for key in self._keys():
            try:
                expires_ns = (self.root / key).stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if expires_ns <= now_ns:
                yield expires_ns, key

    def list_by_user(self, user_id: str) -> list[Record]:
        return [r for r in self.iter_records() if r.user_id == user_id]

    def delete_by_user(self, user_id: str) -> int:
        records = self.list_by_user(user_id)
        for record in records:
            self.delete(record.key)
        return len(records)

    @_unavailable_on_os_error
    def purge_expired(self, now: float, limit: int | None = None) -> int:
        """Delete the files whose expiry has passed (at most ``limit``, those expired longest
        first). The directory has no index: every file's modification time is read."""
        if limit is not None and limit <= 0:
            return 0
        now_ns = round(now * _NS)
        found = self._expired(now_ns)
        expired = list(found) if limit is None else heapq.nsmallest(limit, found)
        purged = 0
        for _, key in expired:
            path = self.root / key
            with self._locked(key):  # saved or touched since the scan: it stays
                try:
                    if path.stat().st_mtime_ns > now_ns:
                        continue
                except FileNotFoundError:
                    continue
                path.unlink()
                purged += 1
        return purged
