"""Prometheus metrics: the lifecycle's events, how long sessions lived, and the store's calls.

The ``metrics`` extra (``pip install 'coatcheck[metrics]'``, on prometheus-client). Two pieces,
each on prometheus-client's default registry unless given a :class:`SessionMetrics` of another:

- ``metrics=True``, an option of every middleware and integration
  (:attr:`~coatcheck.config.SessionConfig.metrics`), counts the events the engine reports
  (:mod:`coatcheck.events`), in front of the application's own ``on_event``:

  - ``coatcheck_session_events_total{event}``: ``created``, ``logged_in``, ``logged_out``,
    ``regenerated``, ``expired``, ``revoked`` (the sessions a revocation ended: one event of
    ``logout(everywhere=True)`` may end several), ``rejected`` and ``flagged``; every one of
    them present from the start, at 0;
  - ``coatcheck_session_duration_seconds``, a histogram of how long sessions lived, from
    creation to their end, observed when the engine knows it: a session found expired on load
    (or that ended while a request had it), and one revoked as its user's oldest
    (``max_sessions_per_user``). A logout does not observe it yet: the engine does not learn
    when the session it ends was created.

- :func:`instrumented` wraps a store so that its calls are timed and counted:

  - ``coatcheck_store_operation_seconds{store,operation}``, a histogram per call: ``load``
    (``load_touching`` too), ``create``, ``save`` (``save_keeping_expiry`` too), ``touch``,
    ``delete``, ``rotate``, ``list_by_user``, ``delete_by_user``, ``purge_expired``;
  - ``coatcheck_store_errors_total{store,operation}``: calls that raised (a
    :class:`~coatcheck.stores.StoreError` such as
    :class:`~coatcheck.stores.StoreUnavailable`, or anything else), but for
    :class:`~coatcheck.stores.NotSupported`, which says a store lacks a capability;
  - ``coatcheck_save_conflicts_total``: saves refused by compare-and-set, each of them retried
    by the engine on the newer record.

``store`` is the kind of store (``memory``, ``sqlite``, ``redis``, ``postgresql``, ...) unless
named. No label ever holds a session ID, a store key or a user.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from coatcheck.stores import MemoryStore
>>> metrics = SessionMetrics(CollectorRegistry())
>>> store = instrumented(MemoryStore(), metrics=metrics)
>>> store.load("0" * 64) is None
True
>>> 'coatcheck_store_operation_seconds_count{operation="load",store="memory"} 1.0' in (
...     generate_latest(metrics.registry).decode()
... )
True

Off (the default), nothing here is imported and nothing on the request path changes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, get_args, overload

from ._observed import OPERATIONS, Observed, observed, store_name
from .events import Chained, EventHandler, EventKind, SessionEvent
from .stores.base import AsyncStore, MissingExtra, NotSupported, Store

if TYPE_CHECKING:
    from .stores.tiered import TierStats

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingExtra(
        f"coatcheck.metrics needs the metrics extra: pip install 'coatcheck[metrics]' ({exc})",
        name=exc.name,
    ) from None

__all__ = [
    "COUNTED",
    "SESSION_BUCKETS",
    "STORE_BUCKETS",
    "SessionMetrics",
    "counting",
    "default_metrics",
    "instrumented",
    "is_timed",
]

COUNTED: tuple[EventKind, ...] = tuple(kind for kind in get_args(EventKind) if kind != "purged")
"""The events ``coatcheck_session_events_total`` counts: all but ``purged``, which names no
session (a purge the application runs itself, ``purge_interval``)."""
SESSION_BUCKETS = (
    1.0,
    10.0,
    60.0,
    5 * 60.0,
    15 * 60.0,
    30 * 60.0,
    60 * 60.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    12 * 3600.0,
    24 * 3600.0,
    7 * 86400.0,
)
"""The buckets of ``coatcheck_session_duration_seconds``: a second to a week (the default
timeouts are 30 minutes idle and 12 hours absolute)."""
STORE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""The buckets of ``coatcheck_store_operation_seconds``: 100 µs (an in-process store) to 5 s
(the SQL stores' default timeout; Redis's is 2 s)."""


