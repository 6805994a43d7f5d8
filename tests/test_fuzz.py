"""The atheris fuzz target runs for a bounded time on every test run and finds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SECONDS = int(os.environ.get("COATCHECK_FUZZ_SECONDS", "15"))
ROOT = Path(__file__).resolve().parent.parent


def test_cookie_header_and_payload_parsing_survive_fuzzing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.fuzz.parsing", f"-max_total_time={SECONDS}"]
    command += ["-rss_limit_mb=1024", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr
    assert "stat::number_of_executed_units" in done.stderr
    assert not list(tmp_path.iterdir()), "the fuzzer left a crashing input"
