"""Instructions per request, counted by callgrind: a cost that holds still on a drifting machine.

Timings on this shared machine drift by tens of percent; the instructions a request executes do
not. Each app of :mod:`benchmarks.inprocess` (bare Starlette, and Starlette behind coatcheck's
ASGI middleware on ``MemoryStore``), and the same routes as a plain WSGI app, bare and behind
coatcheck's WSGI middleware, is driven in-process by a child Python under
``valgrind --tool=callgrind``, as :mod:`benchmarks.inprocess` drives it (fresh scope, response
discarded). Every child makes its app, creates the session, warms every scenario up and collects
garbage; then it runs ``N`` requests of one scenario, or none. The same child is run both ways
with the same environment (``PYTHONHASHSEED=0``), so interpreter start-up, imports and set-up
cancel out: ``(total(N) - total(0)) / N`` is what one request costs.

What is left is the memory layout: where objects land and which type-cache slots collide moves a
count by a few tenths of a percent when anything before it changes (another tree's code, another
import). So every count is made in a few layouts, the child first allocating a different number
of throwaway classes and objects before it imports anything, and the layouts' mean is reported.

Each framework integration (Flask, Django, Litestar, aiohttp) is counted the same way, in the
working tree, against its own framework's bare app and that framework's usual session package
on the same store: :mod:`benchmarks.framework_instructions` builds and drives those apps and
reports them, one table per framework.

With ``--baseline-src`` (another checkout's ``src``) or ``--baseline-ref`` (a git revision, read
with ``git archive``), the same counts are made for that tree too, side by side in one run. Both
trees, and this package, are copied (and byte-compiled) before anything is counted, so edits
made to the working tree during a run reach none of its counts.

Run with ``python -m benchmarks.run --only instructions [--baseline-ref HEAD~1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import datetime
import gc
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library, .report and .framework_instructions (itself only those) here: a
# child shifts its memory layout before it imports Starlette, coatcheck or the benchmark apps
# (in the functions below).
from . import framework_instructions
from .report import Target, _cpu_model, _package_version, table, targets_table, verdict

if TYPE_CHECKING:
    from .http_load import Scenario

ROOT = Path(__file__).resolve().parent.parent

REQUESTS = 300
"""Requests counted per app and scenario: enough that a run's own noise (random session IDs, clock
values; some thousands of instructions a run) is a few instructions per request."""
WARMUP = 50
"""Requests of every scenario before counting, in both runs (the interpreter's specializing
and every lazy first-time cost happen here)."""
LAYOUTS = 2
"""Memory layouts every count is made in (see the module docstring); the report gives their mean."""
TOLERANCE = 0.005
"""How far above the baseline a count may be and still count as no higher: about how far one
app's count moves between memory layouts (up to some 0.5%), well below what a change that adds
work to every request costs."""

ASGI_BARE = "bare"
ASGI_COATCHECK = "coatcheck-memory"
WSGI_BARE = "wsgi-bare"
WSGI_COATCHECK = "wsgi-coatcheck-memory"
VARIANTS = (ASGI_BARE, ASGI_COATCHECK, WSGI_BARE, WSGI_COATCHECK)
FLOOR = "floor"
STARSESSIONS = "starsessions"
SIGNED_COOKIE = "starlette-cookie"
ASGI_SQLITE = "coatcheck-sqlite"
ASGI_REDIS = "coatcheck-redis"
FLOOR_REDIS = "floor-redis"
STARSESSIONS_REDIS = "starsessions-redis"
REDIS_APPS = (ASGI_REDIS, FLOOR_REDIS, STARSESSIONS_REDIS)
"""The apps whose sessions live in Redis: a private redis-server of the run's own."""
PEERS = (FLOOR, STARSESSIONS, SIGNED_COOKIE, ASGI_SQLITE, *REDIS_APPS)
"""Starlette apps counted in the working tree only: the floors, the peers, coatcheck on SQLite
and on Redis. Issue 17's targets are read from them."""
REDIS_URL_ENV = "COATCHECK_INSTRUCTIONS_REDIS"
"""The children's Redis (the parent's private server), keys under a prefix of each child's."""
FLOOR_OF = {
    ASGI_COATCHECK: ASGI_BARE,
    WSGI_COATCHECK: WSGI_BARE,
    **dict.fromkeys(PEERS, ASGI_BARE),
    **framework_instructions.BARE_OF,
}
"""Each session variant's bare app: the same requests with no session layer (a framework app's,
its own framework's bare app)."""
FRAMEWORK_APPS = framework_instructions.APPS
"""Each framework's bare app, coatcheck's integration and its usual session package
(:mod:`benchmarks.framework_instructions`), counted in the working tree only, in
:data:`benchmarks.framework_instructions.LAYOUTS` layouts unless told otherwise."""
ANONYMOUS_CEILING = 1.10
"""Issue 17: an anonymous request costs at most 10% more than on bare Starlette."""
FLOOR_CEILINGS = {"read-only": 2.5, "writing": 3.0}
"""Issue 17: on MemoryStore, coatcheck adds at most this many times what the floor adds."""
REDIS_CEILINGS = {"read-only": 1.3, "writing": 1.3}
"""Issue 17: on Redis, coatcheck adds at most this many times what the Redis floor adds."""
ROUND_TRIPS = {"anonymous": 0, "read-only": 1, "writing": 2}
"""Issue 17: coatcheck's round trips to Redis per request, as before it."""
STATS_REQUESTS = 2000
"""Requests per scenario in the Redis statistics pass (no valgrind): round trips and server
time per request."""
DESCRIPTIONS = {
    ASGI_BARE: "bare Starlette, no session middleware (benchmarks.apps)",
    ASGI_COATCHECK: "Starlette behind coatcheck.asgi.SessionMiddleware + MemoryStore"
    " (benchmarks.apps)",
    WSGI_BARE: "a plain WSGI function serving the same routes, no session layer",
    WSGI_COATCHECK: "that WSGI function behind coatcheck.wsgi.SessionMiddleware + MemoryStore",
    FLOOR: "benchmarks.floor.FloorMiddleware: the least a server-side session does (find, hash,"
    " look up, parse; serialize to see a change; no expiry, versions, checks or events)",
    STARSESSIONS: "starsessions SessionMiddleware + SessionAutoloadMiddleware + InMemoryStore",
    SIGNED_COOKIE: "starlette.middleware.sessions.SessionMiddleware (the signed cookie)",
    ASGI_SQLITE: "Starlette behind coatcheck.asgi.SessionMiddleware + SQLiteStore (temp file)",
    ASGI_REDIS: "Starlette behind coatcheck.asgi.SessionMiddleware + AsyncRedisStore",
    FLOOR_REDIS: "the floor on Redis: GET to load, SET EX to store (redis-py's asyncio client)",
    STARSESSIONS_REDIS: "starsessions (rolling) + SessionAutoloadMiddleware +"
    " starsessions.stores.redis.RedisStore",
}

