"""``coatcheck compare``: the seeds' summary table of session stores, measured on this machine.

For each store that is reachable, with real processes and real calls:

- **coupled to one server?** A session written by an app on one server is looked for by an app
  on *another* server. Another server is played by a process with its own memory and its own
  disk directory (where ``file://`` and ``sqlite://`` keep their data), reaching the same network
  services. Coupled means it could not find the session.
- **survives an app restart?** Written by one app process, which then exits; read by a new one.
- **shared across 3 instances?** Three app processes on this server at once: written by the
  first, read by the other two.
- **load and save latency** (p50, p99), through the real engine, in this process.
- **sessions written per second**: new sessions created back to back, one thread.

And for each store, and for three other ways to know who is calling (rows of their own: a
stateless JWT, the hybrid of :mod:`coatcheck.tokens`, sticky sessions), what one credential
costs and how fast it can be taken back:

- **revocation lag**: the credential is used, then logged out; it is sent again, every 10 ms,
  until it is refused. The lag is the time from the end of the logout to the first refusal, and
  the requests served meanwhile are counted. A stateless JWT is refused only when it expires, so
  its lag is what was left of its life (measured with a short ``ttl`` and no leeway, so that it
  ends within the run).
- **store calls per request**: counted by a wrapper around the real store, over a few requests
  that check the credential (a cookie session's read-only request, a token's ``authenticate``;
  for sticky sessions, inside the instance that served them).
- **bytes on the wire per request**: the header line carrying the credential, as HTTP/1.1 sends
  it (``Cookie: ...`` or ``Authorization: Bearer ...``, CRLF included), measured from the real
  cookie or token: the cookie as a Secure production config names it (``__Host-session``).

Sticky sessions run as the demo runs them (``coatcheck demo --instances 2 --sticky``): two app
processes, each keeping sessions in its own memory, behind the system's nginx pinning each client
to one instance by a routing cookie; the client talks to them over real HTTP.

Every app process is ``python -m coatcheck.cli.comparison URL``, which answers ``write`` and
``read ID`` on its standard input, or ``python -m coatcheck.cli.comparison --http NAME PORT``,
a sticky-session instance serving HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import SessionConfig
from ..engine import SessionEngine, run
from ..stores import Iterable, MemoryStore, Record, Store, from_url, scrubbed

CONFIG = SessionConfig(secure=False, idle_timeout=300, absolute_timeout=600)
"""Short timeouts: whatever a Memcached run leaves behind expires within minutes."""
CART = {"cart": {"wool-coat": 1, "scarf": 2}, "device": "Firefox on Linux", "seen": 0}
"""A session the size of the demo shop's."""
SECURE_CONFIG = dataclasses.replace(CONFIG, secure=True)
"""What the credential columns measure: the cookie a production config sets (Secure, so named
``__Host-session``)."""
USER = "alice"
ISSUER = "https://auth.example.com"
"""The ``iss`` of the access tokens measured."""
AUDIENCE = "https://api.example.com"
"""Their ``aud``."""
TOKEN_TTL = 2.0
"""The stateless JWT's lifetime in its revocation-lag measurement (``--token-ttl``)."""
CREDENTIAL_REQUESTS = 20
"""Requests whose store calls are counted, per credential."""
POLL = 0.01
"""Seconds between two requests sent after a logout, until one is refused."""
REFUSAL_LIMIT = 5.0
"""How long after a logout a credential may still be accepted before the measurement gives up
(beyond a token's own life)."""
CREDENTIALS = ("stateless-jwt", "hybrid", "sticky")
"""The rows beside the stores (``--credentials``)."""


@dataclass(frozen=True)
class Candidate:
    """A store to compare: its name, how to reach it, and its URL for a given server's disk."""

    name: str
    url_for: Callable[[Path], str]
    address: tuple[str, int] | None = None
    """Where its server listens (None: it lives in the app's memory or on its disk)."""


@dataclass
class Measurement:
    name: str
    status: str = "measured"
    coupled: bool | None = None
    survives_restart: bool | None = None
    shared: bool | None = None
    load_p50: float | None = None
    load_p99: float | None = None
    save_p50: float | None = None
    save_p99: float | None = None
    writes_per_second: float | None = None
    credential: Credential | None = None
    """What one credential costs and how fast it is taken back (None: not measured)."""
    is_store: bool = True
    """False for the rows beside the stores (stateless JWT, hybrid, sticky sessions)."""


