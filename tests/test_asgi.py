"""The session lifecycle over the ASGI middleware, request by request, as a client sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coatcheck import SessionConfig
from coatcheck.config import ConfigError
from coatcheck.ids import new_id, store_key
from coatcheck.stores import FileStore, MemoryStore, Record
from coatcheck.testing import FakeClock

from .apps import CountingStore, starlette_app

IDLE, ABSOLUTE, TOUCH = 1800.0, 43200.0, 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore(MemoryStore())


@pytest.fixture
def client(store: CountingStore, clock: FakeClock) -> Iterator[TestClient]:
    app = starlette_app(store, clock=clock)
    with TestClient(app, cookies=None) as client:
        yield client


def set_cookie(response: object) -> str | None:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    assert len(headers) <= 1
    return headers[0] if headers else None


def session_id(response: object) -> str:
    header = set_cookie(response)
    assert header is not None
    return header.split(";", 1)[0].split("=", 1)[1]


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


def start_session(client: TestClient, **data: object) -> str:
    return session_id(client.post("/write", json=data or {"x": 1}))


class TestLazyCreation:
    def test_an_anonymous_request_creates_nothing_and_sets_no_cookie(
        self, client: TestClient, store: CountingStore
    ) -> None:
        response = client.get("/read")
        assert response.status_code == 200
        assert set_cookie(response) is None
        assert store.calls == {}
        assert len(store.inner) == 0  # type: ignore[arg-type]

    def test_reading_a_missing_key_does_not_create_a_session(
        self, client: TestClient, store: CountingStore
    ) -> None:
        assert client.get("/whoami").json() == {"user": None, "new": True}
        assert set_cookie(client.get("/whoami")) is None
        assert store.calls == {}

    def test_the_first_write_creates_the_session(
        self, client: TestClient, store: CountingStore
    ) -> None:
        response = client.post("/write", json={"cart": ["apple"]})
        header = set_cookie(response)
        assert header is not None
        assert store.calls == {"create": 1}
        assert client.get("/read", headers=cookie(session_id(response))).json() == {
            "cart": ["apple"]
        }


class TestRoundTrips:
    def test_a_read_only_request_loads_once_and_writes_nothing(
        self, client: TestClient, store: CountingStore
    ) -> None:
        sid = start_session(client, a=1)
        store.reset()
        response = client.get("/read", headers=cookie(sid))
        assert response.json() == {"a": 1}
        assert store.calls == {"load": 1}
        assert set_cookie(response) is None

    def test_a_writing_request_loads_and_saves_once(
        self, client: TestClient, store: CountingStore, clock: FakeClock
    ) -> None:
        sid = start_session(client, a=1)
        store.reset()
        response = client.post("/write", json={"b": 2}, headers=cookie(sid))
        assert store.calls == {"load": 1, "save": 1}
        assert set_cookie(response) is None  # its Max-Age moved by less than touch_interval
        clock.advance(TOUCH)
        response = client.post("/write", json={"b": 3}, headers=cookie(sid))
        assert session_id(response) == sid  # re-sent, so the browser's expiry slides too
        assert "Max-Age=1800" in (set_cookie(response) or "")

    def test_writing_the_same_value_again_is_not_a_write(
        self, client: TestClient, store: CountingStore
    ) -> None:
        sid = start_session(client, a=1)
        store.reset()
        client.post("/write", json={"a": 1}, headers=cookie(sid))
        assert store.calls == {"load": 1}


class TestStrictMode:
    def test_an_unknown_well_formed_id_is_not_adopted(
        self, client: TestClient, store: CountingStore
    ) -> None:
        planted = new_id()
        response = client.post("/write", json={"a": 1}, headers=cookie(planted))
        assert session_id(response) != planted
        assert store.inner.load(store_key(planted)) is None

    def test_an_unknown_id_on_a_read_gets_its_cookie_expired_and_nothing_stored(
        self, store: CountingStore, clock: FakeClock
    ) -> None:
        # Without the guessing throttle (tests/test_limits.py), which counts such cookies.
        app = starlette_app(store, clock=clock, max_rejections_per_client=None)
        with TestClient(app) as client:
            response = client.get("/read", headers=cookie(new_id()))
        header = set_cookie(response)
        assert header is not None
        assert "Max-Age=0" in header
        assert store.calls == {"load": 1}


BAD_COOKIES = [
    "",
    "abc",
    "A" * 42,
    "A" * 44,
    "A" * 42 + "B",  # 43 characters, but a non-canonical last one
    "A" * 10_000,
    "é" * 43,
    '"' + "A" * 42 + "B" + '"',
    "A" * 42 + "=",
    "../" * 14 + "A",
    "A" * 21 + "\x00" + "A" * 21,
]


class TestBadCookies:
    @pytest.mark.parametrize("value", BAD_COOKIES)
    def test_a_malformed_cookie_gets_an_anonymous_session_without_a_store_call(
        self, client: TestClient, store: CountingStore, value: str
    ) -> None:
        response = client.get("/whoami", headers={b"Cookie": f"session={value}".encode()})
        assert response.status_code == 200
        assert response.json() == {"user": None, "new": True}
        assert store.calls == {}

    def test_non_ascii_bytes_in_the_cookie_header(
        self, client: TestClient, store: CountingStore
    ) -> None:
        raw = b"session=\xff\xfe" + b"A" * 41 + b"; other=\x80"
        response = client.get("/whoami", headers={b"Cookie": raw})
        assert response.json() == {"user": None, "new": True}
        assert store.calls == {}

    def test_a_duplicated_cookie_with_two_values_is_trusted_for_neither(
        self, client: TestClient, store: CountingStore
    ) -> None:
        sid = start_session(client, a=1)
        store.reset()
        headers = {"Cookie": f"session={sid}; session={new_id()}"}
        assert client.get("/read", headers=headers).json() == {}
        assert store.calls == {}

    def test_the_same_cookie_sent_twice_is_fine(self, client: TestClient) -> None:
        sid = start_session(client, a=1)
        headers = {"Cookie": f"session={sid}; session={sid}"}
        assert client.get("/read", headers=headers).json() == {"a": 1}

    def test_cookies_split_over_several_headers_are_read(self, client: TestClient) -> None:
        sid = start_session(client, a=1)
        headers = [("cookie", "theme=dark"), ("cookie", f"session={sid}")]
        assert client.get("/read", headers=headers).json() == {"a": 1}

    def test_stored_data_that_does_not_decode_gives_a_fresh_session(
        self, client: TestClient, store: CountingStore, clock: FakeClock
    ) -> None:
        for garbage in (b"\x80\x04\x95pickle", b"null", b'{"c":1,"a":1,"d":[]}', b"{" * 5000):
            sid = new_id()
            store.inner.create(Record(store_key(sid), garbage, clock.now + 100))
            response = client.get("/whoami", headers=cookie(sid))
            assert response.status_code == 200
            assert response.json() == {"user": None, "new": True}


class TestRegenerateLoginLogout:
    def test_regenerate_moves_the_data_to_a_new_id(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        sid = start_session(client, cart=[1])
        new = session_id(client.post("/regenerate", headers=cookie(sid)))
        assert new != sid
        assert client.get("/read", headers=cookie(new)).json() == {"cart": [1]}
        clock.advance(SessionConfig().rotation_grace)  # see tests/test_rotation.py
        assert client.get("/read", headers=cookie(sid)).json() == {}

    def test_login_regenerates_and_binds_the_user(
        self, client: TestClient, store: CountingStore
    ) -> None:
        before = start_session(client, cart=[1])
        store.reset()
        after = session_id(client.post("/login/alice", headers=cookie(before)))
        assert after != before
        assert store.calls == {"load": 1, "rotate": 1}
        assert client.get("/whoami", headers=cookie(before)).json() == {"user": None, "new": True}
        assert client.get("/whoami", headers=cookie(after)).json() == {
            "user": "alice",
            "new": False,
        }
        assert client.get("/read", headers=cookie(after)).json() == {"cart": [1]}

    def test_login_on_a_fresh_session_creates_it(self, client: TestClient) -> None:
        sid = session_id(client.post("/login/bob"))
        assert client.get("/whoami", headers=cookie(sid)).json() == {"user": "bob", "new": False}

    def test_logout_expires_the_cookie_and_the_old_cookie_is_anonymous(
        self, client: TestClient, store: CountingStore
    ) -> None:
        sid = session_id(client.post("/login/alice"))
        store.reset()
        response = client.post("/logout", headers=cookie(sid))
        header = set_cookie(response)
        assert header is not None
        assert header.startswith("session=;")
        assert "Max-Age=0" in header
        assert store.calls == {"load": 1, "delete": 1}
        replay = client.get("/whoami", headers=cookie(sid))
        assert replay.json() == {"user": None, "new": True}


class TestExpiry:
    def test_idle_timeout(self, client: TestClient, clock: FakeClock) -> None:
        sid = start_session(client, a=1)
        clock.advance(IDLE - 1)
        assert client.get("/read", headers=cookie(sid)).json() == {"a": 1}
        clock.advance(IDLE)
        response = client.get("/read", headers=cookie(sid))
        assert response.json() == {}
        assert "Max-Age=0" in (set_cookie(response) or "")

    def test_absolute_timeout_is_not_extended_by_activity_or_regenerate(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        sid = start_session(client, a=1)
        deadline = clock.now + ABSOLUTE
        while clock.now + IDLE / 2 < deadline:
            clock.advance(IDLE / 2)
            response = client.post("/regenerate", headers=cookie(sid))
            sid = session_id(response)
            max_age = int(response.headers["set-cookie"].split("Max-Age=")[1].split(";")[0])
            assert clock.now + max_age <= deadline + 1
        clock.now = deadline
        assert client.get("/read", headers=cookie(sid)).json() == {}

    def test_an_absolute_timeout_alone_is_accepted_and_the_idle_timeout_follows_it(
        self, clock: FakeClock
    ) -> None:
        app = starlette_app(MemoryStore(), clock=clock, absolute_timeout=600)
        assert (app.engine.config.idle_timeout, app.engine.config.absolute_timeout) == (600, 600)
        with TestClient(app) as client:
            sid = start_session(client, a=1)
            clock.advance(599)
            assert client.get("/read", headers=cookie(sid)).json() == {"a": 1}
            clock.advance(2)
            assert client.get("/read", headers=cookie(sid)).json() == {}

    def test_two_chosen_timeouts_that_contradict_are_refused(self) -> None:
        refusal = r"idle_timeout \(7200.0\) must not exceed absolute_timeout \(3600.0\)"
        with pytest.raises(ConfigError, match=refusal):
            starlette_app(MemoryStore(), idle_timeout=7200, absolute_timeout=3600)

    def test_reads_touch_at_most_once_per_interval(
        self, client: TestClient, store: CountingStore, clock: FakeClock
    ) -> None:
        sid = start_session(client, a=1)
        store.reset()
        for _ in range(4):
            clock.advance(TOUCH / 5)
            assert set_cookie(client.get("/read", headers=cookie(sid))) is None
        assert store.calls == {"load": 4}
        clock.advance(TOUCH / 5)
        response = client.get("/read", headers=cookie(sid))
        assert store.calls == {"load": 5, "touch": 1}
        assert "Max-Age=1800" in (set_cookie(response) or "")


class TestCookieAttributes:
    def test_secure_defaults(self, store: CountingStore) -> None:
        app = starlette_app(store, secure=True)
        with TestClient(app, base_url="https://testserver") as client:
            header = set_cookie(client.post("/write", json={"a": 1}))
        assert header is not None
        name_value, *attributes = header.split("; ")
        assert name_value.startswith("__Host-session=")
        assert attributes == ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=1800"]

    def test_a_domain_trades_the_host_prefix_for_the_secure_one(self, store: CountingStore) -> None:
        app = starlette_app(store, secure=True, domain="example.com", same_site="strict")
        with TestClient(app, base_url="https://testserver") as client:
            header = set_cookie(client.post("/write", json={"a": 1})) or ""
        assert header.startswith("__Secure-session=")
        assert "; Domain=example.com;" in header
        assert "SameSite=Strict" in header

    def test_browser_session_cookie(self, store: CountingStore) -> None:
        with TestClient(starlette_app(store, persistent=False)) as client:
            header = set_cookie(client.post("/write", json={"a": 1})) or ""
        assert "Max-Age" not in header
        assert "Expires" not in header

    def test_logout_cookie_matches_the_issued_one(self, store: CountingStore) -> None:
        app = starlette_app(store, secure=True)
        with TestClient(app, base_url="https://testserver") as client:
            sid = session_id(client.post("/login/carol"))
            header = set_cookie(client.post("/logout", headers={"Cookie": f"__Host-session={sid}"}))
        assert header is not None
        assert header.startswith("__Host-session=; Path=/; HttpOnly; Secure; SameSite=Lax")
        assert "Max-Age=0" in header


class TestDictBehaviour:
    def test_json_dumps_of_request_session(self, client: TestClient) -> None:
        sid = start_session(client, a=[1, {"b": None}])
        assert json.loads(client.get("/read", headers=cookie(sid)).text) == {"a": [1, {"b": None}]}


class TestWebSocket:
    def test_a_websocket_gets_the_session_and_may_write_it(self, client: TestClient) -> None:
        sid = start_session(client, a=1)
        with client.websocket_connect("/ws", headers=cookie(sid)) as ws:
            ws.send_text("hello")
            assert json.loads(ws.receive_text()) == {"a": 1, "ws": "hello"}
        assert client.get("/read", headers=cookie(sid)).json() == {"a": 1, "ws": "hello"}


class TestStoreFailure:
    def test_a_failing_store_gives_503_not_500(self, tmp_path: Path) -> None:
        root = tmp_path / "sessions"
        with TestClient(starlette_app(FileStore(root))) as client:
            sid = session_id(client.post("/write", json={"a": 1}))
            for path in root.iterdir():
                if path.is_dir():
                    for child in path.iterdir():
                        child.unlink()
                    path.rmdir()
                else:
                    path.unlink()
            root.rmdir()
            root.write_text("not a directory any more")
            response = client.post("/write", json={"b": 2}, headers=cookie(sid))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
