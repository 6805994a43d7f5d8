"""Run every benchmark and write the report, docs/benchmarks.md (``python -m benchmarks.run``)."""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from . import (
    compression,
    framework_instructions,
    frameworks,
    http_load,
    inprocess,
    instructions,
    memory,
    purge,
    sizing,
    store_ops,
    tokens,
)
from .apps import BARE
from .report import Target, machine, targets_table

T = TypeVar("T")

DEFAULT_OUTPUT = http_load.ROOT / "docs" / "benchmarks.md"
INSTRUCTIONS_TITLE = "Instructions per request, in-process (callgrind)"
TOKENS_TITLE = "Access tokens against sessions: the cost of one check"
COMPRESSION_TITLE = "Compression at rest: the saving and the cost"
SIZING_TITLE = "Bytes per session at rest: Redis, PostgreSQL, SQLite"
ONLY = ("instructions", "tokens", "compression", "sizing")
"""What ``--only`` can select: benchmarks whose section is rewritten alone, the rest kept."""
PREAMBLE = """\
# Benchmarks

Written by `scripts/bench` (`python -m benchmarks.run`); do not edit by hand. The HTTP numbers
are ratios against bare Starlette measured side by side in one run, not absolute promises: they
depend on the machine, and this one is a small shared virtual machine whose speed drifts.
"""


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    defaults = http_load.LoadSettings()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="HTTP rounds")
    parser.add_argument("--duration", type=int, default=defaults.duration, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--skip-http", action="store_true", help="only the in-process benchmarks")
    parser.add_argument(
        "--only-frameworks",
        nargs="*",
        metavar="NAME",
        help="run only these framework benchmarks (all when given no name), nothing else",
    )
    parser.add_argument(
        "--only",
        choices=ONLY,
        help="run only this benchmark and rewrite only its section of the report",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        metavar="PATH",
        help="instructions: also count another checkout's src directory, side by side",
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="REV",
        help="instructions: also count the src of this git revision (read with git archive)",
    )
    parser.add_argument("--baseline-label", help="how the report names the baseline tree")
    parser.add_argument(
        "--instructions-requests",
        type=int,
        default=instructions.REQUESTS,
        metavar="N",
        help="instructions: requests counted per app and scenario",
    )
    parser.add_argument(
        "--instructions-layouts",
        type=int,
        default=instructions.LAYOUTS,
        metavar="K",
        help="instructions: memory layouts each count is averaged over",
    )
    parser.add_argument(
        "--instructions-framework-layouts",
        type=int,
        default=framework_instructions.LAYOUTS,
        metavar="K",
        help="instructions: memory layouts the framework integrations are counted in (at most"
        " those of --instructions-layouts)",
    )
    parser.add_argument(
        "--instructions-skip-frameworks",
        action="store_true",
        help="instructions: count no framework integration (Flask, Django, Litestar, aiohttp)",
    )
    parser.add_argument(
        "--redis",
        default=tokens.REDIS_URL,
        metavar="URL",
        help="tokens: the Redis the revocation reads and session loads go to",
    )
    parser.add_argument(
        "--tokens-rounds",
        type=int,
        default=tokens.ROUNDS,
        metavar="R",
        help="tokens: interleaved timing rounds",
    )
    parser.add_argument(
        "--tokens-requests",
        type=int,
        default=tokens.REQUESTS,
        metavar="N",
        help="tokens: operations counted per callgrind run",
    )
    parser.add_argument(
        "--tokens-layouts",
        type=int,
        default=tokens.LAYOUTS,
        metavar="K",
        help="tokens: memory layouts each instruction count is made in (the median is kept)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report to write")
    args = parser.parse_args(argv)
    if args.baseline_src is not None and args.baseline_ref is not None:
        parser.error("give --baseline-src or --baseline-ref, not both")
    return args


def _timed(title: str, work: Callable[[], T]) -> T:
    print(f"{title} ...", flush=True)
    started = time.monotonic()
    result = work()
    print(f"  done in {time.monotonic() - started:.1f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = http_load.LoadSettings(
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
    )
    began = time.monotonic()
    if args.only_frameworks is not None:
        return _frameworks_only(args.only_frameworks or list(frameworks.MODULES), settings)
    if args.only == "instructions":
        return _instructions_only(args)
    if args.only == "tokens":
        return _tokens_only(args)
    if args.only == "compression":
        return _section_only(args, COMPRESSION_TITLE, compression.measure)
    if args.only == "sizing":
        return _section_only(args, SIZING_TITLE, sizing.measure)
    ops = _timed("store calls per request", store_ops.measure)
    footprint = _timed(f"memory per session ({memory.SESSIONS:,} sessions)", memory.measure)
    purges = _timed("MemoryStore purge scaling", purge.measure)
    costs = _timed("cost per request in-process", inprocess.measure)
    targets: list[Target] = []
    if args.skip_http:
        http_section = "Skipped (`--skip-http`)."
        cost_section = costs.markdown()
    else:
        minutes = settings.estimated_seconds() / 60
        http = _timed(
            f"HTTP load (about {minutes:.1f} minutes)", lambda: http_load.measure(settings)
        )
        http_section = http.markdown()
        cost_section = costs.markdown({s.name: http.rps(BARE, s.name) for s in http_load.SCENARIOS})
        targets += http.targets()
    targets += store_ops.targets(ops)
    targets += [*footprint.targets(), purge.target(purges)]
    framework_sections = []
    if not args.skip_http:
        for number, name in enumerate(frameworks.MODULES, start=6):
            title, measure = frameworks.load(name)
            result = _timed(title, lambda measure=measure: measure(settings))  # type: ignore[misc]
            framework_sections.append((f"{number}. {title}", result.markdown))
            targets += result.targets
    if shutil.which("valgrind") is None:
        counted = "Skipped (valgrind is not installed)."
    else:
        counts, command = _timed("instructions per request (callgrind)", lambda: _count(args))
        counted = counts.markdown(command)
        targets += counts.targets()
    token_costs = _timed("access tokens against sessions", lambda: _tokens(args))
    targets += token_costs.targets()
    compressed = _timed("compression at rest", compression.measure)
    sized = _timed("bytes per session at rest", sizing.measure)

    sections = [
        ("Machine", machine()),
        ("Targets", targets_table(targets)),
        ("1. Requests per second over HTTP", http_section),
        ("2. Cost per request, in-process", cost_section),
        ("3. Store calls per request", store_ops.markdown(ops)),
        ("4. Memory per session in MemoryStore", footprint.markdown()),
        ("5. MemoryStore purge scaling", purge.markdown(purges)),
        *framework_sections,
        (f"{6 + len(framework_sections)}. {INSTRUCTIONS_TITLE}", counted),
        (
            f"{7 + len(framework_sections)}. {TOKENS_TITLE}",
            token_costs.markdown(_tokens_command(args)),
        ),
        (f"{8 + len(framework_sections)}. {COMPRESSION_TITLE}", compressed.markdown()),
        (f"{9 + len(framework_sections)}. {SIZING_TITLE}", sized.markdown()),
    ]
    report = PREAMBLE + "".join(f"\n## {title}\n\n{body.strip()}\n" for title, body in sections)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"wrote {args.output} in {time.monotonic() - began:.0f} s")
    for target in targets:
        if not target.holds:
            print(f"  target missed: {target.name} (measured {target.measured})")
    return 0