Message = MutableMapping[str, Any]
Environ = dict[str, Any]


# --- the child: one app, one scenario, under callgrind -----------------------------------------


def _scenarios() -> tuple[Scenario, ...]:
    from .http_load import SCENARIOS

    return SCENARIOS


_SHIFTED: list[object] = []


def _shift(layout: int) -> None:
    """Move everything allocated from here on: throwaway classes and objects, kept alive."""
    _SHIFTED.extend(type(f"Shift{n}", (), {"n": n}) for n in range(layout * 53))
    _SHIFTED.extend(object() for _ in range(layout * 2011))


def _wsgi_app(session_key: str) -> Callable[[Environ, Callable[..., Any]], Iterable[bytes]]:
    """The routes of :mod:`benchmarks.apps` as a plain WSGI function (the session, if any, at
    ``environ[session_key]``)."""
    from .apps import READ_BODY, SESSION_DATA

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        session: MutableMapping[str, Any] = environ.get(session_key, {})
        path = environ["PATH_INFO"]
        if path == "/setup":
            session.update(SESSION_DATA)
            text = "ok"
        elif path == "/read":
            user = session.get("user")
            text = READ_BODY if user else "no session"
        elif path == "/write":
            session["counter"] = counter = session.get("counter", 0) + 1
            text = str(counter)
        else:
            text = "hello"
        body = text.encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        start_response("200 OK", headers)
        return [body]

    return app


def _environ(path: str, cookie: str | None) -> Environ:
    """What a WSGI server hands over for ``GET path`` (the headers of the ASGI scope)."""
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk/4.1.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    return environ


