"""Instructions per request of each framework integration, against its framework's bare app and
against that framework's usual session package on the same store (issue 17).

The apps are those of the HTTP benchmarks (:mod:`benchmarks.frameworks`), built by their own
builders and serving the same four routes, counted as :mod:`benchmarks.instructions` counts the
Starlette apps: a child Python builds one app, creates a session with ``GET /setup``, warms every
scenario up, collects and freezes the heap, then runs N requests of one scenario, or none. Each
is driven in-process, without a socket:

- Flask and Django through WSGI, as a server calls an app: a fresh environ per request,
  ``start_response`` kept, the body joined and closed (Django's through its ``WSGIHandler``);
- Litestar through ASGI, a fresh scope per request, its messages discarded (as Starlette);
- aiohttp through its own server's protocol (``web.AppRunner``'s ``RequestHandler``, the one a
  socket would be given) on a transport with no socket: each request's bytes are handed to
  ``data_received`` as a connection would read them, and the response is whole when the
  transport is given it (HTTP parsing, the request, the middlewares, the handler, preparing the
  response, which is where aiohttp-session's cookie goes on it, and writing it).

Every child checks its app as it goes: ``/setup``, then ``/read`` answers the stored name, each
scenario answers 200, and after the warm-up ``/write`` shows every write kept (a session app's
counter at the warm-up's count plus one): a broken app cannot give a plausible count.

"Added" is an app's count less its own framework's bare app (the same routes, no session layer).
Redis apps store on the run's private redis-server, under a key prefix of their child's own.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .report import Target, table

if TYPE_CHECKING:
    from .http_load import Scenario
    from .instructions import InstructionsResult

LAYOUTS = 1
"""Memory layouts the framework apps are counted in, by default: fewer than the Starlette apps',
since their 56 runs would otherwise more than double the benchmark's time; they compare
libraries, mostly by more than the layouts move a count (see :data:`NOISE`)."""
NOISE = 0.01
"""About how far a framework app's count moves with the memory layout: between two runs whose
benchmark code differed (so another layout), an app whose own code had not changed moved by up
to 1%; two runs of the same code agreed within 0.6% (most within 0.02%)."""


@dataclass(frozen=True)
class Framework:
    """One framework's apps: its bare app first, then the session apps, and the contests
    (coatcheck's app, the peer's) that issue 17's targets are read from."""

    name: str
    bare: str
    apps: tuple[str, ...]
    contests: tuple[tuple[str, str], ...]
    driven: str
    """How the child drives it, for the report."""


FLASK_BARE = "flask-bare"
FLASK_COATCHECK = "flask-coatcheck-redis"
FLASK_SESSION = "flask-session-redis"
DJANGO_BARE = "django-bare"
DJANGO_COATCHECK = "django-coatcheck-redis"
DJANGO_CACHE = "django-cache-redis"
DJANGO_COATCHECK_SQLITE = "django-coatcheck-sqlite"
DJANGO_DB = "django-db-sqlite"
LITESTAR_BARE = "litestar-bare"
LITESTAR_COATCHECK = "litestar-coatcheck-redis"
LITESTAR_SERVER_SIDE = "litestar-server-side-redis"
AIOHTTP_BARE = "aiohttp-bare"
AIOHTTP_COATCHECK = "aiohttp-coatcheck-redis"
AIOHTTP_SESSION = "aiohttp-session-redis"

