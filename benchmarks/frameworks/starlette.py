"""Starlette (and FastAPI, the same middleware): coatcheck against starsessions, both on Redis.

The apps are :mod:`benchmarks.apps`' routes behind either ``coatcheck.integrations.starlette``'s
SessionMiddleware on coatcheck's async Redis store, or starsessions' SessionMiddleware (with
SessionAutoloadMiddleware, rolling, as its docs set it up) on its RedisStore, on the same Redis
server, under uvicorn, loaded by wrk in bare-bracketed runs as in :mod:`benchmarks.http_load`.
Both middlewares get the same lifetime; their keys live under a prefix of this run's own, deleted
at the end. The cookie scenarios take :data:`SESSIONS` sessions in turn: many users, each with
one request at a time. (Every connection writing one session is another matter: coatcheck's
compare-and-set then retries and merges so that no write is lost, where starsessions' last
write wins.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starsessions import SessionAutoloadMiddleware
from starsessions import SessionMiddleware as StarsessionsMiddleware
from starsessions.stores.redis import RedisStore

from coatcheck.integrations.starlette import SessionMiddleware
from coatcheck.stores import from_url

from .. import apps, http_load
from ..http_load import SCENARIOS, LoadSettings, Scenario, _range
from ..report import Target, median, table
from . import FrameworkResult
from .brackets import REDIS_URL, forget

TITLE = "Starlette and FastAPI: coatcheck against starsessions, both on Redis"

COATCHECK = "coatcheck-redis"
STARSESSIONS = "starsessions-redis"
CONTENDERS = (COATCHECK, STARSESSIONS)
VARIANTS = (apps.BARE, *CONTENDERS)
DESCRIPTIONS = {
    apps.BARE: "bare Starlette, no session middleware",
    COATCHECK: "coatcheck.integrations.starlette.SessionMiddleware + coatcheck's async Redis store",
    STARSESSIONS: (
        "starsessions SessionMiddleware (rolling) + SessionAutoloadMiddleware + "
        "starsessions.stores.redis.RedisStore"
    ),
}

FACTORY = "benchmarks.frameworks.starlette:from_env"
REDIS_ENV = "COATCHECK_BENCH_REDIS"
PREFIX_ENV = "COATCHECK_BENCH_PREFIX"

SESSIONS = 64
"""Sessions each app's cookie scenarios take in turn, so that concurrent requests (wrk's
connections) belong to different users, as they would on a site."""

Series = dict[str, dict[str, list[float]]]
"""Numbers by app, then by scenario."""


def build(variant: str, redis_url: str, prefix: str) -> Starlette:
    """The benchmark app of ``variant``, its sessions in Redis under ``prefix``."""
    if variant == apps.BARE:
        return apps.starlette_app()
    if variant == COATCHECK:
        middleware = Middleware(
            SessionMiddleware,
            secret_key=apps.SIGNING_KEY,
            session_cookie=apps.COOKIE_NAME,
            max_age=apps.IDLE_SECONDS,
            store=from_url(f"{redis_url}?prefix={prefix}c:", asynchronous=True),
        )
        return apps.starlette_app([middleware])
    if variant == STARSESSIONS:
        return apps.starlette_app(
            [
                Middleware(
                    StarsessionsMiddleware,
                    store=RedisStore(connection=Redis.from_url(redis_url), prefix=f"{prefix}s:"),
                    cookie_name=apps.COOKIE_NAME,
                    cookie_https_only=False,
                    lifetime=apps.IDLE_SECONDS,
                    rolling=True,
                ),
                Middleware(SessionAutoloadMiddleware),
            ]
        )
    raise ValueError(f"unknown app variant {variant!r}; known: {', '.join(VARIANTS)}")


def from_env() -> Starlette:
    """The app named by the environment (the factory uvicorn calls)."""
    return build(os.environ[apps.APP_ENV], os.environ[REDIS_ENV], os.environ[PREFIX_ENV])


def _rotation(variant: str, base_url: str, folder: Path) -> Path:
    """A wrk script sending the requests the cookies of :data:`SESSIONS` sessions in turn."""
    cookies = [http_load.session_cookie(variant, base_url) for _ in range(SESSIONS)]
    script = folder / f"{variant}.lua"
    quoted = ", ".join(json.dumps(cookie) for cookie in cookies)  # JSON strings are Lua strings
    script.write_text(
        f"local cookies = {{{quoted}}}\n"
        "local turn = 0\n"
        "request = function()\n"
        "  turn = turn % #cookies + 1\n"
        '  return wrk.format(nil, nil, {["Cookie"] = cookies[turn]})\n'
        "end\n"
    )
    return script


def measure(settings: LoadSettings) -> FrameworkResult:
    """Every app through every scenario, each contender's runs bracketed by bare Starlette's."""
    flags, server = http_load.server_description()
    prefix = f"coatcheck-bench-{secrets.token_hex(4)}:"
    env = {REDIS_ENV: REDIS_URL, PREFIX_ENV: prefix}
    runs: Series = {v: {s.name: [] for s in SCENARIOS} for v in VARIANTS}
    ratios: Series = {v: {s.name: [] for s in SCENARIOS} for v in CONTENDERS}
    try:
        with contextlib.ExitStack() as servers:
            urls = {
                v: servers.enter_context(http_load.serve(v, flags, FACTORY, env)) for v in VARIANTS
            }
            scratch = Path(servers.enter_context(tempfile.TemporaryDirectory()))
            scripts = {v: _rotation(v, urls[v], scratch) for v in VARIANTS}

            def load(variant: str, scenario: Scenario, seconds: int) -> float:
                script = scripts[variant] if scenario.with_cookie else None
                url = urls[variant] + scenario.path
                return http_load.wrk(url, None, settings, seconds, script=script)

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
                    before = measured(apps.BARE, scenario)
                    for variant in order:
                        ours = measured(variant, scenario) + measured(variant, scenario)
                        after = measured(apps.BARE, scenario)
                        ratios[variant][scenario.name].append(ours / (before + after))
                        before = after
                print(f"  Starlette round {round_number + 1}/{settings.rounds} done", flush=True)
    finally:
        forget(prefix)
    return FrameworkResult(_markdown(settings, server, runs, ratios), _targets(ratios))


def _ratio(ratios: Series, variant: str, scenario: str) -> float:
    return 1.0 if variant == apps.BARE else median(ratios[variant][scenario])


def _targets(ratios: Series) -> list[Target]:
    found = []
    for scenario in SCENARIOS:
        ours = _ratio(ratios, COATCHECK, scenario.name)
        theirs = _ratio(ratios, STARSESSIONS, scenario.name)
        found.append(
            Target(
                f"Starlette on Redis, {scenario.name}: coatcheck at least as fast as starsessions",
                f"{ours:.3f}x vs {theirs:.3f}x bare ({ours / theirs:.2f}x)",
                ours >= theirs,
            )
        )
    return found


def _markdown(
    settings: LoadSettings,
    server: str,
    runs: Series,
    ratios: Series,
) -> str:
    headers = ["app"]
    for scenario in SCENARIOS:
        headers += [f"{scenario.name} req/s", "x bare"]
    rows = []
    for variant in VARIANTS:
        row: list[object] = [variant]
        for scenario in SCENARIOS:
            row += [
                f"{median(runs[variant][scenario.name]):,.0f}",
                f"{_ratio(ratios, variant, scenario.name):.3f}",
            ]
        rows.append(row)
    versus = [
        (s.name, f"{_ratio(ratios, COATCHECK, s.name) / _ratio(ratios, STARSESSIONS, s.name):.2f}x")
        for s in SCENARIOS
    ]
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
    described = "\n".join(f"- `{v}`: {DESCRIPTIONS[v]}" for v in VARIANTS)
    return f"""\
Server: {server}. Redis: {REDIS_URL.rpartition("@")[2]}, shared by both contenders.
Load: `wrk {" ".join(settings.wrk_flags())}` on {http_load.HOST}, {http_load.PLACEMENT}.
{settings.rounds} rounds of bare-bracketed runs (B A A B B C C B, the order reversing every round)
after a {settings.warmup} s warm-up, as in section 1. The scenarios are section 1's, except
that the cookie scenarios send the cookies of {SESSIONS} sessions in turn (a wrk script, for
bare Starlette too), so that concurrent requests are different users'.

{described}

{table(headers, rows)}

coatcheck's requests per second over starsessions', from the bracket ratios:

{table(["scenario", "coatcheck / starsessions"], versus)}

starsessions loads the session on every request that brings a cookie and writes it back
(rolling) on every response whose session is not empty; coatcheck reads in one round trip and
writes only what changed.

{table(["app", "scenario", "ratio to bare in each round", "range"], brackets, left=2)}
"""
