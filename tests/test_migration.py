"""coatcheck.migration.migrate: live sessions move between real stores with their keys and
remaining lifetimes, nothing in the target is overwritten, and an interrupted run resumes."""

from __future__ import annotations

import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from coatcheck.migration import migrate
from coatcheck.stores import MemoryStore, NotSupported, Record, Store, from_url
from coatcheck.stores.redis import RedisStore
from coatcheck.testing import cookie_id

from .apps import starlette_app
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
    user_keys,
)

__all__ = ["postgresql_url", "redis_url", "sqlite_url"]  # fixtures


class Interrupted(Exception):
    """Stands for a crash or ^C in the middle of a migration."""


def interrupt_after_first_batch(phase: str, records: int) -> None:
    if phase == "copy":
        raise Interrupted


def test_memory_to_sqlite_copies_live_sessions_verbatim_and_they_keep_working(
    sqlite_url: str,
) -> None:
    source, target = MemoryStore(), open_store(sqlite_url)
    ids = populate(source, {"ada": 3, "bob": 1}, anonymous=4)
    add_expired(source, 2)
    before = live_records(source)

    report = migrate(source, target, batch_size=3)

    assert (report.read, report.copied, report.expired, report.skipped_existing) == (10, 8, 2, 0)
    assert report.batches == 4
    assert (report.verified, report.missing, report.ok) == (8, 0, True)
    assert live_records(target) == before  # same keys, data, versions, users, expires_at
    assert len(all_records(target)) == 8  # the expired ones stayed behind
    for session_id in ids["ada"] + ids[""]:
        assert data_of(target, session_id) == data_of(source, session_id) == {"cart": ["tea"]}
    assert user_keys(target, "ada") == user_keys(source, "ada")


def test_sqlite_to_redis_keeps_each_remaining_lifetime_as_the_redis_ttl(
    sqlite_url: str, redis_url: str
) -> None:
    source, target = open_store(sqlite_url), open_store(redis_url)
    assert isinstance(target, RedisStore)
    ids = populate(source, {"ada": 2, "cy": 2}, anonymous=3)
    soon = Record("5" * 64, b'{"c":1,"a":1,"d":{}}', time.time() + 30)
    source.create(soon)  # a session with 30 s left must get 30 s in Redis, not a fresh lifetime
    add_expired(source, 3)

    report = migrate(source, target, batch_size=4)

    assert (report.read, report.copied, report.expired, report.verified) == (11, 8, 3, 8)
    assert report.ok
    assert live_records(target) == live_records(source)
    client = redis.Redis.from_url(redis_url.partition("?")[0])
    try:
        ttl = client.pttl(f"{target.prefix}s:{soon.key}") / 1000
        assert 25 < ttl <= 30.01
        for record in live_records(source).values():
            remaining = record.expires_at - time.time()
            ttl = client.pttl(f"{target.prefix}s:{record.key}") / 1000
            assert remaining - 5 < ttl <= remaining + 0.01  # Redis rounds to ms
    finally:
        client.close()
    assert len(user_keys(target, "cy")) == 2
    assert all(data_of(target, i) == {"cart": ["tea"]} for i in ids["cy"] + ids[""])


def test_sqlite_to_postgresql(sqlite_url: str, postgresql_url: str) -> None:
    source, target = open_store(sqlite_url), open_store(postgresql_url)
    populate(source, {"ada": 2}, anonymous=2)
    report = migrate(source, target, batch_size=500)
    assert (report.copied, report.batches, report.ok) == (4, 1, True)
    assert live_records(target) == live_records(source)


def test_an_interrupted_migration_resumes_without_duplicating_or_clobbering(
    sqlite_url: str, redis_url: str
) -> None:
    source, target = open_store(sqlite_url), open_store(redis_url)
    populate(source, {"ada": 3}, anonymous=7)
    with pytest.raises(Interrupted):
        migrate(source, target, batch_size=4, on_progress=interrupt_after_first_batch)
    copied = live_records(target)
    assert len(copied) == 4
    # Meanwhile the application, now on the target, writes one of the copied sessions.
    first = next(iter(copied.values()))
    newer = first._replace(data=b'{"c":1,"a":1,"d":{"newer":true}}', version=first.version + 1)
    assert target.save(newer, first.version)

    report = migrate(source, target, batch_size=4)

    assert (report.read, report.copied, report.skipped_existing) == (10, 6, 4)
    assert report.ok
    assert len(live_records(target)) == 10
    kept = target.load(first.key)
    assert kept is not None
    assert (kept.data, kept.version) == (newer.data, newer.version)


def test_a_checkpoint_lets_the_rerun_skip_what_an_earlier_run_finished(
    sqlite_url: str, tmp_path: Path
) -> None:
    source, target = MemoryStore(), open_store(sqlite_url)
    populate(source, {"ada": 2}, anonymous=8)
    checkpoint = tmp_path / "migration.keys"
    with pytest.raises(Interrupted):
        migrate(
            source,
            target,
            batch_size=3,
            checkpoint=checkpoint,
            on_progress=interrupt_after_first_batch,
        )
    assert len(checkpoint.read_text().split()) == 3

    report = migrate(source, target, batch_size=3, checkpoint=checkpoint)

    assert (report.done_earlier, report.copied, report.skipped_existing) == (3, 7, 0)
    assert report.ok
    assert set(checkpoint.read_text().split()) == set(live_records(source))
    assert live_records(target) == live_records(source)


