"""What ``coatcheck stats`` counts: live sessions, who holds them, and how big they are.

>>> from coatcheck.stores import Record
>>> stats = StoreStats.of([Record("a" * 64, b"{}", 20.0, user_id="ada"),
...                        Record("b" * 64, b"{}{}", 20.0), Record("c" * 64, b"", 5.0)], now=10.0)
>>> stats.live, stats.expired, stats.logged_in, stats.anonymous, stats.total_bytes
(2, 1, 1, 1, 6)
>>> stats.top_users(5)
[('ada', 1)]
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import Any

from ..codec import is_token_record
from ..limits import is_counter
from ..stores import Record


@dataclasses.dataclass
class StoreStats:
    """Counts over the live records of a store (expired ones still stored are only counted)."""

    live: int = 0
    expired: int = 0
    anonymous: int = 0
    logged_in: int = 0
    total_bytes: int = 0
    max_bytes: int = 0
    per_user: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    eviction_policy: str | None = None
    """The ``maxmemory-policy`` under which the store (a Redis) may evict live sessions."""

    @classmethod
    def of(cls, records: Iterable[Record], now: float) -> StoreStats:
        stats = cls()
        for record in records:
            stats.add(record, now)
        return stats

    def add(self, record: Record, now: float) -> None:
        """Count ``record``, unless it is no session (a limit counter, the purge lease, a
        token's revocation or spent record)."""
        if is_counter(record) or is_token_record(record):
            return
        if record.expires_at <= now:
            self.expired += 1
            return
        self.live += 1
        size = len(record.data)
        self.total_bytes += size
        self.max_bytes = max(self.max_bytes, size)
        if record.user_id is None:
            self.anonymous += 1
        else:
            self.logged_in += 1
            self.per_user[record.user_id] += 1

    @property
    def users(self) -> int:
        """Distinct users with at least one live session."""
        return len(self.per_user)

    @property
    def mean_bytes(self) -> float:
        return self.total_bytes / self.live if self.live else 0.0

    def top_users(self, count: int) -> list[tuple[str, int]]:
        """The ``count`` users with the most live sessions, most first."""
        return self.per_user.most_common(count)

    def as_json(self, top: int) -> dict[str, Any]:
        return {
            "live": self.live,
            "expired": self.expired,
            "anonymous": self.anonymous,
            "logged_in": self.logged_in,
            "users": self.users,
            "bytes": {
                "total": self.total_bytes,
                "mean": round(self.mean_bytes, 1),
                "max": self.max_bytes,
            },
            "top_users": [{"user": user, "sessions": n} for user, n in self.top_users(top)],
            "eviction_policy": self.eviction_policy,
        }
