"""Frameworks' own test files, taken from the source distribution of the installed version.

The integration tests run a framework's own session tests against coatcheck. The files are
fetched with ``pip download`` (the index pip is configured with), once per version, into a cache
outside the checkout (``$COATCHECK_UPSTREAM_CACHE``, else ``~/.cache/coatcheck/upstream``).

Litestar's sdist ships no tests: its files are vendored in ``tests/.upstream_files/`` instead
(test_litestar_upstream.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
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
