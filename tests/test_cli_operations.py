"""The operator commands of ``coatcheck`` against real stores: stats, sessions list, revoke,
purge, migrate, rekey, keygen, bench; where they find their store, and that one they only read
must exist; their --json; their progress bars on a terminal; and their failures, one line each,
in a real subprocess."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from coatcheck import SessionConfig, SessionEngine
from coatcheck.cli import commands
from coatcheck.cli.disk_stores import record_count
from coatcheck.engine import run
from coatcheck.ids import fingerprint, store_key
from coatcheck.limits import PURGE_LEASE, counter_record
from coatcheck.stores import Record, Store, from_url

from .operator_stores import (
    add_expired,
    all_records,
    data_of,
    live_records,
    open_store,
    populate,
    postgresql_url,
    redis_url,
    sqlite_url,
    store_url,
    user_keys,
)
from .servers import free_port

__all__ = ["postgresql_url", "redis_url", "sqlite_url", "store_url"]  # fixtures

ROOT = Path(__file__).resolve().parent.parent
KEY = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
"""An encryption key, as keygen prints one."""


def coatcheck(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run a command in this process, as the console script would."""
    return CliRunner().invoke(commands, list(args), env=env, catch_exceptions=False)


def coatcheck_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m coatcheck.cli`` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        cwd=ROOT,
        check=False,
    )


def rows(output: str) -> set[str]:
    """A table's rows as "cell │ cell" with the padding and outer borders gone."""
    return {" ".join(line.strip("│┃ ").split()) for line in output.splitlines()}


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {text!r}"
    return lines[0]


@pytest.fixture
def store(store_url: str) -> Store:
    return open_store(store_url)


# -- stats ----------------------------------------------------------------------------------


def test_stats_counts_live_sessions_per_user_and_their_size(store_url: str, store: Store) -> None:
    populate(store, {"ada": 3, "bob": 1, "cy": 2}, anonymous=4)
    sizes = [len(r.data) for r in live_records(store).values()]

    result = coatcheck("stats", "--store", store_url, "--top", "2", "--json")

    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["live"], counts["expired"]) == (10, 0)
    assert (counts["logged_in"], counts["anonymous"], counts["users"]) == (6, 4, 3)
    assert counts["bytes"] == {
        "total": sum(sizes),
        "mean": round(sum(sizes) / 10, 1),
        "max": max(sizes),
    }
    assert counts["top_users"] == [{"user": "ada", "sessions": 3}, {"user": "cy", "sessions": 2}]


