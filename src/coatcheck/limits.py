"""Limits that keep a flood from exhausting the store: counters kept in the store itself.

A counter is a small record under a hashed key named for what it counts and the current time
window (``create`` per client network, ``create`` overall, ``reject`` per client network). It is
read and bumped with the store's own compare-and-set, so it works on every store and across
every app instance sharing it, and it expires with its window. A request over a limit gets
:class:`LimitExceeded`, which the middleware turns into a 429 with ``Retry-After``.

Counting stops at the limit: a flood past it costs one read per request, never a write.

The purge the app runs itself (``purge_interval``) keeps one more such record: its lease, under
a hashed key of its own, taken with the same compare-and-set by the one instance that purges,
and expiring after the interval.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .ids import store_key
from .stores.base import Record

MAX_COUNT_ATTEMPTS = 8
"""Compare-and-set attempts of one count; past them, the request is treated as over the limit."""
_COUNT = re.compile(rb'\{"limit":(\d{1,12})\}')


class LimitExceeded(Exception):
    """A request went over one of the configured limits.

    ``status`` is the HTTP status to answer (429), ``retry_after`` the seconds until the
    window resets, ``reason`` what was limited.
    """

    def __init__(self, reason: str, retry_after: float, status: int = 429) -> None:
        super().__init__(f"limit exceeded: {reason}")
        self.reason = reason
        self.retry_after = max(1, math.ceil(retry_after))
        self.status = status


def counter_key(name: str, window_start: int, secret: bytes | None) -> str:
    """The store key of counter ``name`` in the window starting at ``window_start``."""
    return store_key(f"coatcheck-limit:{name}:{window_start}", secret)


def window(now: float, seconds: float) -> tuple[int, float]:
    """The current window's number and the time it ends."""
    number = int(now // seconds)
    return number, (number + 1) * seconds


def counter_record(key: str, count: int, ends: float, version: int) -> Record:
    return Record(key, b'{"limit":%d}' % count, ends, version)


def count_of(record: Record | None) -> int:
    """The count a counter record holds (0 when there is none, or it is not a counter)."""
    if record is None:
        return 0
    found = _COUNT.fullmatch(record.data)
    return int(found[1]) if found else 0


PURGE_LEASE = b'{"lease":"purge"}'
"""What the purge lease record holds."""


def lease_key(secret: bytes | None) -> str:
    """The store key of the purge lease (one per store and ``hash_secret``)."""
    return store_key("coatcheck-purge", secret)


def lease_record(key: str, until: float, version: int) -> Record:
    return Record(key, PURGE_LEASE, until, version)


def is_counter(record: Any) -> bool:
    """Whether a stored record is a limit counter (or the purge lease) rather than a session
    (tools skip those)."""
    data = getattr(record, "data", b"")
    return isinstance(data, bytes) and (_COUNT.fullmatch(data) is not None or data == PURGE_LEASE)
