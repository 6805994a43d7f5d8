"""Flask: coatcheck against Flask-Session, both on the same Redis, over real HTTP with wrk.

Each app runs under gunicorn with one sync worker (pinned like the servers of
:mod:`benchmarks.http_load`). The two are compared in brackets, Flask-Session, coatcheck twice,
Flask-Session again (the order reversed every round); a bracket's ratio is coatcheck's requests
over Flask-Session's in the same seconds, and the reported ratio is the median over the rounds.
"""

from __future__ import annotations

import contextlib
import sys
import uuid

from ..apps import APP_ENV
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
from .flask_apps import (
    COATCHECK,
    DESCRIPTIONS,
    PREFIX_ENV,
    REDIS_ENV,
    VARIANTS,
)

TITLE = "Flask: coatcheck against Flask-Session, both on Redis"
GUNICORN_FLAGS = ["--workers", "1", "--worker-class", "sync", "--log-level", "warning"]
TARGETS = {"anonymous": 0.95, "read-only": 1.0, "writing": 1.0}
"""coatcheck's requests over Flask-Session's that each scenario should reach."""


def serve(variant: str, prefix: str) -> contextlib.AbstractContextManager[str]:
    """Run ``variant`` under gunicorn on a free local port; yield its base URL; stop it after."""

    def command(port: int) -> list[str]:
        gunicorn = [sys.executable, "-m", "gunicorn", *GUNICORN_FLAGS, "--bind", f"{HOST}:{port}"]
        return [*gunicorn, "benchmarks.frameworks.flask_apps:from_env()"]

    return serve_process(command, {APP_ENV: variant, REDIS_ENV: REDIS_URL, PREFIX_ENV: prefix})


def measure(settings: LoadSettings) -> FrameworkResult:
    prefix = f"coatcheck-bench-flask-{uuid.uuid4().hex[:12]}:"
    runs: dict[str, dict[str, list[float]]] = {v: {s.name: [] for s in SCENARIOS} for v in VARIANTS}
    ratios: dict[str, list[float]] = {s.name: [] for s in SCENARIOS}
    try:
        with contextlib.ExitStack() as servers:
            base_urls = {v: servers.enter_context(serve(v, f"{prefix}{v}:")) for v in VARIANTS}
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
                outer, inner = VARIANTS if round_number % 2 == 0 else VARIANTS[::-1]
                for scenario in SCENARIOS:
                    first = measured(outer, scenario)
                    middle = measured(inner, scenario) + measured(inner, scenario)
                    last = measured(outer, scenario)
                    ours, theirs = (middle, first + last)
                    if inner != COATCHECK:
                        ours, theirs = theirs, ours
                    ratios[scenario.name].append(ours / theirs)
                print(f"  Flask round {round_number + 1}/{settings.rounds} done", flush=True)
    finally:
        forget(prefix)
    return FrameworkResult(_markdown(settings, runs, ratios), _targets(ratios))


def _targets(ratios: dict[str, list[float]]) -> list[Target]:
    return [
        Target(
            f"Flask, {name}: coatcheck >= {target:.2f}x Flask-Session",
            f"{median(ratios[name]):.3f}x ({_range(ratios[name])})",
            median(ratios[name]) >= target,
        )
        for name, target in TARGETS.items()
    ]


def _markdown(
    settings: LoadSettings, runs: dict[str, dict[str, list[float]]], ratios: dict[str, list[float]]
) -> str:
    headers = ["app"] + [f"{s.name} req/s" for s in SCENARIOS]
    rows = [
        [variant] + [f"{median(runs[variant][s.name]):,.0f}" for s in SCENARIOS]
        for variant in VARIANTS
    ]
    brackets = [
        (
            s.name,
            f"{median(ratios[s.name]):.3f}",
            " / ".join(f"{r:.2f}" for r in ratios[s.name]),
            _range(ratios[s.name]),
        )
        for s in SCENARIOS
    ]
    apps_list = "\n".join(f"- `{v}`: {DESCRIPTIONS[v]}" for v in VARIANTS)
    return f"""\
Server: gunicorn `{" ".join(GUNICORN_FLAGS)}` for each app. Store: one local Redis, each app
under its own key prefix. Load: `wrk {" ".join(settings.wrk_flags())}` on {HOST},
{PLACEMENT}. After a {settings.warmup} s warm-up, {settings.rounds} rounds of brackets
(Flask-Session, coatcheck, coatcheck, Flask-Session; the order reversed every round).

{apps_list}

Both apps use Flask's defaults: permanent sessions, `SESSION_REFRESH_EACH_REQUEST = True` (so
Flask-Session writes the session to Redis on every request; coatcheck re-sends the cookie and
extends the expiry in Redis at most once per touch interval, a round trip of its own on a read).

{table(headers, rows)}

coatcheck's requests over Flask-Session's, bracket by bracket:

{table(["scenario", "median ratio", "each round", "range"], brackets, left=1)}
"""