def test_stats_prints_tables_and_counts_expired_records_not_yet_purged(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    populate(store, {"ada": 2}, anonymous=1)
    add_expired(store, 2)
    result = coatcheck("stats", "--store", sqlite_url)
    assert result.exit_code == 0, result.output
    lines = rows(result.stdout)
    assert {"live sessions │ 3", "logged in │ 2", "anonymous │ 1", "users │ 1"} <= lines
    assert "expired, not yet purged │ 2" in lines
    assert "ada │ 2" in lines


def test_stats_counts_no_limit_counter_purge_lease_or_token_record_as_a_session(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    populate(store, {"ada": 1}, anonymous=1)
    until = time.time() + 600
    store.create(counter_record(store_key("a-window"), 3, until, 1))
    store.create(Record(store_key("the-lease"), PURGE_LEASE, until, 1))
    store.create(Record(store_key("revoked"), b'{"revoked":{}}', until, 1, None, until))
    store.create(Record(store_key("spent"), b'{"spent":"x"}', until, 1, None, until))
    result = coatcheck("stats", "--store", sqlite_url, "--json")
    counts = json.loads(result.stdout)
    assert (counts["live"], counts["anonymous"], counts["logged_in"]) == (2, 1, 1)
    assert counts["eviction_policy"] is None  # not a Redis


def test_the_store_can_come_from_coatcheck_store_url_as_the_apps_settings_name_it(
    sqlite_url: str,
) -> None:
    populate(open_store(sqlite_url), {}, anonymous=2)
    result = coatcheck("stats", "--json", env={"COATCHECK_STORE_URL": sqlite_url})
    assert json.loads(result.stdout)["live"] == 2


def test_coatcheck_store_is_an_alias_that_coatcheck_store_url_overrides(
    sqlite_url: str, tmp_path: Path
) -> None:
    populate(open_store(sqlite_url), {}, anonymous=2)
    alias = coatcheck("stats", "--json", env={"COATCHECK_STORE": sqlite_url})
    assert json.loads(alias.stdout)["live"] == 2
    other = f"sqlite:///{tmp_path / 'other.db'}"
    populate(open_store(other), {}, anonymous=5)
    both = coatcheck(
        "stats", "--json", env={"COATCHECK_STORE_URL": other, "COATCHECK_STORE": sqlite_url}
    )
    assert json.loads(both.stdout)["live"] == 5
    given = coatcheck("stats", "--json", "--store", sqlite_url, env={"COATCHECK_STORE_URL": other})
    assert json.loads(given.stdout)["live"] == 2  # --store first


# -- sessions list --------------------------------------------------------------------------


def test_sessions_list_shows_a_users_sessions_by_fingerprint_never_by_id_or_key(
    store_url: str, store: Store
) -> None:
    before = time.time()
    ids = populate(store, {"ada": 2, "bob": 1}, anonymous=1)
    keys = [store_key(i) for i in ids["ada"]]

    as_json = coatcheck("sessions", "list", "--store", store_url, "--user", "ada", "--json")
    listed = json.loads(as_json.stdout)

    assert sorted(row["fingerprint"] for row in listed) == sorted(fingerprint(k) for k in keys)
    for row in listed:
        assert before - 1 < row["created_at"] <= row["authenticated_at"] <= time.time()
        assert row["expires_at"] == pytest.approx(time.time() + 600, abs=5)
        assert row["bytes"] > 0
    table = coatcheck("sessions", "list", "--store", store_url, "--user", "ada").output
    assert all(fingerprint(k) in table for k in keys)
    assert "Sessions of user ada: 2" in table
    for secret in ids["ada"] + keys:
        assert secret not in table
        assert secret not in as_json.stdout


def test_sessions_list_of_a_user_without_sessions_is_empty(sqlite_url: str) -> None:
    open_store(sqlite_url).close()  # the store exists, empty
    result = coatcheck("sessions", "list", "--store", sqlite_url, "--user", "nobody", "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


# -- revoke ---------------------------------------------------------------------------------


def test_revoke_user_logs_them_out_everywhere_and_no_one_else(store_url: str, store: Store) -> None:
    ids = populate(store, {"ada": 3, "bob": 1}, anonymous=1)
    result = coatcheck("revoke", "--store", store_url, "--user", "ada")
    assert (result.exit_code, result.output) == (0, "revoked 3 session(s) of user ada\n")
    assert user_keys(store, "ada") == set()
    assert all(data_of(store, i) is None for i in ids["ada"])
    assert data_of(store, ids["bob"][0]) == data_of(store, ids[""][0]) == {"cart": ["tea"]}


def test_revoke_session_ends_the_one_session_its_fingerprint_names(
    store_url: str, store: Store
) -> None:
    ids = populate(store, {"ada": 2}, anonymous=2)
    doomed, kept = ids["ada"]
    anonymous = ids[""][0]

    one = coatcheck("revoke", "--store", store_url, "--session", fingerprint(store_key(doomed)))
    assert one.output == f"revoked session {fingerprint(store_key(doomed))} (user ada)\n"
    narrowed = coatcheck(
        "revoke", "--store", store_url, "--user", "nobody", "--session", store_key(kept)[:10]
    )
    assert narrowed.exit_code == 1  # not that user's
    anon = coatcheck("revoke", "--store", store_url, "--session", store_key(anonymous).upper())

    assert anon.exit_code == 0, anon.output
    assert data_of(store, doomed) is None
    assert data_of(store, anonymous) is None
    assert data_of(store, kept) == data_of(store, ids[""][1]) == {"cart": ["tea"]}


def test_revoke_refuses_an_unknown_an_ambiguous_or_a_malformed_fingerprint(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    for tail in ("1", "2"):
        store.create(Record("abcdef01" + "0" * 55 + tail, b"{}", time.time() + 60))
    runner = CliRunner()

    def revoke(fingerprint: str) -> Result:
        return runner.invoke(commands, ["revoke", "--store", sqlite_url, "--session", fingerprint])

    unknown, ambiguous, malformed, short = (
        revoke("0123456789abcdef"),
        revoke("abcdef01"),
        revoke("not-hex!"),
        revoke("abcdef0"),
    )
    assert (unknown.exit_code, only_line(unknown.stderr)) == (
        1,
        "coatcheck: no session has fingerprint 0123456789abcdef",
    )
    assert ambiguous.exit_code == 1
    assert only_line(ambiguous.stderr).startswith(
        "coatcheck: fingerprint abcdef01 is ambiguous: 2 sessions match"
    )
    assert malformed.exit_code == short.exit_code == 2
    assert "8 to 64 hex digits" in only_line(malformed.stderr)
    assert len(all_records(store)) == 2  # nothing was deleted


def test_revoke_needs_a_user_or_a_session(sqlite_url: str) -> None:
    result = CliRunner().invoke(commands, ["revoke", "--store", sqlite_url])
    assert result.exit_code == 2
    assert only_line(result.stderr) == (
        "coatcheck: say what to revoke: --user ID, --session FINGERPRINT or both, or --all"
    )


# -- purge ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "postgresql_url"])
def test_purge_deletes_expired_sessions_only(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(url_fixture)
    store = open_store(url)
    populate(store, {"ada": 1}, anonymous=2)
    add_expired(store, 4)
    result = coatcheck("purge", "--store", url)
    assert (result.exit_code, result.output) == (0, "purged 4 expired session(s)\n")
    assert len(all_records(store)) == len(live_records(store)) == 3


def test_purge_on_a_store_with_native_expiry_says_so_and_succeeds(redis_url: str) -> None:
    result = coatcheck("purge", "--store", redis_url)
    assert (result.exit_code, result.output) == (
        0,
        "RedisStore expires sessions by itself: nothing to purge\n",
    )


# -- migrate --------------------------------------------------------------------------------


def test_migrate_sqlite_to_redis_prints_the_counts(sqlite_url: str, redis_url: str) -> None:
    source = open_store(sqlite_url)
    ids = populate(source, {"ada": 2}, anonymous=3)
    add_expired(source, 1)

    result = coatcheck("migrate", "--from", sqlite_url, "--to", redis_url, "--batch-size", "2")

    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert {"read │ 6", "copied │ 5", "expired, not copied │ 1"} <= table
    assert {"skipped, already in the target │ 0", "verified in the target │ 5"} <= table
    target = open_store(redis_url)
    assert live_records(target) == live_records(source)
    assert all(data_of(target, i) == {"cart": ["tea"]} for i in ids["ada"] + ids[""])

    again = coatcheck("migrate", "--from", sqlite_url, "--to", redis_url)
    assert again.exit_code == 0
    assert "skipped, already in the target │ 5" in rows(again.stdout)


def test_migrate_with_a_checkpoint_to_postgresql(
    sqlite_url: str, postgresql_url: str, tmp_path: Path
) -> None:
    source = open_store(sqlite_url)
    populate(source, {"ada": 1}, anonymous=2)
    checkpoint = tmp_path / "keys"
    args = ["migrate", "--from", sqlite_url, "--to", postgresql_url, "--checkpoint"]
    first = coatcheck(*args, str(checkpoint))
    second = coatcheck(*args, str(checkpoint), "--no-verify")
    assert first.exit_code == second.exit_code == 0
    assert {"done by an earlier run (checkpoint) │ 3", "verified in the target │ -"} <= rows(
        second.stdout
    )
    assert live_records(open_store(postgresql_url)) == live_records(source)


def test_migrate_refuses_one_store_as_both_ends(sqlite_url: str) -> None:
    result = CliRunner().invoke(commands, ["migrate", "--from", sqlite_url, "--to", sqlite_url])
    assert result.exit_code == 2
    assert only_line(result.stderr) == "coatcheck: --from and --to name the same store"


# -- keygen ---------------------------------------------------------------------------------


def test_keygen_prints_a_fresh_url_safe_secret_of_the_bytes_asked() -> None:
    first, second = coatcheck("keygen").output.strip(), coatcheck("keygen").output.strip()
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "=")) == 32
    longer = coatcheck("keygen", "--bytes", "48").output.strip()
    assert len(base64.urlsafe_b64decode(longer)) == 48
    assert CliRunner().invoke(commands, ["keygen", "--bytes", "8"]).exit_code == 2


# -- bench ----------------------------------------------------------------------------------


def test_bench_reports_latency_percentiles_and_cleans_up(store_url: str, store: Store) -> None:
    ids = populate(store, {"ada": 1}, anonymous=1)
    before = live_records(store)

    result = coatcheck(
        "bench", "--store", store_url, "--sessions", "20", "--seconds", "0.2", "--json"
    )

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures["operations"]) == {"load", "save", "touch", "create", "delete"}
    for op in ("load", "save", "touch"):
        numbers = figures["operations"][op]
        assert numbers["calls"] > 0
        assert 0 < numbers["p50_ms"] <= numbers["p90_ms"] <= numbers["p99_ms"]
        assert numbers["per_second"] > 0
    assert figures["operations"]["create"]["calls"] == 20
    assert figures["loop_per_second"] > 0
    assert live_records(store) == before  # its own sessions are gone, the others untouched
    assert data_of(store, ids["ada"][0]) == {"cart": ["tea"]}


def test_bench_prints_a_table(sqlite_url: str) -> None:
    result = coatcheck("bench", "--store", sqlite_url, "--sessions", "5", "--seconds", "0.05")
    assert result.exit_code == 0
    assert "p99 ms" in result.output
    assert "calls/s" in result.output


# -- failures: one line on stderr, in a real process ------------------------------------------


def test_an_unreachable_store_is_one_line_without_the_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0?timeout=0.5"
    result = coatcheck_process("stats", "--store", url)
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert line.startswith("coatcheck: store redis://:***@127.0.0.1:")
    assert "StoreUnavailable" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    url = f"postgresql://ops:hunter2@127.0.0.1:{free_port()}/db?timeout=0.5"
    result = coatcheck_process("revoke", "--user", "ada", "--store", url)
    assert result.returncode == 1
    assert "StoreUnavailable" in only_line(result.stderr)
    assert "hunter2" not in result.stderr + result.stdout


def test_a_password_in_the_urls_options_is_never_shown_either() -> None:
    port = free_port()
    url = f"postgresql://ops@127.0.0.1:{port}/db?sslpassword=hunter3&password=hunter2&timeout=0.5"
    result = coatcheck_process("stats", "--store", url)
    assert result.returncode == 1
    assert only_line(result.stderr).startswith(
        f"coatcheck: store postgresql://ops@127.0.0.1:{port}/db"
        "?sslpassword=***&password=***&timeout=0.5: StoreUnavailable"
    )
    assert "hunter" not in result.stderr + result.stdout


def test_a_bad_url_is_one_line() -> None:
    result = coatcheck_process("stats", "--store", "gopher://user:hunter2@host/")
    assert result.returncode == 2
    assert only_line(result.stderr).startswith(
        "coatcheck: bad store URL (gopher://...): unknown session store scheme gopher://"
    )
    assert "hunter2" not in result.stderr


def test_a_missing_store_is_one_line() -> None:
    unset = {"COATCHECK_STORE_URL", "COATCHECK_STORE"}
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", "purge"],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
        check=False,
    )
    assert result.returncode == 2
    assert only_line(result.stderr) == (
        "coatcheck: no store given: pass --store URL or set COATCHECK_STORE_URL"
    )


def test_a_capability_the_store_lacks_is_one_line() -> None:
    result = coatcheck_process("revoke", "--user", "ada", "--store", "memcached://127.0.0.1:1")
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "coatcheck: MemcachedStore cannot log a user out everywhere (it has no user index)"
    )


