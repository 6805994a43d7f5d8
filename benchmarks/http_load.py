"""Requests per second over real HTTP: each app under uvicorn (one worker), loaded by wrk.

Each round starts every app's server in turn (the order rotates between rounds, so drift in the
machine's speed spreads over all apps), creates a session with ``GET /setup`` and runs the three
scenarios against it: a short warm-up, then the measured wrk run. The report takes the median of
the rounds and divides it by bare Starlette's median for the same scenario.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import apps
from .report import Target, median, table

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
COATCHECK_VARIANTS = (apps.COATCHECK_MEMORY, apps.COATCHECK_SQLITE)
RIVALS = (apps.STARSESSIONS, apps.SIGNED_COOKIE)
BARE_COOKIE = f"{apps.COOKIE_NAME}={'x' * 43}"
"""What the bare app is sent in the cookie scenarios: a cookie of the same size, unread."""


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

    rounds: int = 3
    duration: int = 5
    warmup: int = 1
    connections: int = 32
    threads: int = 1

    def wrk_flags(self) -> str:
        return f"-t{self.threads} -c{self.connections} -d{self.duration}s"

    def estimated_seconds(self) -> float:
        per_app = 1.5 + len(SCENARIOS) * (self.warmup + self.duration + 0.2)
        return self.rounds * len(apps.VARIANTS) * per_app


@dataclass
class HttpResult:
    """Requests per second of every round, by app and scenario."""

    settings: LoadSettings
    server: str
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def rps(self, variant: str, scenario: str) -> float:
        return median(self.samples[variant][scenario])

    def ratio(self, variant: str, scenario: str) -> float:
        return self.rps(variant, scenario) / self.rps(apps.BARE, scenario)

    def targets(self) -> list[Target]:
        found = []
        for variant in COATCHECK_VARIANTS:
            for scenario in SCENARIOS:
                ratio = self.ratio(variant, scenario.name)
                found.append(
                    Target(
                        f"{variant}, {scenario.name}: >= {scenario.target_ratio:.2f}x bare",
                        f"{ratio:.3f}x",
                        ratio >= scenario.target_ratio,
                    )
                )
            for scenario in SCENARIOS:
                ours = self.rps(variant, scenario.name)
                theirs = [self.rps(rival, scenario.name) for rival in RIVALS]
                found.append(
                    Target(
                        f"{variant}, {scenario.name}: ahead of {' and '.join(RIVALS)}",
                        f"{ours:,.0f} vs {' / '.join(f'{t:,.0f}' for t in theirs)} req/s",
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
        runs = [
            (
                variant,
                scenario.name,
                " / ".join(f"{v:,.0f}" for v in self.samples[variant][scenario.name]),
                _spread(self.samples[variant][scenario.name]),
            )
            for variant in apps.VARIANTS
            for scenario in SCENARIOS
        ]
        apps_list = "\n".join(f"- `{v}`: {apps.DESCRIPTIONS[v]}" for v in apps.VARIANTS)
        return f"""\
Server: {self.server}. Load: `wrk {s.wrk_flags()}` on {HOST} after a {s.warmup} s warm-up of
the same scenario; {s.rounds} rounds, the order of the apps rotating each round; each cell is the
median of the rounds. wrk and the server share the machine's cores.

{apps_list}

Scenarios: *anonymous* sends no cookie to a route that does not touch the session; *read-only*
sends the cookie of a session holding about 200 bytes of JSON to a route that reads one key;
*writing* sends that cookie to a route that increments a counter in the session.

{table(headers, rows)}

Every round (req/s), and the spread (max - min) / median:

{table(["app", "scenario", "rounds", "spread"], runs)}
"""


def _spread(values: list[float]) -> str:
    return f"{(max(values) - min(values)) / median(values):.1%}"


def server_description() -> tuple[list[str], str]:
    """uvicorn's loop and HTTP flags (uvloop and httptools when installed), and their summary."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    flags = ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    flags += ["--loop", loop, "--http", http]
    return flags, f"uvicorn `{' '.join(flags)}` (one process)"


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
def serve(variant: str, flags: list[str]) -> Iterator[str]:
    """Run ``variant`` under uvicorn on a free local port; yield its base URL; stop it after."""
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-") as scratch:
        port = _free_port()
        env = {**os.environ, apps.APP_ENV: variant}
        env[apps.SQLITE_ENV] = str(Path(scratch) / "sessions.db")
        command = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.apps:from_env"]
        command += ["--host", HOST, "--port", str(port), *flags]
        log = Path(scratch) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
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


def session_cookie(variant: str, base_url: str) -> str:
    """Create a session with ``GET /setup``; return the ``Cookie`` header that names it."""
    if variant == apps.BARE:
        return BARE_COOKIE
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


def wrk(url: str, cookie: str | None, settings: LoadSettings, seconds: int) -> float:
    """Load ``url`` for ``seconds`` with wrk; return requests per second."""
    command = ["wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{seconds}s"]
    if cookie is not None:
        command += ["-H", f"Cookie: {cookie}"]
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
    """Run every app through every scenario ``settings.rounds`` times."""
    flags, server = server_description()
    result = HttpResult(settings, server)
    for variant in apps.VARIANTS:
        result.samples[variant] = {scenario.name: [] for scenario in SCENARIOS}
    variants = list(apps.VARIANTS)
    for round_number in range(settings.rounds):
        shift = round_number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            with serve(variant, flags) as base_url:
                cookie = session_cookie(variant, base_url)
                for scenario in SCENARIOS:
                    url = base_url + scenario.path
                    sent = cookie if scenario.with_cookie else None
                    wrk(url, sent, settings, settings.warmup)
                    rps = wrk(url, sent, settings, settings.duration)
                    result.samples[variant][scenario.name].append(rps)
                    print(
                        f"  round {round_number + 1}/{settings.rounds} {variant:<17}"
                        f" {scenario.name:<10} {rps:>10,.0f} req/s",
                        flush=True,
                    )
    return result
