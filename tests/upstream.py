"""Frameworks' own test files, taken from the source distribution of the installed version.

The integration tests run a framework's own session tests against coatcheck. The files are
fetched with ``pip download`` (the index pip is configured with), once per version, into a cache
outside the checkout (``$COATCHECK_UPSTREAM_CACHE``, else ``~/.cache/coatcheck/upstream``).

A project whose sdist ships no tests (Litestar) is read instead from the source archive of the
installed version's tag in its repository (:func:`repository_file`), downloaded once per version
into the same cache. Without a network, put that archive where the error message says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from importlib.metadata import version
from pathlib import Path

CACHE = Path(
    os.environ.get("COATCHECK_UPSTREAM_CACHE", Path.home() / ".cache" / "coatcheck" / "upstream")
)


def sdist(distribution: str) -> Path:
    """The source distribution of the installed version of ``distribution``, downloaded once."""
    installed = version(distribution)
    folder = CACHE / f"{distribution.lower()}-{installed}"
    found = sorted(folder.glob("*.tar.gz")) if folder.is_dir() else []
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        only_this = ["--no-deps", "--no-binary", ":all:", f"{distribution}=={installed}"]
        subprocess.run([*pip, *only_this, "--dest", str(folder)], check=True)
        found = sorted(folder.glob("*.tar.gz"))
    if not found:
        raise RuntimeError(f"no source distribution of {distribution} {installed} was downloaded")
    return found[0]


def upstream_file(distribution: str, member: str) -> str:
    """The text of ``member`` (a path inside the sdist, without its top folder), as shipped."""
    return _member(sdist(distribution), member)


def repository_archive(distribution: str, repository: str, tag: str = "v{version}") -> Path:
    """The source archive of the installed version's tag in ``repository`` (GitHub's
    ``owner/name``), downloaded once: for projects whose sdist leaves the tests out."""
    installed = version(distribution)
    name = tag.format(version=installed)
    archive = CACHE / f"{distribution.lower()}-{installed}-repository" / f"{name}.tar.gz"
    if not archive.is_file():
        url = f"https://github.com/{repository}/archive/refs/tags/{name}.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(archive.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=20) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise RuntimeError(
                f"could not download {url} ({error}); without a network, put that archive "
                f"at {archive}"
            ) from error
        partial.replace(archive)
    return archive


def repository_file(
    distribution: str, repository: str, member: str, tag: str = "v{version}"
) -> str:
    """The text of ``member`` (a path in the repository) at the installed version's tag."""
    return _member(repository_archive(distribution, repository, tag), member)


def _member(archive: Path, member: str) -> str:
    """The text of ``member``, a path inside ``archive`` without its top folder."""
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            _, _, rest = info.name.partition("/")
            if rest == member:
                extracted = tar.extractfile(info)
                if extracted is not None:
                    return extracted.read().decode("utf-8")
    raise FileNotFoundError(f"{member} is not in {archive.name}")
