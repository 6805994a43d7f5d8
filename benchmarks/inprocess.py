"""Each app's own cost per request in microseconds, driven in-process with no server or socket.

The HTTP ratios carry the noise of this machine and of the server; here the same apps are called
directly as ASGI apps, in batches that alternate between the apps many times, so the cost that a
session layer adds to a request stands out to within a fraction of a microsecond.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from . import apps
from .http_load import BARE_COOKIE, SCENARIOS, Scenario
from .report import median, table

BATCH = 100
ROUNDS = 60

Message = MutableMapping[str, Any]


def _scope(path: str, cookie: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk/4.1.0")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    pass


async def _session_cookie(app: Starlette) -> str:
    """Call ``GET /setup`` and return the ``Cookie`` header naming the session it made."""
    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    await app(_scope("/setup", None), _receive, keep)
    headers = dict(sent[0].get("headers", []))
    set_cookie: bytes | None = headers.get(b"set-cookie")
    return BARE_COOKIE if set_cookie is None else set_cookie.decode("latin-1").partition(";")[0]


@dataclass
class InProcessResult:
    """Microseconds per request of every batch, by app and scenario."""

    micros: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def cost(self, variant: str, scenario: str) -> float:
        return median(self.micros[variant][scenario])

    def added(self, variant: str, scenario: str) -> float:
        """The median over rounds of the app's cost less bare Starlette's in the same round."""
        pairs = zip(self.micros[variant][scenario], self.micros[apps.BARE][scenario], strict=True)
        return median(ours - bare for ours, bare in pairs)

    def markdown(self, bare_rps: dict[str, float] | None = None) -> str:
        headers = ["app"]
        for scenario in SCENARIOS:
            headers += [f"{scenario.name} us", "added us"]
        rows = []
        for variant in apps.VARIANTS:
            row: list[object] = [variant]
            for scenario in SCENARIOS:
                added = self.added(variant, scenario.name)
                row += [f"{self.cost(variant, scenario.name):.1f}", f"{added:+.1f}"]
            rows.append(row)
        text = f"""\
The same apps called directly as ASGI apps (no server, no socket; the response is discarded):
{ROUNDS} rounds, each running {BATCH} requests of every scenario through every app in turn.
"us" is the median time per request; "added us" the median, over rounds, of the app's time less
bare Starlette's in the same round: what the session layer costs a request.

{table(headers, rows)}
"""
        if bare_rps is None:
            return text
        implied = []
        for variant in apps.VARIANTS[1:]:
            row = [variant]
            for scenario in SCENARIOS:
                request = 1e6 / bare_rps[scenario.name]
                ratio = request / (request + self.added(variant, scenario.name))
                row.append(f"{ratio:.3f}")
            implied.append(row)
        per_request = ", ".join(f"{s.name} {1e6 / bare_rps[s.name]:.0f} us" for s in SCENARIOS)
        return f"""{text}
A cross-check of the HTTP ratios: bare Starlette's server spent per request (a second over
its measured req/s) about {per_request}; adding the cost above gives the ratio to bare
each app should reach if nothing else differed. The two measurements ran a few minutes apart, so
this holds only to within the drift of this machine's speed between them.

{table(["app", *(f"{s.name} x bare" for s in SCENARIOS)], implied)}
"""


async def _measure(built: dict[str, Starlette]) -> InProcessResult:
    cookies = {variant: await _session_cookie(app) for variant, app in built.items()}
    result = InProcessResult()
    variants = list(built)
    for variant in variants:
        result.micros[variant] = {scenario.name: [] for scenario in SCENARIOS}

    async def batch(variant: str, scenario: Scenario) -> float:
        app = built[variant]
        cookie = cookies[variant] if scenario.with_cookie else None
        start = time.perf_counter()
        for _ in range(BATCH):
            await app(_scope(scenario.path, cookie), _receive, _discard)
        return (time.perf_counter() - start) / BATCH * 1e6

    for scenario in SCENARIOS:
        for variant in variants:  # warm-up
            await batch(variant, scenario)
    for round_number in range(ROUNDS):
        shift = round_number % len(variants)
        for scenario in SCENARIOS:
            for variant in variants[shift:] + variants[:shift]:
                result.micros[variant][scenario.name].append(await batch(variant, scenario))
    return result


def measure() -> InProcessResult:
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as scratch:
        sqlite_path = str(Path(scratch) / "sessions.db")
        built = {variant: apps.build(variant, sqlite_path) for variant in apps.VARIANTS}
        return asyncio.run(_measure(built))