@dataclass
class Credential:
    """One credential, measured: its header, what checking it costs, how fast it is revoked."""

    header: str
    """The request header that carries it: ``Cookie`` or ``Authorization``."""
    bytes: int
    """That header line as HTTP/1.1 sends it, CRLF included, from the real cookie or token."""
    store_calls: float
    """Store calls per request, counted."""
    network_calls: float
    """Those of them that go over the network (to a store server): 0 for a store in the app's
    memory or on its disk."""
    where: str
    """Where the store calls go: ``network``, ``local file``, ``in process`` or ``none``."""
    revocation_lag: float | None
    """Seconds from the end of the logout to the first refused request; None when it was still
    accepted at the limit."""
    accepted_after_logout: int
    """Requests served after the logout, before the first refusal."""
    refused_as: str
    """Why the first refused request was refused (or that none was)."""
    details: dict[str, Any] = field(default_factory=dict)
    """What else the row's measurement found (the token's ttl and leeway, its life left at the
    logout; the store a token row ran on; the instances sticky sessions met)."""


def candidates(redis: str, postgresql: str, mariadb: str, memcached: str) -> list[Candidate]:
    """The seven kinds of store, each isolated by a prefix or table of this run's own."""
    run_id = uuid.uuid4().hex[:10]
    prefix = f"coatcheck-compare-{run_id}:"

    def address(url: str, port: int) -> tuple[str, int]:
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or port

    def separator(url: str) -> str:
        return "&" if "?" in url else "?"

    memcached_url = memcached if "://" in memcached else f"memcached://{memcached}"
    return [
        Candidate("memory", lambda disk: "memory://"),
        Candidate("file", lambda disk: f"file://{disk}/sessions"),
        Candidate("sqlite", lambda disk: f"sqlite:///{disk}/sessions.db"),
        Candidate(
            "redis",
            lambda disk: f"{redis}{separator(redis)}prefix={prefix}",
            address(redis, 6379),
        ),
        Candidate(
            "postgresql",
            lambda disk: f"{postgresql}{separator(postgresql)}table=coatcheck_compare",
            address(postgresql, 5432),
        ),
        Candidate(
            "mariadb",
            lambda disk: f"{mariadb}{separator(mariadb)}table=coatcheck_compare",
            address(mariadb, 3306),
        ),
        Candidate(
            "memcached",
            lambda disk: f"{memcached_url}{separator(memcached_url)}prefix={prefix}",
            address(memcached_url, 11211),
        ),
    ]


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


# -- the app processes -----------------------------------------------------------------------


