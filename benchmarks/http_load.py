"""Requests per second over real HTTP: each app under uvicorn (one worker), loaded by wrk.

Every app's server runs at once, each on its own local port, with a session made by
``GET /setup``. This machine's speed drifts by tens of percent within seconds, so the apps are
compared in brackets: bare Starlette, the app twice, bare Starlette again (B A A B), one short
run each, bare runs shared between neighbouring brackets. A bracket's ratio, the app's requests
over bare's in the same seconds, cancels drift that is slow next to a bracket; an app's ratio is
the median over the rounds, the order of the apps reversing every round.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import apps
from .report import Target, median, table

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
COATCHECK_VARIANTS = (apps.COATCHECK_MEMORY, apps.COATCHECK_SQLITE)
RIVALS = (apps.STARSESSIONS, apps.SIGNED_COOKIE)
CONTENDERS = tuple(variant for variant in apps.VARIANTS if variant != apps.BARE)
BARE_COOKIE = f"{apps.COOKIE_NAME}={'x' * 43}"
"""What the bare app is sent in the cookie scenarios: a cookie of the same size, unread."""


def _placement() -> tuple[list[str], list[str], str]:
    """taskset prefixes putting the servers on one CPU and wrk on the others, when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], [], "wrk and the servers sharing every CPU"
    rest = ",".join(str(cpu) for cpu in cpus[1:])
    return (
        ["taskset", "-c", str(cpus[0])],
        ["taskset", "-c", rest],
        f"the servers pinned to CPU {cpus[0]} and wrk to CPU {rest} with taskset",
    )


SERVER_PREFIX, WRK_PREFIX, PLACEMENT = _placement()


@dataclass(frozen=True)
class Scenario:
    """One kind of request: its route, whether it carries a session cookie, its target ratio."""

    name: str
    path: str
    with_cookie: bool
    target_ratio: float


SCENARIOS = (
    Scenario("anonymous", "/anon", with_cookie=False, target_ratio=0.95),
    Scenario("read-only", "/read", with_cookie=True, target_ratio=0.80),
    Scenario("writing", "/write", with_cookie=True, target_ratio=0.70),
)


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long wrk pushes, and how many rounds are run."""

    rounds: int = 6
    duration: int = 1
    warmup: int = 1
    connections: int = 32
    threads: int = 1

    def wrk_flags(self, seconds: int | None = None) -> list[str]:
        duration = self.duration if seconds is None else seconds
        return [f"-t{self.threads}", f"-c{self.connections}", f"-d{duration}s"]

    def estimated_seconds(self) -> float:
        warmups = len(apps.VARIANTS) * len(SCENARIOS) * (self.warmup + 0.1)
        runs_per_round = len(SCENARIOS) * (2 * len(CONTENDERS) + len(CONTENDERS) + 1)
        return 3 + warmups + self.rounds * runs_per_round * (self.duration + 0.1)


@dataclass
class HttpResult:
    """Every run's requests per second, and every bracket's ratio to bare Starlette."""

    settings: LoadSettings
    server: str
    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    ratios: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def rps(self, variant: str, scenario: str) -> float:
        return median(self.runs[variant][scenario])

    def ratio(self, variant: str, scenario: str) -> float:
        if variant == apps.BARE:
            return 1.0
        return median(self.ratios[variant][scenario])

    def targets(self) -> list[Target]:
        found = []
        for variant in COATCHECK_VARIANTS:
            for scenario in SCENARIOS:
                ratio = self.ratio(variant, scenario.name)
                found.append(
                    Target(
                        f"{variant}, {scenario.name}: >= {scenario.target_ratio:.2f}x bare",
                        f"{ratio:.3f}x ({_range(self.ratios[variant][scenario.name])})",
                        ratio >= scenario.target_ratio,
                    )
                )
            for scenario in SCENARIOS:
                ours = self.ratio(variant, scenario.name)
                theirs = [self.ratio(rival, scenario.name) for rival in RIVALS]
                found.append(
                    Target(
                        f"{variant}, {scenario.name}: ahead of {' and '.join(RIVALS)}",
                        f"{ours:.3f}x vs {' / '.join(f'{t:.3f}x' for t in theirs)} bare",
                        all(ours > t for t in theirs),
                    )
                )
        return found

    def markdown(self) -> str:
        s = self.settings
        headers = ["app"]
        for scenario in SCENARIOS:
            headers += [f"{scenario.name} req/s", "x bare"]
        rows = []
        for variant in apps.VARIANTS:
            row: list[object] = [variant]
            for scenario in SCENARIOS:
                row += [
                    f"{self.rps(variant, scenario.name):,.0f}",
                    f"{self.ratio(variant, scenario.name):.3f}",
                ]
            rows.append(row)
        brackets = [
            (
                variant,
                scenario.name,
                " / ".join(f"{r:.2f}" for r in self.ratios[variant][scenario.name]),
                _range(self.ratios[variant][scenario.name]),
            )
            for variant in CONTENDERS
            for scenario in SCENARIOS
        ]
        apps_list = "\n".join(f"- `{v}`: {apps.DESCRIPTIONS[v]}" for v in apps.VARIANTS)
        ceiling = [
            [
                variant,
                *(
                    f"{self.ratio(variant, sc.name) / self.ratio(apps.FLOOR, sc.name):.2f}"
                    for sc in SCENARIOS
                ),
            ]
            for variant in (*COATCHECK_VARIANTS, *RIVALS)
        ]
        return f"""\
