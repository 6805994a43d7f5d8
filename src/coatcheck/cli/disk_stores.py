"""The stores on this machine's disk, ``sqlite://`` and ``file://``, as the operator commands
see them: where a URL puts one, and how many records one holds.

Opening either store creates it (the SQLite file, the directory), which is right for a store
that is written and wrong for one that is only read: :func:`disk_path` lets a command find
out, before opening, that the store it would read is not there. Counting their records is
cheap (SQLite's ``count(*)``, a directory listing), so :func:`record_count` gives progress bars
a total; the stores on a server give none.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..stores import FileStore, SQLiteStore, Store

DISK_SCHEMES = {"sqlite": "database file", "file": "directory"}
"""The URL schemes whose store lives on this machine's disk, and what it is there."""


def disk_path(url: str) -> Path | None:
    """The file (``sqlite://``) or directory (``file://``) holding the store ``url`` names, read
    as :func:`coatcheck.stores.from_url` reads it; None for a store elsewhere (a server, memory)
    or a URL without a path (``from_url`` refuses it).

    >>> disk_path("sqlite:////var/lib/app/sessions.db"), disk_path("sqlite:///sessions.db")
    (PosixPath('/var/lib/app/sessions.db'), PosixPath('sessions.db'))
    >>> disk_path("file:///var/lib/app/sessions"), disk_path("redis://127.0.0.1:6379/0")
    (PosixPath('/var/lib/app/sessions'), None)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DISK_SCHEMES:
        return None
    path = unquote(parts.path)
    if scheme == "sqlite" and path.startswith("/"):
        path = path[1:]  # sqlite:///relative.db, sqlite:////absolute.db (as SQLAlchemy has them)
    return Path(path) if path else None


def missing_store(url: str) -> str | None:
    """What is missing when the store ``url`` names lives on disk and is not there (``"no
    database file /srv/x.db"``), else None."""
    path = disk_path(url)
    if path is None or path.exists():
        return None
    return f"no {DISK_SCHEMES[urlsplit(url).scheme.lower()]} {path}"


def record_count(store: Store) -> int | None:
    """How many records ``store`` holds, live or expired, when one cheap question tells (an
    SQLite or file store); None for any other store, or when the question fails."""
    if isinstance(store, SQLiteStore):
        return _sqlite_count(store)
    if isinstance(store, FileStore):
        with contextlib.suppress(OSError), os.scandir(store.root) as entries:
            # The records are the files whose names do not start with "." (as FileStore lists).
            return sum(1 for e in entries if not e.name.startswith(".") and e.is_file())
    return None


def _sqlite_count(store: SQLiteStore) -> int | None:
    """``count(*)`` on a read-only connection of its own (the store's are the store's)."""
    uri = f"{Path(store.path).resolve().as_uri()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            # The store's constructor checked the table name: a plain SQL identifier.
            (count,) = db.execute(f"SELECT count(*) FROM {store.table}").fetchone()  # noqa: S608
    except sqlite3.Error:
        return None
    return int(count)
