"""SECURITY.md stays true: the tests it cites exist, the code it names resolves, every
requirement of the ASVS sections it covers has a row, and its defaults are the code's.

Test modules are read as syntax trees, never imported, so this runs in a fraction of a second
and cannot be fooled by a test that only exists at import time.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard

import pytest

from coatcheck.config import SessionConfig

ROOT = Path(__file__).parent.parent
SECURITY = ROOT / "SECURITY.md"

REQUIREMENTS_PER_SECTION = {
    # OWASP ASVS 5.0.0, V7 Session Management: the whole chapter.
    "7.1": 3,
    "7.2": 4,
    "7.3": 2,
    "7.4": 5,
    "7.5": 3,
    "7.6": 2,
    # V3 Web Frontend Security: Cookie Setup, and Browser Origin Separation (CSRF).
    "3.3": 5,
    "3.5": 8,
}
"""How many requirements each covered ASVS 5.0 section has; each needs its own row."""

CITED_TEST = re.compile(r"`(tests/[\w/]+\.py)::([^`\s]+)`")
CODE_NAME = re.compile(r"`((?:coatcheck\.|SessionConfig\.|Session\.)[\w.]+)`")
REQUIREMENT_ROW = re.compile(r"^\| \*\*(\d+\.\d+\.\d+)\*\* \|(.*)$", re.MULTILINE)
SHORT_NAMES = {
    "SessionConfig.": "coatcheck.config.SessionConfig.",
    "Session.": "coatcheck.session.Session.",
}


@cache
def text() -> str:
    return SECURITY.read_text(encoding="utf-8")


# -- the test ids pytest would collect, from the syntax tree -------------------------------------


def _module_file(module: str) -> Path | None:
    """The source file of a first-party module (``tests.x`` or ``coatcheck.x``), if any."""
    parts = module.split(".")
    base = ROOT if parts[0] == "tests" else ROOT / "src"
    for candidate in (
        base.joinpath(*parts).with_suffix(".py"),
        base.joinpath(*parts, "__init__.py"),
    ):
        if candidate.is_file():
            return candidate
    return None


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_test_function(node: ast.stmt) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _class_named(path: Path, name: str) -> tuple[Path, ast.ClassDef] | None:
    """The class ``name`` as seen from module ``path``: defined there, or imported into it."""
    tree = _tree(path)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return path, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _module_file(node.module)
                    return _class_named(source, alias.name) if source else None
    return None


def _test_methods(path: Path, cls: ast.ClassDef) -> Iterator[str]:
    """The test methods of ``cls``, its own and those it inherits from first-party bases."""
    for node in cls.body:
        if _is_test_function(node):
            yield node.name
    for base in cls.bases:
        if isinstance(base, ast.Name):
            found = _class_named(path, base.id)
            if found is not None:
                yield from _test_methods(*found)


@cache
def collected(path: Path) -> frozenset[str]:
    """The test ids of a module, as ``name`` or ``Class::name`` (parameters left off)."""
    ids: set[str] = set()
    for node in _tree(path).body:
        if _is_test_function(node):
            ids.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            ids.update(f"{node.name}::{method}" for method in _test_methods(path, node))
    return frozenset(ids)


def test_the_collector_sees_functions_methods_and_inherited_methods() -> None:
    """The check below is only as good as this: it must see what pytest collects."""
    assert "test_defaults" in collected(ROOT / "tests/test_config.py")
    assert "TestExpiry::test_idle_timeout" in collected(ROOT / "tests/test_asgi.py")
    conformance = collected(ROOT / "tests/test_conformance.py")
    assert "TestSQLiteStore::test_logout_destroys_the_session" in conformance  # inherited
    assert "TestSQLiteStore::test_no_such_test" not in conformance


# -- the checks ----------------------------------------------------------------------------------


def cited_tests() -> list[tuple[str, str]]:
    return sorted(set(CITED_TEST.findall(text())))


def test_every_cited_test_exists() -> None:
    cited = cited_tests()
    assert len(cited) >= 50, "the mapping should cite the tests that prove it"
    missing = []
    for file, node in cited:
        path = ROOT / file
        name = node.split("[", 1)[0]  # a parametrized case is its function's
        if not path.is_file() or name not in collected(path):
            missing.append(f"{file}::{node}")
    assert not missing, f"SECURITY.md cites tests that do not exist: {missing}"


def test_every_requirement_of_the_covered_sections_has_one_row_that_says_how_it_is_met() -> None:
    rows = REQUIREMENT_ROW.findall(text())
    numbers = [number for number, _ in rows]
    expected = [
        f"{section}.{item}"
        for section, count in REQUIREMENTS_PER_SECTION.items()
        for item in range(1, count + 1)
    ]
    assert sorted(numbers) == sorted(expected), "one row per requirement, no more, no fewer"
    for number, rest in rows:
        cells = rest.split(" | ")
        assert len(cells) == 3, f"{number}: a row has a requirement, a place and its proof"
        proved = CITED_TEST.search(cells[-1]) is not None
        assert proved or "Application's job" in rest, (
            f"{number} cites no test and does not say it is the application's job"
        )


def _resolve(name: str) -> Any:
    """The object a dotted name in the doc stands for: the longest importable module, then
    attributes (a dataclass field resolves through its class)."""
    for short, full in SHORT_NAMES.items():
        if name.startswith(short):
            name = full + name.removeprefix(short)
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(name)


def test_every_code_name_it_cites_resolves() -> None:
    names = sorted(set(CODE_NAME.findall(text())))
    assert "coatcheck.ids.new_id" in names
    unresolved = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            unresolved.append(name)
    assert not unresolved, f"SECURITY.md names code that does not exist: {unresolved}"


def defaults_table() -> list[tuple[str, str]]:
    section = text().split("\n## Defaults\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([\w.]+)` \| `([^`]+)` \|", section, re.MULTILINE)


def test_the_defaults_table_is_what_the_code_does() -> None:
    table = defaults_table()
    assert {"SessionConfig.idle_timeout", "SessionConfig.absolute_timeout"} <= dict(table).keys()
    config = SessionConfig()
    for name, written in table:
        if name.startswith("SessionConfig."):
            actual = getattr(config, name.removeprefix("SessionConfig."))
        else:
            actual = _resolve(name)
        assert actual == ast.literal_eval(written), f"SECURITY.md says {name} is {written}"


@pytest.mark.parametrize("section", ["V7.1", "V7.6", "V3.3", "V3.5"])
def test_it_names_the_asvs_sections_it_maps(section: str) -> None:
    assert f"### {section} " in text()


def test_the_readme_links_to_it() -> None:
    assert "(SECURITY.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
