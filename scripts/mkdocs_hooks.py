"""MkDocs hooks for the documentation site (mkdocs.yml): one set of Markdown files that reads
the same in the repository and on the site.

The guides link the way a repository browser resolves links: by path, relative to the file,
``../SECURITY.md`` from ``docs/cli.md``, ``../../examples/starlette/app.py`` from
``docs/integrations/starlette.md``. MkDocs only knows the files under ``docs/``, so here:

- the repository's own pages (:data:`ROOT_PAGES`: SECURITY.md, CHANGELOG.md, CONTRIBUTING.md)
  join the site, under the names given there;
- a linked source file outside ``docs/`` (an example app) joins the site as a page that shows
  its code;
- every relative link is resolved against the file's real place in the repository and pointed
  at the page the site has for its target.

A link to nothing is left as written, for ``mkdocs build --strict`` to refuse.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

# Repository files shown on the site: path in the repository -> its page's name on the site.
ROOT_PAGES = {
    "SECURITY.md": "security.md",
    "CHANGELOG.md": "changelog.md",
    "CONTRIBUTING.md": "contributing.md",
}
# A Markdown link or image, ``[text](target)`` or ``[text](target "title")``.
LINK = re.compile(r"(?P<head>!?\[[^\]]*\]\()(?P<target>[^)\s]+)(?P<tail>(?:\s+\"[^\"]*\")?\))")
# A fence's opening or closing line (a backtick fence's info string has no backtick).
FENCE = re.compile(r"^\s*(`{3,}[^`]*|~{3,}.*)$")
SOURCE_LANGS = {".py": "python", ".toml": "toml", ".yml": "yaml", ".yaml": "yaml", ".sh": "sh"}


def _repo(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def _targets(markdown: str) -> list[str]:
    """The relative link targets of ``markdown``, outside fenced code."""
    found, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            found += [m["target"] for m in LINK.finditer(line) if not _external(m["target"])]
    return found


def _external(target: str) -> bool:
    parts = urlsplit(target)
    return bool(parts.scheme or parts.netloc or target.startswith(("#", "/")))


def _source_page(repo: Path, path: Path) -> str:
    """The site's page for ``path``, a source file outside ``docs/``: its code, in full."""
    relative = path.relative_to(repo).as_posix()
    lang = SOURCE_LANGS.get(path.suffix, "")
    return f"# {relative}\n\n```{lang}\n{path.read_text(encoding='utf-8').rstrip()}\n```\n"


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add the repository's pages and the source files the pages link to."""
    repo = _repo(config)
    docs = Path(config.docs_dir).resolve()
    for root_page, name in ROOT_PAGES.items():
        files.append(File.generated(config, name, abs_src_path=str(repo / root_page)))
    sources = [Path(f.abs_src_path) for f in files if f.is_documentation_page() and f.abs_src_path]
    for source in sources:
        for target in _targets(source.read_text(encoding="utf-8")):
            path = (source.parent / urlsplit(target).path).resolve()
            if (
                path.is_file()
                and path.suffix != ".md"
                and not path.is_relative_to(docs)
                and path.is_relative_to(repo)
                and files.get_file_from_path(_site_name(repo, docs, path) or "") is None
            ):
                name = f"{path.relative_to(repo).as_posix()}.md"
                page = File.generated(config, name, content=_source_page(repo, path))
                page.inclusion = InclusionLevel.NOT_IN_NAV  # reached by its links only
                files.append(page)
    return files


def _site_name(repo: Path, docs: Path, path: Path) -> str | None:
    """The name on the site (``src_uri``) of the repository file at ``path``, if it has one."""
    if path.is_relative_to(docs):
        return path.relative_to(docs).as_posix()
    relative = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else None
    if relative in ROOT_PAGES:
        return ROOT_PAGES[relative]
    if relative is not None and path.suffix != ".md":
        return f"{relative}.md"
    return None


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point each relative link of ``page`` at the site's page for its target."""
    if page.file.abs_src_path is None:  # a source file's page: no links of its own
        return markdown
    repo = _repo(config)
    docs = Path(config.docs_dir).resolve()
    here = Path(page.file.abs_src_path).resolve().parent
    directory = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        target = match["target"]
        if _external(target):
            return match[0]
        parts = urlsplit(target)
        name = _site_name(repo, docs, (here / parts.path).resolve())
        if name is None or files.get_file_from_path(name) is None:
            return match[0]  # left for the strict build to report
        link = posixpath.relpath(name, directory or ".")
        if parts.fragment:
            link += f"#{parts.fragment}"
        return f"{match['head']}{link}{match['tail']}"

    out, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            out.append(line)
        else:
            out.append(line if fenced else LINK.sub(relink, line))
    return "\n".join(out) + "\n"
