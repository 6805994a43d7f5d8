"""Per-request cost of an access token against a session: time, instructions, store round trips.

Every operation is what one request does to find out who is calling:

- ``stateless-*``: :meth:`coatcheck.tokens.Tokens.authenticate` with ``stateless=True``: the
  JWT's signature and claims, no store (EdDSA, ES256 and HS256).
- ``hybrid-*``: the same with ``revocation_lag=0`` (the default): the signature and claims, then
  one ``load`` of the user's revocation record, on a MemoryStore, an SQLiteStore, and Redis
  (sync ``RedisStore`` through :func:`coatcheck.engine.run`, ``AsyncRedisStore`` through
  :func:`coatcheck.engine.run_async`).
- ``session-*``: the engine's load plan (``engine.load(session_id)``) of a logged-in cookie
  session holding the same data as :data:`benchmarks.apps.SESSION_DATA`, on the same stores.

The hybrid's user has a revocation record (another session of theirs was logged out), so its
read finds and decodes a record, as after any logout; a user with none costs a miss instead.

Three measurements, in one run:

- **time per operation**: every operation runs in batches, the batches interleaved round after
  round (the order rotating and reversing), so the machine's drift reaches them all alike; the
  median and range over rounds are reported, and per round the ratio of the hybrid to a session
  load on the same store.
- **instructions per operation**, counted by callgrind as :mod:`benchmarks.instructions` counts
  requests: a child Python sets up the operations of one group (those run through ``run``, or
  those through ``run_async``, whose counts vary more), warms each up, then runs N of one, or
  none; ``(total(N) - total(0)) / N`` is one operation, in a few memory layouts, the median
  kept. Only this process's instructions are counted: Redis's own work, and the kernel's, are
  not.
- **store calls per operation**, counted by a wrapper around each store, and, on Redis, the
  replies the client read from the server (its round trips), counted in redis-py's connection.

Run with ``python -m benchmarks.run --only tokens`` (``scripts/bench --only tokens``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# Only the standard library and this package's stdlib-only modules here: a child shifts its
# memory layout before it imports coatcheck, PyJWT or redis-py (in the functions below).
from .report import Target, _cpu_model, _package_version, table

if TYPE_CHECKING:
    from coatcheck.tokens import Algorithm

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = "redis://127.0.0.1:6379/0"
ROUNDS = 30
"""Interleaved rounds of the timing."""
BATCH = 100
"""Operations of one kind per round, timed together."""
REQUESTS = 100
"""Operations counted per callgrind run (a check costs some hundreds of thousands of
instructions or more: a run's own noise is a few instructions per operation)."""
WARMUP = 10
"""Operations of every kind before anything is counted or timed (in both runs of a pair): the
interpreter specializes, Redis loads its scripts, every lazy first-time cost is paid."""
LAYOUTS = 3
"""Memory layouts each instruction count is made in (see benchmarks.instructions); the report
gives their median, which one stray run cannot move."""
COUNTED = 50
"""Operations of every kind in the pass that counts store calls and Redis replies."""
TTL = 3600.0
"""The access tokens' lifetime here: long enough that none expires during a run (the cost of
verifying a token does not depend on it)."""
ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
USER = "alice"

SESSION_DATA: dict[str, Any] = {
    "counter": 0,
    "user": {"id": 48213, "name": "Ada Lovelace", "email": "ada@example.org"},
    "csrf": "kq3X9vLw0pZt7nR2yB5cF8hJ1mD4sG6aE0uW3xQ9oIk",
    "locale": "en-GB",
    "roles": ["editor", "reader"],
    "cart": [1017, 2203, 3350],
}
""":data:`benchmarks.apps.SESSION_DATA`, copied so that the child need not import Starlette
(:func:`measure` checks that the two are equal)."""


@dataclass(frozen=True)
class Spec:
    """One operation: its name, its kind, the store it reads and how it is driven."""

    name: str
    kind: str
    """``stateless``, ``hybrid`` or ``session``."""
    store: str
    """``none``, ``memory``, ``sqlite``, ``redis`` or ``redis-async``."""
    algorithm: Algorithm = "EdDSA"

    @property
    def needs_redis(self) -> bool:
        return self.store.startswith("redis")

    @property
    def group(self) -> str:
        """Which callgrind child sets it up: ``async`` (run through ``run_async``) or ``sync``.
        Apart, so that the async ones' own variation (see the report) reaches no sync count."""
        return "async" if self.store == "redis-async" else "sync"


SPECS = (
    Spec("stateless-eddsa", "stateless", "none", "EdDSA"),
    Spec("stateless-es256", "stateless", "none", "ES256"),
    Spec("stateless-hs256", "stateless", "none", "HS256"),
    Spec("hybrid-memory", "hybrid", "memory"),
    Spec("hybrid-sqlite", "hybrid", "sqlite"),
    Spec("hybrid-redis", "hybrid", "redis"),
    Spec("hybrid-redis-async", "hybrid", "redis-async"),
    Spec("session-memory", "session", "memory"),
    Spec("session-sqlite", "session", "sqlite"),
    Spec("session-redis", "session", "redis"),
    Spec("session-redis-async", "session", "redis-async"),
)
BY_NAME = {spec.name: spec for spec in SPECS}
STORE_NAMES = {
    "none": "-",
    "memory": "MemoryStore",
    "sqlite": "SQLiteStore (temp file)",
    "redis": "RedisStore, `run`",
    "redis-async": "AsyncRedisStore, `run_async`",
}
WHAT = {
    "stateless": "`Tokens(stateless=True).authenticate`: signature and claims only",
    "hybrid": "`Tokens(revocation_lag=0).authenticate`: signature, claims, revocation read",
    "session": "`engine.load(session_id)`: the engine's load plan of a cookie session",
}


# --- the operations, set up (in the parent, and in each callgrind child) -----------------------


@dataclass
class Operation:
    spec: Spec
    call: Callable[[], object] | None = None
    acall: Callable[[], Awaitable[object]] | None = None


@dataclass
class Prepared:
    """Every operation, ready to run, and what must be closed after."""

    operations: list[Operation]
    replies: Counter[str]
    """Redis replies read, by face (``sync``, ``async``): counted when ``counting``."""
    calls: dict[str, Counter[str]]
    """Store calls by store name: counted when ``counting``."""
    cleanup: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def close(self) -> None:
        for step in reversed(self.cleanup):
            done = step()
            if done is not None:
                await done


class _Counted:
    """A store (sync or async) whose calls are counted by method, passed through otherwise."""

    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if not callable(found):
            return found
        calls = self._calls

        def counted(*args: Any) -> Any:
            calls[name] += 1
            return found(*args)

        return counted


def _redis_clients(url: str, counting: bool, replies: Counter[str]) -> tuple[Any, Any]:
    """A sync and an async redis-py client on ``url`` (their connections counting the replies
    they read when ``counting``): as the stores' own ``from_url`` make them."""
    import redis
    import redis.asyncio

    options: dict[str, Any] = {
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }
    if not counting:
        return redis.Redis.from_url(url, **options), redis.asyncio.Redis.from_url(url, **options)

    class SyncCounting(redis.Connection):
        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            replies["sync"] += 1
            return super().read_response(*args, **kwargs)

    class AsyncCounting(redis.asyncio.Connection):
        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            replies["async"] += 1
            return await super().read_response(*args, **kwargs)

    return (
        redis.Redis.from_url(url, connection_class=SyncCounting, **options),
        redis.asyncio.Redis.from_url(url, connection_class=AsyncCounting, **options),
    )


def _same_user(value: object) -> object:
    user_id = getattr(value, "user_id", None)
    if user_id != USER:
        raise RuntimeError(f"the operation answered {value!r}, not {USER}'s credential")
    return value


class _Setup:
    """The engines, keys and stores the operations share, and what each store was seeded with."""

    def __init__(self, prepared: Prepared, counting: bool) -> None:
        import secrets

        from coatcheck import SessionConfig, SessionEngine
        from coatcheck.tokens import TokenKey, TokenKeyRing, Tokens

        self.prepared, self.counting = prepared, counting
        secret = secrets.token_bytes(32)
        self.header_engine = SessionEngine(SessionConfig(transport="header", hash_secret=secret))
        self.cookie_engine = SessionEngine(SessionConfig(hash_secret=secret))
        ring = TokenKeyRing([TokenKey.generate("EdDSA")])
        self.hybrid = Tokens(self.header_engine, ring, issuer=ISSUER, audience=AUDIENCE, ttl=TTL)
        self.sync_stores: dict[str, Any] = {}
        self.async_stores: dict[str, Any] = {}
        self.access: dict[str, str] = {}
        self.session_ids: dict[str, str] = {}

    def wrapped(self, name: str, store: Any) -> Any:
        """``store``, its calls counted under ``name`` when counting."""
        if not self.counting:
            return store
        calls = self.prepared.calls.setdefault(name, Counter())
        return _Counted(store, calls)

    def open_stores(self, scratch: Path, redis_url: str | None, prefix: str | None) -> None:
        from coatcheck.stores import MemoryStore, SQLiteStore

        sqlite = SQLiteStore(scratch / "tokens.db")
        self.prepared.cleanup.append(sqlite.close)
        self.sync_stores.update(memory=MemoryStore(), sqlite=sqlite)
        if redis_url is None:
            return
        from coatcheck.stores.redis import AsyncRedisStore, RedisStore

        sync_client, async_client = _redis_clients(redis_url, self.counting, self.prepared.replies)
        prefix = prefix or f"coatcheck-bench-tokens-{uuid.uuid4().hex[:10]}:"
        self.sync_stores["redis"] = RedisStore(sync_client, prefix=prefix)
        self.async_stores["redis-async"] = AsyncRedisStore(async_client, prefix=prefix)

        def forget() -> None:  # leave nothing behind in the shared Redis
            for key in sync_client.scan_iter(match=f"{prefix}*", count=1000):
                sync_client.delete(key)
            sync_client.close()

        async def disconnect() -> None:
            await async_client.aclose()

        self.prepared.cleanup += [forget, disconnect]

    def seed(self) -> None:
        """Into each store: the user's refresh-token session, the revocation record another of
        their sessions left at its logout, and a logged-in cookie session. The async Redis store
        reads what was written through the sync one (the same server and prefix)."""
        from coatcheck.engine import run

        for name, store in self.sync_stores.items():
            pair = run(self.hybrid.login(USER), store)
            other = run(self.hybrid.login(USER), store)
            if not run(self.hybrid.logout(other.refresh_token), store):
                raise RuntimeError("the second session's logout found nothing")
            session = self.cookie_engine.fresh()
            session.update(SESSION_DATA)
            session.login(USER)
            cookie = run(self.cookie_engine.commit(session), store)
            if cookie is None:
                raise RuntimeError("the cookie session was not stored")
            self.access[name] = pair.access_token
            self.session_ids[name] = cookie.split(";", 1)[0].split("=", 1)[1]
        if "redis" in self.sync_stores:
            self.access["redis-async"] = self.access["redis"]
            self.session_ids["redis-async"] = self.session_ids["redis"]

    def operation(self, spec: Spec) -> Operation:
        import secrets

        from coatcheck.engine import run, run_async
        from coatcheck.stores import MemoryStore
        from coatcheck.tokens import TokenKey, TokenKeyRing, Tokens

        plan: Callable[[], Any]
        if spec.kind == "stateless":
            key_ring = TokenKeyRing([TokenKey.generate(spec.algorithm)], allowed=[spec.algorithm])
            tokens = Tokens(
                self.header_engine,
                key_ring,
                issuer=ISSUER,
                audience=AUDIENCE,
                ttl=TTL,
                stateless=True,
            )
            token = tokens.token_issuer.issue(USER, secrets.token_urlsafe(16))
            plan = lambda: tokens.authenticate(token)  # noqa: E731
            # It makes no store call; it is given a store that would count one all the same.
            base: Any = MemoryStore()
        elif spec.kind == "hybrid":
            access, hybrid = self.access[spec.store], self.hybrid
            plan = lambda: hybrid.authenticate(access)  # noqa: E731
            base = self.async_stores.get(spec.store) or self.sync_stores[spec.store]
        else:
            session_id, engine = self.session_ids[spec.store], self.cookie_engine
            plan = lambda: engine.load(session_id)  # noqa: E731
            base = self.async_stores.get(spec.store) or self.sync_stores[spec.store]
        store = self.wrapped(spec.name, base)
        if spec.store in self.async_stores:
            return Operation(spec, acall=lambda: run_async(plan(), store))
        return Operation(spec, call=lambda: run(plan(), store))


async def prepare(
    scratch: Path,
    redis_url: str | None,
    *,
    counting: bool = False,
    prefix: str | None = None,
    group: str | None = None,
) -> Prepared:
    """Every operation of :data:`SPECS` (the Redis ones only with ``redis_url``; only those of
    ``group`` when given), each checked once: it must find the user's token or session."""
    prepared = Prepared([], Counter(), {})
    setup = _Setup(prepared, counting)
    try:
        setup.open_stores(scratch, redis_url, prefix)
        setup.seed()
        for spec in SPECS:
            if (spec.needs_redis and redis_url is None) or group not in (None, spec.group):
                continue
            operation = setup.operation(spec)
            await once(operation)
            prepared.operations.append(operation)
    except BaseException:
        await prepared.close()
        raise
    for counter in prepared.calls.values():
        counter.clear()
    prepared.replies.clear()
    return prepared


async def once(operation: Operation) -> object:
    """Run an operation once; RuntimeError unless it found the user."""
    if operation.call is not None:
        return _same_user(operation.call())
    assert operation.acall is not None
    return _same_user(await operation.acall())


# --- the child: one operation, under callgrind ---------------------------------------------------


async def _child_run(name: str, count: int, warmup: int, redis_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coatcheck-tokens-child-") as scratch:
        prepared = await prepare(Path(scratch), redis_url, group=BY_NAME[name].group)
        try:
            for operation in prepared.operations:
                for _ in range(warmup):
                    await once(operation)
            gc.collect()
            gc.freeze()  # no full collection rescans the set-up heap during the counted calls
            if count:
                chosen = next(o for o in prepared.operations if o.spec.name == name)
                if chosen.call is not None:
                    call = chosen.call
                    for _ in range(count):
                        call()
                else:
                    assert chosen.acall is not None
                    acall = chosen.acall
                    for _ in range(count):
                        await acall()
            names = [o.spec.name for o in prepared.operations]
        finally:
            await prepared.close()
    return {"operations": names}


def child(argv: list[str]) -> int:
    """Set up every operation of one's group, warm each up, run ``count`` of the one; print
    what ran, as JSON."""
    from .instructions import _shift

    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens")
    parser.add_argument("operation", choices=list(BY_NAME))
    parser.add_argument("count", type=int)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--layout", type=int, default=0)
    parser.add_argument("--redis", default=None, help="Redis URL (no Redis operations without)")
    args = parser.parse_args(argv)
    _shift(args.layout)
    seen = asyncio.run(_child_run(args.operation, args.count, args.warmup, args.redis))
    import coatcheck

    seen["coatcheck"] = str(Path(coatcheck.__file__).resolve().parent.parent)
    print(json.dumps(seen))
    return 0


# --- the parent: timing, counting, the report -------------------------------------------------


@dataclass
class TokensResult:
    specs: list[Spec]
    rounds: int
    batch: int
    seconds: dict[str, list[float]]
    """Seconds per operation, one value per round."""
    calls: dict[str, float]
    """Store calls per operation."""
    replies: dict[str, float | None]
    """Redis replies read per operation (None: not a Redis operation)."""
    instructions: dict[str, list[float]] | None
    """Instructions per operation in each layout (None: valgrind not installed)."""
    requests: int
    layouts: int
    machine: list[tuple[str, str]]
    redis_note: str = ""

    def median_us(self, name: str) -> float:
        return statistics.median(self.seconds[name]) * 1e6

    def range_us(self, name: str) -> str:
        values = self.seconds[name]
        return f"{min(values) * 1e6:,.1f}-{max(values) * 1e6:,.1f}"

    def ratios(self, name: str, base: str) -> list[float]:
        return [a / b for a, b in zip(self.seconds[name], self.seconds[base], strict=True)]

    def instructions_median(self, name: str) -> float | None:
        """The median over layouts (None: not counted)."""
        if self.instructions is None:
            return None
        return statistics.median(self.instructions[name])

    def instructions_range(self, name: str) -> str:
        """The lowest and highest count over layouts, and how far apart, as a share."""
        if self.instructions is None:
            return "-"
        counts = self.instructions[name]
        share = (max(counts) - min(counts)) / statistics.median(counts)
        return f"{min(counts):,.0f}-{max(counts):,.0f} ({share:.1%})"

    def targets(self) -> list[Target]:
        found = []
        for spec in self.specs:
            expected = 0 if spec.kind == "stateless" else 1
            calls = self.calls[spec.name]
            found.append(
                Target(
                    f"{spec.name}: {expected} store call{'s' if expected != 1 else ''} per check",
                    f"{calls:.2f} per check",
                    calls == expected,
                )
            )
        return found

    def markdown(self, command: str) -> str:
        return _markdown(self, command)


async def _time(operations: list[Operation], rounds: int, batch: int) -> dict[str, list[float]]:
    """Seconds per operation, round by round: every operation's batch in every round, the order
    rotating by one and reversing every round."""
    seconds: dict[str, list[float]] = {o.spec.name: [] for o in operations}
    for number in range(rounds):
        shift = number % len(operations)
        order = operations[shift:] + operations[:shift]
        if number % 2:
            order.reverse()
        for operation in order:
            if operation.call is not None:
                call = operation.call
                started = time.perf_counter()
                for _ in range(batch):
                    call()
                elapsed = time.perf_counter() - started
            else:
                assert operation.acall is not None
                acall = operation.acall
                started = time.perf_counter()
                for _ in range(batch):
                    await acall()
                elapsed = time.perf_counter() - started
            seconds[operation.spec.name].append(elapsed / batch)
    return seconds


async def _timings_and_counts(
    redis_url: str | None, rounds: int, batch: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float | None]]:
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-tokens-") as scratch:
        prepared = await prepare(Path(scratch), redis_url)
        try:
            for operation in prepared.operations:
                for _ in range(WARMUP):
                    await once(operation)
            seconds = await _time(prepared.operations, rounds, batch)
        finally:
            await prepared.close()
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-tokens-") as scratch:
        counting = await prepare(Path(scratch), redis_url, counting=True)
        calls: dict[str, float] = {}
        replies: dict[str, float | None] = {}
        try:
            for operation in counting.operations:
                face = "async" if operation.acall is not None else "sync"
                before = counting.replies[face]
                for _ in range(COUNTED):
                    await once(operation)
                name = operation.spec.name
                calls[name] = counting.calls[name].total() / COUNTED
                replies[name] = (
                    (counting.replies[face] - before) / COUNTED
                    if operation.spec.needs_redis
                    else None
                )
        finally:
            await counting.close()
    return seconds, calls, replies


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class _Run:
    name: str
    count: int
    layout: int


def _arguments(run: _Run, warmup: int, redis_url: str | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.tokens",
        run.name,
        str(run.count),
        f"--warmup={warmup}",
        f"--layout={run.layout}",
    ]
    return command + ([f"--redis={redis_url}"] if redis_url else [])


def _check(stdout: str, src: Path, expected: list[str]) -> None:
    seen = json.loads(stdout.strip().splitlines()[-1])
    if Path(seen["coatcheck"]) != src.resolve():
        raise RuntimeError(f"the child imported coatcheck from {seen['coatcheck']}, not {src}")
    if seen["operations"] != expected:
        raise RuntimeError(f"the child set up {seen['operations']}, not {expected}")


def _count_instructions(
    names: list[str],
    redis_url: str | None,
    requests: int,
    layouts: int,
    progress: Callable[[str], None],
) -> dict[str, list[float]]:
    """Instructions per operation, by name, one value per layout. Each group of operations
    (:attr:`Spec.group`) has its own children, and its own run of no operations."""
    from .instructions import _copy_tree, _environment

    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(BY_NAME[name].group, []).append(name)
    first = {group: members[0] for group, members in groups.items()}
    with tempfile.TemporaryDirectory(prefix="coatcheck-tokens-instructions-") as temporary:
        scratch = Path(temporary)
        # Copies: edits made to the working tree during the runs reach none of them.
        src = _copy_tree(ROOT / "src", scratch / "tree" / "src")
        bench = scratch / "bench"
        _copy_tree(ROOT / "benchmarks", bench / "benchmarks")
        env = _environment(src)
        for members in groups.values():
            rehearsal = subprocess.run(
                _arguments(_Run(members[0], 3, 0), 3, redis_url),
                cwd=bench,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if rehearsal.returncode:
                raise RuntimeError(f"the tokens child failed:\n{rehearsal.stderr[-3000:]}")
            _check(rehearsal.stdout, src, members)
        runs = [
            _Run(name, count, layout)
            for layout in range(layouts)
            for members in groups.values()
            for name, count in [(members[0], 0), *((name, requests) for name in members)]
        ]
        workers = os.cpu_count() or 1
        progress(f"  {len(runs)} runs under callgrind, {workers} at a time")

        def total(numbered: tuple[int, _Run]) -> int:
            number, run = numbered
            out = scratch / f"{number}.out"
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    *_arguments(run, WARMUP, redis_url),
                ],
                cwd=bench,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                raise RuntimeError(f"{run} failed under valgrind:\n{done.stderr[-3000:]}")
            _check(done.stdout, src, groups[BY_NAME[run.name].group])
            totals: dict[str, int] = {}
            for line in out.read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("summary", "totals"):
                    totals[key] = int(value.split()[0])
            out.unlink()
            return totals.get("totals", totals["summary"])

        with ThreadPoolExecutor(max_workers=workers) as pool:
            counted = dict(zip(runs, pool.map(total, enumerate(runs)), strict=True))
    return {
        name: [
            (
                counted[_Run(name, requests, layout)]
                - counted[_Run(first[BY_NAME[name].group], 0, layout)]
            )
            / requests
            for layout in range(layouts)
        ]
        for name in names
    }


def _machine(redis_url: str | None, counter: str) -> list[tuple[str, str]]:
    import sqlite3

    from .instructions import working_label

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    items = [
        ("date", now),
        ("CPU", _cpu_model()),
        ("cores", str(os.cpu_count())),
        ("load average at the start (1, 5, 15 min)", load),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("counter", counter),
        ("coatcheck", f"{_package_version('coatcheck')}, tree `{working_label()}`"),
        ("PyJWT", _package_version("pyjwt")),
        ("cryptography", _package_version("cryptography")),
        ("redis-py", _package_version("redis")),
        ("hiredis", _package_version("hiredis")),
        ("Redis server", _redis_version(redis_url) if redis_url else "not reachable"),
        ("SQLite", sqlite3.sqlite_version),
    ]
    return items


def measure(
    redis_url: str = REDIS_URL,
    rounds: int = ROUNDS,
    batch: int = BATCH,
    requests: int = REQUESTS,
    layouts: int = LAYOUTS,
    progress: Callable[[str], None] = print,
) -> TokensResult:
    """Time, count and call-count every operation (the Redis ones when Redis answers)."""
    from .apps import SESSION_DATA as APP_DATA

    if SESSION_DATA != APP_DATA:
        raise RuntimeError("benchmarks.tokens.SESSION_DATA is no longer benchmarks.apps'")
    note = ""
    url: str | None = redis_url
    if not _reachable(redis_url):
        note = f"Redis was not reachable at {redis_url}: its operations were not measured."
        url = None
    specs = [spec for spec in SPECS if url is not None or not spec.needs_redis]
    has_valgrind = shutil.which("valgrind") is not None
    counter = "not installed"
    if has_valgrind:
        from .instructions import _valgrind_version

        counter = _valgrind_version()
    machine = _machine(url, counter)
    progress(f"  timing {len(specs)} operations: {rounds} rounds of {batch}")
    seconds, calls, replies = asyncio.run(_timings_and_counts(url, rounds, batch))
    counts = None
    if has_valgrind:
        names = [spec.name for spec in specs]
        counts = _count_instructions(names, url, requests, layouts, progress)
    return TokensResult(
        specs=specs,
        rounds=rounds,
        batch=batch,
        seconds=seconds,
        calls=calls,
        replies=replies,
        instructions=counts,
        requests=requests,
        layouts=layouts,
        machine=machine,
        redis_note=note,
    )


def _markdown(result: TokensResult, command: str) -> str:
    machine = "\n".join(f"- {name}: {value}" for name, value in result.machine)
    rows = []
    for spec in result.specs:
        name = spec.name
        count = result.instructions_median(name)
        replies = result.replies[name]
        rows.append(
            [
                f"`{name}`",
                "-" if spec.kind == "session" else spec.algorithm,
                STORE_NAMES[spec.store],
                f"{result.calls[name]:.2f}",
                "-" if replies is None else f"{replies:.2f}",
                f"{result.median_us(name):,.1f}",
                result.range_us(name),
                "-" if count is None else f"{count:,.0f}",
                result.instructions_range(name),
            ]
        )
    headers = [
        "operation",
        "algorithm",
        "store",
        "store calls",
        "Redis replies",
        "median us",
        "range us",
        "instructions",
        "instructions by layout",
    ]
    operations_table = table(headers, rows, left=3)

    comparisons = []
    stateless = "stateless-eddsa"
    for spec in result.specs:
        if spec.kind != "hybrid":
            continue
        session = f"session-{spec.store}"
        against_session = statistics.median(result.ratios(spec.name, session))
        added = statistics.median(
            a - b for a, b in zip(result.seconds[spec.name], result.seconds[stateless], strict=True)
        )
        hybrid_count = result.instructions_median(spec.name)
        session_count = result.instructions_median(session)
        stateless_count = result.instructions_median(stateless)
        comparisons.append(
            [
                STORE_NAMES[spec.store],
                f"{against_session:.2f}x",
                f"{added * 1e6:+,.1f}",
                "-"
                if hybrid_count is None or session_count is None
                else f"{hybrid_count / session_count:.2f}x",
                "-"
                if hybrid_count is None or stateless_count is None
                else f"{hybrid_count - stateless_count:+,.0f}",
            ]
        )
    comparison_table = table(
        [
            "store",
            "hybrid / session load, time",
            "revocation read, added us",
            "hybrid / session load, instructions",
            "revocation read, added instructions",
        ],
        comparisons,
    )
    algorithms = []
    for spec in result.specs:
        if spec.kind == "stateless":
            ratio = statistics.median(result.ratios(spec.name, stateless))
            count = result.instructions_median(spec.name)
            base = result.instructions_median(stateless)
            algorithms.append(
                [
                    spec.algorithm,
                    f"{result.median_us(spec.name):,.1f}",
                    f"{ratio:.2f}x",
                    "-" if count is None else f"{count:,.0f}",
                    "-" if count is None or base is None else f"{count / base:.2f}x",
                ]
            )
    algorithm_table = table(
        ["algorithm", "median us", "x EdDSA, time", "instructions", "x EdDSA, instructions"],
        algorithms,
    )
    kinds = "\n".join(f"- `{kind}-*`: {what}" for kind, what in WHAT.items())
    if result.instructions is None:
        counted = "Instructions were not counted: valgrind is not installed."
    else:
        counted = f"""\
Instructions per operation, counted by `valgrind --tool=callgrind` as section
"{INSTRUCTIONS_SECTION}" counts requests: a child Python sets up the operations, runs each
{WARMUP} times, collects garbage and freezes what is left, then runs N = {result.requests} of one
operation, or none; (total(N) - total(0)) / N is one operation. The operations run through
`run_async` have children of their own (and their own run of none): once, before they were
kept apart, both of them counted about 640,000 more instructions per operation in one run than
in the others (why was not found; repeated runs agreed within 2%), and such a run must not
reach the others' baseline. Each count is made in {result.layouts} memory layouts;
"instructions" is their median, which one stray run cannot move, and "instructions by layout"
their range. Only this process's
instructions are counted: the Redis server's work and the kernel's (the socket calls) are not,
so the instructions of a Redis operation are its client's cost, and its time includes the round
trip."""
    note = f"\n{result.redis_note}\n" if result.redis_note else ""
    return f"""\
This section's own run:

{machine}

What one request does to find out who is calling, three ways, measured side by side in one run,
in-process (no HTTP): verifying an access token with no store (stateless), verifying it and
reading the user's revocation record (the hybrid, `coatcheck.tokens` with `revocation_lag=0`),
and loading a cookie session (the engine's load plan, run with `coatcheck.engine.run`, or
`run_async` on the async Redis store). The access tokens are coatcheck's own (`iss`, `aud`,
`sub`, `sid`, `iat`, `exp`, `jti`; header `alg`, `kid`, `typ`), signed by a key generated for the
run; the session holds the same ~200 bytes of JSON as section 1's, and is logged in. The
hybrid's user has a revocation record (another session of theirs was logged out), so its read
finds and decodes one, as after any logout. Redis is the local server, over loopback.
{note}
{kinds}

Time: {result.rounds} rounds; in each, every operation runs {result.batch} times in a row, the
operations' order rotating and reversing from round to round, so the machine's drift reaches all
of them alike. "median us" is the median over rounds of the time per operation, "range us" the
fastest and slowest round. This machine is small, shared and noisy: compare the instructions,
and the per-round ratios below, rather than the microseconds.

{counted}

Store calls: each operation run {COUNTED} times through a wrapper that counts the store calls
the plan makes (on SQLite a call is a query in this process; on Redis a command over the
network), and on Redis the replies the client read from the server, counted in redis-py's
connection: its round trips.

Reproduce: `{command}`

{operations_table}

The hybrid against a session load on the same store, and what its revocation read adds to a
stateless check ("time": the median of the per-round ratios or differences; the Redis rows
differ from the others mostly by the loopback round trip):

{comparison_table}

The stateless check by algorithm:

{algorithm_table}
"""


INSTRUCTIONS_SECTION = "Instructions per request, in-process (callgrind)"


if __name__ == "__main__":
    raise SystemExit(child(sys.argv[1:]))