FLASK = Framework(
    "Flask",
    FLASK_BARE,
    (FLASK_BARE, FLASK_COATCHECK, FLASK_SESSION),
    ((FLASK_COATCHECK, FLASK_SESSION),),
    "WSGI, in-process: the Flask app called as a server calls it (a fresh environ, the body"
    " joined and closed)",
)
DJANGO = Framework(
    "Django",
    DJANGO_BARE,
    (DJANGO_BARE, DJANGO_COATCHECK, DJANGO_CACHE, DJANGO_COATCHECK_SQLITE, DJANGO_DB),
    ((DJANGO_COATCHECK, DJANGO_CACHE), (DJANGO_COATCHECK_SQLITE, DJANGO_DB)),
    "WSGI, in-process: Django's `WSGIHandler` called as a server calls it (a fresh environ, the"
    " body joined and closed, so `request_finished` runs); each child configures Django for its"
    " own app",
)
LITESTAR = Framework(
    "Litestar",
    LITESTAR_BARE,
    (LITESTAR_BARE, LITESTAR_COATCHECK, LITESTAR_SERVER_SIDE),
    ((LITESTAR_COATCHECK, LITESTAR_SERVER_SIDE),),
    "ASGI, in-process: the app called with a fresh scope, its messages discarded (as the"
    " Starlette apps)",
)
AIOHTTP = Framework(
    "aiohttp",
    AIOHTTP_BARE,
    (AIOHTTP_BARE, AIOHTTP_COATCHECK, AIOHTTP_SESSION),
    ((AIOHTTP_COATCHECK, AIOHTTP_SESSION),),
    "aiohttp's own server protocol (`web.AppRunner(app, access_log=None)`'s `RequestHandler`) on"
    " a transport with no socket: each request's bytes go to `data_received`, and the request"
    " is done when its response is written to the transport (parsing, middlewares, handler,"
    " `prepare`, where aiohttp-session's cookie goes on the response, and the write), one"
    " keep-alive connection",
)
FRAMEWORKS = (FLASK, DJANGO, LITESTAR, AIOHTTP)
APPS = tuple(app for framework in FRAMEWORKS for app in framework.apps)
"""Every framework app, counted in the working tree only (as the Starlette peers)."""
FRAMEWORK_OF = {app: framework for framework in FRAMEWORKS for app in framework.apps}
BARE_OF = {app: f.bare for f in FRAMEWORKS for app in f.apps if app != f.bare}
"""Each session app's bare app: its own framework's, with the same routes and no session."""
REDIS = (
    FLASK_COATCHECK,
    FLASK_SESSION,
    DJANGO_COATCHECK,
    DJANGO_CACHE,
    LITESTAR_COATCHECK,
    LITESTAR_SERVER_SIDE,
    AIOHTTP_COATCHECK,
    AIOHTTP_SESSION,
)
"""The framework apps whose sessions live in Redis (the run's private redis-server)."""

DESCRIPTIONS = {
    FLASK_BARE: "Flask, no session extension (its default session interface finds no secret"
    " key: a null session, never saved); the handlers' session a throwaway dict",
    FLASK_COATCHECK: "`coatcheck.integrations.flask.Session`, `COATCHECK_STORE_URL` on Redis",
    FLASK_SESSION: 'Flask-Session, `SESSION_TYPE = "redis"` (redis-py, msgspec), Flask\'s'
    " defaults: permanent sessions, `SESSION_REFRESH_EACH_REQUEST`",
    DJANGO_BARE: "Django, no session middleware",
    DJANGO_COATCHECK: '`SESSION_ENGINE = "coatcheck.integrations.django"` on Redis'
    " (`coatcheck.integrations.django.SessionMiddleware`)",
    DJANGO_CACHE: '`SESSION_ENGINE = "django.contrib.sessions.backends.cache"` on'
    " `django.core.cache.backends.redis.RedisCache` (Django's `SessionMiddleware`)",
    DJANGO_COATCHECK_SQLITE: "coatcheck's engine on its `SQLiteStore`, a temporary SQLite file"
    " (Django's `DATABASES` the same file)",
    DJANGO_DB: '`SESSION_ENGINE = "django.contrib.sessions.backends.db"` on a temporary SQLite'
    " file: the pragmas coatcheck's store sets (WAL, `synchronous=NORMAL`), a persistent"
    " connection (`CONN_MAX_AGE = None`)",
    LITESTAR_BARE: "Litestar, no session middleware",
    LITESTAR_COATCHECK: "`CoatcheckSessionConfig` + coatcheck's `AsyncRedisStore`",
    LITESTAR_SERVER_SIDE: "`ServerSideSessionConfig(renew_on_access=True)` + Litestar's"
    " `RedisStore`",
    AIOHTTP_BARE: "aiohttp.web, no session middleware",
    AIOHTTP_COATCHECK: "`coatcheck.integrations.aiohttp.setup` + `AsyncRedisStore`",
    AIOHTTP_SESSION: "`aiohttp_session.setup` + `RedisStorage` (redis-py's asyncio client)",
}


# --- the child: one app, one scenario ----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a request got: its status, its body, and the session cookie it set (``name=value``)."""

    status: int
    body: str
    set_cookie: str | None


class WsgiDriver(Protocol):
    """:class:`benchmarks.instructions._WsgiDriver`, as this module uses it."""

    status: str
    headers: list[tuple[str, str]]

    def request(self, path: str, cookie: str | None) -> bytes: ...


