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

Every app process is ``python -m coatcheck.cli.comparison URL``, which answers ``write`` and
``read ID`` on its standard input.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..config import SessionConfig
from ..engine import SessionEngine, run
from ..stores import Iterable, Store, from_url, scrubbed

CONFIG = SessionConfig(secure=False, idle_timeout=300, absolute_timeout=600)
"""Short timeouts: whatever a Memcached run leaves behind expires within minutes."""
CART = {"cart": {"wool-coat": 1, "scarf": 2}, "device": "Firefox on Linux", "seen": 0}
"""A session the size of the demo shop's."""


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
        if isinstance(store, Iterable):  # leave nothing behind in a shared server
            for record in list(store.iter_records()):
                store.delete(record.key)
        return loads, saves, rate
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
)


def yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def milliseconds(p50: float | None, p99: float | None) -> str:
    if p50 is None or p99 is None:
        return "—"
    return f"{p50 * 1000:.3f}/{p99 * 1000:.3f}"


def row(measurement: Measurement) -> list[str]:
    if measurement.status != "measured":
        return [measurement.name, measurement.status, "", "", "", "", ""]
    rate = measurement.writes_per_second
    return [
        measurement.name,
        yes_no(measurement.coupled),
        yes_no(measurement.survives_restart),
        yes_no(measurement.shared),
        milliseconds(measurement.load_p50, measurement.load_p99),
        milliseconds(measurement.save_p50, measurement.save_p99),
        "—" if rate is None else f"{rate:,.0f}",
    ]


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

    measured = [m for m in measurements if m.status == "measured"]
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
    serve(sys.argv[1])
