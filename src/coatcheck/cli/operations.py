"""An operator's tools for a session store: ``stats``, ``sessions list``, ``revoke``, ``purge``,
``migrate``, ``export``, ``import``, ``rekey``, ``keygen`` and ``bench``.

Each command but ``keygen`` and ``migrate`` names its store with ``--store URL`` or the
``COATCHECK_STORE_URL`` environment variable (``COATCHECK_STORE`` is an alias), the URLs of
:func:`coatcheck.stores.from_url`. Only a store that is written is created: a command that
reads an ``sqlite://`` or ``file://`` store that is not there fails (:mod:`.disk_stores`).
Sessions are shown by fingerprint (:func:`coatcheck.ids.fingerprint`), never by ID or key.
Every command takes ``--json`` and then prints one JSON document on stdout instead of text.
A failure is one line on stderr, ``coatcheck: ...``, with exit status 1 (2 for a bad or
missing URL), and never shows a credential the URL holds (:func:`coatcheck.stores.redacted`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .. import codec
from ..backup import BadLine, export_sessions, import_sessions
from ..encryption import KeyRing
from ..encryption import rekey as encryption_rekey
from ..ids import FINGERPRINT_LENGTH, fingerprint
from ..limits import is_counter
from ..migration import MigrationReport, migrate
from ..stores import (
    Iterable,
    MissingExtra,
    NotSupported,
    Purgeable,
    Record,
    Store,
    StoreError,
    UserIndex,
    from_url,
    redacted,
    scrubbed,
)
from . import commands
from .disk_stores import missing_store, record_count
from .store_bench import OPERATIONS, measure
from .store_stats import StoreStats

STORE_ENV = "COATCHECK_STORE_URL"
"""The environment variable naming the store when ``--store`` is not given: the name the
Flask and Django settings, and the examples, give the store's URL."""
STORE_ENV_ALIAS = "COATCHECK_STORE"
"""Read when :data:`STORE_ENV` is not set (the name the command used to read)."""


class OperatorError(click.ClickException):
    """A failure told in one line on stderr: ``coatcheck: <what went wrong>``."""

    def show(self, file: IO[Any] | None = None) -> None:
        one_line = " ".join(self.format_message().split())  # drivers' messages span lines
        click.echo(f"coatcheck: {one_line}", err=True)


class BadInput(OperatorError):
    """What the operator gave cannot be used (a bad or missing URL, a malformed fingerprint)."""

    exit_code = 2