class _Sync:
    """A WSGI app as a server calls it: ``call`` is one counted request."""

    def __init__(self, driver: WsgiDriver) -> None:
        self.driver = driver
        self.call = driver.request

    def exchange(self, path: str, cookie: str | None) -> Reply:
        body = self.driver.request(path, cookie)
        found = [value for name, value in self.driver.headers if name.lower() == "set-cookie"]
        set_cookie = found[0].partition(";")[0].strip() if found else None
        return Reply(int(self.driver.status.split()[0]), body.decode(), set_cookie)


class _Async(Protocol):
    """An async app's driver: ``call`` is one counted request."""

    def call(self, path: str, cookie: str | None) -> Awaitable[object]: ...

    async def exchange(self, path: str, cookie: str | None) -> Reply: ...


def _seen(made: Reply, read: Reply, after: dict[str, Reply], warmup: int) -> dict[str, object]:
    """What the parent checks (:func:`check`): the session was made, found and kept."""
    return {
        "read": read.body,
        "cookie": made.set_cookie is not None,
        "statuses": [made.status, read.status, *(reply.status for reply in after.values())],
        "bodies": {name: reply.body for name, reply in after.items()},
        "warmup": warmup,
    }


def _run_sync(
    driver: _Sync, scenarios: tuple[Scenario, ...], scenario: str, count: int, warmup: int
) -> dict[str, object]:
    from .http_load import BARE_COOKIE

    made = driver.exchange("/setup", None)
    cookie = made.set_cookie or BARE_COOKIE
    read = driver.exchange("/read", cookie)
    for each in scenarios:
        for _ in range(warmup):
            driver.call(each.path, cookie if each.with_cookie else None)
    after = {s.name: driver.exchange(s.path, cookie if s.with_cookie else None) for s in scenarios}
    gc.collect()
    gc.freeze()  # no full collection rescans the start-up heap during the counted requests
    chosen = next(s for s in scenarios if s.name == scenario)
    path, sends = chosen.path, cookie if chosen.with_cookie else None
    call = driver.call
    for _ in range(count):
        call(path, sends)
    return _seen(made, read, after, warmup)


async def _run_async(
    driver: _Async, scenarios: tuple[Scenario, ...], scenario: str, count: int, warmup: int
) -> dict[str, object]:
    from .http_load import BARE_COOKIE

    made = await driver.exchange("/setup", None)
    cookie = made.set_cookie or BARE_COOKIE
    read = await driver.exchange("/read", cookie)
    for each in scenarios:
        for _ in range(warmup):
            await driver.call(each.path, cookie if each.with_cookie else None)
    after = {}
    for each in scenarios:
        after[each.name] = await driver.exchange(each.path, cookie if each.with_cookie else None)
    gc.collect()
    gc.freeze()
    chosen = next(s for s in scenarios if s.name == scenario)
    path, sends = chosen.path, cookie if chosen.with_cookie else None
    call = driver.call
    for _ in range(count):
        await call(path, sends)
    return _seen(made, read, after, warmup)


def _flask(app: str, redis_url: str, prefix: str) -> Any:
    from .apps import BARE
    from .frameworks import flask_apps

    variant = {
        FLASK_BARE: BARE,
        FLASK_COATCHECK: flask_apps.COATCHECK,
        FLASK_SESSION: flask_apps.FLASK_SESSION,
    }[app]
    return flask_apps.build(variant, redis_url, f"{prefix}:")


_KEPT: list[tempfile.TemporaryDirectory[str]] = []
"""The child's temporary folders (an SQLite file), removed as it exits."""


def _django(app: str, redis_url: str, prefix: str) -> Any:
    from .frameworks import django as bench

    variant = {
        DJANGO_BARE: bench.BARE,
        DJANGO_COATCHECK: bench.COATCHECK,
        DJANGO_CACHE: bench.DJANGO_CACHE,
        DJANGO_COATCHECK_SQLITE: bench.COATCHECK_SQLITE,
        DJANGO_DB: bench.DJANGO_DB,
    }[app]
    os.environ.update(
        {bench.VARIANT_ENV: variant, bench.REDIS_ENV: redis_url, bench.PREFIX_ENV: f"{prefix}:"}
    )
    if variant in bench.DATABASE_VARIANTS:
        folder = tempfile.TemporaryDirectory(prefix="coatcheck-instructions-django-")
        _KEPT.append(folder)
        os.environ[bench.SQLITE_ENV] = os.path.join(folder.name, "sessions.db")
    from .frameworks import django_app  # configures Django for this variant, once

    if variant == bench.DJANGO_DB:
        from django.core.management import call_command

        call_command("migrate", "sessions", verbosity=0)
    return django_app.application