def _count(args: argparse.Namespace) -> tuple[instructions.InstructionsResult, str]:
    """Instructions per request (and the baseline's, if asked), and the command that repeats it."""
    command = "scripts/bench --only instructions"
    if args.instructions_requests != instructions.REQUESTS:
        command += f" --instructions-requests {args.instructions_requests}"
    if args.instructions_layouts != instructions.LAYOUTS:
        command += f" --instructions-layouts {args.instructions_layouts}"
    if args.instructions_skip_frameworks:
        command += " --instructions-skip-frameworks"
    elif args.instructions_framework_layouts != framework_instructions.LAYOUTS:
        command += f" --instructions-framework-layouts {args.instructions_framework_layouts}"
    with tempfile.TemporaryDirectory(prefix="coatcheck-baseline-") as scratch:
        baseline: instructions.Tree | None = None
        if args.baseline_ref is not None:
            commit = instructions.describe(args.baseline_ref)
            src = instructions.archive(commit, Path(scratch) / "checkout")
            baseline = instructions.Tree(args.baseline_label or commit, src)
            command += f" --baseline-ref {commit}"
        elif args.baseline_src is not None:
            label = args.baseline_label or str(args.baseline_src)
            baseline = instructions.Tree(label, args.baseline_src)
            command += f" --baseline-src {args.baseline_src}"
        result = instructions.measure(
            baseline,
            requests=args.instructions_requests,
            layouts=args.instructions_layouts,
            frameworks=not args.instructions_skip_frameworks,
            framework_layouts=args.instructions_framework_layouts,
        )
    return result, command


