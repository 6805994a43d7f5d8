"""A Griffe extension for the API reference (mkdocs.yml): coatcheck's docstrings, written in
reStructuredText's idiom, rendered as the Markdown mkdocstrings expects.

The docstrings stay as they are (they read well in ``help()`` and an editor); this rewrites
what the reference shows, once the whole package is loaded:

- a role (``:class:`~coatcheck.stores.Store```, ``:meth:`.login```, ...) becomes its name in
  code, linked to the object's entry when the reference has one (an optional cross-reference:
  one to an object the reference leaves out, or outside coatcheck, stays plain code);
- a doctest (``>>>``), a literal block after ``::`` and a ``.. code-block::`` become fenced
  code, and the ``::`` that announced a literal block becomes ``:``.

Everything else (double backquotes for code, ``*emphasis*``, lists) means the same in Markdown.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import griffe

ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|exc|obj|const):`(?P<target>[^`]+)`")
CODE_BLOCK = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S*)\s*$")
LITERAL_MARK = re.compile(r"(?P<text>.*?)\s*::$")
FENCE = "```"

Resolve = Callable[[str], "str | None"]
"""Maps a role's target (as written, less a leading ``~``) to the dotted path of the object it
names, or ``None`` when there is none to link to."""


def to_markdown(text: str, resolve: Resolve | None = None) -> str:
    """``text``, a docstring in reStructuredText's idiom, as Markdown, each role linked to the
    path ``resolve`` finds for it (by default, none: plain code).

    >>> print(to_markdown("Pick one by URL (:func:`~coatcheck.stores.from_url`)::\\n\\n    x = 1"))
    Pick one by URL (<code>from_url</code>):
    <BLANKLINE>
    ```python
    x = 1
    ```
    """
    find: Resolve = resolve or (lambda _target: None)
    out, fenced = [], False
    for line in _blocks(text.splitlines()):
        if line.lstrip().startswith(FENCE):
            fenced = not fenced
        out.append(line if fenced else _roles(line, find))
    return "\n".join(out)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fenced(lines: list[str], indent: str, lang: str) -> Iterator[str]:
    """``lines`` as a fenced block at ``indent``, with a blank line either side."""
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    depth = min((_indent_of(line) for line in lines if line.strip()), default=0)
    yield ""
    yield f"{indent}{FENCE}{lang}"
    for line in lines:
        yield f"{indent}{line[depth:]}" if line.strip() else ""
    yield f"{indent}{FENCE}"
    yield ""


def _blocks(lines: list[str]) -> Iterator[str]:
    """The docstring's lines with its doctests, literal blocks and code-block directives fenced."""
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: _indent_of(line)]
        if stripped.startswith(">>>"):
            # A doctest runs to the next blank line.
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            yield from _fenced(lines[i:end], indent, "pycon")
            i = end
            continue
        directive = CODE_BLOCK.match(line)
        literal = LITERAL_MARK.match(line) if not directive else None
        if directive or literal:
            # The block is every following line indented deeper (blank lines included).
            end = i + 1
            while end < len(lines) and (
                not lines[end].strip() or _indent_of(lines[end]) > len(indent)
            ):
                end += 1
            body = lines[i + 1 : end]
            if any(part.strip() for part in body):
                if literal:
                    text = literal["text"].rstrip()
                    if text.strip():
                        yield text if text.endswith(":") else f"{text}:"
                lang = directive["lang"] if directive else "python"
                yield from _fenced(body, indent, lang)
                i = end
                continue
        yield line
        i += 1


def _roles(line: str, resolve: Resolve) -> str:
    """``line`` with every role as code, linked where ``resolve`` finds the object."""

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~")
        title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        code = f"<code>{html.escape(title)}</code>"
        path = resolve(target)
        if path is None:
            return code
        return f'<autoref optional identifier="{html.escape(path)}">{code}</autoref>'

    return ROLE.sub(replace, line)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined in it (aliases are visited where they are defined)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]  # not an alias


def _find(root: griffe.Object, path: str) -> str | None:
    """The path of the object ``path`` names in ``root``'s package (an imported name: the path
    where it is defined), or ``None`` when there is none there."""
    if path == root.path:
        return path
    if not path.startswith(root.path + "."):
        return None
    try:
        found = root[path[len(root.path) + 1 :]]
        if found.is_alias:
            path = found.final_target.path
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return path if path.startswith(root.path + ".") else None


def _resolve(pkg: griffe.Module, at: griffe.Object, target: str) -> str | None:
    """The path of the object ``target`` names from ``at``, looked up as Sphinx would: as
    written, then from ``at`` and each of its parents outwards (a ``.name``: only from them)."""
    name = target.lstrip(".")
    scopes: list[griffe.Object] = []
    scope: griffe.Object | None = at
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    candidates = [] if target.startswith(".") else [name]
    candidates += [f"{scope.path}.{name}" for scope in scopes]
    for candidate in candidates:
        if (found := _find(pkg, candidate)) is not None:
            return found
    return None


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module's docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` once all of it is loaded, so references resolve."""
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value, partial(_resolve, pkg, obj))