class App:
    """One app process on a store: ``write()`` gives a new session's ID, ``read(ID)`` says
    whether the session is there."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "coatcheck.cli.comparison", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer:
            raise RuntimeError(f"the app process on the store died ({self.process.wait()})")
        return answer

    def write(self) -> str:
        return self.ask("write")

    def read(self, session_id: str) -> bool:
        return self.ask(f"read {session_id}") == "yes"

    def stop(self) -> None:
        if self.process.stdin is not None:
            with suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def apps(*urls: str) -> Iterator[list[App]]:
    started = [App(url) for url in urls]
    try:
        yield started
    finally:
        for app in started:
            app.stop()


def serve(url: str) -> None:
    """The app process: answer ``write`` and ``read ID`` lines until standard input closes."""
    store = from_url(url)
    assert isinstance(store, Store)
    engine = SessionEngine(CONFIG)
    try:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "write":
                session = engine.fresh()
                session.update(CART)
                cookie = run(engine.commit(session), store)
                assert cookie is not None
                answer = cookie.split(";", 1)[0].split("=", 1)[1]
            else:
                answer = "no" if run(engine.load(argument), store).is_new else "yes"
            print(answer, flush=True)
    finally:
        store.close()


# -- measuring -------------------------------------------------------------------------------


def behaviour(candidate: Candidate, root: Path) -> tuple[bool, bool, bool]:
    """(coupled to one server, survives an app restart, shared across 3 instances)."""
    here, elsewhere = root / "server-a", root / "server-b"
    here.mkdir(exist_ok=True)
    elsewhere.mkdir(exist_ok=True)
    url, other_server = candidate.url_for(here), candidate.url_for(elsewhere)
    with apps(url, url, url, other_server) as (first, second, third, remote):
        session_id = first.write()
        shared = second.read(session_id) and third.read(session_id)
        coupled = not remote.read(session_id)
        first.stop()
    with apps(url) as (restarted,):
        survives = restarted.read(session_id)
    return coupled, survives, shared


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timings(url: str, samples: int, seconds: float) -> tuple[list[float], list[float], float]:
    """Load and save latencies (seconds) of one session, and new sessions written per second."""
    store = from_url(url)
    assert isinstance(store, Store)
    engine = SessionEngine(CONFIG)
    try:
        session = engine.fresh()
        session.update(CART)
        cookie = run(engine.commit(session), store)
        assert cookie is not None
        session_id = cookie.split(";", 1)[0].split("=", 1)[1]
        loads, saves = [], []
        for count in range(samples):
            started = time.perf_counter()
            session = run(engine.load(session_id), store)
            loads.append(time.perf_counter() - started)
            session["seen"] = count + 1
            plan = engine.commit(session)
            started = time.perf_counter()
            run(plan, store)
            saves.append(time.perf_counter() - started)
        written, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            fresh = engine.fresh()
            fresh.update(CART)
            run(engine.commit(fresh), store)
            written += 1
        rate = written / elapsed
        _forget(store)  # leave nothing behind in a shared server
        return loads, saves, rate
    finally:
        store.close()


# -- credentials ------------------------------------------------------------------------------


class CountingStore(Store):
    """A real store whose calls are counted (every one, whatever its method)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.offload_async = inner.offload_async
        self.calls = 0

    def load(self, key: str) -> Record | None:
        self.calls += 1
        return self.inner.load(key)

    def load_touching(
        self, key: str, now: float, expires_at: float, min_gain: float
    ) -> tuple[Record | None, bool]:
        self.calls += 1
        return self.inner.load_touching(key, now, expires_at, min_gain)

    def create(self, record: Record) -> bool:
        self.calls += 1
        return self.inner.create(record)

    def save(self, record: Record, expected_version: int) -> bool:
        self.calls += 1
        return self.inner.save(record, expected_version)

    def save_keeping_expiry(self, record: Record, expected_version: int) -> bool:
        self.calls += 1
        return self.inner.save_keeping_expiry(record, expected_version)

    def touch(self, key: str, expires_at: float) -> None:
        self.calls += 1
        self.inner.touch(key, expires_at)

    def delete(self, key: str) -> None:
        self.calls += 1
        self.inner.delete(key)

    def rotate(self, old_key: str, record: Record) -> bool:
        self.calls += 1
        return self.inner.rotate(old_key, record)

    def close(self) -> None:
        self.inner.close()


def header_bytes(name: str, value: str) -> int:
    """The size of a request header line as HTTP/1.1 sends it: ``Name: value`` and CRLF."""
    return len(f"{name}: {value}\r\n".encode("latin-1"))


def where_of(candidate: Candidate) -> str:
    """Where a store's calls go: over the network to its server, to a file, or nowhere."""
    if candidate.address is not None:
        return "network"
    return "in process" if candidate.name == "memory" else "local file"


def revocation_lag(
    logout: Callable[[], object],
    refusal: Callable[[], str | None],
    limit: float,
    poll: float = POLL,
) -> tuple[float | None, int, str]:
    """Log out, then send the credential again every ``poll`` seconds until it is refused.

    ``refusal()`` sends one request: None when it was served, else why it was refused. Returns
    the seconds from the end of the logout to the first refusal (None if there was none within
    ``limit`` seconds), the requests served meanwhile, and why it was refused.
    """
    logout()
    ended = time.monotonic()
    served = 0
    while True:
        refused = refusal()
        elapsed = time.monotonic() - ended
        if refused is not None:
            return elapsed, served, refused
        served += 1
        if elapsed > limit:
            return None, served, f"still accepted {limit:g} s after the logout"
        time.sleep(poll)