Server: {self.server}.
Load: `wrk {" ".join(s.wrk_flags())}` on {HOST}, {PLACEMENT}.
After a {s.warmup} s warm-up of every app and scenario, {s.rounds} rounds; in each round and
scenario, every app's two {s.duration} s runs sit between two runs of bare Starlette
(B A A B B C C B ...), the order of the apps reversing every round. req/s is the median of all of
an app's runs; "x bare" is the median of its brackets' ratios (its requests over bare's in the
same bracket), the drift-corrected figure the targets use. The req/s of different apps come from
different moments of the machine's drift, so compare the ratios, not the req/s, across apps.

{apps_list}

`{apps.FLOOR}` is a yardstick, not a contender: it does only what every server-side session must
(find the cookie, hash it, look it up, parse it; serialize to see a change) and none of what
makes one safe. Its ratio is the ceiling for any server-side session on this machine; where it
falls short of a target, no server-side session layer meets that target here.

{table(["app", *(f"{s.name}: share of the floor" for s in SCENARIOS)], ceiling, left=1)}

Scenarios: *anonymous* sends no cookie to a route that does not touch the session; *read-only*
sends the cookie of a session holding about 200 bytes of JSON to a route that reads one key;
*writing* sends that cookie to a route that increments a counter in the session.

{table(headers, rows)}

