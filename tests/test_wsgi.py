"""The session lifecycle over the WSGI middleware."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck.ids import new_id
from coatcheck.stores import FileStore, MemoryStore, SQLiteStore

from .apps import CountingStore
from .wsgi_app import wsgi_app


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(SQLiteStore(tmp_path / "s.db"))


@pytest.fixture
def client(store: CountingStore) -> Iterator[httpx.Client]:
    transport = httpx.WSGITransport(app=wsgi_app(store))
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        yield client


def sid_of(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"session={value}"}


def test_anonymous_requests_create_nothing(client: httpx.Client, store: CountingStore) -> None:
    response = client.get("/read")
    assert response.json() == {"data": {}, "user": None}
    assert "set-cookie" not in response.headers
    assert store.calls == {}


def test_write_then_read(client: httpx.Client, store: CountingStore) -> None:
    sid = sid_of(client.get("/write?a=1"))
    store.reset()
    response = client.get("/read", headers=cookie(sid))
    assert response.json()["data"] == {"a": "1"}
    assert store.calls == {"load": 1}
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("value", ["", "x" * 5000, new_id()[:-1] + "!", "%00" * 43])
def test_bad_cookies_are_anonymous(client: httpx.Client, store: CountingStore, value: str) -> None:
    response = client.get("/read", headers={b"Cookie": f"session={value}".encode()})
    assert response.status_code == 200
    assert response.json() == {"data": {}, "user": None}
    assert store.calls == {}


def test_non_ascii_cookie_bytes_as_a_wsgi_server_passes_them(store: CountingStore) -> None:
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/read",
        "HTTP_COOKIE": b"session=\xc3\xa9\xff; x=\x80".decode("latin-1"),
    }
    body = wsgi_app(store)(environ, lambda status, headers, exc=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert b"".join(body) == b'{"data": {}, "user": null}'
    assert store.calls == {}


def test_a_failing_store_gives_503(tmp_path: Path) -> None:
    root = tmp_path / "files"
    store = FileStore(root)
    transport = httpx.WSGITransport(app=wsgi_app(store))
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        sid = sid_of(client.get("/write?a=1"))
        (root / ".locks").rename(tmp_path / "moved")
        (root / ".locks").write_text("not a directory")
        response = client.get("/write?b=2", headers=cookie(sid))
    assert response.status_code == 503
    assert response.text.startswith("Session store unavailable")


def test_the_wsgi_middleware_refuses_an_async_store() -> None:
    from coatcheck.stores import AsyncStoreAdapter

    with pytest.raises(TypeError, match="sync Store"):
        wsgi_app(AsyncStoreAdapter(MemoryStore()))  # type: ignore[arg-type]
