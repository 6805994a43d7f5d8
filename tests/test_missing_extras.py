"""Without a store's extra installed, coatcheck says which extra to install, when the store is made.

Specified here, in a fresh virtual environment that holds no third-party package at all (coatcheck
has no dependencies of its own; its source under test is on ``PYTHONPATH``):

- ``from_url`` of a server store (PostgreSQL, MariaDB/MySQL, Memcached, Redis, either face)
  raises :class:`~coatcheck.stores.MissingExtra`, an ImportError and a ValueError, whose
  message is one line ending ``pip install 'coatcheck[EXTRA]'`` (and the missing module). It
  used to build the store, which then failed at its first call with ModuleNotFoundError.
- The ``coatcheck`` command, given its own ``cli`` extra and nothing else, prints that line as
  ``coatcheck: ...`` and exits 1, with no traceback.
- ``coatcheck.metrics`` (and ``SessionConfig(metrics=True)``) and ``coatcheck.tracing`` raise
  the same one-line error naming the ``metrics`` or ``tracing`` extra; a config without
  ``metrics`` needs neither.

No server is contacted: the failure comes before any connection.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import coatcheck

SOURCE = Path(coatcheck.__file__).resolve().parent.parent
"""The directory coatcheck under test is imported from (``src``)."""

DRIVERS = {
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "pymysql",
    "aiomysql",
    "pymemcache",
    "aiomcache",
    "redis",
    "hiredis",
}
"""The distributions the store extras bring (names normalized), none of which may be there."""

SERVER_STORES = [
    ("postgresql://app@127.0.0.1:5432/sessions?table=web", "postgresql", "psycopg"),
    ("postgres://app@127.0.0.1/sessions", "postgresql", "psycopg"),
    ("mysql://app@127.0.0.1:3306/sessions?charset=utf8mb4", "mysql", "pymysql"),
    ("mariadb://app@127.0.0.1/sessions", "mysql", "pymysql"),
    ("memcached://127.0.0.1:11211", "memcached", None),
    ("redis://127.0.0.1:6379/0", "redis", "redis"),
    ("rediss://127.0.0.1:6380/0", "redis", "redis"),
]
"""URL, the extra it needs, the first module of it found missing (Memcached's faces differ)."""

FROM_URL = """\
import json, sys
from coatcheck.stores import from_url
try:
    store = from_url(sys.argv[1], asynchronous=sys.argv[2] == "async")
except BaseException as exc:
    print(json.dumps({
        "raised": type(exc).__name__,
        "import_error": isinstance(exc, ImportError),
        "value_error": isinstance(exc, ValueError),
        "message": str(exc),
    }))
else:
    print(json.dumps({"raised": None, "built": type(store).__name__}))
"""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment without pip or any other package."""
    environment = tmp_path_factory.mktemp("bare-venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(environment)],
        check=True,
        capture_output=True,
    )
    python = environment / "bin" / "python"
    assert python.exists()
    return python


@pytest.fixture(scope="module")
def cli_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding (links to) the ``cli`` extra's packages, click and rich, and what
    they depend on, taken from this environment: the command's needs and no store's driver."""
    directory = tmp_path_factory.mktemp("cli-extra")
    wanted, found = ["click", "rich"], {}
    while wanted:
        name = normalized(wanted.pop())
        if name in found:
            continue
        try:
            found[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:  # one a marker leaves out
            continue
        for requirement in found[name].requires or []:
            if "extra ==" not in requirement:
                match = re.match(r"[A-Za-z0-9._-]+", requirement)
                assert match is not None
                wanted.append(match.group())
    assert not DRIVERS & set(found), "the cli extra must bring no store driver"
    for distribution in found.values():
        tops = {Path(file).parts[0] for file in distribution.files or []}
        for top in tops - {".."}:  # ../../bin/...: its scripts
            (directory / top).symlink_to(Path(str(distribution.locate_file(top))))
    return directory


def run_bare(python: Path, *args: str, path: list[Path]) -> subprocess.CompletedProcess[str]:
    """``python`` with nothing importable but the standard library and ``path``."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(map(str, path)),
        "PYTHONNOUSERSITE": "1",  # no ~/.local packages either
    }
    return subprocess.run(
        [str(python), *args],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def test_the_bare_environment_has_no_store_driver(bare_python: Path) -> None:
    """The premise: coatcheck imports there, and none of the drivers does."""
    for module in ("psycopg", "psycopg_pool", "pymysql", "aiomysql", "pymemcache", "redis"):
        found = run_bare(bare_python, "-c", f"import {module}", path=[SOURCE])
        assert found.returncode != 0, f"{module} is importable in the bare environment"
    assert run_bare(bare_python, "-c", "import coatcheck.stores", path=[SOURCE]).returncode == 0


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize(("url", "extra", "module"), SERVER_STORES)
def test_from_url_names_the_extra_when_the_store_is_made(
    bare_python: Path, url: str, extra: str, module: str | None, face: str
) -> None:
    outcome = run_bare(bare_python, "-c", FROM_URL, url, face, path=[SOURCE])
    assert outcome.returncode == 0, outcome.stderr
    raised = json.loads(outcome.stdout)
    assert raised["raised"] == "MissingExtra", raised
    assert raised["import_error"]
    assert raised["value_error"]
    message = raised["message"]
    scheme = url.partition(":")[0]
    assert message.startswith(f"{scheme}:// needs the {extra} extra: ")
    assert f"pip install 'coatcheck[{extra}]'" in message
    if module is not None:
        assert f"No module named '{module}'" in message
    assert "\n" not in message


@pytest.mark.parametrize(("url", "extra", "module"), SERVER_STORES)
def test_the_command_prints_one_line_naming_the_extra(
    bare_python: Path, cli_packages: Path, url: str, extra: str, module: str | None
) -> None:
    outcome = run_bare(
        bare_python, "-m", "coatcheck.cli", "stats", "--store", url, path=[SOURCE, cli_packages]
    )
    assert outcome.returncode == 1
    assert "Traceback" not in outcome.stderr
    [line] = outcome.stderr.splitlines()
    assert line.startswith(f"coatcheck: {url.partition(':')[0]}:// needs the {extra} extra: ")
    assert f"pip install 'coatcheck[{extra}]'" in line
    assert outcome.stdout == ""


OBSERVING = """\
import json, sys
try:
    if sys.argv[1] == "config":
        from coatcheck.config import SessionConfig
        SessionConfig(metrics=True)
    else:
        __import__(sys.argv[1])
except BaseException as exc:
    print(json.dumps({
        "raised": type(exc).__name__,
        "import_error": isinstance(exc, ImportError),
        "message": str(exc),
    }))
else:
    print(json.dumps({"raised": None}))
"""


@pytest.mark.parametrize(
    ("what", "extra", "module"),
    [
        ("coatcheck.metrics", "metrics", "prometheus_client"),
        ("config", "metrics", "prometheus_client"),  # SessionConfig(metrics=True)
        ("coatcheck.tracing", "tracing", "opentelemetry"),
    ],
)
def test_metrics_and_tracing_name_their_extra(
    bare_python: Path, what: str, extra: str, module: str
) -> None:
    outcome = run_bare(bare_python, "-c", OBSERVING, what, path=[SOURCE])
    assert outcome.returncode == 0, outcome.stderr
    raised = json.loads(outcome.stdout)
    assert raised["raised"] == "MissingExtra", raised
    assert raised["import_error"]
    message = raised["message"]
    assert message.startswith(f"coatcheck.{extra} needs the {extra} extra: ")
    assert f"pip install 'coatcheck[{extra}]'" in message
    assert f"No module named '{module}'" in message
    assert "\n" not in message


def test_without_metrics_a_config_needs_neither_extra(bare_python: Path) -> None:
    check = (
        "from coatcheck.config import SessionConfig; "
        "assert SessionConfig(metrics=False).on_event is None"
    )
    outcome = run_bare(bare_python, "-c", check, path=[SOURCE])
    assert outcome.returncode == 0, outcome.stderr
