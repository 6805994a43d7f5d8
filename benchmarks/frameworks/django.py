"""Django: coatcheck's session engine against Django's cache engine, both on the same Redis.

Each variant of :mod:`benchmarks.frameworks.django_app` runs under gunicorn (one sync worker),
loaded by wrk over real HTTP. Runs are bracketed by bare Django (no session middleware) as in
:mod:`benchmarks.http_load` (B A A B B C C B, the order reversing every round); a variant's ratio
is its requests over bare's in the same bracket, and coatcheck's figure against Django's cache
engine is the ratio of those two medians.
"""

from __future__ import annotations

import contextlib
import sys
import uuid

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
from . import FrameworkResult
from .brackets import REDIS_URL, forget

BARE = apps.BARE
COATCHECK = "coatcheck-redis"
DJANGO_CACHE = "django-cache-redis"
VARIANTS = (BARE, COATCHECK, DJANGO_CACHE)
DESCRIPTIONS = {
    BARE: "Django, no session middleware",
    COATCHECK: '`SESSION_ENGINE = "coatcheck.integrations.django"` on Redis '
    "(`coatcheck.integrations.django.SessionMiddleware`)",
    DJANGO_CACHE: '`SESSION_ENGINE = "django.contrib.sessions.backends.cache"` on '
    "`django.core.cache.backends.redis.RedisCache` (Django's `SessionMiddleware`)",
}
COATCHECK_SQLITE = "coatcheck-sqlite"
DJANGO_DB = "django-db-sqlite"
DATABASE_VARIANTS = (COATCHECK_SQLITE, DJANGO_DB)
"""coatcheck's engine on its SQLiteStore and Django's db engine, each on an SQLite file: counted
by :mod:`benchmarks.framework_instructions` only (this benchmark does not serve them)."""
SQLITE_ENV = "COATCHECK_BENCH_SQLITE"
"""The SQLite file of a database variant."""
VARIANT_ENV = "COATCHECK_BENCH_DJANGO"
REDIS_ENV = "COATCHECK_BENCH_REDIS"
PREFIX_ENV = "COATCHECK_BENCH_PREFIX"

TITLE = "Django: coatcheck vs Django's cache session engine, both on Redis"
CONTENDERS = (COATCHECK, DJANGO_CACHE)
TARGET_VS_CACHE = 0.90
"""coatcheck should be within 10 % of Django's cache engine (or ahead of it) when a session is
read or written (anonymous requests run the same code in both)."""
GUNICORN_FLAGS = ["--workers", "1", "--worker-class", "sync", "--log-level", "warning"]


def serve(variant: str, prefix: str) -> contextlib.AbstractContextManager[str]:
    """Run ``variant`` under gunicorn on a free local port; yield its base URL; stop it after."""

    def command(port: int) -> list[str]:
        gunicorn = [sys.executable, "-m", "gunicorn", *GUNICORN_FLAGS, "--bind", f"{HOST}:{port}"]
        return [*gunicorn, "benchmarks.frameworks.django_app:application"]

    env = {VARIANT_ENV: variant, REDIS_ENV: REDIS_URL, PREFIX_ENV: prefix}
    return serve_process(command, env)