class SessionMetrics:
    """coatcheck's metrics, registered in ``registry`` (prometheus-client's default one unless
    given; a registry holds them once, so make one of these per registry).

    :meth:`record` is an ``on_event`` handler; :meth:`instrumented` wraps a store.
    """

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        """Where the metrics are registered (None: nowhere, as prometheus-client allows)."""
        self.events = Counter(
            "coatcheck_session_events",
            "Session lifecycle events, by kind (revoked: the sessions a revocation ended).",
            ["event"],
            registry=registry,
        )
        self.durations = Histogram(
            "coatcheck_session_duration_seconds",
            "How long sessions lived, from creation to their end (expired, revoked).",
            buckets=SESSION_BUCKETS,
            registry=registry,
        )
        self.store_seconds = Histogram(
            "coatcheck_store_operation_seconds",
            "Session store calls, by store and operation, in seconds.",
            ["store", "operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "coatcheck_store_errors",
            "Session store calls that raised, by store and operation.",
            ["store", "operation"],
            registry=registry,
        )
        self.save_conflicts = Counter(
            "coatcheck_save_conflicts",
            "Saves refused by compare-and-set (another writer came first); each is retried.",
            registry=registry,
        )
        self._counters = {kind: self.events.labels(kind) for kind in COUNTED}
        self._tiers = _TierCollector()
        if registry is not None:
            registry.register(self._tiers)

    def watch_tiers(self, store: Tiered, *, name: str = "tiered") -> None:
        """Report a :class:`~coatcheck.stores.TieredStore` (or its async twin) at each scrape:
        ``coatcheck_fast_tier_down{store}`` (1 while sessions are served from the durable
        store alone) and ``coatcheck_fast_tier_calls_total{store,outcome}`` (``hit``,
        ``miss``, ``failure``, ``degraded``), read from the store's own counters (nothing is
        added to a request)."""
        self._tiers.stores[name] = store

    def record(self, event: SessionEvent) -> None:
        """Count ``event``, and observe how long its session lived when it says (an
        ``on_event`` handler)."""
        counter = self._counters.get(event.kind)
        if counter is None:  # purged
            return
        counter.inc(max(event.count, 0))
        if event.lived is not None:
            self.durations.observe(event.lived)

    def counting(self, handler: EventHandler | None = None) -> EventHandler:
        """An ``on_event`` handler that counts each event here, then hands it to ``handler``."""
        return Chained(self.record, handler)

    @overload
    def instrumented(self, store: Store, *, name: str | None = None) -> Store: ...
    @overload
    def instrumented(self, store: AsyncStore, *, name: str | None = None) -> AsyncStore: ...
    def instrumented(
        self, store: Store | AsyncStore, *, name: str | None = None
    ) -> Store | AsyncStore:
        """``store`` with every call timed and counted here (see :func:`instrumented`)."""
        return observed(store, _Timer(self, name or store_name(store)))


class _Timer:
    """The probe of one instrumented store: its histogram and counters, labelled once."""

    def __init__(self, metrics: SessionMetrics, store: str) -> None:
        self.store = store
        self.metrics = metrics
        self.seconds = {op: metrics.store_seconds.labels(store, op) for op in OPERATIONS}
        self.errors = {op: metrics.store_errors.labels(store, op) for op in OPERATIONS}
        self.conflicts = metrics.save_conflicts

    def begin(self, operation: str) -> float:
        return time.perf_counter()

    def end(
        self, operation: str, begun: float, result: object, error: BaseException | None
    ) -> None:
        if isinstance(error, NotSupported):  # no such call in this store: nothing was done
            return
        self.seconds[operation].observe(time.perf_counter() - begun)
        if error is not None:
            if isinstance(error, Exception):  # not a cancellation
                self.errors[operation].inc()
        elif result is False and operation == "save":
            self.conflicts.inc()


class Tiered(Protocol):
    """What the metrics read of a tiered store."""

    @property
    def degraded(self) -> bool: ...
    @property
    def stats(self) -> TierStats: ...


_OUTCOMES = (
    ("hit", "fast_hits"),
    ("miss", "fast_misses"),
    ("failure", "fast_failures"),
    ("degraded", "degraded_calls"),
)


class _TierCollector(Collector):
    """The fast tiers' state, read from their stores when Prometheus scrapes."""

    def __init__(self) -> None:
        self.stores: dict[str, Tiered] = {}

    def describe(self) -> list[Metric]:
        return []  # collected only when watched: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        down = GaugeMetricFamily(
            "coatcheck_fast_tier_down",
            "1 while a TieredStore serves sessions from its durable store alone.",
            labels=["store"],
        )
        calls = CounterMetricFamily(
            "coatcheck_fast_tier_calls",
            "A TieredStore's loads and calls, by how its fast tier served them.",
            labels=["store", "outcome"],
        )
        for name, store in self.stores.items():
            down.add_metric([name], 1.0 if store.degraded else 0.0)
            stats = store.stats
            for outcome, field in _OUTCOMES:
                calls.add_metric([name, outcome], float(getattr(stats, field)))
        yield down
        yield calls


@functools.cache
def default_metrics() -> SessionMetrics:
    """The metrics on prometheus-client's default registry (what ``metrics=True`` counts in),
    made once per process."""
    return SessionMetrics(REGISTRY)


def counting(handler: EventHandler | None = None) -> EventHandler:
    """An ``on_event`` handler that counts each event in :func:`default_metrics`, then hands it
    to ``handler``: what ``metrics=True`` makes of ``on_event``."""
    return default_metrics().counting(handler)


@overload
def instrumented(
    store: Store, *, metrics: SessionMetrics | None = None, name: str | None = None
) -> Store: ...
@overload
def instrumented(
    store: AsyncStore, *, metrics: SessionMetrics | None = None, name: str | None = None
) -> AsyncStore: ...
def instrumented(
    store: Store | AsyncStore, *, metrics: SessionMetrics | None = None, name: str | None = None
) -> Store | AsyncStore:
    """``store``, its every call timed in ``coatcheck_store_operation_seconds``, those that
    raise counted in ``coatcheck_store_errors_total`` and saves refused by compare-and-set in
    ``coatcheck_save_conflicts_total``, in ``metrics`` (:func:`default_metrics` unless given).

    A sync store stays sync and an async one async, with the same capabilities; ``name`` is
    the ``store`` label (the kind of store unless given: name them apart when an application
    has two of one kind).
    """
    chosen = metrics if metrics is not None else default_metrics()
    return chosen.instrumented(store, name=name)


def is_timed(store: Store | AsyncStore) -> bool:
    """Whether ``store``, or a store it wraps for tracing or metrics, is already timed by
    :func:`instrumented` (so that ``metrics=True`` does not time it twice)."""
    while isinstance(store, Observed):
        if isinstance(store.probe, _Timer):
            return True
        store = store.store
    return False
