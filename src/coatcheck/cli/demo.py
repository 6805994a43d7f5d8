"""``coatcheck demo``: run the demo shop, on one instance or several behind nginx; and
``coatcheck compare``: measure what each store gives (see :mod:`coatcheck.cli.comparison`).

The demo reads its store once before it serves: a bad URL or an unreachable store is one line
on stderr and a non-zero exit. The store URL is shown only redacted
(:func:`coatcheck.stores.redacted`). ``X-Forwarded-For`` is believed only from the demo's own
nginx (``--instances``); uvicorn's proxy-header handling is off, so that the peer address
reaches coatcheck untouched and its ``trusted_proxies`` alone decide. Each instance runs with
``metrics=True`` and serves them at ``GET /metrics`` (:mod:`coatcheck.metrics`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click

from ..config import SessionConfig
from ..ids import store_key
from ..stores import Store, from_url, redacted, scrubbed
from . import commands
from .operations import BadInput, OperatorError, json_option, print_json

DEFAULT_DEMO_STORE = "sqlite:///.demo/shop.db"
STORE_NAMES = ("memory", "file", "sqlite", "redis", "postgresql", "mariadb", "memcached")
SERVER_STORES = ("redis", "rediss", "redis+sentinel", "redis+cluster", "postgresql", "postgres")
NGINX_PEERS = ("127.0.0.0/8", "::1/128")
"""Where the demo's own nginx (``--instances``) connects from: the instances' only proxy."""


def _needs_demo_extra(exc: ImportError) -> click.ClickException:
    return click.ClickException(
        f"coatcheck demo needs the demo extra ({exc.name} is missing): "
        "pip install 'coatcheck[demo]'"
    )


def _check_store(url: str) -> None:
    """Open the store and read from it once, so that a bad URL (status 2) or a store that
    cannot be reached (status 1) is one line on stderr before anything starts."""
    if url == DEFAULT_DEMO_STORE:
        Path(".demo").mkdir(exist_ok=True)
    with _drivers_quiet():
        _probe(url)


@contextlib.contextmanager
def _drivers_quiet() -> Iterator[None]:
    """Keep drivers' own log lines (psycopg's pool retrying, say) off stderr for a while, where
    they would break the one line, unless the process has configured logging itself."""
    root = logging.getLogger()
    silence = logging.NullHandler()
    if not root.handlers:
        root.addHandler(silence)
    try:
        yield
    finally:
        root.removeHandler(silence)


def _probe(url: str) -> None:
    try:
        store = from_url(url)
    except ValueError as exc:
        raise BadInput(scrubbed(str(exc), url)) from None
    except Exception as exc:  # a driver that connects at once (Redis Cluster) raises its own
        raise _unreachable(url, exc) from None
    try:
        if isinstance(store, Store):
            store.load(store_key("coatcheck demo: is the store there?"))
    except Exception as exc:  # whatever the driver raises, the demo cannot start on it
        raise _unreachable(url, exc) from None
    finally:
        if isinstance(store, Store):
            with contextlib.suppress(Exception):
                store.close()


def _unreachable(url: str, exc: Exception) -> OperatorError:
    reason = scrubbed(f"{type(exc).__name__}: {exc}", url)
    return OperatorError(
        f"demo: cannot use the store {redacted(url)} ({reason}); start it, or pass another --store"
    )


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


@commands.command()
@click.option("--store", default=DEFAULT_DEMO_STORE, show_default=True, help="store URL")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True, help="where the shop listens")
@click.option(
    "--instances",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="app processes; more than one runs them behind nginx, round-robin",
)
@click.option("--sticky", is_flag=True, help="with --instances: pin each client to one instance")
@click.option(
    "--idle-timeout",
    type=float,
    default=None,
    help="seconds [default: 1800, or --absolute-timeout if shorter]",
)
@click.option(
    "--absolute-timeout",
    type=float,
    default=None,
    help="seconds [default: 43200, or --idle-timeout if longer]",
)
@click.option(
    "--touch-interval",
    type=float,
    default=None,
    help="seconds between moves of a session's expiry [default: 60, or a tenth of a "
    "short idle timeout]",
)
@click.option(
    "--max-new-sessions",
    type=click.IntRange(1),
    default=600,
    show_default=True,
    help="new sessions one client may create per minute; past it, 429",
)
@click.option(
    "--token-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="seconds an API access token lives (POST /api/token) [default: 300]",
)
@click.option("--instance-name", default="shop", hidden=True)
@click.option("--behind-nginx", is_flag=True, hidden=True, help="an instance of --instances")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Announce as JSON lines, not text: one when serving (url, store, instances), and with "
    "--instances one per instance that stops.",
)
def demo(
    store: str,
    host: str,
    port: int,
    instances: int,
    sticky: bool,
    idle_timeout: float | None,
    absolute_timeout: float | None,
    touch_interval: float | None,
    max_new_sessions: int,
    token_ttl: float | None,
    instance_name: str,
    behind_nginx: bool,
    as_json: bool,
) -> None:
    """Run the demo shop (plain http on HOST:PORT; log in as alice, bob or carol, password
    coatcheck)."""
    # A bad timeout is one line, before anything starts; one given alone, the other follows it.
    given = {
        "idle_timeout": idle_timeout,
        "absolute_timeout": absolute_timeout,
        "touch_interval": touch_interval,
    }
    timeouts = SessionConfig.from_options(
        secure=False, **{name: value for name, value in given.items() if value is not None}
    )
    options = {
        "idle_timeout": timeouts.idle_timeout,
        "absolute_timeout": timeouts.absolute_timeout,
        "touch_interval": (
            min(60.0, timeouts.idle_timeout / 10) if touch_interval is None else touch_interval
        ),
        "max_new_sessions": max_new_sessions,
    }
    if token_ttl is not None:
        options["token_ttl"] = token_ttl
    if instances > 1:
        _run_cluster(store, host, port, instances, sticky, options, as_json)
        return
    if sticky:
        raise click.UsageError("--sticky needs --instances 2 or more")
    _run_instance(store, host, port, instance_name, options, behind_nginx, as_json)


def _shared_signing_key() -> dict[str, str] | None:
    """The instances' environment with one access-token signing key for all of them, so that a
    token one issued is accepted by the others (None without the tokens extra)."""
    from ..shop.tokens import SIGNING_KEY_ENV  # noqa: PLC0415

    try:
        from ..tokens import TokenKey  # noqa: PLC0415
    except ImportError:
        return None
    key = json.dumps(TokenKey.generate("EdDSA").to_jwk(private=True))
    return {**os.environ, SIGNING_KEY_ENV: key}


def _announce(line: dict[str, object]) -> None:
    """One JSON line on stdout, at once (a script waits for it)."""
    print(json.dumps(line), flush=True)


def _run_instance(
    store: str,
    host: str,
    port: int,
    name: str,
    options: dict[str, float],
    behind_nginx: bool,
    as_json: bool,
) -> None:
    """One shop process on ``host:port``. Clients reach it directly, and no ``X-Forwarded-For``
    is believed, unless it is ``behind_nginx``: then the demo's own nginx, on loopback, relays
    each client's address (it replaces any the client sent) and only loopback is trusted."""
    try:
        import prometheus_client  # noqa: F401, PLC0415 - GET /metrics
        import uvicorn  # noqa: PLC0415

        from ..shop import create_app  # noqa: PLC0415
    except ImportError as exc:
        raise _needs_demo_extra(exc) from exc
    _check_store(store)
    scheme = urlsplit(store).scheme.lower()
    sessions = from_url(store, asynchronous=scheme in SERVER_STORES)
    instance = f"{name} (pid {os.getpid()}, port {port})"
    app = create_app(
        sessions,
        instance=instance,
        idle_timeout=options["idle_timeout"],
        absolute_timeout=options["absolute_timeout"],
        touch_interval=options["touch_interval"],
        max_creations_per_client=int(options["max_new_sessions"]),
        trusted_proxies=NGINX_PEERS if behind_nginx else (),
        token_ttl=options.get("token_ttl"),
        metrics=True,
    )
    url = f"http://{host}:{port}/"
    if name == "shop" and as_json:
        served = [{"name": name, "pid": os.getpid(), "port": port}]
        _announce({"url": url, "store": redacted(store), "instances": served})
    elif name == "shop":
        print(f"coatcheck demo on {redacted(store)}: {url}", flush=True)
    # uvicorn's own proxy headers (on by default, trusting loopback) would rewrite the client
    # from X-Forwarded-For before coatcheck sees it: off, coatcheck's trusted_proxies decide.
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


