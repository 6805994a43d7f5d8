"""The shop's "your sessions" list with encryption at rest: a sealed record is opened before
it is shown (in-process, on a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from coatcheck.shop.app import create_app
from coatcheck.stores import SQLiteStore

from .shop_servers import csrf_token, log_in

KEYS = ["J3Pq1Vd5cQm1u0a6rC3jz3yJm7H9nK2xWv0bT8eL4sA"]


def test_the_sessions_list_opens_sealed_records(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "shop.db")
    app = create_app(store, encryption_keys=KEYS)
    with TestClient(app) as first, TestClient(app) as second:
        for client in (first, second):
            csrf_token(client)
            log_in(client, "alice")
        sessions = first.get("/api/sessions")
        assert sessions.status_code == 200, sessions.text
        assert len(sessions.json()) == 2
    store.close()