def test_verification_finds_a_session_the_target_lacks(sqlite_url: str) -> None:
    source, target = MemoryStore(), open_store(sqlite_url)
    populate(source, {}, anonymous=3)
    lost = next(iter(live_records(source)))

    def lose_one(phase: str, records: int) -> None:
        if phase == "copy":
            target.delete(lost)

    report = migrate(source, target, on_progress=lose_one)
    assert (report.copied, report.verified, report.missing, report.ok) == (3, 2, 1, False)


def test_verification_can_be_skipped() -> None:
    source = MemoryStore()
    populate(source, {}, anonymous=2)
    report = migrate(source, MemoryStore(), verify=False)
    assert (report.copied, report.verified, report.ok) == (2, None, True)


def test_a_store_that_cannot_list_its_records_cannot_be_a_source() -> None:
    memcached = from_url("memcached://127.0.0.1:1")  # no connection is made
    assert isinstance(memcached, Store)
    with pytest.raises(NotSupported, match="cannot list its records"):
        migrate(memcached, MemoryStore())


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        migrate(MemoryStore(), MemoryStore(), batch_size=0)


# -- switching an application to the new store (docs/cli.md, "Switching an application ...") ---


def _no_jar() -> CookieJar:
    """A jar that keeps nothing: each request carries exactly the cookie the test gives it."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _sid(response: httpx.Response) -> str:
    return cookie_id(response.headers.get("set-cookie"))


def _as(sid: str) -> dict[str, str]:
    return {"Cookie": f"session={sid}"}


def test_a_request_before_its_session_is_copied_is_logged_out_for_good(sqlite_url: str) -> None:
    """Pointed at the new store before the copy, the application meets the cookie as it meets
    any ID that names nothing: an anonymous session, the cookie expired (``Max-Age=0``). The
    copy made afterwards is in the new store, but the browser no longer holds its cookie."""
    old, new = MemoryStore(), open_store(sqlite_url)
    with TestClient(starlette_app(old), cookies=_no_jar()) as on_old:
        sid = _sid(on_old.post("/login/ada"))
        assert on_old.get("/whoami", headers=_as(sid)).json() == {"user": "ada", "new": False}
    with TestClient(starlette_app(new), cookies=_no_jar()) as on_new:
        response = on_new.get("/whoami", headers=_as(sid))
        assert response.json() == {"user": None, "new": True}
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert migrate(old, new).copied == 1  # too late: the cookie is gone from the browser


def test_copied_while_nothing_writes_every_session_carries_on(sqlite_url: str) -> None:
    """The procedure docs/cli.md gives: stop, migrate, start on the new store. Each cookie
    keeps its user and data, and the new store sends no cookie at all."""
    old, new = MemoryStore(), open_store(sqlite_url)
    with TestClient(starlette_app(old), cookies=_no_jar()) as on_old:
        ada = _sid(on_old.post("/login/ada"))
        anonymous = _sid(on_old.post("/write", json={"cart": ["tea"]}))
    assert migrate(old, new).ok
    with TestClient(starlette_app(new), cookies=_no_jar()) as on_new:
        whoami = on_new.get("/whoami", headers=_as(ada))
        assert whoami.json() == {"user": "ada", "new": False}
        read = on_new.get("/read", headers=_as(anonymous))
        assert read.json() == {"cart": ["tea"]}
        assert "set-cookie" not in whoami.headers
        assert "set-cookie" not in read.headers


def test_what_the_old_store_does_between_the_copy_and_the_switch_is_not_followed(
    sqlite_url: str,
) -> None:
    """Migrate, switch, migrate again, without stopping: the second run copies the sessions
    created meanwhile, but never overwrites, and never deletes. A change made in the old store
    after the first copy is lost, and a session logged out there is live again in the new one."""
    old, new = MemoryStore(), open_store(sqlite_url)
    with TestClient(starlette_app(old), cookies=_no_jar()) as on_old:
        changed = _sid(on_old.post("/write", json={"cart": ["tea"]}))
        logged_out = _sid(on_old.post("/login/bob"))
        assert migrate(old, new).copied == 2
        on_old.post("/write", json={"cart": ["tea", "jam"]}, headers=_as(changed))
        assert "Max-Age=0" in on_old.post("/logout", headers=_as(logged_out)).headers["set-cookie"]
        created = _sid(on_old.post("/write", json={"cart": ["milk"]}))
    report = migrate(old, new)  # right after the switch
    assert (report.copied, report.skipped_existing) == (1, 1)
    with TestClient(starlette_app(new), cookies=_no_jar()) as on_new:
        assert on_new.get("/read", headers=_as(created)).json() == {"cart": ["milk"]}
        assert on_new.get("/read", headers=_as(changed)).json() == {"cart": ["tea"]}  # no jam
        assert on_new.get("/whoami", headers=_as(logged_out)).json() == {
            "user": "bob",
            "new": False,
        }