class _WsgiDriver:
    """Calls a WSGI app as a server does: start_response kept, the body joined and closed."""

    def __init__(self, app: Callable[[Environ, Callable[..., Any]], Iterable[bytes]]) -> None:
        self.app = app
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], None]:
        self.status, self.headers = status, headers
        return self._write

    def _write(self, data: bytes) -> None:
        pass

    def request(self, path: str, cookie: str | None) -> bytes:
        body = self.app(_environ(path, cookie), self._start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


def _asgi_app(variant: str) -> Any:
    """The Starlette app of ``variant``; a Redis one stores under a prefix of its own."""
    from . import apps

    if variant not in REDIS_APPS:
        folder = tempfile.mkdtemp(prefix="coatcheck-instructions-sqlite-")
        return apps.build(variant, sqlite_path=os.path.join(folder, "sessions.db"))
    from redis.asyncio import Redis
    from starlette.middleware import Middleware

    from coatcheck.stores import from_url

    from .floor import FloorMiddleware
    from .frameworks import starlette

    url, prefix = os.environ[REDIS_URL_ENV], f"instructions-{os.getpid()}:"
    if variant == ASGI_REDIS:
        return apps.coatcheck_app(from_url(f"{url}?prefix={prefix}", asynchronous=True))
    if variant == STARSESSIONS_REDIS:
        return starlette.build(starlette.STARSESSIONS, url, prefix)
    client = Redis.from_url(url)
    floor = Middleware(
        FloorMiddleware,
        cookie_name=apps.COOKIE_NAME,
        client=client,
        prefix=prefix,
        ttl=apps.IDLE_SECONDS,
    )
    return apps.starlette_app([floor])


async def _commands_sent(run: Callable[[], Any], count: int) -> dict[str, object]:
    """Round trips to Redis (commands the client sent) and the server's time (``INFO
    commandstats`` usec of those commands) per request, over ``count`` requests run by ``run``."""
    from redis import Redis
    from redis.asyncio.connection import AbstractConnection

    admin = Redis.from_url(os.environ[REDIS_URL_ENV])
    sent: dict[str, int] = {}
    original = AbstractConnection.send_command

    async def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        name = str(args[0]).lower()
        sent[name] = sent.get(name, 0) + 1
        await original(self, *args, **kwargs)

    admin.config_resetstat()
    AbstractConnection.send_command = counted  # type: ignore[method-assign]
    try:
        for _ in range(count):
            await run()
    finally:
        AbstractConnection.send_command = original  # type: ignore[method-assign]
    stats: dict[str, Any] = admin.info("commandstats")
    admin.close()
    usec = {
        name: stats[f"cmdstat_{name}"]["usec"] / count
        for name in sent
        if f"cmdstat_{name}" in stats
    }
    return {
        "round_trips": sum(sent.values()) / count,
        "commands": {name: calls / count for name, calls in sent.items()},
        "usec": usec,
    }


async def _asgi_run(
    variant: str, scenario: str, count: int, warmup: int, stats: bool = False
) -> dict[str, object]:
    from .http_load import BARE_COOKIE
    from .inprocess import _discard, _receive, _scope, _session_cookie

    app = _asgi_app(variant)
    cookie = await _session_cookie(app)
    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    await app(_scope("/read", cookie), _receive, keep)  # the session is found, not made anew
    read_body = sent[1].get("body", b"")
    for each in _scenarios():
        for _ in range(warmup):
            await app(_scope(each.path, cookie if each.with_cookie else None), _receive, _discard)
    gc.collect()
    gc.freeze()  # no full collection rescans the start-up heap during the counted requests
    chosen = next(s for s in _scenarios() if s.name == scenario)
    path, sends = chosen.path, cookie if chosen.with_cookie else None
    seen: dict[str, object] = {"read": read_body.decode(), "cookie": cookie != BARE_COOKIE}
    if stats:
        seen["stats"] = await _commands_sent(
            lambda: app(_scope(path, sends), _receive, _discard), count
        )
        return seen
    for _ in range(count):
        await app(_scope(path, sends), _receive, _discard)
    return seen


def _wsgi_run(variant: str, scenario: str, count: int, warmup: int) -> dict[str, object]:
    from coatcheck import wsgi
    from coatcheck.stores import MemoryStore

    from .apps import COOKIE_NAME, IDLE_SECONDS
    from .http_load import BARE_COOKIE

    app = _wsgi_app(wsgi.ENVIRON_KEY)
    if variant == WSGI_COATCHECK:
        app = wsgi.SessionMiddleware(
            app,
            store=MemoryStore(),
            secure=False,
            cookie_name=COOKIE_NAME,
            idle_timeout=IDLE_SECONDS,
        )
    driver = _WsgiDriver(app)
    driver.request("/setup", None)
    set_cookie = dict((k.lower(), v) for k, v in driver.headers).get("set-cookie")
    cookie = BARE_COOKIE if set_cookie is None else set_cookie.partition(";")[0]
    read_body = driver.request("/read", cookie)
    for each in _scenarios():
        for _ in range(warmup):
            driver.request(each.path, cookie if each.with_cookie else None)
    gc.collect()
    gc.freeze()
    if count:
        chosen = next(s for s in _scenarios() if s.name == scenario)
        path, sends = chosen.path, cookie if chosen.with_cookie else None
        for _ in range(count):
            driver.request(path, sends)
    return {"read": read_body.decode(), "cookie": cookie != BARE_COOKIE}


def child(argv: list[str]) -> int:
    """Run one variant's requests (what callgrind counts); print what was run, as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("variant", choices=(*VARIANTS, *PEERS, *FRAMEWORK_APPS))
    parser.add_argument("scenario")
    parser.add_argument("count", type=int)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--layout", type=int, default=0)
    parser.add_argument(
        "--redis-stats",
        action="store_true",
        help="count round trips and Redis's time instead (a Redis app, no valgrind)",
    )
    args = parser.parse_args(argv)
    _shift(args.layout)
    if args.scenario not in [s.name for s in _scenarios()]:
        parser.error(f"unknown scenario {args.scenario!r}")
    if args.variant in FRAMEWORK_APPS:
        redis_url = os.environ.get(REDIS_URL_ENV, "")
        seen = framework_instructions.run(
            args.variant, args.scenario, args.count, args.warmup, redis_url, _WsgiDriver
        )
    elif args.variant in (WSGI_BARE, WSGI_COATCHECK):
        seen = _wsgi_run(args.variant, args.scenario, args.count, args.warmup)
    else:
        run = _asgi_run(args.variant, args.scenario, args.count, args.warmup, args.redis_stats)
        seen = asyncio.run(run)
    import coatcheck

    seen["coatcheck"] = str(Path(coatcheck.__file__).resolve().parent.parent)
    print(json.dumps(seen))
    return 0


# --- the parent: copies of the trees, the runs, the report -------------------------------------


@dataclass(frozen=True)
class Tree:
    """One coatcheck source tree measured: a label for the report, where its ``src`` is."""

    label: str
    src: Path


@dataclass
class InstructionsResult:
    """Instructions per request, by tree label, variant and scenario."""

    requests: int
    warmup: int
    layouts: int
    trees: list[Tree]
    per_layout: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    """Instructions per request in each layout, by tree label, variant and scenario."""
    valgrind: str = ""
    measured_at: str = ""
    redis: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Per Redis app and scenario: ``round_trips``, ``commands`` and ``usec`` (Redis's time, by
    command) per request, from a pass without valgrind."""

    def count(self, tree: str, variant: str, scenario: str) -> float:
        """The mean over layouts."""
        counts = self.per_layout[tree][variant][scenario]
        return sum(counts) / len(counts)

    def spread(self) -> float:
        """The widest range of one count over the layouts, as a share of its mean."""
        return max(
            (max(counts) - min(counts)) / (sum(counts) / len(counts))
            for variants in self.per_layout.values()
            for scenarios in variants.values()
            for counts in scenarios.values()
        )

    def added(self, tree: str, variant: str, scenario: str) -> float:
        floor = FLOOR_OF.get(variant)
        if floor is None:
            return 0.0
        return self.count(tree, variant, scenario) - self.count(tree, floor, scenario)

    @property
    def compared(self) -> bool:
        return len(self.trees) > 1

    def variants(self, tree: str) -> list[str]:
        """The apps counted in ``tree`` (the peers only in the working tree), less the framework
        apps (:mod:`benchmarks.framework_instructions` reports those)."""
        return [variant for variant in self.per_layout[tree] if variant not in FRAMEWORK_APPS]

    @property
    def peers(self) -> bool:
        return FLOOR in self.per_layout[self.trees[0].label]

    def targets(self) -> list[Target]:
        """Issue 17's, when the floor and the peers were counted; with a baseline, each
        coatcheck count no higher than the baseline's (within noise)."""
        found = self.issue_targets()
        if not self.compared:
            return found
        current, baseline = self.trees[0].label, self.trees[1].label
        for variant in (ASGI_COATCHECK, WSGI_COATCHECK):
            for scenario in _scenarios():
                ours = self.count(current, variant, scenario.name)
                before = self.count(baseline, variant, scenario.name)
                found.append(
                    Target(
                        f"{variant}, {scenario.name}: instructions per request no higher than"
                        f" {baseline} (within {TOLERANCE:.1%})",
                        f"{ours:,.0f} vs {before:,.0f} ({ours / before - 1:+.2%})",
                        _no_higher(ours, before),
                    )
                )
        return found

    def issue_targets(self) -> list[Target]:
        """Issue 17's targets from what was counted: the floor's and the Starlette peers' when
        they were, each framework's when its apps were."""
        found = self.floor_targets() if self.peers else []
        return found + framework_instructions.targets(self)

    def floor_targets(self) -> list[Target]:
        """Issue 17: an anonymous request within 10% of bare Starlette; on MemoryStore, what
        coatcheck adds within 2.5x (reading) and 3.0x (writing) of what the floor adds; and
        fewer instructions added than each peer, in every scenario."""
        tree = self.trees[0].label
        anonymous = _scenarios()[0].name
        ours = self.count(tree, ASGI_COATCHECK, anonymous)
        bare = self.count(tree, ASGI_BARE, anonymous)
        found = [
            Target(
                f"{ASGI_COATCHECK}, {anonymous}: at most {ANONYMOUS_CEILING - 1:.0%} over bare",
                f"{ours:,.0f} vs {bare:,.0f} ({ours / bare - 1:+.1%})",
                ours <= bare * ANONYMOUS_CEILING,
            )
        ]
        found += self.ceiling_targets(ASGI_COATCHECK, FLOOR, FLOOR_CEILINGS, "the floor")
        contests = [(ASGI_COATCHECK, STARSESSIONS), (ASGI_COATCHECK, SIGNED_COOKIE)]
        if ASGI_REDIS in self.per_layout[tree]:
            found += self.redis_targets()
            contests.append((ASGI_REDIS, STARSESSIONS_REDIS))
        for ours_app, peer in contests:
            found += self.contest_targets(ours_app, peer)
        return found

    def ceiling_targets(
        self, app: str, floor: str, ceilings: dict[str, float], named: str = ""
    ) -> list[Target]:
        """``app`` adds at most ``ceilings[scenario]`` times what ``floor`` (``named``) adds."""
        tree = self.trees[0].label
        found = []
        for scenario, ceiling in ceilings.items():
            added = self.added(tree, app, scenario)
            floors = self.added(tree, floor, scenario)
            found.append(
                Target(
                    f"{app}, {scenario}: adds at most {ceiling}x what {named or floor} adds",
                    f"{added:+,.0f} vs {floors:+,.0f} ({added / floors:.2f}x)",
                    added <= floors * ceiling,
                )
            )
        return found

    def contest_targets(self, ours: str, peer: str, label: str = "") -> list[Target]:
        """``ours`` adds fewer instructions than ``peer`` in every scenario (``label`` names
        what they are apps of)."""
        tree = self.trees[0].label
        found = []
        for each in _scenarios():
            added = self.added(tree, ours, each.name)
            theirs = self.added(tree, peer, each.name)
            found.append(
                Target(
                    f"{ours}, {each.name}: adds fewer instructions than {peer}"
                    if not label
                    else f"{label}, {each.name}: {ours} adds fewer instructions than {peer}",
                    f"{added:+,.0f} vs {theirs:+,.0f}",
                    added < theirs,
                )
            )
        return found

    def redis_targets(self) -> list[Target]:
        """Issue 17 on Redis: within 1.3x of what the Redis floor adds, reading and writing,
        in the round trips it made before."""
        found = self.ceiling_targets(ASGI_REDIS, FLOOR_REDIS, REDIS_CEILINGS)
        if self.redis:
            for scenario, wanted in ROUND_TRIPS.items():
                made = self.redis[ASGI_REDIS][scenario]["round_trips"]
                found.append(
                    Target(
                        f"{ASGI_REDIS}, {scenario}: {wanted} round trip(s) to Redis",
                        f"{made:g}",
                        made == wanted,
                    )
                )
        return found

    def redis_markdown(self) -> str:
        """Round trips and Redis's own time per request, beside the instruction counts."""
        rows = []
        for variant, scenarios in self.redis.items():
            for name, stats in scenarios.items():
                commands = ", ".join(
                    f"{calls:g} {command.upper()}" for command, calls in stats["commands"].items()
                )
                usec = sum(stats["usec"].values())
                rows.append(
                    [variant, name, f"{stats['round_trips']:g}", commands or "none", f"{usec:.1f}"]
                )
        headers = ["app", "scenario", "round trips", "commands", "Redis µs"]
        return f"""
Round trips to Redis and Redis's own time per request, from a separate pass without valgrind
({STATS_REQUESTS} requests of each scenario, after the same warm-up, on a private redis-server of
the run's own): the commands the client sent (counted in redis-py's connection), and the `usec`
that `INFO commandstats` gives those commands (a script's time includes the commands it runs).
Redis's times are wall-clock and drift with the machine; the commands do not.

{table(headers, rows, left=3)}
"""

    def markdown(self, command: str) -> str:
        names = [s.name for s in _scenarios()]
        roles = ("the working tree", "the baseline")[: len(self.trees)]
        trees = ", ".join(
            f"`{tree.label}` ({role})" for tree, role in zip(self.trees, roles, strict=True)
        )
        counted = self.variants(self.trees[0].label)
        variants = "\n".join(f"- `{v}`: {DESCRIPTIONS[v]}" for v in counted)
        text = f"""\
This section's own run:

- date: {self.measured_at}
- CPU: {_cpu_model()}
- cores: {os.cpu_count()}
- Python: {platform.python_implementation()} {platform.python_version()}
- kernel: {platform.system()} {platform.release()}
- counter: {self.valgrind}
- starlette: {_package_version("starlette")}
- coatcheck trees: {trees}

Instructions executed per request, counted by `valgrind --tool=callgrind` (every instruction of
the process, interpreter included), in-process as in section 2: each app is called directly
with a fresh scope (or WSGI environ) and its response discarded. A child Python makes the app,
creates the session with `GET /setup`, runs every scenario {self.warmup} times, collects garbage and
freezes what is left (`gc.freeze()`, so that no full collection of the start-up heap lands in
one run's count), then runs N = {self.requests} requests of one scenario, or none. The two runs
differ only in those requests (same command, same environment, `PYTHONHASHSEED=0`), so
(total(N) - total(0)) / N is one request, start-up and set-up cancelling out. Each tree's `src`
is copied and byte-compiled first and put first on `PYTHONPATH`.

Counts do not drift with the machine's speed, and two copies of one tree agree to a few
instructions per request (random session IDs, clock values). They do move with the memory
layout (where objects land, which type-cache slots collide) when anything earlier in the process
changes, such as another tree's code: so each count is the mean of {self.layouts} layouts, the child
first allocating a different number of throwaway classes and objects. One app's count differed
between layouts by up to {self.spread():.2%} in this run; the bare apps, the same code in every
tree, show how closely two trees' counts agree. A change of less than about {TOLERANCE:.1%}
either way is within this noise (repeated runs move it by a few tenths of a percent), so "no
higher" allows {TOLERANCE:.1%}; a change beyond that is work added to every request.

{variants}

Reproduce: `{command}`
"""
        for tree in self.trees:
            headers = ["app"]
            for name in names:
                headers += [f"{name}", "added"]
            rows = []
            for variant in self.variants(tree.label):
                row: list[object] = [variant]
                for name in names:
                    added = self.added(tree.label, variant, name)
                    row += [
                        f"{self.count(tree.label, variant, name):,.0f}",
                        "" if variant not in FLOOR_OF else f"{added:+,.0f}",
                    ]
                rows.append(row)
            if not rows:
                continue
            text += f"""
Instructions per request, `{tree.label}` ("added": less the bare app of the same protocol):

{table(headers, rows)}
"""
        if self.compared:
            current, baseline = self.trees[0].label, self.trees[1].label
            rows = []
            for variant in VARIANTS:
                for name in names:
                    ours = self.count(current, variant, name)
                    before = self.count(baseline, variant, name)
                    holds = "" if variant not in FLOOR_OF else verdict(_no_higher(ours, before))
                    rows.append(
                        [
                            variant,
                            name,
                            f"{before:,.0f}",
                            f"{ours:,.0f}",
                            f"{ours - before:+,.0f}",
                            f"{ours / before - 1:+.2%}",
                            holds,
                        ]
                    )
            headers = ["app", "scenario", "before", "now", "change", "change %", "no higher"]
            text += f"""
`{current}` against `{baseline}`, request by request ("no higher": within {TOLERANCE:.1%}):

{table(headers, rows, left=2)}
"""
        if self.redis:
            text += self.redis_markdown()
        text += framework_instructions.markdown(self)
        issue = self.issue_targets()
        if issue:
            text += f"""
Issue 17's targets, from the working tree's counts above (the floor and the peers added to
bare Starlette's requests as coatcheck's are; each framework's session apps to its bare app's):

{targets_table(issue)}
"""
        return text


def _no_higher(ours: float, before: float) -> bool:
    return ours <= before * (1 + TOLERANCE)


def _valgrind_version() -> str:
    done = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _copy_tree(src: Path, into: Path) -> Path:
    """A byte-compiled copy of the directory ``src``."""
    shutil.copytree(src, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not compileall.compile_dir(into, quiet=1):
        raise SystemExit(f"{src} does not compile")
    return into


def archive(ref: str, into: Path) -> Path:
    """The ``src`` of git revision ``ref``, written under ``into`` (the work tree is untouched)."""
    into.mkdir(parents=True)
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar.stdout, check=True)
    return into / "src"


def describe(ref: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def working_label() -> str:
    """The working tree's label: its commit, and whether ``src`` has uncommitted changes."""
    head = describe("HEAD")
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"{head} + uncommitted src" if status.stdout.strip() else head


@dataclass(frozen=True)
class _Run:
    tree: Tree
    variant: str
    scenario: str
    count: int
    layout: int


_REDIS: dict[str, str] = {}
"""The private Redis of the run in progress (its URL under :data:`REDIS_URL_ENV`)."""


def _environment(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONHASHSEED="0", PYTHONPATH=str(src), PYTHONDONTWRITEBYTECODE="1", **_REDIS)
    return env


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of the run's own (no persistence) on a free port, stopped at the end: the
    children's commands are the only ones it counts."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    from .http_load import HOST, _free_port

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="coatcheck-instructions-redis-") as folder:
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                folder,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the private redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://{HOST}:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def _redis_stats(tree: Tree, variant: str, scenario: str, bench: Path) -> dict[str, Any]:
    """Round trips and Redis's time per request for one app and scenario (no valgrind; one
    child at a time, so that the private server counts that child's commands alone)."""
    run = _Run(tree, variant, scenario, STATS_REQUESTS, 0)
    done = subprocess.run(
        [*_arguments(run, WARMUP), "--redis-stats"],
        cwd=bench,
        env=_environment(tree.src),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{run} --redis-stats failed:\n{done.stderr[-3000:]}")
    _check(run, done.stdout)
    stats: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])["stats"]
    return stats