class _Asgi:
    """An ASGI app called as :mod:`benchmarks.instructions` calls Starlette."""

    def __init__(self, app: Any) -> None:
        from .inprocess import _discard, _receive, _scope

        self.app = app
        self.scope, self.receive, self.discard = _scope, _receive, _discard

    def call(self, path: str, cookie: str | None) -> Awaitable[object]:
        result: Awaitable[object] = self.app(self.scope(path, cookie), self.receive, self.discard)
        return result

    async def exchange(self, path: str, cookie: str | None) -> Reply:
        sent: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(self.scope(path, cookie), self.receive, keep)
        found = [v for k, v in sent[0].get("headers", []) if k.lower() == b"set-cookie"]
        set_cookie = found[0].decode("latin-1").partition(";")[0].strip() if found else None
        body = b"".join(message.get("body", b"") for message in sent[1:])
        return Reply(int(sent[0]["status"]), body.decode(), set_cookie)


class _Transport(asyncio.Transport):
    """Where aiohttp's server writes its responses: the last one kept, no socket."""

    def __init__(self) -> None:
        super().__init__({"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)})
        self.written = b""
        self.done: asyncio.Future[None] | None = None
        self.writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written = bytes(data)
        self.writes += 1
        done, self.done = self.done, None
        if done is not None:
            done.set_result(None)

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class _Aiohttp:
    """An aiohttp app behind its own server's protocol, one keep-alive connection, no socket."""

    def __init__(self, protocol: asyncio.Protocol, transport: _Transport) -> None:
        self.protocol, self.transport = protocol, transport
        self.loop = asyncio.get_running_loop()
        self.raw: dict[tuple[str, str | None], bytes] = {}

    @classmethod
    async def start(cls, app: Any) -> _Aiohttp:
        from aiohttp import web

        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert runner.server is not None
        protocol = runner.server()
        transport = _Transport()
        protocol.connection_made(transport)
        return cls(protocol, transport)

    def _request(self, path: str, cookie: str | None) -> bytes:
        """The bytes of ``GET path`` with the headers of the ASGI scope (as wrk sends them)."""
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1:8000", "User-Agent: wrk/4.1.0"]
        if cookie is not None:
            lines.append(f"Cookie: {cookie}")
        raw = self.raw[path, cookie] = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return raw

    def call(self, path: str, cookie: str | None) -> Awaitable[object]:
        self.transport.done = done = self.loop.create_future()
        raw = self.raw.get((path, cookie))
        self.protocol.data_received(raw if raw is not None else self._request(path, cookie))
        return done

    async def exchange(self, path: str, cookie: str | None) -> Reply:
        writes = self.transport.writes
        await self.call(path, cookie)
        if self.transport.writes != writes + 1:
            raise RuntimeError(
                f"GET {path}: the response took {self.transport.writes - writes} writes, not one"
            )
        head, _, body = self.transport.written.partition(b"\r\n\r\n")
        status_line, *headers = head.decode("latin-1").split("\r\n")
        found = [
            value
            for name, _, value in (h.partition(": ") for h in headers)
            if name.lower() == "set-cookie"
        ]
        set_cookie = found[0].partition(";")[0].strip() if found else None
        return Reply(int(status_line.split()[1]), body.decode(), set_cookie)


def run(
    app: str,
    scenario: str,
    count: int,
    warmup: int,
    redis_url: str,
    wsgi_driver: Callable[[Any], WsgiDriver],
) -> dict[str, object]:
    """Build ``app``, set its session up, warm it up, then run ``count`` requests of
    ``scenario`` (what callgrind counts); what was seen, for the parent's checks."""
    try:
        return _run(app, scenario, count, warmup, redis_url, wsgi_driver)
    finally:
        for folder in _KEPT:
            folder.cleanup()


def _run(
    app: str,
    scenario: str,
    count: int,
    warmup: int,
    redis_url: str,
    wsgi_driver: Callable[[Any], WsgiDriver],
) -> dict[str, object]:
    from .apps import BARE
    from .http_load import SCENARIOS

    prefix = f"instructions-{os.getpid()}"
    framework = FRAMEWORK_OF[app]
    if framework is FLASK:
        return _run_sync(
            _Sync(wsgi_driver(_flask(app, redis_url, prefix))), SCENARIOS, scenario, count, warmup
        )
    if framework is DJANGO:
        return _run_sync(
            _Sync(wsgi_driver(_django(app, redis_url, prefix))), SCENARIOS, scenario, count, warmup
        )
    if framework is LITESTAR:
        from .frameworks import litestar

        variant = {
            LITESTAR_BARE: BARE,
            LITESTAR_COATCHECK: litestar.COATCHECK,
            LITESTAR_SERVER_SIDE: litestar.LITESTAR,
        }[app]
        driver = _Asgi(litestar.build(variant, prefix, redis_url))
        return asyncio.run(_run_async(driver, SCENARIOS, scenario, count, warmup))
    from .frameworks import aiohttp

    variant = {
        AIOHTTP_BARE: BARE,
        AIOHTTP_COATCHECK: aiohttp.COATCHECK,
        AIOHTTP_SESSION: aiohttp.AIOHTTP_SESSION,
    }[app]

    async def served() -> dict[str, object]:
        driver = await _Aiohttp.start(aiohttp.build(variant, prefix, redis_url))
        return await _run_async(driver, SCENARIOS, scenario, count, warmup)

    return asyncio.run(served())


def check(app: str, seen: dict[str, Any]) -> str | None:
    """What is wrong with a child's run of ``app``, or None: every request answered 200, a
    session app set a cookie, found the session (the stored name read back) and kept every
    write (the counter at the warm-up's count plus one); a bare app found none."""
    from .apps import READ_BODY

    bodies = seen["bodies"]
    if any(status != 200 for status in seen["statuses"]):
        return f"a request was not answered 200: {seen['statuses']}"
    if bodies["anonymous"] != "hello":
        return f"GET /anon answered {bodies['anonymous']!r}"
    if app not in BARE_OF:
        if seen["read"] != "no session" or bodies["writing"] != "1":
            return "the bare app found a session"
        return None
    if not seen["cookie"]:
        return "no session cookie was set"
    if seen["read"] != READ_BODY or bodies["read-only"] != READ_BODY:
        return f"the session was not found: /read answered {seen['read']!r}"
    if bodies["writing"] != str(seen["warmup"] + 1):
        return f"writes were lost: /write answered {bodies['writing']!r} after the warm-up"
    return None


# --- the parent's report -----------------------------------------------------------------------


def counted(result: InstructionsResult) -> list[Framework]:
    """The frameworks whose apps were all counted."""
    apps = result.per_layout[result.trees[0].label]
    return [f for f in FRAMEWORKS if all(app in apps for app in f.apps)]


def targets(result: InstructionsResult) -> list[Target]:
    """Issue 17: in every framework, coatcheck's integration adds fewer instructions to its bare
    app's requests than the framework's usual session package on the same store, in every
    scenario."""
    found = []
    for framework in counted(result):
        for ours, peer in framework.contests:
            found += result.contest_targets(ours, peer, framework.name)
    return found


def markdown(result: InstructionsResult) -> str:
    """One table per framework: each app's instructions per request and what it adds to the
    bare app's, by scenario."""
    from .http_load import SCENARIOS

    frameworks = counted(result)
    if not frameworks:
        return ""
    tree = result.trees[0].label
    counts = result.per_layout[tree][frameworks[0].bare][SCENARIOS[0].name]
    layouts = f"the mean of {len(counts)} layouts" if len(counts) > 1 else "in one layout"
    text = f"""
The framework integrations, each against its framework's bare app (the same four routes, no
session layer) and its framework's usual session package on the same store, counted in the
working tree as above, {layouts} (N = {result.requests}). "Added" is an app's count less its
own framework's bare app's. Every child checks that each request was answered 200, that a
session app set its cookie, read the stored name back and kept every write of the warm-up, so
that a broken app cannot give a plausible count. Redis apps store on the run's private
redis-server, each under a key prefix of its own. Counted in one layout, an app's count moves
by up to about {NOISE:.0%} when code that runs before it changes (another memory layout): two
apps closer than that are level.
"""
    for framework in frameworks:
        headers = ["app"]
        for scenario in SCENARIOS:
            headers += [scenario.name, "added"]
        rows = []
        for app in framework.apps:
            row: list[object] = [app]
            for scenario in SCENARIOS:
                added = result.added(tree, app, scenario.name)
                row += [
                    f"{result.count(tree, app, scenario.name):,.0f}",
                    "" if app == framework.bare else f"{added:+,.0f}",
                ]
            rows.append(row)
        apps = "\n".join(f"- `{app}`: {DESCRIPTIONS[app]}" for app in framework.apps)
        text += f"""
{framework.name}: {framework.driven}.

{apps}

{table(headers, rows)}
"""
    return text
