"""One benchmark per framework integration: coatcheck against that framework's usual session option.

Each module here (``flask``, ``django``, ...) defines ``TITLE`` (a str) and
``measure(settings: LoadSettings) -> FrameworkResult``; :mod:`benchmarks.run` runs every one
listed in :data:`MODULES` and adds its section to docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import cast

from ..http_load import LoadSettings
from ..report import Target

MODULES: tuple[str, ...] = ("starlette", "flask", "django", "litestar", "aiohttp")
"""The framework benchmarks run, in report order (module names in this package)."""


@dataclass
class FrameworkResult:
    """What one framework's benchmark found: its report section and the targets it checked."""

    markdown: str
    targets: list[Target] = field(default_factory=list)


def load(name: str) -> tuple[str, Callable[[LoadSettings], FrameworkResult]]:
    module: ModuleType = importlib.import_module(f"{__name__}.{name}")
    title = cast(str, module.TITLE)
    return title, cast(Callable[[LoadSettings], FrameworkResult], module.measure)
