"""Copy live sessions from one store to another, keeping each one's key and remaining lifetime.

Records are copied verbatim: the same key (a hash of the session ID, so the sessions keep
working when the application's ``hash_secret`` is unchanged), data, version, user and
``expires_at``, so a session has in the target exactly the lifetime it had left in the source.

Copying never overwrites: each record goes through the target's ``create``, which changes
nothing when the key exists. A re-run after an interruption therefore duplicates nothing and
leaves alone what the target already holds (which, once the application writes to the target,
is the newer copy). A checkpoint file, when given, also spares the re-run the target calls for
the records an earlier run finished, and tells them apart in the report.

Nor does copying bring back a session that ends meanwhile: after each copy the source is asked
again, and a record gone from it is deleted from the target. An application on a
:class:`~coatcheck.stores.migrating.MigratingStore` deletes the source's copy first, so a
session it logs out while the migration runs is gone from both stores afterwards.

>>> from coatcheck.stores import MemoryStore, Record
>>> source, target = MemoryStore(), MemoryStore()
>>> source.create(Record("a" * 64, b"{}", expires_at=4e9))
True
>>> report = migrate(source, target)
>>> report.copied, report.missing, report.ok
(1, 0, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .stores.base import Iterable, NotSupported, Record, Store


@dataclasses.dataclass
class MigrationReport:
    """What a migration did, record by record. Every record read is counted exactly once in
    ``copied``, ``skipped_existing``, ``expired`` or ``done_earlier`` (a record a source lists
    twice, as a Redis ``SCAN`` may, is counted again, as skipped)."""

    read: int = 0
    """Records read from the source."""
    copied: int = 0
    """Created in the target."""
    skipped_existing: int = 0
    """Already in the target under the same key: left as they were there."""
    expired: int = 0
    """Dead by the time they were reached (expired in the source, or meanwhile), or ended in
    the source while they were copied (the copy is undone): not copied."""
    done_earlier: int = 0
    """Named in the checkpoint file: finished by an earlier run, not looked at again."""
    batches: int = 0
    verified: int | None = None
    """Live source records found in the target by the verification pass (None: not run)."""
    missing: int = 0
    """Live source records the verification pass did not find in the target."""

    @property
    def accounted(self) -> bool:
        """Whether every record read landed in exactly one of the outcomes."""
        outcomes = self.copied + self.skipped_existing + self.expired + self.done_earlier
        return outcomes == self.read

    @property
    def ok(self) -> bool:
        """The counts add up and verification (if it ran) found every live session."""
        return self.accounted and self.missing == 0


def migrate(
    source: Store,
    target: Store,
    *,
    batch_size: int = 500,
    checkpoint: str | os.PathLike[str] | None = None,
    verify: bool = True,
    clock: Callable[[], float] = time.time,
    on_progress: Callable[[str, int], None] | None = None,
) -> MigrationReport:
    """Copy every live record of ``source`` into ``target``; return what happened.

    ``source`` must be :class:`~coatcheck.stores.Iterable` (else
    :class:`~coatcheck.stores.NotSupported`). Records are read and written ``batch_size`` at a
    time; after each batch its keys are appended to ``checkpoint`` (if given; created when
    missing), so a re-run with the same file skips them. ``verify`` reads the source again at
    the end and checks that each record still live is in the target (``verified``,
    ``missing``). ``on_progress(phase, records)`` hears how far ``"copy"`` and ``"verify"``
    have gone, after each batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    progress = on_progress or (lambda phase, records: None)
    records = _records(source)
    done = _read_checkpoint(checkpoint)
    report = MigrationReport()
    with _checkpoint_log(checkpoint) as log:
        while batch := list(itertools.islice(records, batch_size)):
            now = clock()
            finished = []
            for record in batch:
                report.read += 1
                if record.key in done:
                    report.done_earlier += 1
                    continue
                if record.expires_at <= now:
                    report.expired += 1
                elif not target.create(record):
                    report.skipped_existing += 1
                elif source.load(record.key) is None:
                    # Ended in the source while it was copied: the copy must not outlive it.
                    target.delete(record.key)
                    report.expired += 1
                else:
                    report.copied += 1
                finished.append(record.key)
            log(finished)
            report.batches += 1
            progress("copy", report.read)
    if verify:
        report.verified, report.missing = _verify(source, target, clock, batch_size, progress)
    return report


def _records(store: Store) -> Iterator[Record]:
    if not isinstance(store, Iterable):
        raise NotSupported(
            f"{type(store).__name__} cannot list its records, so sessions cannot be copied "
            "out of it"
        )
    return store.iter_records()


def _verify(
    source: Store,
    target: Store,
    clock: Callable[[], float],
    batch_size: int,
    progress: Callable[[str, int], None],
) -> tuple[int, int]:
    """(live source records found in the target, those not found)."""
    found = missing = 0
    for checked, record in enumerate(_records(source), 1):
        if checked % batch_size == 0:
            progress("verify", checked)
        if record.expires_at <= clock():
            continue
        if target.load(record.key) is not None:
            found += 1
        elif record.expires_at > clock():  # not merely expired while we looked
            missing += 1
    return found, missing


def _read_checkpoint(path: str | os.PathLike[str] | None) -> set[str]:
    """The keys an earlier run finished: one per line."""
    if path is None or not Path(path).exists():
        return set()
    with Path(path).open(encoding="ascii") as lines:
        return {line.strip() for line in lines if line.strip()}


@contextlib.contextmanager
def _checkpoint_log(
    path: str | os.PathLike[str] | None,
) -> Iterator[Callable[[list[str]], None]]:
    """A function appending a finished batch's keys to the checkpoint, on disk before going on."""
    if path is None:
        yield lambda keys: None
        return
    with Path(path).open("a", encoding="ascii") as file:

        def log(keys: list[str]) -> None:
            file.write("".join(f"{key}\n" for key in keys))
            file.flush()
            os.fsync(file.fileno())

        yield log