def _run_cluster(
    store: str,
    host: str,
    port: int,
    count: int,
    sticky: bool,
    options: dict[str, float],
    as_json: bool,
) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from ..shop.cluster import Cluster, ClusterError  # noqa: PLC0415

    _check_store(store)
    console = Console(highlight=False, soft_wrap=True)

    def command(name: str, instance_port: int) -> list[str]:
        arguments = [sys.executable, "-m", "coatcheck.cli", "demo", "--store", store]
        arguments += ["--host", host, "--port", str(instance_port), "--instance-name", name]
        arguments += ["--behind-nginx"]
        for option, value in options.items():
            arguments += [f"--{option.replace('_', '-')}", repr(value)]
        return arguments

    cluster = Cluster(command, count, host, port, sticky, env=_shared_signing_key())
    _stop_on_sigterm()
    try:
        try:
            cluster.start()
        except ClusterError as exc:
            raise click.ClickException(str(exc)) from exc
        balance = "sticky (a routing cookie per client)" if sticky else "round-robin"
        if as_json:
            served = [{"name": i.name, "pid": i.pid, "port": i.port} for i in cluster.instances]
            balancing = "sticky" if sticky else "round-robin"
            url, shown = cluster.url, redacted(store)
            _announce({"url": url, "store": shown, "balance": balancing, "instances": served})
        else:
            console.print(
                f"coatcheck demo on {escape(redacted(store))}: {count} instances behind nginx, "
                f"{balance}: "
                f"[bold]{cluster.url}[/bold]"
            )
            table = Table("instance", "pid", "port")
            for instance in cluster.instances:
                table.add_row(instance.name, str(instance.pid), str(instance.port))
            console.print(table)
            console.print(_what_to_expect(store, sticky))
            sys.stdout.flush()
        while True:
            time.sleep(0.2)
            for instance in cluster.exited():
                status = instance.process.returncode
                if as_json:
                    stopped = {"name": instance.name, "pid": instance.pid, "status": status}
                    _announce({"stopped": stopped})
                    continue
                console.print(
                    f"{instance.name} (pid {instance.pid}) stopped "
                    f"(status {status}); nginx sends its requests to the rest"
                )
                sys.stdout.flush()
            if not cluster.balancer_alive():
                raise click.ClickException("nginx stopped")
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


