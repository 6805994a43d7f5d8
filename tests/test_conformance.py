"""The conformance suite run against every store shipped in this package."""

from __future__ import annotations

from pathlib import Path

import pytest

from coatcheck.stores import (
    AsyncStore,
    AsyncStoreAdapter,
    AsyncTieredStore,
    FileStore,
    MemoryStore,
    SQLiteStore,
    TieredStore,
)
from coatcheck.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryStoreWithLRU(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore(max_entries=1000)


class TestFileStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return FileStore(tmp_path / "sessions")


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> SQLiteStore:
        return SQLiteStore(tmp_path / "sessions.db")


class TestSQLiteStoreAsyncInThreads(StoreConformance):
    """The async face of a sync store, its calls offloaded to worker threads."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> AsyncStore:
        return AsyncStoreAdapter(SQLiteStore(tmp_path / "sessions.db"), offload=True)


class TestFileStoreAsyncInThreads(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> AsyncStore:
        return AsyncStoreAdapter(FileStore(tmp_path / "sessions"), offload=True)


class TestTieredMemoryOverSQLite(StoreConformance):
    """A fast tier in front of a durable store (tests/test_tiered_store.py: over real servers)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> TieredStore:
        return TieredStore(MemoryStore(), SQLiteStore(tmp_path / "sessions.db"))


class TestTieredMemoryOverSQLiteAsync(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> AsyncStore:
        durable = AsyncStoreAdapter(SQLiteStore(tmp_path / "sessions.db"), offload=True)
        return AsyncTieredStore(AsyncStoreAdapter(MemoryStore()), durable)
