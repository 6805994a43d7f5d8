"""The API reference (mkdocs.yml, docs/api/): it covers every public module, and its rendering of
the reStructuredText idiom of the docstrings (scripts/rst_docstrings.py) is right.

scripts/test builds the site itself with ``mkdocs build --strict``; these are the quick checks.
"""

import doctest
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# Not API: the command line (docs/cli.md), the demo shop, Django's management command.
NOT_API = ("coatcheck.cli", "coatcheck.shop", "coatcheck.integrations.django.management")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rst = _load(ROOT / "scripts" / "rst_docstrings.py")


def public_modules() -> set[str]:
    names = set()
    for path in (SRC / "coatcheck").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if any(part.startswith("_") for part in parts) or f"{name}.".startswith(
            tuple(f"{prefix}." for prefix in NOT_API)
        ):
            continue
        names.add(name)
    return names


def documented_modules() -> set[str]:
    return {
        match[1]
        for page in (ROOT / "docs" / "api").rglob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.MULTILINE)
    }


def test_every_public_module_has_a_reference() -> None:
    assert public_modules() - documented_modules() == set()


def test_the_reference_names_only_modules_that_exist() -> None:
    assert documented_modules() - public_modules() == set()


def test_every_reference_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs" / "api").rglob("*.md"):
        assert f" {page.relative_to(ROOT / 'docs').as_posix()}\n" in nav


def link(path: str, title: str) -> str:
    return f'<autoref optional identifier="{path}"><code>{title}</code></autoref>'


@pytest.mark.parametrize(
    ("rst_text", "markdown"),
    [
        ("See :class:`Store`.", f"See {link('coatcheck.Store', 'Store')}."),
        ("See :func:`~coatcheck.Store.load`.", f"See {link('coatcheck.Store.load', 'load')}."),
        ("See :meth:`.load` here.", f"See {link('coatcheck.Store.load', 'load')} here."),
        ("A :mod:`secrets` ID.", "A <code>secrets</code> ID."),
        ("Plain ``code`` stays.", "Plain ``code`` stays."),
    ],
)
def test_roles_become_code_linked_where_the_object_is_known(rst_text: str, markdown: str) -> None:
    known = {
        "Store": "coatcheck.Store",
        "coatcheck.Store.load": "coatcheck.Store.load",
        ".load": "coatcheck.Store.load",
    }
    assert rst.to_markdown(rst_text, known.get) == markdown


def test_a_role_with_nothing_to_resolve_it_is_plain_code() -> None:
    assert rst.to_markdown("A :data:`SessionDep`.") == "A <code>SessionDep</code>."


def test_a_literal_block_is_fenced_and_its_colons_halved() -> None:
    text = "Use it like so::\n\n    app = App()\n\n    run(app)\n\nThen more."
    assert rst.to_markdown(text) == (
        "Use it like so:\n\n```python\napp = App()\n\nrun(app)\n```\n\nThen more."
    )


def test_a_lone_double_colon_goes() -> None:
    assert rst.to_markdown("Text.\n\n::\n\n    code\n") == "Text.\n\n\n```python\ncode\n```\n"


def test_a_code_block_directive_is_fenced_in_its_language() -> None:
    text = "Settings:\n\n.. code-block:: python\n\n    DEBUG = False\n\nDone."
    assert rst.to_markdown(text) == "Settings:\n\n\n```python\nDEBUG = False\n```\n\nDone."


def test_a_doctest_is_fenced_up_to_the_blank_line() -> None:
    text = "Like this:\n>>> 1 + 1\n2\n\nAfter."
    assert rst.to_markdown(text) == "Like this:\n\n```pycon\n>>> 1 + 1\n2\n```\n\n\nAfter."


def test_roles_inside_code_stay_as_written() -> None:
    text = "Example::\n\n    x = ':class:`Store`'\n"
    assert ":class:`Store`" in rst.to_markdown(text, lambda _target: "coatcheck.Store")


def test_an_indented_doctest_keeps_its_indent() -> None:
    text = "- item:\n\n  >>> f()\n  1"
    assert rst.to_markdown(text) == "- item:\n\n\n  ```pycon\n  >>> f()\n  1\n  ```\n"


def test_the_converters_examples_hold() -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(rst, optionflags=flags)
    assert result.attempted
    assert result.failed == 0
