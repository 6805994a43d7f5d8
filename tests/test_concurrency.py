"""No lost updates: concurrent requests on one session that change different keys all persist
(a key that two of them change takes the later save's value: the last test).

Real concurrency: requests over real HTTP to uvicorn (ASGI) and to a threading WSGI server,
and processes sharing one FileStore directory or SQLite file.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from coatcheck.config import SessionConfig
from coatcheck.engine import SessionEngine, run
from coatcheck.session import Session
from coatcheck.stores import AsyncStore, FileStore, MemoryStore, SQLiteStore, Store

from .apps import starlette_app
from .servers import serve_asgi, serve_wsgi
from .wsgi_app import wsgi_app

WRITERS = 50

STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda _: MemoryStore(),
    "file": lambda tmp: FileStore(tmp / "files"),
    "sqlite": lambda tmp: SQLiteStore(tmp / "s.db"),
}


def hammer(base: str, write: Callable[[httpx.Client, str, int], httpx.Response]) -> None:
    """Create a session, then send WRITERS concurrent requests each adding its own key."""
    with httpx.Client(base_url=base, timeout=30) as client:
        first = write(client, "", -1)
        sid = first.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        with ThreadPoolExecutor(WRITERS) as pool:
            responses = list(pool.map(lambda n: write(client, sid, n), range(WRITERS)))
        assert [r.status_code for r in responses] == [200] * WRITERS
        final = write(client, sid, -2).json()
    data = final.get("data", final)
    expected = {f"k{n}": str(n) for n in range(-1, WRITERS)}
    assert {k: str(v) for k, v in data.items() if k != "k-2"} == expected


def asgi_write(client: httpx.Client, sid: str, n: int) -> httpx.Response:
    """Add key ``k<n>`` to the session, holding the loaded version for 50 ms (ASGI app)."""
    headers = {"Cookie": f"session={sid}"} if sid else {}
    return client.post("/write", params={"delay": "0.05"}, json={f"k{n}": str(n)}, headers=headers)


def wsgi_write(client: httpx.Client, sid: str, n: int) -> httpx.Response:
    """The same against the WSGI app."""
    headers = {"Cookie": f"session={sid}"} if sid else {}
    return client.get("/write", params={"delay": "0.05", f"k{n}": str(n)}, headers=headers)


def race_asgi(store: Store | AsyncStore) -> None:
    """WRITERS concurrent requests on one session through uvicorn; the store closed after."""
    if isinstance(store, AsyncStore):
        with serve_asgi(starlette_app(store), cleanup=store.close) as base:
            hammer(base, asgi_write)
    else:
        with serve_asgi(starlette_app(store)) as base:
            hammer(base, asgi_write)
        store.close()


def race_wsgi(store: Store) -> None:
    """WRITERS concurrent requests on one session through a threading WSGI server."""
    with serve_wsgi(wsgi_app(store)) as base:
        hammer(base, wsgi_write)
    store.close()


RACED = ["memory", "file"]
"""The stores raced here; on SQLite, every integration races in the integration conformance
suite (``test_concurrent_writers``)."""


@pytest.mark.parametrize("kind", RACED)
def test_asgi_requests_racing_on_one_session_lose_nothing(kind: str, tmp_path: Path) -> None:
    race_asgi(STORES[kind](tmp_path))


@pytest.mark.parametrize("kind", RACED)
def test_wsgi_requests_racing_on_one_session_lose_nothing(kind: str, tmp_path: Path) -> None:
    race_wsgi(STORES[kind](tmp_path))


def _add_keys(kind: str, tmp: str, session_id: str, worker: int, count: int) -> None:
    store = STORES[kind](Path(tmp))
    engine = SessionEngine(SessionConfig(secure=False))
    for i in range(count):
        session = run(engine.load(session_id), store)
        assert not session.is_new
        session[f"w{worker}-{i}"] = i
        run(engine.commit(session), store)
    store.close()


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_processes_sharing_a_store_lose_nothing(kind: str, tmp_path: Path) -> None:
    store = STORES[kind](tmp_path)
    engine = SessionEngine(SessionConfig(secure=False))
    session = run(engine.load(None), store)
    session["start"] = 0
    set_cookie = run(engine.commit(session), store)
    assert set_cookie is not None
    session_id = set_cookie.split(";", 1)[0].split("=", 1)[1]
    context = multiprocessing.get_context("fork")
    workers, count = 4, 25
    processes = [
        context.Process(target=_add_keys, args=(kind, str(tmp_path), session_id, w, count))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    final = run(engine.load(session_id), store)
    assert len(final) == 1 + workers * count


@pytest.mark.parametrize("carried_out", ["as a plan", "at once"])
def test_two_requests_changing_one_key_the_later_save_wins_it(carried_out: str) -> None:
    """What "no lost updates" covers, and where it stops (README, "What you get"): a conflict
    replays the keys this request changed onto the other request's data, key by key, so the
    other request's keys are kept; but a key both changed takes the later save's value, computed
    from what that request loaded. Two requests each appending to one cart keep one item.
    The same whether the commit is a plan or is carried out at once against a sync store
    (``commit_to``: its first attempt fails, and the plan's retry replays)."""
    store = MemoryStore()
    engine = SessionEngine(SessionConfig(secure=False))

    def commit(session: Session) -> str | None:
        if carried_out == "at once":
            return engine.commit_to(store, session)
        return run(engine.commit(session), store)

    session = run(engine.load(None), store)
    session.update(cart=["tea"], visits=0)
    set_cookie = run(engine.commit(session), store)
    assert set_cookie is not None
    session_id = set_cookie.split(";", 1)[0].split("=", 1)[1]
    first, second = run(engine.load(session_id), store), run(engine.load(session_id), store)
    first["cart"].append("jam")
    first["seen_by_first"] = True
    commit(first)
    second["cart"].append("milk")
    second["visits"] += 1
    commit(second)  # a conflict: the version moved; replayed, then saved
    final = dict(run(engine.load(session_id), store))
    assert final == {"cart": ["tea", "milk"], "visits": 1, "seen_by_first": True}