def test_revoke_all_logs_everybody_out(store_url: str) -> None:
    store = open_store(store_url)
    try:
        for n in range(3):
            key = store_key(f"{'Q' * 41}{n}A")
            assert store.create(Record(key, b"{}", time.time() + 600, 1, f"user-{n}"))
        refused = coatcheck("revoke", "--all", "--store", store_url)
        assert refused.exit_code == 2
        assert len(list(store.iter_records())) == 3  # type: ignore[attr-defined]
        result = coatcheck("revoke", "--all", "--yes", "--store", store_url)
        assert result.exit_code == 0, result.output
        assert "revoked all 3 session(s)" in result.output
        assert list(store.iter_records()) == []  # type: ignore[attr-defined]
    finally:
        store.close()


# -- rekey ------------------------------------------------------------------------------------


def test_rekey_moves_every_session_to_the_newest_key(store_url: str) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    old_text, new_text = (base64.urlsafe_b64encode(k).rstrip(b"=").decode() for k in (old, new))
    engine_old = SessionEngine(SessionConfig(secure=False, encryption_keys=(old,)))
    store = open_store(store_url)
    try:
        ids = []
        for n in range(3):
            session = run(engine_old.load(None), store)
            session["n"] = n
            ids.append((run(engine_old.commit(session), store) or "").split(";")[0].split("=")[1])
        plain = Record(
            store_key("P" * 42 + "A"), b'{"c":1.0,"a":1.0,"d":{"n":9}}', time.time() + 600
        )
        assert store.create(plain)
        result = coatcheck("rekey", "--store", store_url, "--key", new_text, "--key", old_text)
        assert result.exit_code == 0, result.output
        assert "rekeyed 4, already on the newest key 0" in result.output
        again = coatcheck("rekey", "--store", store_url, "--key", new_text)
        assert "rekeyed 0, already on the newest key 4" in again.output
        engine_new = SessionEngine(SessionConfig(secure=False, encryption_keys=(new,)))
        for n, sid in enumerate(ids):
            assert run(engine_new.load(sid), store)["n"] == n  # readable with the new key alone
    finally:
        store.close()


