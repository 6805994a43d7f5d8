"""Sessions out of a store as JSON Lines, and back into a store: a backup and its restore (the
``coatcheck export`` and ``coatcheck import`` commands; ``docs/operations.md`` has the
procedure).

One line per live session, its record as the store holds it::

    {"key": "9f86d0...", "data": "eyJjIjox...", "expires_at": 1796535523.26, "version": 3,
     "user_id": "ada", "deadline": 1796578123.26}

``key`` is the store key, a hash of the session ID (an HMAC with ``hash_secret``): the export
holds no ID, and no cookie can be made from it. ``data`` is the stored bytes in base64, as
stored: a session encrypted at rest stays encrypted, and one that is not is readable by whoever
reads the file. ``expires_at`` and ``deadline`` are Unix seconds (``deadline`` null for a store
that keeps none), ``user_id`` null for an anonymous session.

Exported: every record still live when it is read, a regenerated session's forwarding record
too (its old ID's pointer, for the seconds of its grace window). Left out: expired records, and
the limit counters and purge lease the engine keeps in the store
(:func:`coatcheck.limits.is_counter`), which are not sessions. An export is no snapshot: each
record is as it was when read.

Importing never overwrites a newer record: each line goes through the store's ``create``, which
changes nothing when the key exists; a record already there is replaced only when its version
is older than the line's (a store restored from an older copy of itself), by compare-and-set.
Lines expired by the time they are read are skipped. Keys are kept, so every cookie works again
as long as the application's ``hash_secret`` is the same.

>>> from coatcheck.stores import MemoryStore, Record
>>> store, lines = MemoryStore(), []
>>> store.create(Record("a" * 64, b'{"d":{}}', expires_at=4e9, user_id="ada"))
True
>>> export_sessions(store, lines.append).exported
1
>>> report = import_sessions(MemoryStore(), lines)
>>> report.imported, report.ok
(1, True)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import time
from collections.abc import Callable
from collections.abc import Iterable as Lines
from typing import Any

from .limits import is_counter
from .stores.base import Iterable, NotSupported, Record, Store

_KEY = re.compile(r"[\x21-\x7e]{1,128}")
"""A store key: printable ASCII without spaces, at most 128 characters (MariaDB's column)."""


class BadLine(ValueError):
    """A line of an export that is not a record; ``line`` is its number, from 1."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def to_line(record: Record) -> str:
    """A record as one line of an export (no newline)."""
    return json.dumps(
        {
            "key": record.key,
            "data": base64.b64encode(record.data).decode("ascii"),
            "expires_at": record.expires_at,
            "version": record.version,
            "user_id": record.user_id,
            "deadline": record.deadline,
        },
        separators=(",", ":"),
    )


def from_line(text: str) -> Record:
    """The record a line of an export holds; ValueError naming what is wrong with it."""
    try:
        fields = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    missing = {"key", "data", "expires_at", "version"} - fields.keys()
    if missing:
        raise ValueError(f"no {', '.join(sorted(missing))}")
    unknown = fields.keys() - {"key", "data", "expires_at", "version", "user_id", "deadline"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    key = fields["key"]
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("key is not a store key (1 to 128 printable ASCII characters)")
    try:
        data = base64.b64decode(_text(fields["data"], "data"), validate=True)
    except binascii.Error:
        raise ValueError("data is not base64") from None
    version = fields["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError("version is not a whole number of 0 or more")
    user_id = fields.get("user_id")
    if user_id is not None:
        user_id = _text(user_id, "user_id")
    deadline = fields.get("deadline")
    return Record(
        key,
        data,
        _seconds(fields["expires_at"], "expires_at"),
        version,
        user_id,
        None if deadline is None else _seconds(deadline, "deadline"),
    )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number")
    return float(value)


@dataclasses.dataclass
class ExportReport:
    """What an export did. Every record read is counted once."""

    exported: int = 0
    """Live sessions written."""
    expired: int = 0
    """Records dead when read (or unreadable): left out."""
    counters: int = 0
    """Limit counters and the purge lease: left out."""


def export_sessions(
    store: Store,
    write: Callable[[str], object],
    *,
    clock: Callable[[], float] = time.time,
    on_record: Callable[[], None] | None = None,
) -> ExportReport:
    """Write every live session of ``store`` (which must be
    :class:`~coatcheck.stores.Iterable`) as one line each, newline included, through
    ``write`` (a file's ``write``, a list's ``append``...); ``on_record()`` hears each record
    read."""
    if not isinstance(store, Iterable):
        raise NotSupported(f"{type(store).__name__} cannot list its records to export them")
    report = ExportReport()
    for record in store.iter_records():
        if is_counter(record):
            report.counters += 1
        elif record.expires_at <= clock():
            report.expired += 1
        else:
            write(to_line(record) + "\n")
            report.exported += 1
        if on_record is not None:
            on_record()
    return report


@dataclasses.dataclass
class ImportReport:
    """What an import did. Every line read is counted once in ``imported``,
    ``replaced_older``, ``skipped_existing`` or ``expired``."""

    read: int = 0
    """Records read (blank lines aside)."""
    imported: int = 0
    """Created in the store."""
    replaced_older: int = 0
    """In the store already, in an older version: replaced by the line's (compare-and-set)."""
    skipped_existing: int = 0
    """In the store already, in the line's version or a newer one (or changed or ended while
    the import looked): left as they were."""
    expired: int = 0
    """Dead by the time they were read: not imported."""

    @property
    def ok(self) -> bool:
        """Whether every record read landed in exactly one of the outcomes."""
        outcomes = self.imported + self.replaced_older + self.skipped_existing + self.expired
        return outcomes == self.read


def import_sessions(
    store: Store,
    lines: Lines[str],
    *,
    clock: Callable[[], float] = time.time,
    on_record: Callable[[], None] | None = None,
) -> ImportReport:
    """Put the records of an export's ``lines`` into ``store``, never over a newer record.

    A line that is not a record raises :class:`BadLine`; the records before it are in the
    store, and a re-run imports none of them twice. ``on_record()`` hears each record read.
    """
    report = ImportReport()
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            record = from_line(text)
        except ValueError as exc:
            raise BadLine(number, str(exc)) from None
        report.read += 1
        if record.expires_at <= clock():
            report.expired += 1
        elif store.create(record):
            report.imported += 1
        elif _replaced_if_older(store, record):
            report.replaced_older += 1
        else:
            report.skipped_existing += 1
        if on_record is not None:
            on_record()
    return report


def _replaced_if_older(store: Store, record: Record) -> bool:
    """Whether the store's copy of ``record`` was older, and is now ``record``. A copy deleted
    meanwhile stays deleted (``save`` never creates)."""
    current = store.load(record.key)
    if current is None or current.version >= record.version:
        return False
    return store.save(record, current.version)
