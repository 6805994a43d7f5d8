"""Shared pieces of the report: the machine description, medians, Markdown tables and verdicts."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("coatcheck", "starlette", "starsessions", "uvicorn", "orjson", "uvloop", "httptools")


@dataclass(frozen=True)
class Target:
    """One goal of the benchmarks and whether this run met it."""

    name: str
    measured: str
    holds: bool


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def verdict(holds: bool) -> str:
    return "yes" if holds else "**NO**"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    """A Markdown table; the first ``left`` columns are left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join([":---"] * left + ["---:"] * (len(headers) - left)) + " |",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_table(targets: Iterable[Target]) -> str:
    return table(
        ["target", "measured", "holds"],
        [(t.name, t.measured, verdict(t.holds)) for t in targets],
        left=2,
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def machine() -> str:
    """The machine and software the numbers come from, as a Markdown list."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    items = [
        ("date", now),
        ("CPU", _cpu_model()),
        ("cores", str(os.cpu_count())),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("load generator", _wrk_version()),
    ]
    items += [(name, _package_version(name)) for name in PACKAGES]
    return "\n".join(f"- {name}: {value}" for name, value in items)


def own_run(measured_at: str, *details: str) -> list[str]:
    """The opening lines of a section measured on its own: when, on what, and ``details``
    (versions, settings) as more items of the list."""
    return [
        "This section's own run:",
        "",
        f"- date: {measured_at}",
        f"- CPU: {_cpu_model()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        *(f"- {detail}" for detail in details),
        "",
    ]


def described(doc: str | None) -> str:
    """A benchmark module's description for its section: its docstring less the title line and
    the closing "Run with" paragraph, as Markdown (paragraphs and lists kept)."""
    body = (doc or "").split("\n\n", 1)[1].rsplit("\n\nRun with", 1)[0]
    return body.replace("\n  ", " ")
