"""Hashed keys at rest: the raw cookie value appears nowhere in what a store writes to disk."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from coatcheck.stores import FileStore, SQLiteStore, Store

from .apps import starlette_app


def issue_sessions(store: Store, count: int = 20) -> list[str]:
    ids = []
    with TestClient(starlette_app(store)) as client:
        for n in range(count):
            client.cookies.clear()
            response = client.post("/write", json={"n": n})
            sid = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
            client.post("/login/user-" + str(n), headers={"Cookie": f"session={sid}"})
            ids.append(sid)
            rotated = client.post("/login/user-" + str(n), headers={"Cookie": f"session={sid}"})
            ids.append(rotated.headers.get("set-cookie", "=;").split(";")[0].split("=", 1)[1])
    return [i for i in ids if i]


def all_bytes(root: Path) -> bytes:
    return b"".join(p.name.encode() + p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_no_cookie_value_in_the_sqlite_files(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.db")
    ids = issue_sessions(store)
    disk = all_bytes(tmp_path)  # the database, its WAL and shared-memory files
    assert b"user-3" in disk  # the data is there...
    for sid in ids:
        assert sid.encode() not in disk  # ...the IDs are not
    store.close()
    disk = all_bytes(tmp_path)
    assert all(sid.encode() not in disk for sid in ids)


def test_no_cookie_value_in_the_file_store(tmp_path: Path) -> None:
    ids = issue_sessions(FileStore(tmp_path / "files"))
    disk = all_bytes(tmp_path)
    assert b"user-3" in disk
    for sid in ids:
        assert sid.encode() not in disk