def _quiet_drivers() -> None:
    """Keep drivers' own log lines (psycopg's pool retrying, say) off stderr, where they would
    break the one-line errors, unless the process has configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


@contextlib.contextmanager
def opened(url: str | None, role: str = "store", *, creating: bool = False) -> Iterator[Store]:
    """The store ``url`` names, closed afterwards; every store failure as an OperatorError.

    Only when ``creating`` (a store the command writes) may opening it create it: otherwise an
    ``sqlite://`` file or ``file://`` directory that is not there is an error, and stays absent.
    """
    _quiet_drivers()
    if not url:
        raise BadInput(f"no store given: pass --store URL or set {STORE_ENV}")
    missing = None if creating else missing_store(url)
    if missing is not None:
        raise OperatorError(f"{role} {redacted(url)} does not exist: {missing}")
    try:
        store = from_url(url)
    except MissingExtra as exc:  # the URL is fine: this installation lacks the store's driver
        raise OperatorError(str(exc)) from None
    except ValueError as exc:
        raise BadInput(scrubbed(str(exc), url)) from None
    except (StoreError, OSError) as exc:  # stores that open a file or connect at once
        raise OperatorError(f"{role} unavailable: {scrubbed(str(exc), url)}") from None
    if not isinstance(store, Store):  # pragma: no cover - from_url gives sync stores by default
        raise BadInput(f"{redacted(url)} gives no blocking store")
    try:
        yield store
    except NotSupported as exc:
        raise OperatorError(scrubbed(str(exc), url)) from None
    except StoreError as exc:
        name = type(exc).__name__
        raise OperatorError(f"{role} {redacted(url)}: {name}: {scrubbed(str(exc), url)}") from None
    finally:
        with contextlib.suppress(StoreError, OSError):
            store.close()


def lacking(store: Store, purpose: str) -> NotSupported:
    """The error for a store without the capability ``purpose`` needs."""
    return NotSupported(f"{type(store).__name__} cannot {purpose}")


def progress_bar() -> Progress:
    """A progress display on stderr, shown only on a terminal, gone when done. A task given a
    total shows done/total and the time left; without one, done/? and a spinner."""
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def output_console() -> Console:
    """Tables on stdout; as wide as they need when stdout is not a terminal (a pipe, a file)."""
    console = Console()
    if not console.is_terminal:
        console.width = 200
    return console


def _moment(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    seconds = round(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


store_option = click.option(
    "--store",
    "store_url",
    envvar=[STORE_ENV, STORE_ENV_ALIAS],
    metavar="URL",
    help=f"The store's URL [default: ${STORE_ENV}, else ${STORE_ENV_ALIAS}].",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document, not text or tables."
)


def print_json(document: object) -> None:
    """``document`` on stdout as indented JSON: what ``--json`` prints."""
    click.echo(json.dumps(document, indent=2))


# -- stats --------------------------------------------------------------------------------------


@commands.command()
@store_option
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=0), metavar="N")
@json_option
def stats(store_url: str | None, top: int, as_json: bool) -> None:
    """Count live sessions: anonymous or logged in, per user (top N), and their size.

    Reads every record, so the store must be able to list them (not Memcached).
    """
    with opened(store_url) as store, progress_bar() as progress:
        if not isinstance(store, Iterable):
            raise lacking(store, "list its records")
        task = progress.add_task("reading sessions", total=record_count(store))
        records = store.iter_records()
        counts, now = StoreStats(), time.time()
        for record in records:
            counts.add(record, now)
            progress.advance(task)
        eviction = getattr(store, "eviction_policy", None)  # Redis: may it evict sessions?
        counts.eviction_policy = eviction() if callable(eviction) else None
    if as_json:
        print_json(counts.as_json(top))
        return
    click.echo(redacted(store_url or ""))
    summary = Table(title="Sessions", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    for label, value in [
        ("live sessions", counts.live),
        ("logged in", counts.logged_in),
        ("anonymous", counts.anonymous),
        ("users", counts.users),
        ("expired, not yet purged", counts.expired),
        ("bytes, total", counts.total_bytes),
        ("bytes, mean", f"{counts.mean_bytes:.0f}"),
        ("bytes, max", counts.max_bytes),
    ]:
        summary.add_row(label, str(value))
    console = output_console()
    console.print(summary)
    if counts.eviction_policy is not None:  # a Redis store: redis-py is there
        from ..stores.redis.layout import eviction_warning  # noqa: PLC0415

        console.print(f"[bold]Warning:[/bold] {eviction_warning(counts.eviction_policy)}")
    if top and counts.users:
        busiest = Table(title=f"Top {top} users")
        busiest.add_column("user", overflow="fold")
        busiest.add_column("sessions", justify="right")
        for user, count in counts.top_users(top):
            busiest.add_row(user, str(count))
        console.print(busiest)


# -- sessions list ------------------------------------------------------------------------------


@commands.group()
def sessions() -> None:
    """Look at the sessions in a store."""


def _described(record: Record) -> dict[str, Any]:
    """What may be shown of a session: its fingerprint, times and size, never its key or data."""
    created_at: float | None
    auth_at: float | None
    try:
        _, created_at, auth_at = codec.decode(record.data)
    except codec.DecodeError:
        created_at = auth_at = None
    return {
        "fingerprint": fingerprint(record.key),
        "created_at": created_at,
        "authenticated_at": auth_at,
        "expires_at": record.expires_at,
        "bytes": len(record.data),
    }


@sessions.command("list")
@store_option
@click.option("--user", required=True, metavar="ID", help="The user whose sessions to list.")
@json_option
def list_sessions(store_url: str | None, user: str, as_json: bool) -> None:
    """List a user's live sessions: fingerprint, created, authenticated, expiry, size.

    Times are local; --json gives them exactly, as Unix seconds.
    """
    with opened(store_url) as store:
        if not isinstance(store, UserIndex):
            raise lacking(store, "list a user's sessions (it has no user index)")
        records = store.list_by_user(user)
    now = time.time()
    rows = [_described(r) for r in records if r.expires_at > now]
    rows.sort(key=lambda row: row["created_at"] or 0.0)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Sessions of user {user}: {len(rows)}")
    table.add_column("fingerprint", no_wrap=True, min_width=FINGERPRINT_LENGTH)
    for column in ("created", "authenticated", "expires in"):
        table.add_column(column, overflow="fold")
    table.add_column("bytes", justify="right")
    for row in rows:
        created, authenticated = row["created_at"], row["authenticated_at"]
        table.add_row(
            row["fingerprint"],
            "?" if created is None else _moment(created),
            "?" if authenticated is None else _moment(authenticated),
            _duration(row["expires_at"] - now),
            str(row["bytes"]),
        )
    output_console().print(table)


# -- revoke -------------------------------------------------------------------------------------

_FINGERPRINT = re.compile(r"[0-9a-f]{8,64}")


def find_session(store: Store, prefix: str, user: str | None) -> Record:
    """The one record whose key starts with ``prefix`` (of the user's, when ``user`` is given).

    Looks through the user's sessions, or else every record (the store must list them).
    """
    prefix = prefix.lower()
    if not _FINGERPRINT.fullmatch(prefix):
        raise BadInput(
            "a session fingerprint is 8 to 64 hex digits, as 'coatcheck sessions list' shows"
        )
    candidates: Iterator[Record]
    total: int | None
    if user is not None:
        if not isinstance(store, UserIndex):
            raise lacking(store, "list a user's sessions (it has no user index)")
        users_sessions = store.list_by_user(user)
        candidates, total = iter(users_sessions), len(users_sessions)
    else:
        if not isinstance(store, Iterable):
            raise lacking(store, "find a session by fingerprint (it cannot list its records)")
        candidates, total = store.iter_records(), record_count(store)
    with progress_bar() as progress:
        task = progress.add_task("looking for the session", total=total)
        matches = []
        for record in candidates:
            progress.advance(task)
            if record.key.startswith(prefix):
                matches.append(record)
    owner = f" of user {user}" if user is not None else ""
    if not matches:
        raise OperatorError(f"no session{owner} has fingerprint {prefix}")
    if len(matches) > 1:
        raise OperatorError(
            f"fingerprint {prefix} is ambiguous: {len(matches)} sessions{owner} match; "
            "give more of it, or --user"
        )
    return matches[0]


@commands.command()
@store_option
@click.option("--user", metavar="ID", help="Log this user out everywhere.")
@click.option("--session", "session_fingerprint", metavar="FINGERPRINT", help="End this session.")
@click.option("--all", "everyone", is_flag=True, help="End every session (log everybody out).")
@click.option("--yes", is_flag=True, help="Confirm --all.")
@json_option
def revoke(
    store_url: str | None,
    user: str | None,
    session_fingerprint: str | None,
    everyone: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """End sessions: all of a user's (--user), one (--session, with --user to narrow it), or
    every session in the store (--all --yes: everybody is logged out).

    --json prints {"revoked": N} with what was revoked: "all": true, or "user", or the session's
    "fingerprint" and "user" (null: anonymous)."""
    if everyone and (user is not None or session_fingerprint is not None):
        raise BadInput("--all ends every session: give it without --user or --session")
    if user is None and session_fingerprint is None and not everyone:
        raise BadInput("say what to revoke: --user ID, --session FINGERPRINT or both, or --all")
    if everyone and not yes:
        raise BadInput("--all logs everybody out: add --yes to confirm")
    outcome: dict[str, Any]
    with opened(store_url) as store:
        if everyone:
            outcome = {"revoked": _revoke_all(store), "all": True}
            said = f"revoked all {outcome['revoked']} session(s)"
        elif session_fingerprint is not None:
            record = find_session(store, session_fingerprint, user)
            store.delete(record.key)
            outcome = {
                "revoked": 1,
                "fingerprint": fingerprint(record.key),
                "user": record.user_id,
            }
            owner = f"user {record.user_id}" if record.user_id is not None else "anonymous"
            said = f"revoked session {fingerprint(record.key)} ({owner})"
        else:
            assert user is not None
            if not isinstance(store, UserIndex):
                raise lacking(store, "log a user out everywhere (it has no user index)")
            outcome = {"revoked": store.delete_by_user(user), "user": user}
            said = f"revoked {outcome['revoked']} session(s) of user {user}"
    if as_json:
        print_json(outcome)
    else:
        click.echo(said)


def _revoke_all(store: Store) -> int:
    """Delete every record; the number of sessions among them (rate-limit counters aside)."""
    if not isinstance(store, Iterable):
        raise lacking(store, "list its sessions to end them all")
    with progress_bar() as progress:
        task = progress.add_task("listing sessions", total=record_count(store))
        everything = []
        for record in store.iter_records():
            everything.append(record)
            progress.advance(task)
        progress.update(task, visible=False)
        ending = progress.add_task("ending sessions", total=len(everything))
        count = 0
        for record in everything:
            store.delete(record.key)
            count += not is_counter(record)
            progress.advance(ending)
    return count


# -- purge --------------------------------------------------------------------------------------


@commands.command()
@store_option
@json_option
def purge(store_url: str | None, as_json: bool) -> None:
    """Delete expired sessions (stores with native expiry, like Redis, need not).

    --json prints {"purged": N, "native_expiry": false}; true for a store that expires
    sessions by itself (and purges nothing)."""
    purged: int | None = None  # None: the store expires sessions by itself
    with opened(store_url) as store:
        if isinstance(store, Purgeable):
            with Console(stderr=True).status("purging expired sessions"):
                purged = store.purge_expired(time.time())
    if as_json:
        print_json({"purged": purged or 0, "native_expiry": purged is None})
    elif purged is None:
        click.echo(f"{type(store).__name__} expires sessions by itself: nothing to purge")
    else:
        click.echo(f"purged {purged} expired session(s)")


# -- rekey --------------------------------------------------------------------------------------

KEYS_ENV = "COATCHECK_ENCRYPTION_KEYS"
"""The environment variable holding the encryption keys, newest first, comma-separated."""


@commands.command()
@store_option
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEY",
    help=f"An encryption key (base64url, as keygen prints), newest first; repeat for older "
    f"ones. Default: ${KEYS_ENV}, comma-separated.",
)
@json_option
def rekey(store_url: str | None, keys: tuple[str, ...], as_json: bool) -> None:
    """Re-encrypt every session under the newest key (plain sessions too), so older keys can go.

    Each record is rewritten with compare-and-set: a session a request writes meanwhile keeps
    that request's data (the engine seals it with the newest key anyway). --json prints the
    counts: {"rekeyed", "current", "changed", "unreadable"}.
    """
    given = list(keys) or [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    if not given:
        raise BadInput(f"no encryption key given: pass --key KEY or set {KEYS_ENV}")
    try:
        ring = KeyRing(given)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    with opened(store_url) as store, progress_bar() as progress:
        task = progress.add_task("rekeying", total=record_count(store))
        report = encryption_rekey(store, ring, on_record=lambda: progress.advance(task))
    if as_json:
        print_json(dataclasses.asdict(report))
        return
    click.echo(
        f"rekeyed {report.rekeyed}, already on the newest key {report.current}, "
        f"written meanwhile {report.changed}, unreadable with these keys {report.unreadable}"
    )


# -- migrate ------------------------------------------------------------------------------------


@commands.command("migrate")
@click.option("--from", "source_url", required=True, metavar="URL", help="The store to read.")
@click.option("--to", "target_url", required=True, metavar="URL", help="The store to fill.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of the keys done, appended after each batch; a re-run skips them.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check at the end that every live session of the source is in the target.",
)
@json_option
def migrate_sessions(
    source_url: str,
    target_url: str,
    batch_size: int,
    checkpoint: Path | None,
    verify: bool,
    as_json: bool,
) -> None:
    """Copy live sessions to another store, keeping their keys and remaining lifetimes.

    Never overwrites a session the target holds, so it can be re-run after an interruption.
    Exits non-zero when the counts do not add up or verification finds a session missing.
    The source must exist; the target is created if need be. --json prints the counts as an
    object ("verified" and "missing" null with --no-verify), with "ok".
    """
    if source_url == target_url:
        raise BadInput("--from and --to name the same store")
    with (
        opened(source_url, "source") as source,
        opened(target_url, "target", creating=True) as target,
        progress_bar() as progress,
    ):
        total = record_count(source)
        tasks = {
            "copy": progress.add_task("copying sessions", total=total),
            "verify": progress.add_task("verifying", total=total, visible=False),
        }

        def show(phase: str, count: int) -> None:
            progress.update(tasks[phase], completed=count, visible=True)

        report = migrate(
            source,
            target,
            batch_size=batch_size,
            checkpoint=checkpoint,
            verify=verify,
            on_progress=show,
        )
    if as_json:
        print_json(_migration_json(report, source_url, target_url))
    else:
        click.echo(f"{redacted(source_url)} -> {redacted(target_url)}")
        output_console().print(_migration_table(report))
    if not report.accounted:
        raise OperatorError("migration counts do not add up: see the counts above")
    if report.missing:
        raise OperatorError(
            f"{report.missing} live session(s) of the source are not in the target "
            "(created meanwhile?): run the migration again"
        )


def _migration_json(report: MigrationReport, source_url: str, target_url: str) -> dict[str, Any]:
    counts = dataclasses.asdict(report)
    if report.verified is None:
        counts["missing"] = None  # not looked for
    return {
        "source": redacted(source_url),
        "target": redacted(target_url),
        **counts,
        "ok": report.ok,
    }


def _migration_table(report: MigrationReport) -> Table:
    table = Table(title="Migration", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, int | None]] = [
        ("read", report.read),
        ("copied", report.copied),
        ("skipped, already in the target", report.skipped_existing),
        ("expired, not copied", report.expired),
        ("done by an earlier run (checkpoint)", report.done_earlier),
        ("verified in the target", report.verified),
        ("missing from the target", report.missing if report.verified is not None else None),
    ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else str(value))
    return table


# -- export, import -----------------------------------------------------------------------------


@commands.command("export")
@store_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default="-",
    show_default=True,
    help="Write here instead of stdout: a file readable by its owner only, in place once complete.",
)
@json_option
def export_command(store_url: str | None, output: Path, as_json: bool) -> None:
    """Write every live session as JSON Lines: hashed key, data as stored (encrypted sessions
    stay encrypted), expiry, version, user.

    No session ID is written. Limit counters and expired records are left out. The counts go
    to stdout with --output, to stderr when the sessions do: {"exported", "expired",
    "counters"} with --json.
    """
    to_stdout = str(output) == "-"
    with opened(store_url) as store, progress_bar() as progress:
        if not isinstance(store, Iterable):
            raise lacking(store, "list its records to export them")
        task = progress.add_task("exporting sessions", total=record_count(store))
        with _export_file(None if to_stdout else output) as file:
            report = export_sessions(store, file.write, on_record=lambda: progress.advance(task))
    counts = dataclasses.asdict(report)
    said = (
        f"exported {report.exported} session(s); left out {report.expired} expired, "
        f"{report.counters} limit counter(s)"
    )
    click.echo(json.dumps(counts, indent=2) if as_json else said, err=to_stdout)


@contextlib.contextmanager
def _export_file(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a file at ``path`` only its owner can read, written beside it under another
    name and moved there once complete (an export that fails leaves no partial file)."""
    if path is None:
        yield sys.stdout
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
    except OSError as exc:
        raise OperatorError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


@commands.command("import")
@store_option
@click.option(
    "--input",
    "source",
    type=click.File("r", encoding="utf-8"),
    default="-",
    show_default=True,
    help="Read this export instead of stdin.",
)
@json_option
def import_command(store_url: str | None, source: IO[str], as_json: bool) -> None:
    """Read sessions exported by 'coatcheck export' into the store, never over a newer one.

    A session the store holds is left as it is, unless the store's version is older (then it
    is replaced, compare-and-set). Expired ones are skipped. A malformed line stops the import
    there (status 2); what came before it is in, and a re-run imports nothing twice. A store
    on disk that does not exist is created. --json prints {"read", "imported",
    "replaced_older", "skipped_existing", "expired", "ok"}.
    """
    with opened(store_url, creating=True) as store, progress_bar() as progress:
        task = progress.add_task("importing sessions", total=None)
        try:
            report = import_sessions(store, source, on_record=lambda: progress.advance(task))
        except BadLine as exc:
            raise BadInput(
                f"{exc} (the lines before it are imported; a re-run imports none of them twice)"
            ) from None
    if as_json:
        print_json({**dataclasses.asdict(report), "ok": report.ok})
        return
    click.echo(
        f"imported {report.imported}, replaced older {report.replaced_older}, "
        f"already there {report.skipped_existing}, expired {report.expired}"
    )


# -- keygen -------------------------------------------------------------------------------------


@commands.command()
@click.option("--bytes", "size", default=32, show_default=True, type=click.IntRange(16, 1024))
@json_option
def keygen(size: int, as_json: bool) -> None:
    """Print a new random secret (URL-safe base64), e.g. for hash_secret.

    The printed text itself is the secret: pass it as bytes, hash_secret=text.encode().
    --json prints {"secret": TEXT, "bytes": N}.
    """
    secret = secrets.token_urlsafe(size)
    if as_json:
        print_json({"secret": secret, "bytes": size})
    else:
        click.echo(secret)


# -- bench --------------------------------------------------------------------------------------


@commands.command()
@store_option
@click.option("--sessions", "count", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0))
@click.option("--size", default=200, show_default=True, type=click.IntRange(0), help="Bytes.")
@json_option
def bench(store_url: str | None, count: int, seconds: float, size: int, as_json: bool) -> None:
    """Measure load, save and touch latencies (p50/p90/p99) and calls per second.

    Writes COUNT sessions of its own, works on them for SECONDS, then deletes them. A store
    it is given that does not exist yet is created, as the application would create it.
    """
    with opened(store_url, creating=True) as store, progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def show(phase: str, done: float) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=1.0)
            progress.update(tasks[phase], completed=done)

        result = measure(store, sessions=count, seconds=seconds, size=size, on_progress=show)
    measured = [op for op in OPERATIONS if result.latencies.get(op)]
    if as_json:
        figures = {
            op: {
                "calls": len(result.latencies[op]),
                "per_second": round(result.rate(op), 1),
                **{f"p{p}_ms": result.percentile(op, p / 100) * 1000 for p in (50, 90, 99)},
            }
            for op in measured
        }
        print_json({"operations": figures, "loop_per_second": result.loop_rate})
        return
    click.echo(f"{redacted(store_url or '')} (one client, {count} sessions of its own)")
    table = Table()
    for column in ("call", "calls", "per second", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "call" else "right")
    for op in measured:
        table.add_row(
            op,
            str(len(result.latencies[op])),
            f"{result.rate(op):,.0f}",
            *(f"{result.percentile(op, p) * 1000:.3f}" for p in (0.50, 0.90, 0.99)),
        )
    console = output_console()
    console.print(table)
    console.print(f"load + save + touch: {result.loop_rate:,.0f} calls/s over {seconds:g} s")