def session_credential(
    store: Store,
    where: str,
    requests: int = CREDENTIAL_REQUESTS,
    limit: float = REFUSAL_LIMIT,
) -> Credential:
    """A logged-in cookie session on ``store``: its cookie's size, the store calls of a
    read-only request, and how long after its logout its cookie is still served."""
    engine = SessionEngine(SECURE_CONFIG)
    session = engine.fresh()
    session.update(CART)
    session.login(USER)
    set_cookie = run(engine.commit(session), store)
    if set_cookie is None:
        raise RuntimeError("the session was not stored")
    pair = set_cookie.split(";", 1)[0]  # name=value, as the client sends it back
    session_id = pair.split("=", 1)[1]
    counting = CountingStore(store)
    for _ in range(requests):
        loaded = run(engine.load(session_id), counting)
        if loaded.user_id != USER:
            raise RuntimeError("the session was not found")
        run(engine.commit(loaded), counting)
    calls = counting.calls / requests

    def logout() -> None:
        current = run(engine.load(session_id), store)
        current.logout()
        run(engine.commit(current), store)

    def refusal() -> str | None:
        found = run(engine.load(session_id), store).user_id == USER
        return None if found else "session not found"

    lag, served, refused = revocation_lag(logout, refusal, limit)
    return Credential(
        header="Cookie",
        bytes=header_bytes("Cookie", pair),
        store_calls=calls,
        network_calls=calls if where == "network" else 0.0,
        where=where,
        revocation_lag=lag,
        accepted_after_logout=served,
        refused_as=refused,
    )


def token_credential(
    store: Store,
    where: str,
    *,
    stateless: bool,
    ttl: float,
    leeway: float,
    requests: int = CREDENTIAL_REQUESTS,
    limit: float = REFUSAL_LIMIT,
) -> Credential:
    """An access token of :mod:`coatcheck.tokens` (its refresh-token session on ``store``):
    its ``Authorization`` header's size, the store calls of ``authenticate``, and how long after
    the logout of its session it is still accepted. Needs the tokens extra."""
    from ..tokens import InvalidToken, TokenKey, TokenKeyRing, Tokens  # noqa: PLC0415

    engine = SessionEngine(dataclasses.replace(CONFIG, transport="header"))
    tokens = Tokens(
        engine,
        TokenKeyRing([TokenKey.generate("EdDSA")]),
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=ttl,
        leeway=leeway,
        stateless=stateless,
    )
    pair = run(tokens.login(USER), store)
    counting = CountingStore(store)
    for _ in range(requests):
        claims = run(tokens.authenticate(pair.access_token), counting)
        if claims.user_id != USER:
            raise RuntimeError("the token's user is not the one logged in")
    calls = counting.calls / requests
    left: list[float] = []

    def logout() -> None:
        if not run(tokens.logout(pair.refresh_token), store):
            raise RuntimeError("the token's session was not found at its logout")
        left.append(claims.expires_at - engine.config.clock())

    def refusal() -> str | None:
        try:
            run(tokens.authenticate(pair.access_token), store)
        except InvalidToken as refused:
            return refused.reason
        return None

    lag, served, refused = revocation_lag(logout, refusal, ttl + leeway + limit)
    return Credential(
        header="Authorization",
        bytes=header_bytes("Authorization", f"Bearer {pair.access_token}"),
        store_calls=calls,
        network_calls=calls if where == "network" else 0.0,
        where=where if calls else "none",
        revocation_lag=lag,
        accepted_after_logout=served,
        refused_as=refused,
        details={
            "ttl_s": ttl,
            "leeway_s": leeway,
            "life_left_at_logout_s": left[0],
            "revocation_lag_setting_s": None if stateless else tokens.revocation_lag,
        },
    )


def token_host(measured: list[Candidate]) -> Candidate:
    """Where the token rows keep their refresh-token sessions: the first store measured that is
    reached over the network (services that verify tokens share one), else the first store
    measured, else memory."""
    networked = [candidate for candidate in measured if candidate.address is not None]
    if networked:
        return networked[0]
    return measured[0] if measured else Candidate("memory", lambda disk: "memory://")