def _arguments(run: _Run, warmup: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.instructions",
        run.variant,
        run.scenario,
        str(run.count),
        f"--warmup={warmup}",
        f"--layout={run.layout}",
    ]


def _check(run: _Run, stdout: str) -> None:
    """The child ran the tree it was given, and coatcheck found the session it was sent."""
    seen = json.loads(stdout.strip().splitlines()[-1])
    if Path(seen["coatcheck"]) != run.tree.src.resolve():
        raise RuntimeError(f"{run} imported coatcheck from {seen['coatcheck']}")
    if run.variant in FRAMEWORK_APPS:
        problem = framework_instructions.check(run.variant, seen)
        if problem is not None:
            raise RuntimeError(f"{run}: {problem}: {seen}")
    elif run.variant in FLOOR_OF and (not seen["cookie"] or seen["read"] == "no session"):
        raise RuntimeError(f"{run}: no session cookie, or the session was not found: {seen}")


def _rehearse(run: _Run, bench: Path) -> None:
    """The child once without valgrind, a few requests: it works and imports the right tree."""
    rehearsal = _Run(run.tree, run.variant, run.scenario, 3, run.layout)
    done = subprocess.run(
        _arguments(rehearsal, 3),
        cwd=bench,
        env=_environment(run.tree.src),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{rehearsal} failed:\n{done.stderr[-3000:]}")
    _check(rehearsal, done.stdout)


def _total(run: _Run, warmup: int, bench: Path, out: Path) -> int:
    """Every instruction the child executed, as callgrind counted them (written to ``out``)."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    done = subprocess.run(
        command + _arguments(run, warmup),
        cwd=bench,
        env=_environment(run.tree.src),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{run} failed under valgrind:\n{done.stderr[-3000:]}")
    _check(run, done.stdout)
    totals: dict[str, int] = {}
    for line in out.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("summary", "totals"):
            totals[key] = int(value.split()[0])
    out.unlink()
    return totals.get("totals", totals["summary"])


def _imported_from() -> dict[str, float]:
    """When the directories the children import from (other than the copies) last changed."""
    import site

    places = list(map(Path, site.getsitepackages()))
    paths = [path for place in places if place.is_dir() for path in [place, *place.glob("*.py")]]
    return {str(path): path.stat().st_mtime for path in paths}


def measure(
    baseline: Tree | None = None,
    requests: int = REQUESTS,
    warmup: int = WARMUP,
    layouts: int = LAYOUTS,
    current: Tree | None = None,
    jobs: int | None = None,
    progress: Callable[[str], None] = print,
    peers: bool = True,
    frameworks: bool = True,
    only: Iterable[str] | None = None,
    framework_layouts: int = framework_instructions.LAYOUTS,
) -> InstructionsResult:
    """Count instructions per request in the current tree (and ``baseline``, when given).

    ``current`` defaults to this checkout's ``src``; ``baseline.src`` is any other ``src``.
    With ``peers``, the floor, the peers and coatcheck on SQLite are counted in the current
    tree too (issue 17's targets); with ``frameworks``, each framework's apps
    (:data:`FRAMEWORK_APPS`), in ``framework_layouts`` of the ``layouts`` (at most). ``only``
    keeps the apps it names and no others (a check of a few apps).
    """
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if current is None:
        current = Tree(working_label(), ROOT / "src")
    given = [current] if baseline is None else [current, baseline]
    for tree in given:
        if not (tree.src / "coatcheck" / "__init__.py").is_file():
            raise SystemExit(f"{tree.src} holds no coatcheck package (give the src directory)")
    scenarios = _scenarios()
    first = scenarios[0].name
    with tempfile.TemporaryDirectory(prefix="coatcheck-instructions-") as temporary:
        scratch = Path(temporary)
        trees = [
            Tree(tree.label, _copy_tree(tree.src, scratch / f"tree{number}" / "src"))
            for number, tree in enumerate(given)
        ]
        # The children run a copy of this package too: edits to it during the runs reach none.
        bench = scratch / "bench"
        _copy_tree(ROOT / "benchmarks", bench / "benchmarks")
        # The trees' runs of one kind side by side, each app's run of no requests next to its
        # others: what the machine does meanwhile (an install) reaches both trees alike.
        everything = (*VARIANTS, *PEERS, *FRAMEWORK_APPS)
        kept = set(everything if only is None else only)
        apps_of = {
            tree.label: [
                variant
                for variant in everything
                if variant in kept
                and (variant in VARIANTS or number == 0)
                and (variant not in PEERS or peers)
                and (variant not in FRAMEWORK_APPS or frameworks)
            ]
            for number, tree in enumerate(trees)
        }
        runs = [
            _Run(tree, variant, scenario.name, count, layout)
            for layout in range(layouts)
            for variant in everything
            if layout < _layouts_of(variant, layouts, framework_layouts)
            for scenario in scenarios
            for count in (requests, 0)
            if count or scenario.name == first  # one run of no requests per tree, app, layout
            for tree in trees
            if variant in apps_of[tree.label]
        ]
        workers = jobs or os.cpu_count() or 1
        redis_apps = [v for v in REDIS_APPS if v in apps_of[trees[0].label]]
        on_redis = [*REDIS_APPS, *framework_instructions.REDIS]
        redis_stats: dict[str, dict[str, dict[str, Any]]] = {}
        with contextlib.ExitStack() as servers:
            if any(variant in on_redis for variant in apps_of[trees[0].label]):
                _REDIS[REDIS_URL_ENV] = servers.enter_context(private_redis())
                servers.callback(_REDIS.clear)
            for run in runs:
                if run.count == 0 and run.layout == 0:
                    _rehearse(run, bench)
            progress(f"  {len(runs)} runs under callgrind, {workers} at a time")
            before = _imported_from()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                counted = pool.map(
                    lambda numbered: _total(
                        numbered[1], warmup, bench, scratch / f"{numbered[0]}.out"
                    ),
                    enumerate(runs),
                )
                totals = dict(zip(runs, counted, strict=True))
            if redis_apps:
                progress(f"  round trips and Redis's time: {STATS_REQUESTS} requests each")
            for variant in redis_apps:
                redis_stats[variant] = {
                    scenario.name: _redis_stats(trees[0], variant, scenario.name, bench)
                    for scenario in scenarios
                }
        if _imported_from() != before:
            progress(
                "  WARNING: site-packages or benchmarks/ changed during the runs (an install?);"
                " counts made before and after differ: run again"
            )
    result = InstructionsResult(
        requests=requests,
        warmup=warmup,
        layouts=layouts,
        trees=given,
        valgrind=_valgrind_version(),
        measured_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        redis=redis_stats,
    )
    for copy, tree in zip(trees, given, strict=True):
        result.per_layout[tree.label] = {
            variant: {
                scenario.name: [
                    (
                        totals[_Run(copy, variant, scenario.name, requests, layout)]
                        - totals[_Run(copy, variant, first, 0, layout)]
                    )
                    / requests
                    for layout in range(_layouts_of(variant, layouts, framework_layouts))
                ]
                for scenario in scenarios
            }
            for variant in apps_of[copy.label]
        }
    return result


def _layouts_of(variant: str, layouts: int, framework_layouts: int) -> int:
    """The layouts ``variant`` is counted in: all, or fewer for a framework app."""
    if variant in FRAMEWORK_APPS:
        return max(1, min(layouts, framework_layouts))
    return layouts


if __name__ == "__main__":
    raise SystemExit(child(sys.argv[1:]))