def test_rekey_needs_a_store_that_lists_its_records() -> None:
    result = CliRunner().invoke(
        commands, ["rekey", "--key", KEY, "--store", "memcached://127.0.0.1:1"]
    )
    assert result.exit_code == 1
    assert (
        only_line(result.stderr)
        == "coatcheck: MemcachedStore cannot list its records to rekey them"
    )


def test_rekey_needs_a_key() -> None:
    result = coatcheck_process("rekey", "--store", "memory://")
    assert result.returncode == 2
    assert "no encryption key given" in only_line(result.stderr)


# -- python -m coatcheck --------------------------------------------------------------------


def test_python_dash_m_coatcheck_runs_the_command() -> None:
    def run_module(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coatcheck", *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            check=False,
        )

    helped = run_module("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: python -m coatcheck [OPTIONS] COMMAND [ARGS]...")
    listed = helped.stdout.split("Commands:\n", 1)[1].splitlines()
    assert {line.split()[0] for line in listed if line.strip()} == set(commands.commands)
    secret = json.loads(run_module("keygen", "--json").stdout)["secret"]
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32


# -- a store a command only reads must exist ------------------------------------------------

READING = {
    "stats": ["stats"],
    "sessions list": ["sessions", "list", "--user", "ada"],
    "revoke --user": ["revoke", "--user", "ada"],
    "revoke --session": ["revoke", "--session", "abcdef01"],
    "revoke --all": ["revoke", "--all", "--yes"],
    "purge": ["purge"],
    "rekey": ["rekey", "--key", KEY],
}
"""Each command that reads (or rewrites) the sessions already in a store."""


