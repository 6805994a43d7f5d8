"""What both faces of the tiered store share, sans I/O: the epoch record kept in the durable
store, one instance's state (the epoch it trusts, whether the fast tier is resting after a
failure, a change the fast tier missed), and what it reports (a log line, an event, counters).

``_async.py`` and its generated twin ``_sync.py`` do the I/O and call these helpers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ...events import safe
from ..base import Record, StoreError

logger = logging.getLogger("coatcheck.stores.tiered")

EPOCH_KEY = hashlib.sha256(b"coatcheck-tiered:epoch").hexdigest()
"""The durable store's key of the epoch record (a hex digest, as every store key is)."""

EPOCH_LIFETIME = 10 * 365 * 86400.0
"""How long an epoch record lives unless moved on: never purged in practice. Should it go (a
``coatcheck revoke --all``, a store emptied), the next call makes a new one, of a new number."""

PUT_ATTEMPTS = 4
"""Compare-and-set attempts to make the fast tier hold a record before the epoch is moved on
instead (only writers racing on one key without end could exhaust them)."""

_EPOCH = re.compile(rb'\{"limit":(\d{1,12})\}')


def epoch_record(version: int) -> Record:
    """A new epoch record at ``version``, with a random number of its own: the fast tier's keys
    are named for both, so an epoch record deleted and made again never names an earlier
    epoch's keys.

    Its data is shaped as a limit counter's, which the operator's commands pass by
    (:func:`coatcheck.limits.is_counter`): no session count, listing or backup includes it, and
    a backup restored never brings back an old epoch.
    """
    number = secrets.randbelow(10**12)
    return Record(EPOCH_KEY, b'{"limit":%d}' % number, time.time() + EPOCH_LIFETIME, version)


@dataclass(frozen=True, slots=True)
class Epoch:
    """An epoch as one instance read it: the prefix of the fast tier's keys in it, its
    version in the durable store (the compare-and-set token of a bump), and when it was read
    (on the store's ``clock``, ``time.monotonic`` unless given)."""

    prefix: str
    version: int
    read_at: float

    @classmethod
    def of(cls, record: Record, read_at: float) -> Epoch | None:
        """The epoch an epoch record holds, read at ``read_at``; None if it holds none."""
        match = _EPOCH.fullmatch(record.data)
        if match is None:
            return None
        return cls(f"{int(match[1])}-{record.version}-", record.version, read_at)


TierEventKind = Literal["degraded", "recovered"]


@dataclass(frozen=True, slots=True)
class TierEvent:
    """The fast tier failed (``degraded``: sessions are served from the durable store alone,
    ``reason`` the store's error) or answers again (``recovered``). ``at`` is Unix time."""

    kind: TierEventKind
    reason: str | None
    at: float

    def describe(self) -> str:
        """The event as one safe log line."""
        if self.kind == "degraded":
            return f"fast tier failed ({self.reason}): serving sessions from the durable store"
        return "fast tier answers again: serving sessions from it"


TierEventHandler = Callable[[TierEvent], None]


@dataclass(slots=True)
class TierStats:
    """Counters of one tiered store, for metrics: each only grows. Calls from several threads
    may now and then lose an increment."""

    fast_hits: int = 0
    """Loads the fast tier answered."""
    fast_misses: int = 0
    """Loads the fast tier could not answer: the durable store did (and its live record was
    copied into the fast tier)."""
    fast_failures: int = 0
    """Calls on the fast tier that failed (each one moves the epoch on)."""
    degraded_calls: int = 0
    """Calls made on the durable store alone, the fast tier resting after a failure."""
    epoch_reads: int = 0
    """Reads of the epoch from the durable store (one per ``check_interval`` at most, per
    instance, when the fast tier is in use)."""
    epoch_bumps: int = 0
    """Times this instance moved the epoch on."""


Clock = Callable[[], float]
"""Where a tiered store reads the time its intervals are counted on (seconds, monotonic)."""


class TierState:
    """One instance's view: the epoch it trusts, whether the fast tier rests, what it owes."""

    def __init__(
        self,
        *,
        check_interval: float,
        retry_interval: float,
        on_event: TierEventHandler | None,
        clock: Clock = time.monotonic,
    ) -> None:
        if check_interval < 0 or retry_interval < 0:
            raise ValueError("check_interval and retry_interval must be 0 or more seconds")
        self.clock = clock
        """What ``check_interval`` and ``retry_interval`` are counted on (seconds, monotonic)."""
        self.check_interval = check_interval
        self.retry_interval = retry_interval
        self.on_event = on_event
        self.stats = TierStats()
        self.epoch: Epoch | None = None
        self.owed = False
        """A change may have missed the fast tier and the epoch could not be moved on yet: the
        fast tier is not used until it is."""
        self.degraded = False
        self._resting_until = 0.0
        self._purged_until = 0.0

    def resting(self) -> bool:
        """Whether calls leave the fast tier alone now (counted as degraded calls)."""
        if self.clock() < self._resting_until:
            self.stats.degraded_calls += 1
            return True
        return False

    def current(self) -> Epoch | None:
        """The epoch read less than ``check_interval`` ago; None if it must be read again."""
        epoch = self.epoch
        if epoch is None or self.clock() - epoch.read_at >= self.check_interval:
            return None
        return epoch

    def adopt(self, record: Record, *, bumped: bool) -> Epoch | None:
        """Trust the epoch ``record`` holds (read, or just written by a bump); None if it
        holds none."""
        epoch = Epoch.of(record, self.clock())
        if epoch is None:
            return None
        self.epoch = epoch
        if bumped:
            self.stats.epoch_bumps += 1
            self.owed = False
        else:
            self.stats.epoch_reads += 1
        return epoch

    def moved_by_another(self) -> None:
        """Another instance moved the epoch on after this one's change: nothing is owed, and
        the epoch is read again on the next call."""
        self.epoch = None
        self.owed = False

    def failed(self, error: StoreError) -> None:
        """A call on the fast tier failed: rest it for ``retry_interval``, owe a bump, and say
        so (once per outage)."""
        self.stats.fast_failures += 1
        self._resting_until = self.clock() + self.retry_interval
        self.owed = True
        if self.degraded:
            logger.debug("the fast tier failed again: %s", safe(str(error)))
            return
        self.degraded = True
        self._emit(TierEvent("degraded", safe(str(error)), time.time()))

    def reached(self) -> None:
        """A call on the fast tier succeeded: the end of an outage, if there was one."""
        if self.degraded:
            self.degraded = False
            self._emit(TierEvent("recovered", None, time.time()))

    def purged(self, now: float) -> None:
        """The durable store purged the records expired at ``now``."""
        self._purged_until = max(self._purged_until, now)

    def trusted(self, copy: Record) -> bool:
        """Whether a copy the fast tier holds may answer a load: not when it has expired (by
        the clock, or by the ``now`` of the latest purge). Then the durable store answers, as it
        would alone."""
        return copy.expires_at > max(time.time(), self._purged_until)

    def _emit(self, event: TierEvent) -> None:
        if event.kind == "degraded":
            logger.warning("coatcheck: %s", event.describe())
        else:
            logger.info("coatcheck: %s", event.describe())
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                logger.exception("the on_event handler failed on %s", event.describe())
