"""The framework rows of the instruction benchmark, without valgrind: the in-process drivers
serve real apps, the checks catch a broken app, and the report has a table per framework and a
target per framework, contest and scenario."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from benchmarks import framework_instructions as fi
from benchmarks import instructions
from benchmarks.apps import READ_BODY, SESSION_DATA
from benchmarks.http_load import SCENARIOS

NAMES = [scenario.name for scenario in SCENARIOS]


def _aiohttp_app(with_session: bool) -> Any:
    """The aiohttp benchmark's routes, bare or behind coatcheck on MemoryStore (no Redis)."""
    from aiohttp import web

    from coatcheck.integrations import aiohttp as coatcheck_aiohttp
    from coatcheck.stores import MemoryStore

    async def session_of(request: web.Request) -> Any:
        return request[coatcheck_aiohttp.SESSION_KEY] if with_session else {}

    async def anonymous(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def setup(request: web.Request) -> web.Response:
        (await session_of(request)).update(SESSION_DATA)
        return web.Response(text="ok")

    async def read(request: web.Request) -> web.Response:
        user = (await session_of(request)).get("user")
        return web.Response(text=user["name"] if user else "no session")

    async def write(request: web.Request) -> web.Response:
        session = await session_of(request)
        session["counter"] = counter = session.get("counter", 0) + 1
        return web.Response(text=str(counter))

    app = web.Application()
    for path, handler in (("/anon", anonymous), ("/setup", setup), ("/read", read)):
        app.router.add_get(path, handler)
    app.router.add_get("/write", write)
    if with_session:
        coatcheck_aiohttp.setup(app, store=MemoryStore(), secure=False, cookie_name="session")
    return app


@pytest.mark.parametrize("with_session", [False, True])
def test_aiohttp_is_driven_through_its_server_protocol(with_session: bool) -> None:
    pytest.importorskip("aiohttp")
    app_name = fi.AIOHTTP_COATCHECK if with_session else fi.AIOHTTP_BARE

    async def served() -> dict[str, object]:
        driver = await fi._Aiohttp.start(_aiohttp_app(with_session))
        return await fi._run_async(driver, SCENARIOS, "writing", 5, warmup=3)

    seen = asyncio.run(served())
    assert fi.check(app_name, seen) is None
    assert seen["read"] == (READ_BODY if with_session else "no session")


def test_flask_bare_is_driven_through_wsgi() -> None:
    pytest.importorskip("flask_session")
    from benchmarks.frameworks import flask_apps

    driver = fi._Sync(instructions._WsgiDriver(flask_apps.bare()))
    seen = fi._run_sync(driver, SCENARIOS, "read-only", 5, warmup=3)
    assert fi.check(fi.FLASK_BARE, seen) is None


def _seen(read: str = READ_BODY, writing: str = "51", statuses: int = 200) -> dict[str, Any]:
    return {
        "read": read,
        "cookie": True,
        "statuses": [statuses] * 5,
        "bodies": {"anonymous": "hello", "read-only": read, "writing": writing},
        "warmup": 50,
    }


def test_check_refuses_a_broken_app() -> None:
    assert fi.check(fi.FLASK_SESSION, _seen()) is None
    assert "not found" in str(fi.check(fi.FLASK_SESSION, _seen(read="no session")))
    assert "lost" in str(fi.check(fi.FLASK_SESSION, _seen(writing="1")))
    assert "200" in str(fi.check(fi.FLASK_SESSION, _seen(statuses=500)))
    assert "cookie" in str(fi.check(fi.FLASK_SESSION, {**_seen(), "cookie": False}))
    bare = {**_seen(read="no session", writing="1"), "cookie": False}
    assert fi.check(fi.FLASK_BARE, bare) is None
    assert "found a session" in str(fi.check(fi.FLASK_BARE, _seen()))


def test_report_has_a_table_per_framework_and_a_target_per_contest() -> None:
    tree = instructions.Tree("working", instructions.ROOT / "src")
    result = instructions.InstructionsResult(requests=300, warmup=50, layouts=2, trees=[tree])
    counts: dict[str, dict[str, list[float]]] = {}
    for framework in fi.FRAMEWORKS:
        for number, app in enumerate(framework.apps):
            counts[app] = {name: [100_000.0 + 1_000 * number] for name in NAMES}
    result.per_layout[tree.label] = counts
    targets = result.targets()
    contests = sum(len(framework.contests) for framework in fi.FRAMEWORKS)
    assert len(targets) == contests * len(NAMES)
    django_db = [t for t in targets if fi.DJANGO_DB in t.name]
    assert [t.holds for t in django_db] == [True] * len(NAMES)  # +3,000 vs +4,000
    flask = [t for t in targets if fi.FLASK_SESSION in t.name]
    assert [t.holds for t in flask] == [True] * len(NAMES)  # +1,000 vs +2,000
    text = result.markdown("scripts/bench --only instructions")
    for framework in fi.FRAMEWORKS:
        assert f"\n{framework.name}: " in text
    assert "| django-db-sqlite | 104,000 | +4,000 |" in text
    assert "adds fewer instructions than flask-session-redis | +1,000 vs +2,000 | yes |" in text
