"""``coatcheck export`` and ``coatcheck import`` (coatcheck.backup) between real stores: every
session usable with its cookie after the round trip, encrypted ones still encrypted, no raw ID in
the export, nothing newer overwritten; and the backup and restore of docs/operations.md."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from coatcheck import SessionConfig, SessionEngine
from coatcheck.backup import export_sessions, from_line, import_sessions, to_line
from coatcheck.cli import commands, operations
from coatcheck.engine import run
from coatcheck.ids import store_key
from coatcheck.stores import MemoryStore, Record, Store, StoreUnavailable
from coatcheck.testing import cookie_id

from .operator_stores import (
    live_records,
    open_store,
    postgresql_url,
    redis_url,
    sqlite_url,
)

__all__ = ["postgresql_url", "redis_url", "sqlite_url"]  # fixtures

ROOT = Path(__file__).resolve().parent.parent
KEY = secrets.token_bytes(32)
PLAIN = SessionEngine(SessionConfig(secure=False))
ENCRYPTED = SessionEngine(SessionConfig(secure=False, encryption_keys=(KEY,)))


def coatcheck(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(commands, list(args), input=stdin, catch_exceptions=False)


def session(engine: SessionEngine, store: Store, user: str | None = None, **data: object) -> str:
    """A session made by ``engine`` in ``store``; its ID, the cookie value."""
    made = run(engine.load(None), store)
    made.update(data)
    if user is not None:
        made.login(user)
    return cookie_id(run(engine.commit(made), store))


def seen(engine: SessionEngine, store: Store, sid: str) -> tuple[str | None, dict[str, object]]:
    """What the application sees for a cookie: its user and data ((None, {}) for none)."""
    loaded = run(engine.load(sid), store)
    return (None, {}) if loaded.is_new else (loaded.user_id, dict(loaded))


def fill(store: Store) -> dict[str, tuple[SessionEngine, str | None, dict[str, object]]]:
    """Sessions plain and encrypted, anonymous and logged in, an expired record and a limit
    counter: what each cookie should show after a round trip."""
    made: dict[str, tuple[SessionEngine, str | None, dict[str, object]]] = {}
    for engine in (PLAIN, ENCRYPTED):
        for user in (None, "ada", "bob"):
            data: dict[str, object] = {"cart": ["tea", user or "anonymous"], "secret": "Pa55word"}
            made[session(engine, store, user, **data)] = (engine, user, data)
    store.create(Record("d" * 64, b'{"c":1,"a":1,"d":{}}', time.time() - 5))  # expired
    # (a store with native expiry, Redis, keeps no expired record: it counts none)
    store.create(Record("create:203.0.113.0/24", b'{"limit":3}', time.time() + 60))  # a counter
    return made


KINDS = ["sqlite", "redis", "postgresql"]


@pytest.mark.parametrize(
    ("kind", "target"),
    [pytest.param(a, b, id=f"{a} to {b}") for a in KINDS for b in KINDS if a != b],
)
def test_export_then_import_keeps_every_session_usable_with_its_cookie(
    kind: str, target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store_url: str = request.getfixturevalue(f"{kind}_url")
    target_url = (
        f"sqlite:///{tmp_path / 'target.db'}"
        if target == "sqlite"
        else request.getfixturevalue(f"{target}_url")
    )
    source = open_store(store_url)
    made = fill(source)

    exported = coatcheck("export", "--store", store_url)
    assert exported.exit_code == 0, exported.output
    lines = exported.stdout.splitlines()
    assert len(lines) == len(made)  # no expired record, no counter
    expired = int(source.load("d" * 64) is not None)
    assert exported.stderr == (
        f"exported 6 session(s); left out {expired} expired, 1 limit counter(s)\n"
    )

    # The export holds hashed keys only: no session ID, in the clear or inside the data.
    records = [from_line(line) for line in lines]
    assert {r.key for r in records} == {store_key(sid) for sid in made}
    for sid in made:
        assert sid not in exported.stdout
        assert all(sid.encode() not in r.data for r in records)
    # Data as stored: the encrypted sessions' secrets are not in the export, the plain ones' are.
    by_key = {r.key: r for r in records}
    for sid, (engine, _, _) in made.items():
        stored, line = source.load(store_key(sid)), by_key[store_key(sid)]
        assert stored is not None
        assert line == stored._replace(deadline=line.deadline)  # (a store may keep none)
        assert (b"Pa55word" in line.data) == (engine is PLAIN)

    imported = coatcheck("import", "--store", target_url, "--json", stdin=exported.stdout)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {
        "read": 6,
        "imported": 6,
        "replaced_older": 0,
        "skipped_existing": 0,
        "expired": 0,
        "ok": True,
    }
    copy = open_store(target_url)
    try:
        for sid, (engine, user, data) in made.items():
            assert seen(engine, copy, sid) == (user, data)
        assert seen(PLAIN, copy, next(s for s, m in made.items() if m[0] is ENCRYPTED)) == (
            None,
            {},
        )  # encrypted: unreadable without the key
        sessions = {k: r for k, r in live_records(source).items() if k in by_key}
        assert {k: r.expires_at for k, r in live_records(copy).items()} == pytest.approx(
            {k: r.expires_at for k, r in sessions.items()}, abs=0.01
        )  # each keeps the lifetime it had left
    finally:
        copy.close()
        source.close()


def test_import_never_overwrites_a_newer_record_and_replaces_an_older_one() -> None:
    now = time.time()
    store = MemoryStore()
    newer = Record("a" * 64, b"newer", now + 100, 5, "ada")
    older = Record("b" * 64, b"older", now + 100, 2, "bob")
    same = Record("c" * 64, b"same", now + 100, 3)
    for record in (newer, older, same):
        store.create(record)
    backup = [
        newer._replace(data=b"backup", version=4),
        older._replace(data=b"backup", version=3),
        same,
        Record("e" * 64, b"expired", now - 1),
        Record("f" * 64, b"missing", now + 100, 7, "cy"),
    ]
    report = import_sessions(store, [to_line(r) + "\n" for r in backup])
    assert (report.read, report.imported, report.replaced_older) == (5, 1, 1)
    assert (report.skipped_existing, report.expired, report.ok) == (2, 1, True)
    assert store.load(newer.key) == newer
    assert store.load(older.key) == older._replace(data=b"backup", version=3)
    assert store.load("e" * 64) is None
    assert store.load("f" * 64) == backup[-1]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"key":"k","data":""}', "no expires_at, version"),
        ('{"key":"k","data":"","expires_at":1,"version":1,"x":1}', "unknown field(s) x"),
        ('{"key":"a b","data":"","expires_at":1,"version":1}', "key is not a store key"),
        ('{"key":"k","data":"%%","expires_at":1,"version":1}', "data is not base64"),
        ('{"key":"k","data":"","expires_at":"1","version":1}', "expires_at is not a finite"),
        ('{"key":"k","data":"","expires_at":1,"version":-1}', "version is not a whole number"),
        ('{"key":"k","data":"","expires_at":1,"version":1,"user_id":7}', "user_id is not a"),
    ],
)
def test_a_line_that_is_not_a_record_says_why(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        from_line(line)


def test_a_malformed_line_stops_the_import_and_a_rerun_imports_nothing_twice(
    sqlite_url: str,
) -> None:
    good = [to_line(Record(f"{n:064x}", b"{}", time.time() + 100)) for n in range(3)]
    export = "\n".join([*good[:2], "", "not json", good[2]]) + "\n"
    first = coatcheck("import", "--store", sqlite_url, stdin=export)
    assert first.exit_code == 2
    assert first.stderr == (
        "coatcheck: line 4: not JSON "
        "(the lines before it are imported; a re-run imports none of them twice)\n"
    )
    fixed = export.replace("not json\n", "")
    again = coatcheck("import", "--store", sqlite_url, "--json", stdin=fixed)
    assert again.exit_code == 0, again.output
    counts = json.loads(again.stdout)
    assert (counts["imported"], counts["skipped_existing"]) == (1, 2)
    assert len(live_records(open_store(sqlite_url))) == 3


def test_export_to_a_file_is_its_owners_alone_and_there_only_once_complete(
    sqlite_url: str, tmp_path: Path
) -> None:
    source = open_store(sqlite_url)
    made = fill(source)
    backup = tmp_path / "sessions.jsonl"
    result = coatcheck("export", "--store", sqlite_url, "--output", str(backup), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"exported": 6, "expired": 1, "counters": 1}
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert len(backup.read_text().splitlines()) == len(made)
    assert [path.name for path in tmp_path.iterdir() if "jsonl" in path.name] == [backup.name]

    unwritable = tmp_path / "missing" / "sessions.jsonl"
    failed = coatcheck("export", "--store", sqlite_url, "--output", str(unwritable))
    assert failed.exit_code == 1
    assert failed.stderr.startswith(f"coatcheck: cannot write {unwritable}: ")


def test_export_needs_a_store_that_lists_its_records() -> None:
    result = coatcheck("export", "--store", "memcached://127.0.0.1:1")
    assert result.exit_code == 1
    assert result.stderr == ("coatcheck: MemcachedStore cannot list its records to export them\n")
    assert result.stdout == ""


def test_backup_and_restore_through_real_processes(redis_url: str, tmp_path: Path) -> None:
    """docs/operations.md: export to a file; the store is lost; import the file. Every session
    is back with its cookie, and, as a restore does, so is one logged out after the backup."""
    store = open_store(redis_url)
    made = fill(store)
    backup = tmp_path / "sessions.jsonl"
    env = {**os.environ, "COATCHECK_STORE_URL": redis_url}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coatcheck", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=ROOT,
            check=False,
        )

    saved = command("export", "--output", str(backup))
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == "exported 6 session(s); left out 0 expired, 1 limit counter(s)\n"
    logged_out = next(iter(made))
    loaded = run(PLAIN.load(logged_out), store)
    loaded.logout()
    run(PLAIN.commit(loaded), store)
    lost = command("revoke", "--all", "--yes")  # the store loses everything
    assert lost.returncode == 0, lost.stderr

    restored = command("import", "--input", str(backup), "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["imported"] == 6
    for sid, (engine, user, data) in made.items():
        assert seen(engine, store, sid) == (user, data)  # the logged-out one too: see the doc
    store.close()


def test_export_piped_into_import(sqlite_url: str, tmp_path: Path) -> None:
    """``coatcheck export --store A | coatcheck import --store B``, two real processes."""
    source = open_store(sqlite_url)
    made = fill(source)
    target_url = f"sqlite:///{tmp_path / 'copy.db'}"
    export = subprocess.Popen(
        [sys.executable, "-m", "coatcheck", "export", "--store", sqlite_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    imported = subprocess.run(
        [sys.executable, "-m", "coatcheck", "import", "--store", target_url, "--json"],
        stdin=export.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert export.wait(60) == 0
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == len(made)
    copy = open_store(target_url)
    for sid, (engine, user, data) in made.items():
        assert seen(engine, copy, sid) == (user, data)
    copy.close()
    source.close()


def test_an_export_that_fails_midway_leaves_no_file(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(open_store(sqlite_url))

    def store_lost_midway(store: Store, write: Callable[[str], object], **options: Any) -> Any:
        def write_then_fail(line: str) -> object:
            write(line)
            raise StoreUnavailable("the store went away")

        return export_sessions(store, write_then_fail, **options)

    monkeypatch.setattr(operations, "export_sessions", store_lost_midway)
    backup = tmp_path / "sessions.jsonl"
    result = coatcheck("export", "--store", sqlite_url, "--output", str(backup))
    assert result.exit_code == 1
    assert "StoreUnavailable: the store went away" in result.stderr
    assert [path.name for path in tmp_path.iterdir() if "jsonl" in path.name] == []


def test_exporting_a_store_that_is_not_there_fails_and_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    result = coatcheck("export", "--store", url)
    assert result.exit_code == 1
    assert result.stderr == (
        f"coatcheck: store {url} does not exist: no database file {tmp_path / 'absent.db'}\n"
    )
    assert sorted(tmp_path.iterdir()) == []
