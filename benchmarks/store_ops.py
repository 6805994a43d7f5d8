"""Store calls per request, counted on real stores behind coatcheck's middleware, in-process.

Each scenario sends its requests through the same benchmark app the HTTP benchmark serves (via
httpx's ASGI transport), with the store wrapped in :class:`CountingStore` and a clock the
benchmark moves, so the throttled touch of read-only requests can be shown over simulated time.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from coatcheck.stores import MemoryStore, SQLiteStore, Store
from coatcheck.testing import CountingStore, FakeClock

from . import apps
from .report import Target, table

METHODS = ("load", "create", "save", "touch", "delete")
REQUESTS = 100
READ_SPACING = 6.0
"""Seconds between the requests of the slow read-only scenario (100 requests span 10 minutes)."""
TOUCH_INTERVAL = 60.0
"""coatcheck's default ``touch_interval``, which the apps keep."""


@dataclass(frozen=True)
class OpsScenario:
    """Requests to one route, spaced ``spacing`` simulated seconds apart."""

    name: str
    path: str
    with_session: bool
    spacing: float = 0.0


OPS_SCENARIOS = (
    OpsScenario("anonymous", "/anon", with_session=False),
    OpsScenario("read-only", "/read", with_session=True),
    OpsScenario(
        f"read-only, one request every {READ_SPACING:g} s", "/read", True, spacing=READ_SPACING
    ),
    OpsScenario("writing", "/write", with_session=True),
)


@dataclass(frozen=True)
class OpsRow:
    store: str
    scenario: OpsScenario
    calls: Counter[str]

    def per_request(self, method: str) -> float:
        return self.calls[method] / REQUESTS

    def total(self) -> float:
        return self.calls.total() / REQUESTS


async def _count(store: CountingStore, scenario: OpsScenario) -> Counter[str]:
    clock = FakeClock(1_700_000_000.0)
    app = apps.coatcheck_app(store, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        if scenario.with_session:
            (await client.get("/setup")).raise_for_status()
        store.calls.clear()
        for _ in range(REQUESTS):
            clock.now += scenario.spacing
            response = await client.get(scenario.path)
            response.raise_for_status()
            if scenario.path == "/read" and response.text != apps.READ_BODY:
                raise RuntimeError(f"the session was lost in {scenario.name}: {response.text!r}")
    return Counter(store.calls)


def measure() -> list[OpsRow]:
    """Count the store calls of every scenario on a MemoryStore and on an SQLiteStore."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as scratch:
        stores: list[tuple[str, Callable[[], Store]]] = [
            ("MemoryStore", MemoryStore),
            ("SQLiteStore", lambda: SQLiteStore(Path(scratch) / "ops.db")),
        ]
        for name, make in stores:
            for scenario in OPS_SCENARIOS:
                store = CountingStore(make())
                try:
                    calls = asyncio.run(_count(store, scenario))
                finally:
                    store.close()
                rows.append(OpsRow(name, scenario, calls))
    return rows


def _expected(scenario: OpsScenario) -> tuple[str, Callable[[Counter[str]], bool]]:
    """What a scenario should cost per request, and the check of a count against it."""
    if not scenario.with_session:
        return "no call", lambda calls: calls.total() == 0
    if scenario.path == "/write":
        return "load 1 + save 1", lambda calls: calls == Counter(load=REQUESTS, save=REQUESTS)
    touches = int(REQUESTS * scenario.spacing // TOUCH_INTERVAL)
    return (
        f"load 1, touch at most once per {TOUCH_INTERVAL:g} s",
        lambda calls: (
            calls["load"] == REQUESTS
            and calls["touch"] <= touches
            and calls.total() == REQUESTS + calls["touch"]
        ),
    )


def targets(rows: list[OpsRow]) -> list[Target]:
    found = []
    for row in rows:
        expected, check = _expected(row.scenario)
        measured = ", ".join(f"{m} {row.calls[m]}" for m in METHODS if row.calls[m]) or "none"
        found.append(
            Target(
                f"{row.store}, {row.scenario.name}: {expected}",
                f"{measured} in {REQUESTS} requests",
                check(row.calls),
            )
        )
    return found


def markdown(rows: list[OpsRow]) -> str:
    headers = ["store", "scenario", *METHODS, "total"]
    cells = [
        [row.store, row.scenario.name]
        + [f"{row.per_request(m):.2f}" for m in METHODS]
        + [f"{row.total():.2f}"]
        for row in rows
    ]
    return f"""\
Store calls per request, averaged over {REQUESTS} requests after the session was created (the
creating request is not counted), through the benchmark app with coatcheck's middleware in
process (httpx's ASGI transport) and the store wrapped in a counting store. The clock stands still
unless a scenario spaces its requests; coatcheck's `touch_interval` is {TOUCH_INTERVAL:g} s.

{table(headers, cells, left=2)}
"""