def token_rows(candidate: Candidate, ttl: float, wanted: list[str]) -> list[Measurement]:
    """The stateless JWT's row and the hybrid's, their refresh-token sessions on
    ``candidate``'s store (each row's status says why it was not measured)."""
    rows = [
        Measurement("stateless JWT" if name == "stateless-jwt" else "hybrid JWT", is_store=False)
        for name in ("stateless-jwt", "hybrid")
        if name in wanted
    ]
    if not rows:
        return rows
    try:
        import jwt  # noqa: F401, PLC0415 - the tokens extra
    except ImportError as exc:
        for measurement in rows:
            measurement.status = (
                f"needs the tokens extra ({exc.name} is missing): pip install 'coatcheck[tokens]'"
            )
        return rows
    from ..tokens import ACCESS_TTL, LEEWAY  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="coatcheck-compare-tokens-") as root:
        url = candidate.url_for(Path(root))
        store = from_url(url)
        assert isinstance(store, Store)
        try:
            for measurement in rows:
                stateless = measurement.name == "stateless JWT"
                try:
                    measurement.credential = token_credential(
                        store,
                        where_of(candidate),
                        stateless=stateless,
                        # Stateless: a short life and no leeway, so that it ends within the run.
                        ttl=ttl if stateless else ACCESS_TTL,
                        leeway=0.0 if stateless else LEEWAY,
                    )
                    measurement.credential.details["store"] = candidate.name
                except (ValueError, RuntimeError, OSError) as exc:
                    measurement.status = scrubbed(f"failed: {exc}", url).splitlines()[0]
            _forget(store)
        finally:
            store.close()
    return rows


def _forget(store: Store) -> None:
    """Delete every record of a store this run wrote into (leave nothing in a shared server)."""
    if isinstance(store, Iterable):
        for record in list(store.iter_records()):
            store.delete(record.key)


def beside_the_stores(rows: list[str], measured: list[Candidate], ttl: float) -> list[Measurement]:
    """The rows of ``rows`` (of :data:`CREDENTIALS`), measured; the token rows on the store
    :func:`token_host` picks among those ``measured``."""
    found = []
    if {"stateless-jwt", "hybrid"} & set(rows):
        found += token_rows(token_host(measured), ttl, rows)
    if "sticky" in rows:
        found.append(sticky_sessions())
    return found


# -- sticky sessions: two instances behind nginx, over HTTP ----------------------------------


