"""Store-specific behaviour beyond the shared conformance suite, and picking stores by URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coatcheck.stores import (
    FileStore,
    MemoryStore,
    NotSupported,
    Record,
    SQLiteStore,
    StoreUnavailable,
    as_async,
    from_url,
)


def key(n: int) -> str:
    return f"{n:064x}"


class TestMemoryStore:
    def test_least_recently_used_sessions_are_evicted_at_max_entries(self) -> None:
        store = MemoryStore(max_entries=3)
        for n in range(3):
            store.create(Record(key(n), b"{}", 1e10, 1, "u"))
        store.load(key(0))  # 0 is now the most recently used
        store.create(Record(key(3), b"{}", 1e10))
        assert [store.load(key(n)) is not None for n in range(4)] == [True, False, True, True]
        assert len(store) == 3
        assert {r.key for r in store.list_by_user("u")} == {key(0), key(2)}

    def test_purge_visits_only_expired_buckets_and_handles_moved_entries(self) -> None:
        store = MemoryStore()
        now = 1_000_000.0
        for n in range(100):
            store.create(Record(key(n), b"{}", now + n))
        for n in range(0, 100, 2):  # even ones were touched: they live longer now
            store.touch(key(n), now + 1000 + n)
        assert store.purge_expired(now + 49.5) == 25  # odd 1..49
        assert store.purge_expired(now + 49.5) == 0
        assert store.purge_expired(now + 100) == 25  # odd 51..99
        assert len(store) == 50
        assert store.purge_expired(now + 2000) == 50
        assert len(store) == 0
        assert store._buckets == {}
        assert store._bucket_heap == []

    def test_touches_and_saves_add_nothing_to_the_expiry_index(self) -> None:
        store = MemoryStore()
        now = 1_000_000.0
        for n in range(100):
            store.create(Record(key(n), b"{}", now + 100, 1))
        for step in range(1, 51):
            for n in range(100):
                if n % 2:
                    store.touch(key(n), now + 100 + step * 60)
                else:
                    store.save(Record(key(n), b"[]", now + 100 + step * 60, step + 1), step)
        assert sum(len(keys) for keys in store._buckets.values()) == 100
        assert store.purge_expired(now + 200) == 0  # every key moves on, once
        assert sum(len(keys) for keys in store._buckets.values()) == 100
        assert store.purge_expired(now + 100 + 50 * 60) == 100

    def test_an_expiry_moved_earlier_is_purged_on_time(self) -> None:
        store = MemoryStore()
        store.create(Record(key(1), b"{}", 5000.0))
        store.touch(key(1), 100.0)
        assert store.purge_expired(200.0) == 1
        assert store.purge_expired(6000.0) == 0

    def test_purge_within_the_current_bucket_is_exact(self) -> None:
        store = MemoryStore(bucket_seconds=60)
        store.create(Record(key(1), b"{}", 100.0))
        store.create(Record(key(2), b"{}", 110.0))
        assert store.purge_expired(105.0) == 1
        assert store.load(key(2)) is not None
        assert store.purge_expired(110.0) == 1

    def test_it_is_safe_across_threads(self) -> None:
        store = MemoryStore(max_entries=500)

        def churn(offset: int) -> None:
            for n in range(offset, offset + 2000):
                store.create(Record(key(n), b"{}", 1e10, 1, f"u{n % 7}"))
                store.touch(key(n - 1), 2e10)
                if n % 3 == 0:
                    store.delete(key(n - 2))
                store.purge_expired(0)

        threads = [threading.Thread(target=churn, args=(i * 10_000,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store) <= 500
        indexed = sum(len(store.list_by_user(f"u{u}")) for u in range(7))
        assert indexed == len(store)

    def test_non_hex_keys_work_too(self) -> None:
        store = MemoryStore()
        assert store.create(Record("plain-key", b"{}", 1e10))
        assert store.load("plain-key") is not None
        assert [r.key for r in store.iter_records()] == ["plain-key"]


class TestFileStore:
    def test_a_touch_rewrites_no_data(self, tmp_path: Path) -> None:
        store = FileStore(tmp_path)
        store.create(Record(key(1), b"{}", 1.9e9))
        inode = (tmp_path / key(1)).stat().st_ino
        store.touch(key(1), 1.95e9)
        assert (tmp_path / key(1)).stat().st_ino == inode
        assert store.load(key(1)).expires_at == 1.95e9  # type: ignore[union-attr]

    def test_files_are_private(self, tmp_path: Path) -> None:
        store = FileStore(tmp_path / "s")
        store.create(Record(key(1), b"{}", 1e10))
        assert (tmp_path / "s").stat().st_mode & 0o077 == 0
        assert (tmp_path / "s" / key(1)).stat().st_mode & 0o077 == 0

    def test_a_key_that_is_not_a_plain_name_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="keys"):
            FileStore(tmp_path).load("../etc/passwd")

    def test_an_unreadable_header_reads_as_undecodable(self, tmp_path: Path) -> None:
        store = FileStore(tmp_path)
        (tmp_path / key(1)).write_bytes(b"garbage\n{}")
        record = store.load(key(1))
        assert record is not None
        assert record.data == b""


class TestSQLiteStore:
    def test_purge_goes_through_the_expiry_index(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "s.db")
        plan = (
            store._db()
            .execute(
                "EXPLAIN QUERY PLAN DELETE FROM coatcheck_sessions WHERE expires_at <= ?", (1.0,)
            )
            .fetchall()
        )
        assert "coatcheck_sessions_expires_at" in str(plan)
        plan = (
            store._db()
            .execute(
                "EXPLAIN QUERY PLAN SELECT * FROM coatcheck_sessions WHERE user_id = ?", ("u",)
            )
            .fetchall()
        )
        assert "coatcheck_sessions_user_id" in str(plan)

    def test_a_save_keeping_the_expiry_writes_only_the_row(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "s.db")
        for n in range(300):  # enough rows for the table and its indexes to span several pages
            store.create(Record(key(n), b"x" * 200, 1e9 + n))
        wal = tmp_path / "s.db-wal"

        def pages_written(write: Callable[[], bool]) -> int:
            before = wal.stat().st_size
            assert write()
            return (wal.stat().st_size - before) // (24 + 4096)  # WAL frames of 4 KiB pages

        kept = Record(key(5), b"y" * 200, 1e9 + 5, 2)
        assert pages_written(lambda: store.save_keeping_expiry(kept, 1)) == 1
        moved = Record(key(5), b"z" * 200, 2e9, 3)
        assert pages_written(lambda: store.save(moved, 2)) > 1  # the expiry index too
        assert store.load(key(5)) == moved

    def test_wal_mode(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "s.db")
        assert store._db().execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_the_table_name_is_configurable_and_checked(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "s.db", table="web_sessions")
        assert store.create(Record(key(1), b"{}", 1e10))
        with pytest.raises(ValueError, match="identifier"):
            SQLiteStore(tmp_path / "s.db", table="x; DROP TABLE y")

    def test_an_unopenable_database_is_unavailable(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "s.db")
        store.close()
        (tmp_path / "s.db").unlink()
        (tmp_path / "s.db").mkdir()
        with pytest.raises(StoreUnavailable):
            store.load(key(1))

    def test_memory_databases_are_refused(self) -> None:
        with pytest.raises(ValueError, match="MemoryStore"):
            SQLiteStore(":memory:")


class TestAsyncFace:
    @pytest.mark.anyio
    async def test_capabilities_a_store_lacks_raise_not_supported(self) -> None:
        from coatcheck.stores import Store

        class Minimal(Store):
            def load(self, key: str) -> Record | None:
                return None

            def create(self, record: Record) -> bool:
                return True

            def save(self, record: Record, expected_version: int) -> bool:
                return True

            def touch(self, key: str, expires_at: float) -> None:
                pass

            def delete(self, key: str) -> None:
                pass

        store = as_async(Minimal())
        with pytest.raises(NotSupported):
            await store.list_by_user("u")
        with pytest.raises(NotSupported):
            await store.purge_expired(time.time())
        with pytest.raises(NotSupported):
            store.iter_records()


class TestFromURL:
    def test_memory(self) -> None:
        store = from_url("memory://?max_entries=10")
        assert isinstance(store, MemoryStore)
        assert store.max_entries == 10

    def test_file(self, tmp_path: Path) -> None:
        store = from_url(f"file://{tmp_path}/sessions")
        assert isinstance(store, FileStore)
        assert store.root == tmp_path / "sessions"

    def test_sqlite_absolute_and_relative(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = from_url(f"sqlite:///{tmp_path}/a.db?table=web&offload=true")
        assert isinstance(store, SQLiteStore)
        assert (store.path, store.table, store.offload_async) == (f"{tmp_path}/a.db", "web", True)
        monkeypatch.chdir(tmp_path)
        relative = from_url("sqlite:///b.db")
        assert isinstance(relative, SQLiteStore)
        assert relative.path == "b.db"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("gopher://x", "unknown session store scheme gopher://"),
            ("", "unknown session store scheme"),
            ("sqlite://", "needs a database path"),
            ("file://", "needs a directory"),
            ("memory://?max_entries=lots", "bad store URL"),
            ("memory://?colour=blue", "unknown option"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            from_url(url)

    def test_credentials_never_appear_in_errors(self) -> None:
        with pytest.raises(ValueError, match="unknown session store scheme") as caught:
            from_url("gopher://admin:hunter2@host/db")
        assert "hunter2" not in str(caught.value)
