"""coatcheck.integrations.quart: a Quart application served by uvicorn, over real HTTP, on a real
SQLite store (a Redis URL at a closed port for the store-down case). Only the WebSocket
handshake and Quart's ``session_transaction`` are driven in-process, by Quart's test client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest
import quart
from quart.testing import WebsocketResponseError

from coatcheck.csrf import FORBIDDEN_BODY
from coatcheck.exchange import LIMITED_BODY, UNAVAILABLE_BODY
from coatcheck.ids import is_well_formed, new_id
from coatcheck.integrations.quart import CoatcheckSessionInterface, Session, current_session
from coatcheck.stores import SQLiteStore
from coatcheck.testing import key_of

from .servers import free_port, serve_asgi

CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
HEADER = "X-Session-Token"
ANONYMOUS: dict[str, Any] = {"data": {}, "user": None}


def quart_app(store_url: str, **config: Any) -> quart.Quart:
    """Routes that read, write, log in and out, regenerate, and take a form."""
    app = quart.Quart(__name__)
    app.config.update(COATCHECK_STORE_URL=store_url, SESSION_COOKIE_SAMESITE="Lax", **config)
    Session(app)

    def view() -> dict[str, Any]:
        session = current_session()
        return {"data": dict(session), "user": session.user_id}

    @app.get("/read")
    async def read() -> dict[str, Any]:
        return view()

    @app.post("/write")
    async def write() -> dict[str, Any]:
        quart.session.update(quart.request.args.to_dict())
        return view()

    @app.post("/login")
    async def login() -> dict[str, Any]:
        current_session().login(quart.request.args["user"])
        return view()

    @app.post("/logout")
    async def logout() -> dict[str, Any]:
        current_session().logout()
        return view()

    @app.post("/regenerate")
    async def regenerate() -> dict[str, Any]:
        current_session().regenerate()
        return view()

    @app.get("/csrf-token")
    async def token() -> str:
        return current_session().csrf_token()

    @app.post("/form")
    async def form() -> dict[str, Any]:
        return (await quart.request.form).to_dict()

    @app.websocket("/ws")
    async def ws() -> None:
        await quart.websocket.send(str(quart.session.get("colour")))

    return app


class Client:
    """Speaks to the app with exactly the ID it is given: in the cookie, or in the header."""

    def __init__(self, url: str, transport: str = "cookie") -> None:
        jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # keeps nothing
        self.http = httpx.Client(base_url=url, cookies=jar)
        self.transport = transport

    def send(self, method: str, path: str, sid: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if sid is not None:
            headers["Cookie" if self.transport == "cookie" else HEADER] = (
                f"session={sid}" if self.transport == "cookie" else sid
            )
        return self.http.request(method, path, headers=headers, **kw)

    def issued(self, response: httpx.Response) -> str | None:
        """The ID the response gives the client ("" when it must forget it), or None."""
        if self.transport == "header":
            found: str | None = response.headers.get(HEADER)
            return found
        cookie = response.headers.get("set-cookie")
        return None if cookie is None else cookie.split(";", 1)[0].partition("=")[2]

    def created(self, **data: str) -> str:
        sid = self.issued(self.send("POST", "/write", params=data))
        assert sid
        return sid

    def read(self, sid: str | None) -> Any:
        return self.send("GET", "/read", sid).json()


@contextmanager
def serving(store_url: str, transport: str = "cookie", **config: Any) -> Iterator[Client]:
    app = quart_app(store_url, COATCHECK_TRANSPORT=transport, **config)
    interface = app.extensions["coatcheck"]
    assert isinstance(interface, CoatcheckSessionInterface)
    with serve_asgi(app, cleanup=interface.store.close) as url:
        client = Client(url, transport)
        try:
            yield client
        finally:
            client.http.close()


def close(app: quart.Quart) -> None:
    """Close the store of an app driven in-process (its ``after_serving`` never runs)."""
    asyncio.run(app.extensions["coatcheck"].store.close())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def client(db: Path) -> Iterator[Client]:
    with serving(f"sqlite:///{db}") as client:
        yield client


def test_an_anonymous_request_sets_nothing(client: Client) -> None:
    response = client.send("GET", "/read")
    assert response.status_code == 200
    assert response.json() == ANONYMOUS
    assert "set-cookie" not in response.headers
    assert "cache-control" not in response.headers
    assert response.headers["vary"] == "Cookie"  # it read the session


def test_a_write_creates_a_session_kept_on_the_server(client: Client, db: Path) -> None:
    response = client.send("POST", "/write", params={"colour": "blue"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    sid = client.issued(response)
    assert sid is not None
    assert is_well_formed(sid)
    attributes = [part.strip() for part in cookie.split(";")]
    assert {"HttpOnly", "SameSite=Lax", "Path=/"} <= set(attributes)
    assert any(part.startswith("Max-Age=") for part in attributes)  # SESSION_PERMANENT
    assert "blue" not in cookie
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["vary"] == "Cookie"
    read = client.send("GET", "/read", sid)
    assert read.json() == {"data": {"colour": "blue"}, "user": None}
    assert client.issued(read) == sid  # SESSION_REFRESH_EACH_REQUEST re-sends it, as Flask does
    store = SQLiteStore(db)
    try:
        assert store.load(key_of(sid)) is not None
    finally:
        store.close()


def test_a_browser_session_cookie_without_session_permanent(db: Path) -> None:
    with serving(f"sqlite:///{db}", SESSION_PERMANENT=False) as client:
        response = client.send("POST", "/write", params={"a": "1"})
        assert "max-age" not in response.headers["set-cookie"].lower()
        assert client.read(client.issued(response)) == {"data": {"a": "1"}, "user": None}


def test_login_rotates_and_the_pre_login_id_is_dead(client: Client) -> None:
    sid = client.created(cart="tea")
    response = client.send("POST", "/login", sid, params={"user": "alice"})
    new = client.issued(response)
    assert new
    assert new != sid
    assert client.read(new) == {"data": {"cart": "tea"}, "user": "alice"}
    assert client.read(sid) == ANONYMOUS


def test_logout_kills_the_session(client: Client) -> None:
    sid = client.created(cart="tea")
    response = client.send("POST", "/logout", sid)
    assert client.issued(response) == ""
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert client.read(sid) == ANONYMOUS


def test_regenerate_gives_a_new_id_and_the_old_one_forwards(client: Client) -> None:
    sid = client.created(cart="tea")
    new = client.issued(client.send("POST", "/regenerate", sid))
    assert new
    assert new != sid
    assert client.read(new) == {"data": {"cart": "tea"}, "user": None}
    late = client.send("GET", "/read", sid)  # a request in flight: the grace window
    assert late.json() == {"data": {"cart": "tea"}, "user": None}
    assert "set-cookie" not in late.headers


def test_a_cross_site_post_is_refused(client: Client) -> None:
    sid = client.created(cart="tea")
    response = client.send("POST", "/write", sid, params={"cart": "rope"}, headers=CROSS_SITE)
    assert response.status_code == 403
    assert response.content == FORBIDDEN_BODY
    assert response.headers["cache-control"] == "no-store"
    assert client.read(sid)["data"] == {"cart": "tea"}
    same_site = {"Origin": str(client.http.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    allowed = client.send("POST", "/write", sid, params={"cart": "rope"}, headers=same_site)
    assert allowed.status_code == 200


def test_token_mode_reads_the_form_and_leaves_it_to_the_view(db: Path) -> None:
    with serving(f"sqlite:///{db}", COATCHECK_CSRF="token") as client:
        page = client.send("GET", "/csrf-token")  # a session just for the token
        sid, token = client.issued(page), page.text
        refused = client.send("POST", "/form", sid, data={"item": "rope"})
        assert refused.status_code == 403
        posted = client.send("POST", "/form", sid, data={"item": "rope", "csrf_token": token})
        assert posted.status_code == 200
        assert posted.json() == {"item": "rope", "csrf_token": token}


def test_503_when_the_store_is_down() -> None:
    with serving(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5") as client:
        assert client.read(None) == ANONYMOUS  # no ID: no store call
        for response in (
            client.send("GET", "/read", new_id()),  # the load fails
            client.send("POST", "/write", params={"a": "1"}),  # the commit fails
        ):
            assert response.status_code == 503
            assert response.content == UNAVAILABLE_BODY
            assert response.headers["retry-after"] == "5"
            assert response.headers["cache-control"] == "no-store"
            assert "set-cookie" not in response.headers


@pytest.mark.usefixtures("fresh_limit_window")
def test_429_over_the_creation_limit(db: Path) -> None:
    with serving(f"sqlite:///{db}", COATCHECK_MAX_CREATIONS_PER_CLIENT=2) as client:
        for _ in range(2):
            client.created(a="1")
        response = client.send("POST", "/write", params={"a": "1"})
        assert response.status_code == 429
        assert response.content == LIMITED_BODY
        assert int(response.headers["retry-after"]) >= 1
        assert "set-cookie" not in response.headers


def test_the_header_transport(db: Path) -> None:
    with serving(f"sqlite:///{db}", transport="header") as client:
        response = client.send("POST", "/write", params={"colour": "blue"})
        sid = response.headers[HEADER]
        assert is_well_formed(sid)
        assert "set-cookie" not in response.headers
        assert response.headers["vary"].lower() == "x-session-token"
        assert client.read(sid) == {"data": {"colour": "blue"}, "user": None}
        by_cookie = client.http.get("/read", headers={"Cookie": f"session={sid}"})
        assert by_cookie.json() == ANONYMOUS  # never read from a cookie
        # Nothing a browser attaches on its own: no CSRF check.
        cross = client.send("POST", "/write", sid, params={"b": "2"}, headers=CROSS_SITE)
        assert cross.status_code == 200
        new = client.issued(client.send("POST", "/login", sid, params={"user": "alice"}))
        assert new
        assert new != sid
        assert client.read(sid) == ANONYMOUS
        logout = client.send("POST", "/logout", new)
        assert logout.headers[HEADER] == ""
        assert "set-cookie" not in logout.headers
        assert client.read(new) == ANONYMOUS


def test_a_cross_site_websocket_handshake_is_refused(db: Path) -> None:
    app = quart_app(f"sqlite:///{db}")

    async def handshake(origin: str) -> str:
        headers = {"Origin": origin, "Host": "localhost"}
        async with app.test_client().websocket("/ws", headers=headers) as socket:
            return str(await socket.receive())

    try:
        assert asyncio.run(handshake("http://localhost")) == "None"
        with pytest.raises(WebsocketResponseError) as refused:
            asyncio.run(handshake("https://evil.example"))
        assert refused.value.response.status_code == 403
    finally:
        close(app)


def test_quart_test_client_session_transaction(db: Path) -> None:
    app = quart_app(f"sqlite:///{db}")

    async def run() -> Any:
        client = app.test_client()
        async with client.session_transaction() as session:
            session["colour"] = "green"
        return await (await client.get("/read")).get_json()

    try:
        assert asyncio.run(run()) == {"data": {"colour": "green"}, "user": None}
    finally:
        close(app)


def test_the_docs_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = Path(__file__).parent.parent / "docs" / "integrations" / "quart.md"
    code = re.search(r"```python\n(.*?)```", docs.read_text(), re.DOTALL)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "quart_docs_quickstart"}
    exec(compile(code.group(1), str(docs), "exec"), namespace)
    app: quart.Quart = namespace["app"]

    async def run() -> None:
        client = app.test_client()
        first = await client.post("/cart/apple")
        assert await first.get_json() == ["apple"]
        login = await client.post("/login/alice")
        assert login.status_code == 200
        assert login.headers["Set-Cookie"] != first.headers["Set-Cookie"]
        assert await (await client.post("/cart/pear")).get_json() == ["apple", "pear"]

    try:
        asyncio.run(run())
    finally:
        close(app)
    assert (tmp_path / "sessions.db").exists()