def http_instance(name: str, port: int) -> None:
    """A sticky-session instance: a WSGI app behind coatcheck's middleware on a counting
    MemoryStore (sessions in this process's memory), serving HTTP on ``127.0.0.1:port``.

    ``GET /login`` logs ``alice`` in, ``GET /me`` answers the user (401 for none),
    ``GET /logout`` logs out, ``GET /calls`` answers the store calls made so far; every answer
    names the instance in ``X-Instance``.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: PLC0415

    from ..wsgi import ENVIRON_KEY, SessionMiddleware  # noqa: PLC0415

    logging.getLogger("coatcheck").setLevel(logging.ERROR)  # a Secure cookie over loopback http
    store = CountingStore(MemoryStore())

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path, session = environ["PATH_INFO"], environ[ENVIRON_KEY]
        status, text = "200 OK", "ok"
        if path == "/login":
            session.update(CART)
            session.login(USER)
        elif path == "/me":
            text = session.user_id or "nobody"
            status = "200 OK" if session.user_id else "401 Unauthorized"
        elif path == "/logout":
            session.logout()
        elif path == "/calls":
            text = str(store.calls)
        else:
            status, text = "404 Not Found", "not found"
        body = text.encode()
        headers = [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Instance", name),
        ]
        start_response(status, headers)
        return [body]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    served = SessionMiddleware(app, store=store, config=SECURE_CONFIG)
    with make_server("127.0.0.1", port, served, handler_class=Quiet) as server:
        server.serve_forever()


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _get(url: str, cookie: str | None) -> tuple[int, Message, str]:
    """``GET url`` with this ``Cookie`` header: the status, the headers and the body."""
    headers = {"Cookie": cookie} if cookie else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the cluster's http URL
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, answer.read().decode()


def sticky_sessions(
    requests: int = CREDENTIAL_REQUESTS, limit: float = REFUSAL_LIMIT
) -> Measurement:
    """Sticky sessions, measured through the demo's real nginx configuration: the cookies the
    client sends, the store calls in the instance that served it, the instances it met, whether
    another instance knows its session, and how long after the logout its cookies are served.
    Needs nginx, and the demo extra (for the demo's nginx configuration)."""
    result = Measurement("sticky sessions", is_store=False)
    try:
        from ..shop.cluster import ROUTE_COOKIE, Cluster, ClusterError, free_port  # noqa: PLC0415
    except ImportError as exc:
        result.status = (
            f"needs the demo extra ({exc.name} is missing): pip install 'coatcheck[demo]'"
        )
        return result
    host = "127.0.0.1"

    def command(name: str, port: int) -> list[str]:
        return [sys.executable, "-m", "coatcheck.cli.comparison", "--http", name, str(port)]

    cluster = Cluster(command, 2, host, free_port(host), sticky=True)
    try:
        cluster.start()
    except (ClusterError, OSError) as exc:
        result.status = f"failed: {exc}".splitlines()[0]
        return result
    try:
        result.credential = _sticky_credential(cluster.url, ROUTE_COOKIE, requests, limit)
    except (RuntimeError, OSError, ValueError) as exc:
        result.status = f"failed: {exc}".splitlines()[0]
    finally:
        cluster.stop()
    return result


def _sticky_credential(url: str, route_cookie: str, requests: int, limit: float) -> Credential:
    status, headers, _ = _get(url + "login", None)
    if status != 200:
        raise RuntimeError(f"logging in answered {status}")
    pairs = [value.split(";", 1)[0] for value in headers.get_all("Set-Cookie") or []]
    route = next((pair for pair in pairs if pair.startswith(f"{route_cookie}=")), None)
    if route is None or len(pairs) != 2:
        raise RuntimeError(f"expected a routing cookie and a session cookie, got {len(pairs)}")
    cookie = "; ".join(pairs)  # as a browser sends them back (over https)
    session_pair = next(pair for pair in pairs if pair != route)
    home = headers["X-Instance"]

    def calls() -> int:  # the route cookie alone: the same instance, no session, no store call
        status, headers, body = _get(url + "calls", route)
        if status != 200 or headers["X-Instance"] != home:
            raise RuntimeError("the routing cookie alone did not reach the session's instance")
        return int(body)

    before = calls()
    seen = set()
    for _ in range(requests):
        status, headers, body = _get(url + "me", cookie)
        if (status, body) != (200, USER):
            raise RuntimeError(f"the session was not served ({status})")
        seen.add(headers["X-Instance"])
    per_request = (calls() - before) / requests
    elsewhere = None
    for _ in range(50):  # other routing values, until one sends the client to the other instance
        other = f"{route_cookie}={secrets.token_hex(16)}"
        _, headers, _ = _get(url + "calls", other)
        if headers["X-Instance"] != home:
            status, _, _ = _get(url + "me", f"{other}; {session_pair}")
            elsewhere = status == 200
            break

    def logout() -> None:
        status, _, _ = _get(url + "logout", cookie)
        if status != 200:
            raise RuntimeError(f"logging out answered {status}")

    def refusal() -> str | None:
        status, _, _ = _get(url + "me", cookie)
        return None if status == 200 else f"{status} from its instance"

    lag, served, refused = revocation_lag(logout, refusal, limit)
    return Credential(
        header="Cookie",
        bytes=header_bytes("Cookie", cookie),
        store_calls=per_request,
        network_calls=0.0,  # the MemoryStore is in the instance's own memory
        where="in process",
        revocation_lag=lag,
        accepted_after_logout=served,
        refused_as=refused,
        details={
            "instances": 2,
            "instances_seen": len(seen),
            "another_instance_finds_it": elsewhere,
        },
    )


def store_credential(candidate: Candidate, disk: Path) -> Credential:
    """A cookie session's credential on ``candidate``'s store (see :func:`session_credential`)."""
    store = from_url(candidate.url_for(disk))
    assert isinstance(store, Store)
    try:
        credential = session_credential(store, where_of(candidate))
        _forget(store)
        return credential
    finally:
        store.close()


def measure(candidate: Candidate, samples: int = 300, seconds: float = 1.0) -> Measurement:
    """Everything the table says of one store; ``status`` says why a store was not measured."""
    result = Measurement(candidate.name)
    if candidate.address is not None and not reachable(candidate.address):
        host, port = candidate.address
        result.status = f"not reachable at {host}:{port}"
        return result
    with tempfile.TemporaryDirectory(prefix=f"coatcheck-compare-{candidate.name}-") as root:
        try:
            store = from_url(candidate.url_for(Path(root)))  # a missing extra says so here
            if isinstance(store, Store):
                store.close()
            result.coupled, result.survives_restart, result.shared = behaviour(
                candidate, Path(root)
            )
            loads, saves, rate = timings(
                candidate.url_for(Path(root) / "server-a"), samples, seconds
            )
            result.credential = store_credential(candidate, Path(root) / "server-a")
        except (ValueError, RuntimeError, OSError) as exc:
            failure = scrubbed(f"failed: {exc}", candidate.url_for(Path(root)))
            result.status = failure.splitlines()[0]
            return result
    result.load_p50, result.load_p99 = percentile(loads, 0.5), percentile(loads, 0.99)
    result.save_p50, result.save_p99 = percentile(saves, 0.5), percentile(saves, 0.99)
    result.writes_per_second = rate
    return result


# -- reporting -------------------------------------------------------------------------------

HEADERS = (
    "store",
    "coupled to one server",
    "survives an app restart",
    "shared across 3 instances",
    "load p50/p99 ms",
    "save p50/p99 ms",
    "writes/s",
    "revocation lag s",
    "store calls/request",
    "credential bytes/request",
)


def yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def milliseconds(p50: float | None, p99: float | None) -> str:
    if p50 is None or p99 is None:
        return "—"
    return f"{p50 * 1000:.3f}/{p99 * 1000:.3f}"


def credential_cells(credential: Credential | None) -> list[str]:
    """The three credential columns: revocation lag, store calls, bytes on the wire."""
    if credential is None:
        return ["—", "—", "—"]
    lag = credential.revocation_lag
    if lag is None:
        lag_cell = credential.refused_as
    else:
        lag_cell = f"{lag:.2f}"
        ttl = credential.details.get("ttl_s")
        if credential.details.get("revocation_lag_setting_s") is None and ttl is not None:
            lag_cell += f" (expiry; ttl {ttl:g} s)"
    calls = f"{credential.store_calls:g}"
    if credential.store_calls:
        calls += f" ({credential.where})"
    return [lag_cell, calls, f"{credential.bytes} ({credential.header})"]


def name_of(measurement: Measurement) -> str:
    """The row's name; a token row names the store its refresh-token sessions were on."""
    store = measurement.credential.details.get("store") if measurement.credential else None
    if measurement.name == "hybrid JWT" and store:
        return f"hybrid JWT (revocation read on {store})"
    return measurement.name


def row(measurement: Measurement) -> list[str]:
    if measurement.status != "measured":
        return [measurement.name, measurement.status, *[""] * (len(HEADERS) - 2)]
    if not measurement.is_store:
        return [name_of(measurement), *["—"] * 6, *credential_cells(measurement.credential)]
    rate = measurement.writes_per_second
    return [
        measurement.name,
        yes_no(measurement.coupled),
        yes_no(measurement.survives_restart),
        yes_no(measurement.shared),
        milliseconds(measurement.load_p50, measurement.load_p99),
        milliseconds(measurement.save_p50, measurement.save_p99),
        "—" if rate is None else f"{rate:,.0f}",
        *credential_cells(measurement.credential),
    ]


def credential_json(credential: Credential | None) -> dict[str, object]:
    """The credential columns as ``compare --json`` prints them (null when not measured)."""
    if credential is None:
        return {
            "revocation_lag_s": None,
            "accepted_after_logout": None,
            "refused_as": None,
            "store_calls_per_request": None,
            "network_calls_per_request": None,
            "credential_header": None,
            "credential_bytes": None,
        }
    return {
        "revocation_lag_s": credential.revocation_lag,
        "accepted_after_logout": credential.accepted_after_logout,
        "refused_as": credential.refused_as,
        "store_calls_per_request": credential.store_calls,
        "network_calls_per_request": credential.network_calls,
        "credential_header": credential.header,
        "credential_bytes": credential.bytes,
    }


def as_json(measurement: Measurement) -> dict[str, object]:
    """One store's measurements as ``compare --json`` prints them (latencies in milliseconds;
    null where the store was not measured, ``status`` saying why)."""

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000

    return {
        "store": measurement.name,
        "status": measurement.status,
        "coupled": measurement.coupled,
        "survives_restart": measurement.survives_restart,
        "shared": measurement.shared,
        "load_ms": {"p50": ms(measurement.load_p50), "p99": ms(measurement.load_p99)},
        "save_ms": {"p50": ms(measurement.save_p50), "p99": ms(measurement.save_p99)},
        "writes_per_second": measurement.writes_per_second,
        **credential_json(measurement.credential),
    }


def credential_row_json(measurement: Measurement) -> dict[str, object]:
    """A row beside the stores (stateless JWT, hybrid, sticky sessions) as ``compare --json``
    prints it: the credential columns and what else its measurement found."""
    details = measurement.credential.details if measurement.credential else {}
    return {
        "name": measurement.name,
        "status": measurement.status,
        **credential_json(measurement.credential),
        **details,
    }


def markdown(measurements: list[Measurement], samples: int, seconds: float) -> str:
    lines = [
        "# Stores compared, measured",
        "",
        "Generated by `scripts/compare` (`coatcheck compare`) on "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU(s). Every answer is measured, "
        "not asserted: see `coatcheck.cli.comparison` for how.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + " --- |" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(row(measurement)) + " |" for measurement in measurements]
    lines += [
        "",
        "- *Coupled to one server*: an app on another server (a process with its own memory and "
        "its own disk directory, reaching the same network services) could not find a session "
        "written here.",
        "- *Survives an app restart*: the app process that wrote it exited; a new one found it.",
        "- *Shared across 3 instances*: three app processes on this server at once; the second "
        "and third found what the first wrote.",
        f"- Latencies: {samples} loads and {samples} saves of one session (the demo shop's size) "
        "through the real engine, one thread; writes per second: new sessions created back to "
        f"back for {seconds:g} s. Servers run on this machine, so network stores pay loopback "
        "round trips only.",
        "- *Revocation lag*: the credential was used, then logged out, then sent again every "
        f"{POLL * 1000:g} ms until it was refused: the seconds from the end of the logout to the "
        "first refusal. A stateless JWT is refused only when it expires: its lag is what was "
        "left of its life, measured here with a short ttl and no leeway (at the defaults, up "
        "to 300 s plus 10 s of leeway).",
        f"- *Store calls per request*: counted over {CREDENTIAL_REQUESTS} requests that check "
        "the credential (a cookie session's read-only request; a token's `authenticate`; for "
        "sticky sessions, counted inside the instance that served them), and where they go: "
        "over the network to a store server, to a local file, or to the app's own memory.",
        "- *Credential bytes per request*: the request header that carries it, as HTTP/1.1 "
        "sends it (`Cookie: ...` or `Authorization: Bearer ...`, CRLF included), from the real "
        "cookie or token: a Secure production cookie (`__Host-session`), an EdDSA access token "
        "of `coatcheck.tokens` with no extra claims. HTTP/2 and HTTP/3 compress repeated headers.",
        "- *stateless JWT* and *hybrid JWT*: `coatcheck.tokens` with `stateless=True`, and with "
        "`revocation_lag=0` (one read of the user's revocation record per request, on the "
        "store named; refresh-token sessions on it too). *Sticky sessions*: sessions in each "
        "instance's memory, two instances behind the demo's nginx pinning each client to one "
        "by a routing cookie (`coatcheck demo --instances 2 --sticky`), over real HTTP; the "
        "routing cookie travels with the session's. The store columns do not apply to these "
        "rows.",
        "",
        "![load and save latency, and sessions written per second](compare.png)",
        "",
    ]
    return "\n".join(lines)


def chart(measurements: list[Measurement], path: Path) -> None:
    """Latencies (log scale) beside writes per second, one bar group per store."""
    import matplotlib  # noqa: PLC0415 - the compare extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    measured = [m for m in measurements if m.status == "measured" and m.is_store]
    names = [m.name for m in measured]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        ("load p50", [m.load_p50 for m in measured]),
        ("load p99", [m.load_p99 for m in measured]),
        ("save p50", [m.save_p50 for m in measured]),
        ("save p99", [m.save_p99 for m in measured]),
    ]
    width = 0.2
    for index, (label, values) in enumerate(series):
        positions = [i + (index - 1.5) * width for i in range(len(names))]
        latency.bar(positions, [(v or 0) * 1000 for v in values], width, label=label)
    latency.set_yscale("log")
    latency.set_ylabel("milliseconds (log scale)")
    latency.set_title("Session load and save latency")
    latency.set_xticks(range(len(names)), names)
    latency.tick_params(axis="x", labelrotation=20)
    latency.legend()
    throughput.bar(names, [m.writes_per_second or 0 for m in measured], color="#8a3b12")
    throughput.set_yscale("log")
    throughput.set_ylabel("sessions per second (log scale)")
    throughput.set_title("New sessions written per second, one thread")
    throughput.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    if sys.argv[1] == "--http":
        http_instance(sys.argv[2], int(sys.argv[3]))
    else:
        serve(sys.argv[1])