def absent_store(kind: str, tmp_path: Path) -> tuple[str, Path, str]:
    """A URL naming a store that is not there, the path it names, and what that would be."""
    if kind == "sqlite file":
        return f"sqlite:///{tmp_path / 'absent.db'}", tmp_path / "absent.db", "database file"
    if kind == "sqlite file in a missing directory":
        path = tmp_path / "absent" / "sessions.db"
        return f"sqlite:///{path}", path, "database file"
    path = tmp_path / "absent" / "sessions"
    return f"file://{path}", path, "directory"


ABSENT_KINDS = ["sqlite file", "sqlite file in a missing directory", "file store directory"]


@pytest.mark.parametrize("kind", ABSENT_KINDS)
@pytest.mark.parametrize("command", READING.values(), ids=READING)
def test_a_command_that_reads_a_store_that_is_not_there_fails_and_creates_nothing(
    command: list[str], kind: str, tmp_path: Path
) -> None:
    url, path, what = absent_store(kind, tmp_path)
    result = CliRunner().invoke(commands, [*command, "--store", url, "--json"])
    assert result.exit_code == 1
    assert only_line(result.stderr) == f"coatcheck: store {url} does not exist: no {what} {path}"
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == []  # not the file, not its directory


@pytest.mark.parametrize("kind", ABSENT_KINDS)
def test_migrating_from_a_store_that_is_not_there_fails_and_creates_neither_end(
    kind: str, tmp_path: Path
) -> None:
    url, path, what = absent_store(kind, tmp_path)
    target = f"sqlite:///{tmp_path / 'target.db'}"
    result = CliRunner().invoke(commands, ["migrate", "--from", url, "--to", target])
    assert result.exit_code == 1
    assert only_line(result.stderr) == f"coatcheck: source {url} does not exist: no {what} {path}"
    assert sorted(tmp_path.iterdir()) == []


