"""Bare-bracketed wrk runs for one framework: its bare app against its session variants.

The method is :mod:`benchmarks.http_load`'s (B A A B runs, a bracket's ratio is the variant's
requests over bare's in the same seconds, the median over rounds, the order reversing every
round), with servers that a framework module starts its own way (uvicorn, aiohttp's runner).
Every variant serves ``/anon``, ``/setup``, ``/read`` and ``/write`` as the Starlette apps do
(:mod:`benchmarks.apps`), so ``http_load.session_cookie`` and its scenarios apply unchanged.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .. import apps
from ..http_load import (
    HOST,
    PLACEMENT,
    SCENARIOS,
    LoadSettings,
    Scenario,
    _range,
    serve_process,
    session_cookie,
    wrk,
)
from ..report import Target, median, table

REDIS_URL = os.environ.get("COATCHECK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
"""The Redis server every session variant stores to (keys under a prefix of the run's own)."""
VARIANT_ENV = "COATCHECK_BENCH_VARIANT"
PREFIX_ENV = "COATCHECK_BENCH_PREFIX"


def run_prefix() -> str:
    """A key prefix for one benchmark run, so runs share Redis with anything else."""
    return f"coatcheck-bench-{secrets.token_hex(4)}"


def forget(prefix: str, *, anywhere: bool = False) -> None:
    """Delete every Redis key a run made: those beginning with its prefix (or, ``anywhere``,
    holding it, for libraries that put their own text first)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        pattern = f"*{prefix}*" if anywhere else f"{prefix}*"
        names = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(names), 1000):
            client.delete(*names[start : start + 1000])
    finally:
        client.close()


@dataclass(frozen=True)
class Variant:
    """One app of a framework benchmark, and what it is."""

    name: str
    description: str


@dataclass
class BracketResult:
    """Every run's requests per second, and every bracket's ratio to the bare app."""

    variants: tuple[Variant, ...]
    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    ratios: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def ratio(self, variant: str, scenario: str) -> float:
        return 1.0 if variant == apps.BARE else median(self.ratios[variant][scenario])

    def versus(self, ours: str, theirs: str, scenario: Scenario) -> Target:
        """The target that coatcheck (``ours``) is at least as fast as ``theirs``."""
        mine, rival = self.ratio(ours, scenario.name), self.ratio(theirs, scenario.name)
        return Target(
            f"{ours}, {scenario.name}: at least as fast as {theirs}",
            f"{mine:.3f}x vs {rival:.3f}x bare ({mine / rival:.2f}x)",
            mine >= rival,
        )

    def markdown(self, settings: LoadSettings, server: str, store: str) -> str:
        headers = ["app"]
        for scenario in SCENARIOS:
            headers += [f"{scenario.name} req/s", "x bare"]
        rows = []
        for variant in self.variants:
            row: list[object] = [variant.name]
            for scenario in SCENARIOS:
                row += [
                    f"{median(self.runs[variant.name][scenario.name]):,.0f}",
                    f"{self.ratio(variant.name, scenario.name):.3f}",
                ]
            rows.append(row)
        brackets = [
            (variant.name, scenario.name, _range(self.ratios[variant.name][scenario.name]))
            for variant in self.variants[1:]
            for scenario in SCENARIOS
        ]
        described = "\n".join(f"- `{v.name}`: {v.description}" for v in self.variants)
        return f"""\
Server: {server}. Store: {store}.
Load: `wrk {" ".join(settings.wrk_flags())}` on {HOST}, {PLACEMENT}; {settings.rounds} rounds of
bare-bracketed runs as in section 1 (ratios are to the same framework's bare app).

{described}

{table(headers, rows)}

{table(["app", "scenario", "range of bracket ratios"], brackets, left=2)}
"""


WRITERS = 128
"""Sessions the writing scenario spreads its requests over (several per wrk connection)."""


def many_sessions_script(cookies: list[str], folder: Path) -> Path:
    """A wrk script sending each request with the next of ``cookies``, round robin.

    Concurrent writes then go to different sessions, as they do when each client writes its
    own; one session written by every connection at once measures write contention instead.
    """
    listed = ",\n".join(f'  "{cookie}"' for cookie in cookies)
    script = folder / "many-sessions.lua"
    script.write_text(
        f"cookies = {{\n{listed}\n}}\n"
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  return wrk.format(nil, nil, {["Cookie"] = cookies[counter % #cookies + 1]})\n'
        "end\n"
    )
    return script


def python(*arguments: str) -> list[str]:
    return [sys.executable, *arguments]


def measure(
    variants: tuple[Variant, ...],
    command: Callable[[int], list[str]],
    settings: LoadSettings,
    prefix: str,
) -> BracketResult:
    """Serve every variant at once, then run the brackets; ``variants[0]`` is the bare app."""
    result = BracketResult(variants)
    names = [variant.name for variant in variants]
    contenders = names[1:]
    with contextlib.ExitStack() as servers:
        base_urls = {
            name: servers.enter_context(
                serve_process(command, {VARIANT_ENV: name, PREFIX_ENV: prefix})
            )
            for name in names
        }
        cookies = {name: session_cookie(name, base_urls[name]) for name in names}
        scratch = Path(servers.enter_context(tempfile.TemporaryDirectory()))
        writers: dict[str, Path] = {}
        for name in names:
            folder = scratch / name
            folder.mkdir()
            many = [session_cookie(name, base_urls[name]) for _ in range(WRITERS)]
            writers[name] = many_sessions_script(many, folder)

        def load(name: str, scenario: Scenario, seconds: int) -> float:
            url = base_urls[name] + scenario.path
            if scenario.name == "writing":
                return wrk(url, None, settings, seconds, writers[name])
            cookie = cookies[name] if scenario.with_cookie else None
            return wrk(url, cookie, settings, seconds)

        def measured(name: str, scenario: Scenario) -> float:
            rps = load(name, scenario, settings.duration)
            result.runs[name][scenario.name].append(rps)
            return rps

        for name in names:
            result.runs[name] = {scenario.name: [] for scenario in SCENARIOS}
            result.ratios[name] = {scenario.name: [] for scenario in SCENARIOS}
            for scenario in SCENARIOS:
                load(name, scenario, settings.warmup)
        for round_number in range(settings.rounds):
            order = contenders if round_number % 2 == 0 else contenders[::-1]
            for scenario in SCENARIOS:
                before = measured(apps.BARE, scenario)
                for name in order:
                    ours = measured(name, scenario) + measured(name, scenario)
                    after = measured(apps.BARE, scenario)
                    result.ratios[name][scenario.name].append(ours / (before + after))
                    before = after
            print(f"  round {round_number + 1}/{settings.rounds} done", flush=True)
    return result