The ratio of every bracket, and their range (how far apart this machine's drift left them).
`coatcheck-memory` and `coatcheck-sqlite` run the same code for anonymous requests (no store
call), so the gap between their anonymous ratios shows how precise these medians are.

{table(["app", "scenario", "ratio to bare in each round", "range"], brackets, left=2)}
"""


def _range(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def server_description() -> tuple[list[str], str]:
    """uvicorn's loop and HTTP flags (uvloop and httptools when installed), and their summary."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    flags = ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    flags += ["--loop", loop, "--http", http]
    summary = f"uvicorn `{' '.join(flags)}` (one process)"
    if http == "h11":
        summary += (
            ". httptools is not installed, so uvicorn parses HTTP in pure Python (h11): that"
            " makes every request dearer and each session layer a smaller share of it; with"
            " `uvicorn[standard]` installed, this benchmark uses uvloop and httptools and the"
            " same session layers weigh more"
        )
    return flags, summary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_accepting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not accept connections within 20 s:\n{log.read_text()}")


@contextlib.contextmanager
def serve_process(command: Callable[[int], list[str]], env: dict[str, str]) -> Iterator[str]:
    """Run ``command(port)`` on a free local port, pinned like every benchmark server, with
    ``env`` added to the environment; yield its base URL; stop it after."""
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as scratch:
        port = _free_port()
        log = Path(scratch) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*SERVER_PREFIX, *command(port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_accepting(port, process, log)
            yield f"http://{HOST}:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def serve(
    variant: str,
    flags: list[str],
    factory: str = "benchmarks.apps:from_env",
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``variant`` under uvicorn on a free local port; yield its base URL; stop it after.

    ``factory`` is the app factory uvicorn calls; it finds the variant's name in the
    environment (:data:`apps.APP_ENV`), with ``env`` added to it.
    """
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as scratch:
        variables = {**(env or {}), apps.APP_ENV: variant}
        variables[apps.SQLITE_ENV] = str(Path(scratch) / "sessions.db")

        def command(port: int) -> list[str]:
            uvicorn = [sys.executable, "-m", "uvicorn", "--factory", factory]
            return [*uvicorn, "--host", HOST, "--port", str(port), *flags]

        with serve_process(command, variables) as url:
            yield url


def session_cookie(variant: str, base_url: str) -> str:
    """Create a session with ``GET /setup``; return the ``Cookie`` header that names it."""
    if variant == apps.BARE:
        return BARE_COOKIE
    import httpx  # here, not at the top: the in-process benchmarks' children never load it

    with httpx.Client(base_url=base_url) as client:
        response = client.get("/setup")
        response.raise_for_status()
        cookie = response.headers["set-cookie"].partition(";")[0]
        check = client.get("/read", headers={"Cookie": cookie})
        if check.text != apps.READ_BODY:
            raise RuntimeError(f"{variant}: the session cookie was not honoured: {check.text!r}")
    return cookie


_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: (.*)")


def wrk(
    url: str, cookie: str | None, settings: LoadSettings, seconds: int, script: Path | None = None
) -> float:
    """Load ``url`` for ``seconds`` with wrk; return requests per second.

    ``script`` is a wrk Lua script (e.g. one that sends each request its own cookie).
    """
    command = [*WRK_PREFIX, "wrk", *settings.wrk_flags(seconds)]
    if cookie is not None:
        command += ["-H", f"Cookie: {cookie}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    for problem in (_NON_2XX, _SOCKET_ERRORS):
        if found := problem.search(done.stdout):
            raise RuntimeError(f"wrk {url}: {found.group(0)}\n{done.stdout}")
    found = _RPS.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{done.stdout}")
    return float(found.group(1))


def measure(settings: LoadSettings) -> HttpResult:
    """Run every app through every scenario in bare-bracketed runs, ``settings.rounds`` times."""
    flags, server = server_description()
    result = HttpResult(settings, server)
    with contextlib.ExitStack() as servers:
        base_urls = {v: servers.enter_context(serve(v, flags)) for v in apps.VARIANTS}
        cookies = {v: session_cookie(v, base_urls[v]) for v in apps.VARIANTS}

        def load(variant: str, scenario: Scenario, seconds: int) -> float:
            cookie = cookies[variant] if scenario.with_cookie else None
            return wrk(base_urls[variant] + scenario.path, cookie, settings, seconds)

        def measured(variant: str, scenario: Scenario) -> float:
            rps = load(variant, scenario, settings.duration)
            result.runs[variant][scenario.name].append(rps)
            return rps

        for variant in apps.VARIANTS:
            result.runs[variant] = {scenario.name: [] for scenario in SCENARIOS}
            result.ratios[variant] = {scenario.name: [] for scenario in SCENARIOS}
            for scenario in SCENARIOS:
                load(variant, scenario, settings.warmup)
        for round_number in range(settings.rounds):
            order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
            for scenario in SCENARIOS:
                before = measured(apps.BARE, scenario)
                for variant in order:
                    ours = measured(variant, scenario) + measured(variant, scenario)
                    after = measured(apps.BARE, scenario)
                    result.ratios[variant][scenario.name].append(ours / (before + after))
                    before = after
            print(f"  HTTP round {round_number + 1}/{settings.rounds} done", flush=True)
    return result