def test_migrate_creates_a_target_that_is_not_there(sqlite_url: str, tmp_path: Path) -> None:
    source = open_store(sqlite_url)
    populate(source, {"ada": 1}, anonymous=1)
    target = tmp_path / "new" / "sessions"
    result = coatcheck("migrate", "--from", sqlite_url, "--to", f"file://{target}")
    assert result.exit_code == 0, result.output
    assert target.is_dir()
    assert live_records(open_store(f"file://{target}")) == live_records(source)


def test_bench_creates_a_store_that_is_not_there(tmp_path: Path) -> None:
    database = tmp_path / "new" / "bench.db"
    database.parent.mkdir()
    result = coatcheck(
        "bench", "--store", f"sqlite:///{database}", "--sessions", "5", "--seconds", "0.05"
    )
    assert result.exit_code == 0, result.output
    assert database.is_file()


# -- --json: every command ------------------------------------------------------------------


def test_every_command_takes_json() -> None:
    def leaves(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from leaves(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    lacking_json = [
        name
        for name, command in leaves(commands)
        if "--json" not in {option for p in command.params for option in p.opts}
    ]
    assert lacking_json == []


def test_revoke_json_says_what_was_revoked(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    ids = populate(store, {"ada": 2, "bob": 1}, anonymous=1)
    bobs = fingerprint(store_key(ids["bob"][0]))

    one = coatcheck("revoke", "--store", sqlite_url, "--session", bobs[:10], "--json")
    users = coatcheck("revoke", "--store", sqlite_url, "--user", "ada", "--json")
    everyone = coatcheck("revoke", "--store", sqlite_url, "--all", "--yes", "--json")

    assert json.loads(one.stdout) == {"revoked": 1, "fingerprint": bobs, "user": "bob"}
    assert json.loads(users.stdout) == {"revoked": 2, "user": "ada"}
    assert json.loads(everyone.stdout) == {"revoked": 1, "all": True}
    assert all_records(store) == []


def test_purge_json_counts_the_purged_or_says_the_store_expires_them_itself(
    sqlite_url: str, redis_url: str
) -> None:
    add_expired(open_store(sqlite_url), 3)
    purged = coatcheck("purge", "--store", sqlite_url, "--json")
    native = coatcheck("purge", "--store", redis_url, "--json")
    assert json.loads(purged.stdout) == {"purged": 3, "native_expiry": False}
    assert json.loads(native.stdout) == {"purged": 0, "native_expiry": True}


def test_migrate_json_gives_the_counts(sqlite_url: str, redis_url: str) -> None:
    source = open_store(sqlite_url)
    populate(source, {"ada": 2}, anonymous=1)
    add_expired(source, 1)

    verified = coatcheck("migrate", "--from", sqlite_url, "--to", redis_url, "--json")
    again = coatcheck("migrate", "--from", sqlite_url, "--to", redis_url, "--no-verify", "--json")

    assert verified.exit_code == again.exit_code == 0
    counts = {"read": 4, "skipped_existing": 0, "expired": 1, "done_earlier": 0, "batches": 1}
    assert json.loads(verified.stdout) == {
        "source": sqlite_url,
        "target": redis_url,
        **counts,
        "copied": 3,
        "verified": 3,
        "missing": 0,
        "ok": True,
    }
    skipped = json.loads(again.stdout)
    assert (skipped["copied"], skipped["skipped_existing"]) == (0, 3)
    assert (skipped["verified"], skipped["missing"], skipped["ok"]) == (None, None, True)


def test_rekey_json_gives_the_counts(sqlite_url: str) -> None:
    populate(open_store(sqlite_url), {"ada": 1}, anonymous=1)
    result = coatcheck("rekey", "--store", sqlite_url, "--key", KEY, "--json")
    assert json.loads(result.stdout) == {"rekeyed": 2, "current": 0, "unreadable": 0, "changed": 0}


def test_keygen_json_gives_the_secret_and_its_size() -> None:
    printed = json.loads(coatcheck("keygen", "--bytes", "48", "--json").stdout)
    assert printed["bytes"] == 48
    assert len(base64.urlsafe_b64decode(printed["secret"])) == 48


# -- progress bars, on a terminal -----------------------------------------------------------


def on_a_terminal(*args: str) -> str:
    """What ``python -m coatcheck ARGS`` writes to stderr when stderr is a terminal (a pty),
    with the terminal's control sequences taken out."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "coatcheck", *args],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm"},
        cwd=ROOT,
    )
    os.close(terminal)
    written = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the process closed its end
            break
        if not chunk:
            break
        written += chunk
    os.close(controller)
    assert process.wait(timeout=30) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written.decode())


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_a_progress_bar_shows_the_total_and_the_time_left_for_a_store_on_disk(
    kind: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}" if kind == "sqlite" else f"file://{tmp_path}"
    store = open_store(url)
    populate(store, {"ada": 2}, anonymous=3)
    add_expired(store, 1)
    shown = on_a_terminal("stats", "--store", url, "--json")
    frames = [line.strip() for line in re.split(r"[\r\n]", shown) if "reading sessions" in line]
    assert frames, shown
    assert all(re.search(r" \d/6 ", frame) for frame in frames), frames  # never "/?"
    # done/total, the time elapsed, the time left
    assert re.search(r" 6/6 \d+:\d\d:\d\d \d+:\d\d:\d\d$", frames[-1]), frames[-1]


def test_the_stores_on_disk_count_their_records_and_the_others_say_they_cannot(
    tmp_path: Path, redis_url: str
) -> None:
    for url in (f"sqlite:///{tmp_path / 'sessions.db'}", f"file://{tmp_path / 'files'}"):
        store = open_store(url)
        populate(store, {"ada": 1}, anonymous=2)
        add_expired(store, 1)
        assert record_count(store) == 4, url
    assert record_count(open_store(redis_url)) is None
    memory = from_url("memory://")
    assert isinstance(memory, Store)
    assert record_count(memory) is None


# -- docs -----------------------------------------------------------------------------------


def test_every_operator_command_is_documented_with_an_example() -> None:
    docs = (ROOT / "docs" / "cli.md").read_text()
    names = ["stats", "sessions list", "revoke", "purge", "migrate", "rekey", "keygen", "bench"]
    assert set(commands.commands) >= {name.split()[0] for name in names}
    for name in names:
        section = docs.split(f"## `coatcheck {name}`\n", 1)[1].split("\n## ", 1)[0]
        assert f"$ coatcheck {name}" in section, name