def _instructions_only(args: argparse.Namespace) -> int:
    """Count instructions per request and rewrite that one section of the report in place."""
    result, command = _timed("instructions per request (callgrind)", lambda: _count(args))
    body = result.markdown(command)
    report = args.output.read_text() if args.output.exists() else PREAMBLE
    args.output.write_text(put_section(report, INSTRUCTIONS_TITLE, body))
    print(f"\n## {INSTRUCTIONS_TITLE}\n\n{body.strip()}\n")
    print(f"wrote its section of {args.output}")
    for target in result.targets():
        print(f"  {'holds' if target.holds else 'MISSED'}: {target.name} ({target.measured})")
    return 0


def _tokens(args: argparse.Namespace) -> tokens.TokensResult:
    return tokens.measure(
        args.redis,
        rounds=args.tokens_rounds,
        requests=args.tokens_requests,
        layouts=args.tokens_layouts,
    )


def _tokens_command(args: argparse.Namespace) -> str:
    """The command that repeats the tokens benchmark as it was run."""
    command = "scripts/bench --only tokens"
    if args.redis != tokens.REDIS_URL:
        command += f" --redis {args.redis}"
    for option, default in (
        ("rounds", tokens.ROUNDS),
        ("requests", tokens.REQUESTS),
        ("layouts", tokens.LAYOUTS),
    ):
        value = getattr(args, f"tokens_{option}")
        if value != default:
            command += f" --tokens-{option} {value}"
    return command


def _tokens_only(args: argparse.Namespace) -> int:
    """Measure access tokens against sessions and rewrite that one section of the report."""
    result = _timed("access tokens against sessions", lambda: _tokens(args))
    body = result.markdown(_tokens_command(args))
    report = args.output.read_text() if args.output.exists() else PREAMBLE
    args.output.write_text(put_section(report, TOKENS_TITLE, body))
    print(f"\n## {TOKENS_TITLE}\n\n{body.strip()}\n")
    print(f"wrote its section of {args.output}")
    for target in result.targets():
        print(f"  {'holds' if target.holds else 'MISSED'}: {target.name} ({target.measured})")
    return 0


class Section(Protocol):
    def markdown(self) -> str: ...


def _section_only(args: argparse.Namespace, title: str, measure: Callable[[], Section]) -> int:
    """Run one benchmark and rewrite that one section of the report."""
    body = _timed(title, measure).markdown()
    report = args.output.read_text() if args.output.exists() else PREAMBLE
    args.output.write_text(put_section(report, title, body))
    print(f"\n## {title}\n\n{body.strip()}\n")
    print(f"wrote its section of {args.output}")
    return 0


def put_section(report: str, title: str, body: str) -> str:
    """``report`` with the section named ``title`` (``## N. title``) replaced by ``body``, or
    added at the end, numbered after the last numbered section."""
    found = re.search(
        rf"^## (\d+)\. {re.escape(title)}\n.*?(?=^## |\Z)", report, re.MULTILINE | re.DOTALL
    )
    if found is None:
        numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", report, re.MULTILINE)]
        section = f"## {max(numbers, default=0) + 1}. {title}\n\n{body.strip()}\n"
        return f"{report.rstrip()}\n\n{section}"
    section = f"## {found.group(1)}. {title}\n\n{body.strip()}\n"
    after = report[found.end() :]
    return report[: found.start()] + section + ("\n" + after if after else "")


def _frameworks_only(names: list[str], settings: http_load.LoadSettings) -> int:
    """Run some framework benchmarks and print their sections (docs/benchmarks.md is untouched)."""
    for name in names:
        title, measure = frameworks.load(name)
        result = measure(settings)
        print(f"\n## {title}\n\n{result.markdown.strip()}\n")
        for target in result.targets:
            print(f"  {'holds' if target.holds else 'MISSED'}: {target.name} ({target.measured})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
