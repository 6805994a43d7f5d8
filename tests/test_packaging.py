"""The package's metadata: one version, valid classifiers that say what is supported, and a
changelog."""

import re
import sys
from importlib.metadata import metadata, version
from pathlib import Path

import pytest
from trove_classifiers import classifiers as trove
from trove_classifiers import deprecated_classifiers

import coatcheck
from coatcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
# What the build wrote from pyproject.toml (scripts/test reinstalls the package on every run).
METADATA = metadata("coatcheck")
CLASSIFIERS = METADATA.get_all("Classifier") or []


def test_the_version_is_written_once() -> None:
    """pyproject.toml has no version of its own: the build reads ``coatcheck.__version__``."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"^version\s*=", pyproject, re.MULTILINE)
    assert re.search(r'^dynamic = \[.*"version".*\]$', pyproject, re.MULTILINE)
    assert re.search(
        r'^\[tool\.hatch\.version\]\npath = "src/coatcheck/__init__.py"$', pyproject, re.MULTILINE
    )
    assert (
        len(
            re.findall(
                r"^__version__ = ",
                (ROOT / "src/coatcheck/__init__.py").read_text(encoding="utf-8"),
                re.MULTILINE,
            )
        )
        == 1
    )


def test_the_package_reports_the_distributions_version() -> None:
    """Fails when the installed metadata is stale: reinstall (scripts/test does, every run)."""
    assert coatcheck.__version__ == version("coatcheck")


def test_the_command_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"coatcheck, version {coatcheck.__version__}\n"


def test_there_are_classifiers() -> None:
    assert "Typing :: Typed" in CLASSIFIERS


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_every_classifier_is_a_trove_classifier(classifier: str) -> None:
    assert classifier in trove, f"not a trove classifier: {classifier!r}"
    assert classifier not in deprecated_classifiers


def test_no_license_classifier_beside_the_license_expression() -> None:
    """PEP 639: with an SPDX ``license`` expression, ``License ::`` classifiers are superseded."""
    assert METADATA["License-Expression"] == "MIT"
    assert not [c for c in CLASSIFIERS if c.startswith("License ::")]


def test_the_python_classifiers_agree_with_requires_python() -> None:
    listed = [
        tuple(int(part) for part in c.rsplit(" ", 1)[1].split("."))
        for c in CLASSIFIERS
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    oldest = re.fullmatch(r">=(\d+)\.(\d+)", METADATA["Requires-Python"])
    assert oldest, METADATA["Requires-Python"]
    assert min(listed) == (int(oldest[1]), int(oldest[2]))
    assert listed == sorted(listed)
    # The Python the tests run on (CI's) is one the classifiers claim.
    assert sys.version_info[:2] in listed, f"add a classifier for Python {sys.version[:4]}"


def test_the_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.MULTILINE)
    sections = re.findall(r"^### (.+)$", text, re.MULTILINE)
    assert sections
    assert set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_mysql_extra_brings_what_mysql_8_authentication_needs() -> None:
    """MySQL 8's default ``caching_sha2_password`` needs ``cryptography`` over plain TCP when
    the server has no cached entry for the user: PyMySQL's ``rsa`` extra brings it."""
    requires = metadata("coatcheck").get_all("Requires-Dist") or []
    mysql = [r for r in requires if r.lower().startswith("pymysql") and "mysql" in r.split(";")[1]]
    assert mysql, requires
    assert all("[rsa]" in r for r in mysql), mysql