def _what_to_expect(store: str, sticky: bool) -> str:
    """What the person at the browser will see, and what to try."""
    kill = '`kill PID`, with the PID in the page footer\'s "Served by"'
    if urlsplit(store).scheme.lower() != "memory":
        return (
            "Sessions live in the shared store, so any instance serves any client. "
            f"Stop one ({kill}) and carry on: you stay logged in."
        )
    if sticky:
        return (
            "memory:// keeps each session in one instance's memory; nginx keeps each client on "
            f"one instance, so it works until that instance stops ({kill}): then the session "
            "is lost."
        )
    return (
        "memory:// keeps each session in one instance's memory, and nginx sends each request "
        "to the next instance: expect to be logged out on your next click. Try --sticky, or a "
        "shared store."
    )


@commands.command()
@click.option("--stores", default=",".join(STORE_NAMES), show_default=True, help="which to try")
@click.option("--redis", "redis_url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option(
    "--postgresql",
    "postgresql_url",
    default="postgresql://postgres@127.0.0.1:5432/test",
    show_default=True,
)
@click.option(
    "--mariadb", "mariadb_url", default="mysql://root@127.0.0.1:3306/test", show_default=True
)
@click.option("--memcached", "memcached_address", default="127.0.0.1:11211", show_default=True)
@click.option("--samples", type=click.IntRange(10), default=300, show_default=True)
@click.option("--seconds", type=click.FloatRange(0.05), default=1.0, show_default=True)
@click.option(
    "--credentials",
    default="stateless-jwt,hybrid,sticky",
    show_default=True,
    help="rows beside the stores (comma-separated; empty for none)",
)
@click.option(
    "--token-ttl",
    type=click.FloatRange(0.1, 60),
    default=2.0,
    show_default=True,
    help="seconds a stateless JWT lives in its revocation-lag measurement",
)
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="write here")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="PNG, here")
@json_option
def compare(
    stores: str,
    redis_url: str,
    postgresql_url: str,
    mariadb_url: str,
    memcached_address: str,
    samples: int,
    seconds: float,
    credentials: str,
    token_ttl: float,
    markdown: Path | None,
    chart: Path | None,
    as_json: bool,
) -> None:
    """Measure, for each reachable store: coupled to one server? survives an app restart?
    shared across 3 instances? load and save latency, sessions written per second; and, for each
    store and for a stateless JWT, the hybrid (a JWT and a revocation read) and sticky sessions:
    revocation lag, store calls per request, credential bytes per request.

    --json prints {"stores": [...], "credentials": [...], "wrote": [files]}, each store's
    latencies in milliseconds."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from . import comparison  # noqa: PLC0415

    wanted = [name.strip() for name in stores.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(STORE_NAMES))
    if unknown:
        raise click.UsageError(f"unknown store(s) {unknown}; choose from {list(STORE_NAMES)}")
    rows = [name.strip() for name in credentials.split(",") if name.strip()]
    unknown = sorted(set(rows) - set(comparison.CREDENTIALS))
    if unknown:
        raise click.UsageError(
            f"unknown credential row(s) {unknown}; choose from {list(comparison.CREDENTIALS)}"
        )
    everything = comparison.candidates(redis_url, postgresql_url, mariadb_url, memcached_address)
    console = Console(highlight=False, stderr=False)
    measurements = []
    measured = []
    for candidate in everything:
        if candidate.name in wanted:
            with Console(stderr=True).status(f"measuring {candidate.name}"):
                measurement = comparison.measure(candidate, samples, seconds)
            measurements.append(measurement)
            if measurement.status == "measured":
                measured.append(candidate)
    with Console(stderr=True).status(f"measuring {', '.join(rows) or 'nothing else'}"):
        beside = comparison.beside_the_stores(rows, measured, token_ttl)
    if not as_json:
        table = Table(title="Session stores, measured on this machine")
        for header in comparison.HEADERS:
            table.add_column(header, overflow="fold")
        for measurement in [*measurements, *beside]:
            table.add_row(*comparison.row(measurement))
        console.print(table)
    wrote: list[str] = []

    def written(path: Path) -> None:
        wrote.append(str(path))
        if not as_json:
            console.print(f"wrote {path}")

    if markdown is not None:
        markdown.write_text(comparison.markdown([*measurements, *beside], samples, seconds))
        written(markdown)
    if chart is not None:
        try:
            comparison.chart(measurements, chart)
        except ImportError as exc:
            raise click.ClickException(
                f"the chart needs the compare extra ({exc.name} is missing): "
                "pip install 'coatcheck[compare]'"
            ) from exc
        written(chart)
    if as_json:
        print_json(
            {
                "stores": [comparison.as_json(m) for m in measurements],
                "credentials": [comparison.credential_row_json(m) for m in beside],
                "wrote": wrote,
            }
        )
