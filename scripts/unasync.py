"""Generate the sync twins of coatcheck's async store modules (as httpcore's unasync does).

    python scripts/unasync.py          # rewrite the generated files
    python scripts/unasync.py --check  # exit 1 if a generated file is stale

Each async source is the only hand-written copy: its sync twin is derived from it by the token
rules below and formatted with ruff, so the two can never drift apart.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORES = ROOT / "src" / "coatcheck" / "stores"

# (async source, sync target, the target's docstring, rules of its own applied first)
SOURCES: list[tuple[Path, Path, str, list[tuple[str, str]]]] = [
    (
        STORES / "redis" / "_async.py",
        STORES / "redis" / "_sync.py",
        "RedisStore: sessions in Redis through redis-py's sync client.\n\n"
        "Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.",
        [
            (r"\bAsyncRedisStore\b", "RedisStore"),
            (r"class RedisStore\(AsyncStore\)", "class RedisStore(Store, UserIndex, Iterable)"),
            (
                r"from \.\.base import AsyncStore, Record",
                "from ..base import Iterable, Record, Store, UserIndex",
            ),
            (r"import redis\.asyncio\.sentinel as", "import redis.sentinel as"),
            (r"import redis\.asyncio\.cluster as", "import redis.cluster as"),
            (r"from redis\.asyncio import", "from redis import"),
        ],
    ),
    (
        STORES / "sql" / "_async.py",
        STORES / "sql" / "_sync.py",
        "SQLStore: sessions in PostgreSQL, MariaDB or MySQL through a thread-safe pool.\n\n"
        "Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.",
        [
            (r"\bAsyncSQLStore\b", "SQLStore"),
            (
                r"class SQLStore\(AsyncStore\)",
                "class SQLStore(Store, UserIndex, Purgeable, Iterable)",
            ),
            (
                r"from \.\.base import AsyncStore, Record",
                "from ..base import Iterable, Purgeable, Record, Store, UserIndex",
            ),
            (r"\bAsyncPool\b", "Pool"),
            (r"\basyncio\.Lock\(\)", "threading.Lock()"),
            (r"^import asyncio$", "import threading"),
        ],
    ),
]

SOURCES.append(
    (
        STORES / "memcached" / "_async.py",
        STORES / "memcached" / "_sync.py",
        "MemcachedStore: sessions in Memcached through pymemcache.\n\n"
        "Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.",
        [
            (r"\bAsyncMemcachedStore\b", "MemcachedStore"),
            (r"class MemcachedStore\(AsyncStore\)", "class MemcachedStore(Store)"),
            (r"from \.\.base import AsyncStore, Record", "from ..base import Record, Store"),
            (r"\bAsyncClient\b", "Client"),
        ],
    )
)

SOURCES.append(
    (
        STORES / "migrating" / "_async.py",
        STORES / "migrating" / "_sync.py",
        "MigratingStore: an application moving from one store to another, live.\n\n"
        "Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.",
        [
            (r"\bAsyncMigratingStore\b", "MigratingStore"),
            (
                r"class MigratingStore\(AsyncStore\)",
                "class MigratingStore(WithCapabilities, Store)",
            ),
            (
                r"from \.\.base import AsyncStore, Iterable, Purgeable, Record, UserIndex",
                "from ..base import Iterable, Purgeable, Record, Store, UserIndex",
            ),
            (r"(from \._capabilities import \(\n    Capability,\n)", r"\1    WithCapabilities,\n"),
            (r"\bAsyncStore\b", "Store"),
        ],
    )
)

SOURCES.append(
    (
        STORES / "tiered" / "_async.py",
        STORES / "tiered" / "_sync.py",
        "TieredStore: a fast store in front of a durable one.\n\n"
        "Generated from ``_async.py`` by ``scripts/unasync.py``: edit that file, not this one.",
        [
            (r"\bAsyncTieredStore\b", "TieredStore"),
            (r"class TieredStore\(AsyncStore\)", "class TieredStore(WithCapabilities, Store)"),
            (
                r"from \.\.base import AsyncStore, Iterable, Purgeable, Record, StoreError, "
                r"UserIndex",
                "from ..base import Iterable, Purgeable, Record, Store, StoreError, UserIndex",
            ),
            (r"(from \._capabilities import \(\n    Capability,\n)", r"\1    WithCapabilities,\n"),
            (r"\bAsyncStore\b", "Store"),
            (r"\basyncio\.Lock\(\)", "threading.Lock()"),
            (r"^import asyncio\nimport contextlib$", "import contextlib\nimport threading"),
        ],
    )
)

# Then, for every source:
RULES = [
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\.aclose\(\)", ".close()"),
]


def generate(source: Path, docstring: str, own_rules: list[tuple[str, str]]) -> str:
    text = source.read_text()
    text = re.sub(r'\A""".*?"""', f'"""{docstring}\n"""', text, count=1, flags=re.DOTALL)
    for pattern, replacement in [*own_rules, *RULES]:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", "generated.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return formatted.stdout


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for source, target, docstring, own_rules in SOURCES:
        text = generate(source, docstring, own_rules)
        if target.exists() and target.read_text() == text:
            continue
        if check:
            stale.append(target.relative_to(ROOT))
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"stale generated files (run scripts/unasync.py): {', '.join(map(str, stale))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
