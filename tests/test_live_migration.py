"""The zero-downtime migration of docs/cli.md, end to end, on real servers.

Sessions are created on the old store (SQLite) by an application running on it alone. The
application moves onto ``MigratingStore(old, new)``, and while ``coatcheck migrate`` copies
the rest in a subprocess, it serves them: reads some, writes some, logs one in, logs others
out, creates new ones. Then it runs on the new store alone (Redis over WSGI, PostgreSQL over
ASGI): every session is there with its latest data, the login holds, the logged-out ones are
gone, and no request on the way was logged out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from coatcheck.limits import is_counter
from coatcheck.stores import (
    AsyncMigratingStore,
    AsyncStore,
    AsyncStoreAdapter,
    MigratingStore,
    SQLiteStore,
    Store,
    from_url,
)
from coatcheck.testing import cookie_id

from .apps import starlette_app
from .operator_stores import live_records, open_store, populate, postgresql_url, redis_url
from .servers import serve_asgi, serve_wsgi
from .wsgi_app import wsgi_app

__all__ = ["postgresql_url", "redis_url"]  # fixtures

ROOT = Path(__file__).resolve().parent.parent
FILLER = 2000
"""Sessions the back-fill copies besides the test's own: enough that it is still copying
while the application serves the requests under test (it has copied a few hundred at most
when they are done: to Redis it copies the fastest, about 0.6 ms a session on the CI machine,
under load; the requests take well under a second)."""


class Client(Protocol):
    """An application's routes, as the test drives them; a session by its cookie value."""

    def create(self, **data: str) -> str: ...
    def write(self, sid: str, **data: str) -> None: ...
    def state(self, sid: str) -> tuple[str | None, dict[str, Any]]: ...
    def login(self, sid: str, user: str) -> str: ...
    def logout(self, sid: str) -> None: ...


def _cookie(sid: str | None) -> dict[str, str]:
    return {"Cookie": f"session={sid}"} if sid else {}


def _kept(response: httpx.Response) -> None:
    """The request was served within its session: never a cookie expired on it."""
    assert response.status_code == 200, response.text
    assert "Max-Age=0" not in response.headers.get("set-cookie", "")


class WSGIClient:
    """tests/wsgi_app.py: GET routes, query parameters into the session."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _get(self, path: str, sid: str | None, **query: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=query, headers=_cookie(sid))

    def create(self, **data: str) -> str:
        return cookie_id(self._get("/write", None, **data).headers.get("set-cookie"))

    def write(self, sid: str, **data: str) -> None:
        _kept(self._get("/write", sid, **data))

    def state(self, sid: str) -> tuple[str | None, dict[str, Any]]:
        response = self._get("/state", sid)
        body = response.json()
        return body["user"], body["data"]

    def login(self, sid: str, user: str) -> str:
        response = self._get("/login", sid, user=user)
        _kept(response)
        return cookie_id(response.headers.get("set-cookie"))

    def logout(self, sid: str) -> None:
        response = self._get("/logout", sid)
        assert cookie_id(response.headers.get("set-cookie")) == ""


class ASGIClient:
    """tests/apps.py's Starlette application: POST routes, JSON into the session."""

    def __init__(self, base: str) -> None:
        self.base = base

    def create(self, **data: str) -> str:
        response = httpx.post(f"{self.base}/write", json=data)
        return cookie_id(response.headers.get("set-cookie"))

    def write(self, sid: str, **data: str) -> None:
        _kept(httpx.post(f"{self.base}/write", json=data, headers=_cookie(sid)))

    def state(self, sid: str) -> tuple[str | None, dict[str, Any]]:
        who = httpx.get(f"{self.base}/whoami", headers=_cookie(sid)).json()
        if who["new"]:
            return None, {}
        data = httpx.get(f"{self.base}/read", headers=_cookie(sid)).json()
        return who["user"], data

    def login(self, sid: str, user: str) -> str:
        response = httpx.post(f"{self.base}/login/{user}", headers=_cookie(sid))
        _kept(response)
        return cookie_id(response.headers.get("set-cookie"))

    def logout(self, sid: str) -> None:
        response = httpx.post(f"{self.base}/logout", headers=_cookie(sid))
        assert cookie_id(response.headers.get("set-cookie")) == ""


Serve = Callable[[], AbstractContextManager[Client]]
"""Serve the application on a store (or a composition) for a while, yielding a client of it."""


def wsgi_setup(old_url: str, new_url: str) -> tuple[Serve, Serve, Serve]:
    """The WSGI middleware on sync stores: the old one, the composition, the new one."""

    def serve(store: Store) -> AbstractContextManager[Client]:
        @contextmanager
        def serving() -> Iterator[Client]:
            try:
                with serve_wsgi(wsgi_app(store)) as base:
                    yield WSGIClient(base)
            finally:
                store.close()

        return serving()

    return (
        lambda: serve(open_store(old_url)),
        lambda: serve(MigratingStore(open_store(old_url), open_store(new_url))),
        lambda: serve(open_store(new_url)),
    )


def asgi_setup(old_url: str, new_url: str) -> tuple[Serve, Serve, Serve]:
    """The ASGI middleware on async faces: the old SQLite store's adapter, the async
    composition, the new store's own async face."""
    old_path = old_url.removeprefix("sqlite:///")

    def serve(store: AsyncStore) -> AbstractContextManager[Client]:
        @contextmanager
        def serving() -> Iterator[Client]:
            with serve_asgi(starlette_app(store), cleanup=store.close) as base:
                yield ASGIClient(base)

        return serving()

    def old() -> AsyncStore:
        return AsyncStoreAdapter(SQLiteStore(old_path), offload=True)

    def new() -> AsyncStore:
        store = from_url(new_url, asynchronous=True)
        assert isinstance(store, AsyncStore)
        return store

    return (
        lambda: serve(old()),
        lambda: serve(AsyncMigratingStore(old(), new())),
        lambda: serve(new()),
    )