def measure(settings: LoadSettings) -> FrameworkResult:
    prefix = f"coatcheck-bench-django-{uuid.uuid4().hex[:8]}:"
    runs: dict[str, dict[str, list[float]]] = {v: {s.name: [] for s in SCENARIOS} for v in VARIANTS}
    ratios: dict[str, dict[str, list[float]]] = {
        v: {s.name: [] for s in SCENARIOS} for v in CONTENDERS
    }
    try:
        with contextlib.ExitStack() as servers:
            base_urls = {v: servers.enter_context(serve(v, prefix)) for v in VARIANTS}
            cookies = {v: session_cookie(v, base_urls[v]) for v in VARIANTS}

            def load(variant: str, scenario: Scenario, seconds: int) -> float:
                cookie = cookies[variant] if scenario.with_cookie else None
                return wrk(base_urls[variant] + scenario.path, cookie, settings, seconds)

            def measured(variant: str, scenario: Scenario) -> float:
                rps = load(variant, scenario, settings.duration)
                runs[variant][scenario.name].append(rps)
                return rps

            for variant in VARIANTS:
                for scenario in SCENARIOS:
                    load(variant, scenario, settings.warmup)
            for round_number in range(settings.rounds):
                order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
                for scenario in SCENARIOS:
                    before = measured(BARE, scenario)
                    for variant in order:
                        ours = measured(variant, scenario) + measured(variant, scenario)
                        after = measured(BARE, scenario)
                        ratios[variant][scenario.name].append(ours / (before + after))
                        before = after
                print(f"  Django round {round_number + 1}/{settings.rounds} done", flush=True)
    finally:
        forget(prefix, anywhere=True)  # Django puts its cache key prefix first
    return _result(settings, runs, ratios)


def _result(
    settings: LoadSettings,
    runs: dict[str, dict[str, list[float]]],
    ratios: dict[str, dict[str, list[float]]],
) -> FrameworkResult:
    def ratio(variant: str, scenario: str) -> float:
        return 1.0 if variant == BARE else median(ratios[variant][scenario])

    headers = ["app"]
    for scenario in SCENARIOS:
        headers += [f"{scenario.name} req/s", "x bare"]
    rows = []
    for variant in VARIANTS:
        row: list[object] = [variant]
        for scenario in SCENARIOS:
            row += [f"{median(runs[variant][scenario.name]):,.0f}"]
            row += [f"{ratio(variant, scenario.name):.3f}"]
        rows.append(row)
    versus = []
    targets = []
    for scenario in SCENARIOS:
        ours, theirs = ratio(COATCHECK, scenario.name), ratio(DJANGO_CACHE, scenario.name)
        versus.append((scenario.name, f"{ours:.3f}", f"{theirs:.3f}", f"{ours / theirs:.2f}"))
        if not scenario.with_cookie:  # the same code in both engines: no target to meet
            continue
        targets.append(
            Target(
                f"Django {scenario.name}: coatcheck >= {TARGET_VS_CACHE:.2f}x Django's cache "
                "engine",
                f"{ours / theirs:.2f}x ({ours:.3f} vs {theirs:.3f} x bare)",
                ours / theirs >= TARGET_VS_CACHE,
            )
        )
    brackets = [
        (
            variant,
            scenario.name,
            " / ".join(f"{r:.2f}" for r in ratios[variant][scenario.name]),
            _range(ratios[variant][scenario.name]),
        )
        for variant in CONTENDERS
        for scenario in SCENARIOS
    ]
    variants = "\n".join(f"- `{v}`: {DESCRIPTIONS[v]}" for v in VARIANTS)
    markdown = f"""\
Server: gunicorn `{" ".join(GUNICORN_FLAGS)}` (one process) per app; Redis at {HOST}:6379 for
both session engines, each under a key prefix of this run's.
Load: `wrk {" ".join(settings.wrk_flags())}` on {HOST}, {PLACEMENT}.
After a {settings.warmup} s warm-up, {settings.rounds} rounds of bracketed runs (bare Django,
the app twice, bare Django again), as in section 1; "x bare" is the median of the brackets'
ratios. Scenarios as in section 1 (the session holds the same 200 bytes of JSON).

{variants}

{table(headers, rows)}

coatcheck against Django's cache engine (the ratio of their "x bare" medians; above 1 is faster):

{table(["scenario", "coatcheck x bare", "cache engine x bare", "coatcheck / cache"], versus)}

The ratio of every bracket, and their range. For anonymous requests both engines run the same
code (Django's middleware makes a session object and never touches the store), so the gap
between their anonymous ratios shows how precise these medians are; a sync gunicorn worker
serves one connection at a time, which makes its runs noisier than uvicorn's.

{table(["app", "scenario", "ratio to bare in each round", "range"], brackets, left=2)}
"""
    return FrameworkResult(markdown, targets)
