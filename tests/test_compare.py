"""`coatcheck compare` measures its table of stores (coupled to one server? survives a restart?)
instead of asserting it: the answers it gets for memory, SQLite and Redis are the ones each is
known for, and it writes its table and chart; with --json it prints its measurements as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .services import REDIS_URL, require


def test_compare_measures_what_each_store_is_known_for(tmp_path: Path) -> None:
    require("Redis", "127.0.0.1", 6379)
    table, chart = tmp_path / "compare.md", tmp_path / "compare.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "coatcheck.cli",
            "compare",
            "--stores",
            "memory,sqlite,redis,memcached",
            "--redis",
            REDIS_URL,
            "--memcached",
            "127.0.0.1:1",  # nothing listens there
            "--samples",
            "20",
            "--seconds",
            "0.05",
            "--markdown",
            str(table),
            "--chart",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")[1:4]
        for line in table.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| store")
    }
    # coupled to one server, survives an app restart, shared across 3 instances
    assert rows["memory"] == ["yes", "no", "no"]
    assert rows["sqlite"] == ["yes", "yes", "yes"]
    assert rows["redis"] == ["no", "yes", "yes"]
    assert rows["memcached"][0] == "not reachable at 127.0.0.1:1"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_compare_json_prints_the_measurements() -> None:
    command = [sys.executable, "-m", "coatcheck", "compare", "--stores", "memory,memcached"]
    result = subprocess.run(
        [*command, "--memcached", "127.0.0.1:1", "--samples", "10", "--seconds", "0.05", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    memory, memcached = printed["stores"]
    assert memory["store"] == "memory"
    assert memory["status"] == "measured"
    assert (memory["coupled"], memory["survives_restart"], memory["shared"]) == (True, False, False)
    assert 0 < memory["load_ms"]["p50"] <= memory["load_ms"]["p99"]
    assert memory["writes_per_second"] > 0
    assert memcached["status"] == "not reachable at 127.0.0.1:1"
    assert memcached["load_ms"] == {"p50": None, "p99": None}
    assert printed["wrote"] == []