def coatcheck_migrate(old_url: str, new_url: str, checkpoint: Path) -> subprocess.Popen[str]:
    """``coatcheck migrate`` as an operator runs it, in a process of its own: one record a
    batch, its key on disk (fsync) before the next, so the copy takes a while."""
    command = ["migrate", "--from", old_url, "--to", new_url, "--batch-size", "1"]
    return subprocess.Popen(
        [sys.executable, "-m", "coatcheck", *command, "--checkpoint", str(checkpoint), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )


def copied_so_far(checkpoint: Path) -> int:
    return len(checkpoint.read_text().split()) if checkpoint.exists() else 0


@dataclasses.dataclass
class Cohort:
    """The sessions under test, made by the application on the old store alone."""

    read: list[str]
    written: list[str]
    untouched: list[str]
    to_login: str
    to_logout: list[str]

    @classmethod
    def create(cls, app: Client) -> Cohort:
        return cls(
            read=[app.create(cart="tea") for _ in range(10)],
            written=[app.create(cart="tea") for _ in range(10)],
            untouched=[app.create(cart="tea") for _ in range(10)],
            to_login=app.create(cart="tea"),
            to_logout=[app.login(app.create(cart="tea"), f"user-{n}") for n in range(30)],
        )

    def serve(self, app: Client, n: int) -> str | None:
        """Request ``n`` of 61: reads, writes, logouts, a login (its new ID), new sessions."""
        if n < 10:
            assert app.state(self.read[n]) == (None, {"cart": "tea"})
        elif n < 20:
            app.write(self.written[n - 10], cart="jam")
        elif n < 50:
            app.logout(self.to_logout[n - 20])
        elif n == 50:
            return app.login(self.to_login, "ada")
        else:
            return app.create(cart="milk")
        return None


def serve_while_migrating(
    app: Client, cohort: Cohort, old_url: str, new_url: str, checkpoint: Path, total: int
) -> tuple[str, list[str], dict[str, Any]]:
    """Start ``coatcheck migrate``; once it copies, serve the cohort's 61 requests at once,
    8 at a time, all before it is done. The login's new ID, the new sessions' IDs, and what
    the migration reported."""
    migration = coatcheck_migrate(old_url, new_url, checkpoint)
    try:
        deadline = time.monotonic() + 30
        while copied_so_far(checkpoint) == 0:  # the copy is under way
            assert migration.poll() is None, migration.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: cohort.serve(app, n), range(61)))
        assert migration.poll() is None  # all of it while the migration ran...
        assert copied_so_far(checkpoint) < total  # ...and was still copying
    finally:
        out, err = migration.communicate(timeout=120)
    assert migration.returncode == 0, (out, err)
    logged_in, created = answers[50], answers[51:]
    assert logged_in
    assert all(created)
    return logged_in, [sid for sid in created if sid], json.loads(out)


def sessions(url: str) -> set[str]:
    """The keys of the live sessions in a store (limit counters aside)."""
    store = open_store(url)
    try:
        return {key for key, r in live_records(store).items() if not is_counter(r)}
    finally:
        store.close()


@pytest.mark.parametrize("flavor", ["wsgi, sqlite to redis", "asgi, sqlite to postgresql"])
def test_a_live_migration_logs_no_one_out_and_brings_no_one_back(
    flavor: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    if flavor.startswith("wsgi"):
        new_url = request.getfixturevalue("redis_url")
        on_old, migrating, on_new = wsgi_setup(old_url, new_url)
    else:
        new_url = request.getfixturevalue("postgresql_url")
        on_old, migrating, on_new = asgi_setup(old_url, new_url)

    # 1. The application on the old store alone.
    with on_old() as app:
        cohort = Cohort.create(app)
    filler = populate(old := open_store(old_url), {}, anonymous=FILLER)[""]
    old.close()
    total = FILLER + 10 * 3 + 1 + 30

    # 2. On the composition, while `coatcheck migrate` back-fills.
    with migrating() as app:
        logged_in, created, report = serve_while_migrating(
            app, cohort, old_url, new_url, tmp_path / "migrate.keys", total
        )
    assert report["ok"]
    assert report["copied"] > 0
    # What the application read or wrote before the back-fill got there was copied by the
    # read repair, and the back-fill left it alone.
    assert report["skipped_existing"] > 0
    # The new store holds every live session the old one holds, and nothing else: the
    # logged-out ones are in neither.
    assert sessions(new_url) == sessions(old_url)
    assert len(sessions(new_url)) == total - 30 + 10

    # 3. On the new store alone.
    with on_new() as app:
        for sid in cohort.read + cohort.untouched:
            assert app.state(sid) == (None, {"cart": "tea"})
        for sid in filler[:20]:
            assert app.state(sid) == (None, {"cart": ["tea"]})
        for sid in cohort.written:
            assert app.state(sid) == (None, {"cart": "jam"})
        assert app.state(logged_in) == ("ada", {"cart": "tea"})
        for sid in created:
            assert app.state(sid) == (None, {"cart": "milk"})
        assert app.state(cohort.to_login) == (None, {})  # the ID the login replaced
        for sid in cohort.to_logout:
            assert app.state(sid) == (None, {})
