"""The integration conformance suite: every integration, over real HTTP, behaves the same.

As the store conformance suite (:class:`coatcheck.testing.StoreConformance`) is one class of tests
with a fixture per store, this is one class of tests, :class:`IntegrationConformance`, with a
fixture per integration: ``serve``, the integration's serve function from
tests/integration_apps.py, which runs the same small application (write a key, read all, login,
logout, regenerate, a CSRF-checked write) built with that integration, on a real server, over a
real store (an SQLite file; a Redis URL at a closed port for the store-down case). Only what a
client sees is checked: status codes, headers, bodies.

Each case runs with the session ID in a cookie and again in a header (``transport="header"``).
An integration that cannot do a case today says so in its class's ``unsupported`` (case name, or
``"header"`` for the whole header transport, to the reason): the case is skipped with that
reason, never passed silently. A case an integration gets wrong today is listed in its
``known_bugs``: it runs as a strict ``xfail``, so the fix makes the run fail until the entry
goes. Adding an integration is a serve function in tests/integration_apps.py and a class
here of a few lines (see :class:`TestQuart`).

One server per integration and transport serves most cases (class scope); the limit and
store-down cases get servers of their own, on a fresh store.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from coatcheck.engine import run
from coatcheck.ids import is_well_formed, new_id
from coatcheck.stores import MemoryStore, Store, from_url
from coatcheck.tokens import TokenKey, TokenKeyRing, Tokens

from . import integration_apps as apps
from .integration_apps import TOKEN_KEYS, Serve, Served, Setup, Transport, access_tokens
from .servers import free_port

SESSION_HEADER = "X-Session-Token"
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
WRITERS = 50
UNAVAILABLE_BODY = b"Session store unavailable. Please retry shortly.\n"
LIMITED_BODY = b"Too many requests for new or unknown sessions. Please retry later.\n"
CSRF_BODY = b"Forbidden: the request failed its CSRF check.\n"
INVALID_TOKEN_BODY = b"Invalid access token.\n"
"""The bodies every integration answers a store failure (503), a limit (429) and, where CSRF
is coatcheck's, a cross-site request (403) with."""


def no_cookie_jar() -> CookieJar:
    """A jar that keeps nothing: every request carries exactly the ID a test gives it."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class Client:
    """Speaks to one served application the way its transport wants: the ID goes in the cookie
    or in ``X-Session-Token``, and comes back in ``Set-Cookie`` or in that header."""

    def __init__(self, served: Served, transport: Transport, store_url: str = "") -> None:
        self.served, self.transport, self.store_url = served, transport, store_url
        self.http = httpx.Client(base_url=served.url, cookies=no_cookie_jar(), timeout=30)

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        method: str,
        path: str,
        sid: str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if sid is not None:
            if self.transport == "header":
                headers[SESSION_HEADER] = sid
            else:
                headers["Cookie"] = f"{self.served.cookie_name}={sid}"
        return self.http.request(method, path, params=params, headers=headers)

    def post(self, path: str, sid: str | None = None, **params: str) -> httpx.Response:
        return self.send("POST", path, sid, params=params)

    def read(self, sid: str | None) -> dict[str, Any]:
        response = self.send("GET", "/read", sid)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def created(self, **data: str) -> str:
        """A new session holding ``data``; the ID the response handed out."""
        response = self.post("/write", **data)
        assert response.status_code == 200, response.text
        sid = self.issued(response)
        assert sid is not None, "a first write hands out an ID"
        if self.transport == "header":
            assert "set-cookie" not in response.headers
        return sid

    def logged_in(self, sid: str, user: str) -> str:
        response = self.post("/login", sid, user=user)
        assert response.status_code == 200, response.text
        new = self.issued(response)
        assert new is not None, "a login hands out a new ID"
        return new

    def _cookies(self, response: httpx.Response) -> list[str]:
        prefix = f"{self.served.cookie_name}="
        return [h for h in response.headers.get_list("set-cookie") if h.startswith(prefix)]

    def issued(self, response: httpx.Response) -> str | None:
        """The ID the response gives the client, if it gives one."""
        if self.transport == "header":
            value = response.headers.get(SESSION_HEADER)
            return value or None
        for header in self._cookies(response):
            value = header.split(";", 1)[0].split("=", 1)[1].strip('"')
            if value and "max-age=0" not in header.lower():
                assert is_well_formed(value), header
                return value
        return None

    def expired(self, response: httpx.Response) -> bool:
        """Whether the response tells the client to drop its ID."""
        if self.transport == "header":
            value: str | None = response.headers.get(SESSION_HEADER)
            return value == ""
        return any(
            "max-age=0" in header.lower() or header.split(";", 1)[0].endswith("=")
            for header in self._cookies(response)
        )

    def silent(self, response: httpx.Response) -> bool:
        """Whether the response says nothing about the session ID (no cookie, no header)."""
        if self.transport == "header":
            return SESSION_HEADER not in response.headers and "set-cookie" not in response.headers
        return not self._cookies(response)


ANONYMOUS: dict[str, Any] = {"data": {}, "user": None}


def cross_site(url: str) -> list[dict[str, str]]:
    """The ways a browser marks a request from another site to the one at ``url``."""
    host = url.removeprefix("http://")
    return [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://{host}.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        CROSS_SITE,
    ]


def assert_csrf_refused(client: Client, response: httpx.Response) -> None:
    """A 403; from coatcheck's own check, its plain-text body that no cache keeps (Django's
    CSRF answers with Django's page)."""
    assert response.status_code == 403, response.text
    if client.served.coatcheck_csrf:
        assert response.content == CSRF_BODY
        assert response.headers["cache-control"] == "no-store"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(client: Client, response: httpx.Response) -> None:
    """The 401 of a refused access token: plain text, no cache, the Bearer challenge."""
    assert response.status_code == 401, response.text
    assert response.content == INVALID_TOKEN_BODY
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["cache-control"] == "no-store"
    assert client.silent(response)


def assert_refused(client: Client, response: httpx.Response, status: int, body: bytes) -> None:
    """A plain-text refusal no cache keeps, with ``Retry-After``, and no ID handed out."""
    assert response.status_code == status, response.text
    assert response.content == body
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    assert 1 <= int(response.headers["retry-after"]) <= client.served.limit_window
    assert client.issued(response) is None


class IntegrationConformance:
    """The cases every integration passes, each with the ID in a cookie and in a header.

    Subclasses provide the ``serve`` fixture and, where the integration cannot do a case
    today, ``unsupported``: case name (the test's name without ``test_``), or ``"header"``
    for every case with ``transport="header"``, to the reason.
    """

    unsupported: ClassVar[dict[str, str]] = {}
    known_bugs: ClassVar[dict[str, str]] = {}
    """Case name to a bug the integration has today: the case runs, expected to fail
    (``xfail``, strict: once the bug is fixed it passes, fails the run, and its entry goes)."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        raise NotImplementedError("an integration's class provides its serve function")

    @pytest.fixture(scope="class", params=["cookie", "header"])
    @classmethod
    def transport(cls, request: pytest.FixtureRequest) -> Transport:
        transport: Transport = request.param
        if transport == "header" and "header" in cls.unsupported:
            pytest.skip(f'transport="header": {cls.unsupported["header"]}')
        return transport

    @pytest.fixture(autouse=True)
    def _supported(self, request: pytest.FixtureRequest, transport: Transport) -> None:
        case = request.function.__name__.removeprefix("test_")
        if case in self.unsupported:
            pytest.skip(f"{case}: {self.unsupported[case]}")
        if case in self.known_bugs:
            reason = f"known bug: {self.known_bugs[case]}"
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    @pytest.fixture(scope="class")
    @classmethod
    def client(
        cls, serve: Serve, transport: Transport, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Client]:
        """The application on an SQLite store, shared by the class's cases for a transport;
        it accepts Bearer access tokens too (``access_tokens``), which its other cases ignore."""
        folder = tmp_path_factory.mktemp("conformance")
        setup = Setup(f"sqlite:///{folder / 'sessions.db'}", transport, tokens=True)
        with serve(setup) as served:
            client = Client(served, transport, setup.store_url)
            yield client
            client.close()

    @pytest.fixture
    def limited(self, serve: Serve, transport: Transport, tmp_path: Path) -> Iterator[Client]:
        """The application with its per-client limits on, on a fresh SQLite store."""
        setup = Setup(f"sqlite:///{tmp_path / 'limited.db'}", transport, limited=True)
        with serve(setup) as served:
            client = Client(served, transport)
            yield client
            client.close()

    @pytest.fixture
    def store_down(self, serve: Serve, transport: Transport) -> Iterator[Client]:
        """The application on a Redis store at a port nothing listens on."""
        setup = Setup(f"redis://127.0.0.1:{free_port()}/0?timeout=0.5", transport, tokens=True)
        with serve(setup) as served:
            client = Client(served, transport)
            yield client
            client.close()

    # -- the cases -------------------------------------------------------------------------

    def test_anonymous(self, client: Client) -> None:
        """A request without an ID reads an empty session and is given none."""
        response = client.send("GET", "/read")
        assert response.status_code == 200
        assert response.json() == ANONYMOUS
        assert client.silent(response)
        assert "set-cookie" not in response.headers

    def test_login(self, client: Client) -> None:
        """Login hands out a new ID bound to the user; the pre-login ID names nothing after."""
        sid = client.created(cart="tea")
        response = client.post("/login", sid, user="alice")
        assert response.status_code == 200
        new = client.issued(response)
        assert new is not None
        assert new != sid
        assert response.json() == {"data": {"cart": "tea"}, "user": "alice"}
        assert client.read(new) == {"data": {"cart": "tea"}, "user": "alice"}
        dead = client.send("GET", "/read", sid)
        assert dead.json() == ANONYMOUS
        assert client.expired(dead)
        # A write through the dead ID starts another session; the user's is untouched.
        stray = client.post("/write", sid, note="planted")
        assert client.issued(stray) not in (None, sid, new)
        assert client.read(new) == {"data": {"cart": "tea"}, "user": "alice"}

    def test_logout(self, client: Client) -> None:
        """Logout ends the session: the response drops the ID, which names nothing after."""
        sid = client.logged_in(client.created(cart="tea"), "alice")
        response = client.post("/logout", sid)
        assert response.status_code == 200
        assert response.json() == ANONYMOUS
        assert client.expired(response)
        assert client.issued(response) is None
        assert client.read(sid) == ANONYMOUS

    def test_no_store(self, client: Client) -> None:
        """Every response that hands out an ID (a new session, a login, a regenerate) or drops
        one (a logout) is kept out of caches: ``Cache-Control: no-store``."""
        created = client.post("/write", cart="tea")
        logged_in = client.post("/login", client.issued(created), user="alice")
        rotated = client.post("/regenerate", client.issued(logged_in))
        logged_out = client.post("/logout", client.issued(rotated))
        assert client.expired(logged_out)
        for response in (created, logged_in, rotated, logged_out):
            assert response.status_code == 200
            assert response.headers.get("cache-control") == "no-store", response.request.url

    def test_grace_window(self, client: Client) -> None:
        """A plain regenerate leaves the old ID forwarding to the new session for a while;
        answers to it change the session the new ID names and hand out no ID."""
        sid = client.created(cart="tea")
        rotated = client.post("/regenerate", sid)
        assert rotated.status_code == 200
        new = client.issued(rotated)
        assert new is not None
        assert new != sid
        late = client.post("/write", sid, more="milk")  # a request already in flight
        assert late.status_code == 200
        assert late.json() == {"data": {"cart": "tea", "more": "milk"}, "user": None}
        assert client.silent(late)
        read = client.send("GET", "/read", sid)
        assert read.json()["data"] == {"cart": "tea", "more": "milk"}
        assert client.silent(read)
        assert client.read(new) == {"data": {"cart": "tea", "more": "milk"}, "user": None}

    def test_concurrent_writers(self, client: Client) -> None:
        """50 requests at once, each setting its own key on one session (each holds the
        version it loaded for 50 ms): all 50 keys are kept."""
        sid = client.created(start="0")

        def write(n: int) -> int:
            return client.post("/write", sid, delay="0.05", **{f"k{n}": str(n)}).status_code

        with ThreadPoolExecutor(WRITERS) as pool:
            statuses = list(pool.map(write, range(WRITERS)))
        assert statuses == [200] * WRITERS
        expected = {"start": "0", **{f"k{n}": str(n) for n in range(WRITERS)}}
        assert client.read(sid)["data"] == expected

    def test_csrf(self, client: Client, transport: Transport) -> None:
        """With the session in a cookie, a cross-site POST (as a browser marks it: Origin,
        Sec-Fetch-Site) is refused with 403 and changes nothing, with or without a session;
        POSTs from the site itself, and from clients that send neither header, pass (with the
        token where the integration's CSRF wants one). A session in a header is nothing a
        browser sends on its own: a cross-site POST carrying it passes."""
        sid = client.created(cart="tea")
        forms = cross_site(client.served.url)
        if transport == "header":
            for n, headers in enumerate(forms):
                passed = client.send("POST", "/guarded", sid, {f"app{n}": "1"}, headers)
                assert passed.status_code == 200, (headers, passed.text)
            expected = {"cart": "tea", **{f"app{n}": "1" for n in range(len(forms))}}
            assert client.read(sid)["data"] == expected
            return
        token = {client.served.csrf_header: client.send("GET", "/csrf-token", sid).text}
        same_site = [{}, {"Origin": client.served.url}, {"Sec-Fetch-Site": "same-origin"}]
        for n, headers in enumerate(same_site):
            passed = client.send("POST", "/guarded", sid, {f"ok{n}": "1"}, {**headers, **token})
            assert passed.status_code == 200, (headers, passed.text)
        for headers in forms:
            forged = client.send("POST", "/guarded", sid, {"evil": "1"}, headers)
            assert_csrf_refused(client, forged)
            assert client.issued(forged) in (None, sid)  # Flask re-sends a permanent session's
        anonymous = client.send("POST", "/guarded", None, {"evil": "1"}, CROSS_SITE)
        assert_csrf_refused(client, anonymous)
        assert "set-cookie" not in anonymous.headers  # nothing was stored for it
        expected = {"cart": "tea", **{f"ok{n}": "1" for n in range(len(same_site))}}
        assert client.read(sid)["data"] == expected

    def test_bearer(self, client: Client) -> None:
        """A request with a valid access token acts as the token's user, whatever session ID
        it also carries (that session is left as it was), sets and hands out nothing, and is
        not subject to the CSRF check: a Bearer POST from another site is served."""
        tokens = access_tokens()
        with closing(from_url(client.store_url)) as store:
            assert isinstance(store, Store)
            pair = run(tokens.login("alice"), store)
        bearer = {"Authorization": f"Bearer {pair.access_token}"}
        read = client.send("GET", "/read", headers=bearer)
        assert read.status_code == 200, read.text
        assert read.json() == {"data": {}, "user": "alice"}
        assert client.silent(read)
        sid = client.logged_in(client.created(cart="tea"), "bob")
        carried = client.send("GET", "/read", sid, headers=bearer)
        assert carried.json() == {"data": {}, "user": "alice"}
        assert client.silent(carried)
        forged = client.send("POST", "/whoami", sid, headers={**bearer, **CROSS_SITE})
        assert forged.status_code == 200, forged.text
        assert forged.json() == {"data": {}, "user": "alice"}
        assert client.silent(forged)
        assert client.read(sid) == {"data": {"cart": "tea"}, "user": "bob"}

    def test_bearer_refused(self, client: Client) -> None:
        """A malformed, tampered, foreign-signed or revoked access token is a 401 with
        ``WWW-Authenticate: Bearer error="invalid_token"`` (never a 500, never the app's
        answer), and hands out nothing."""
        tokens = access_tokens()
        with closing(from_url(client.store_url)) as store:
            assert isinstance(store, Store)
            token = run(tokens.login("carol"), store).access_token
            header, payload, signature = token.split(".")
            foreign = Tokens(
                tokens.engine,
                TokenKeyRing([TokenKey.generate("EdDSA", kid=TOKEN_KEYS.signing_key.kid)]),
                issuer="conformance",
                audience="conformance-api",
            )
            refused = [
                "not-a-token",
                f"{header}.{payload}",
                f"{header}.{payload}.{signature[:-4]}",
                f"{header}.{payload[:-2]}AA.{signature}",
                run(foreign.login("carol"), store).access_token,
            ]
            for value in refused:
                assert_unauthorized(client, client.send("GET", "/read", headers=bearer(value)))
            assert client.send("GET", "/read", headers=bearer(token)).status_code == 200
            run(tokens.logout_everywhere("carol"), store)
        revoked = client.send("POST", "/whoami", headers=bearer(token))
        assert_unauthorized(client, revoked)

    def test_store_down(self, store_down: Client) -> None:
        """With the store unreachable, a request that needs it gets 503 (never a 500, never
        the app's answer without its session); one that needs none is served."""
        client = store_down
        assert client.read(None) == ANONYMOUS
        write = client.post("/write", cart="tea")
        assert_refused(client, write, 503, UNAVAILABLE_BODY)
        assert write.headers["retry-after"] == "5"
        read = client.send("GET", "/read", new_id())
        assert_refused(client, read, 503, UNAVAILABLE_BODY)

    def test_bearer_store_down(self, store_down: Client) -> None:
        """A valid access token whose revocation record cannot be read (the store is down) is
        a 503, as a session that cannot be loaded is: never a 500, never served unchecked."""
        pair = run(access_tokens().login("dora"), MemoryStore())  # issued elsewhere
        response = store_down.send("GET", "/read", headers=bearer(pair.access_token))
        assert_refused(store_down, response, 503, UNAVAILABLE_BODY)

    def test_rejection_limit(self, limited: Client) -> None:
        """Past its limit of IDs naming no session, a client gets 429 with Retry-After."""
        client = limited
        limit = client.served.rejection_limit
        assert limit is not None
        statuses: list[int] = []
        # Counting windows are aligned to the clock: a window may end mid-test and reset the
        # count once, so the 429 comes within twice the limit.
        for _ in range(2 * limit + 1):
            response = client.send("GET", "/read", new_id())
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
        assert statuses[:limit] == [200] * limit
        assert statuses[-1] == 429, statuses
        assert_refused(client, response, 429, LIMITED_BODY)

    def test_creation_limit(self, limited: Client) -> None:
        """Past its limit of new sessions, a client gets 429 with Retry-After; its existing
        session carries on."""
        client = limited
        limit = client.served.creation_limit
        assert limit is not None
        sid = client.created(mine="1")
        statuses: list[int] = []
        for n in range(2 * limit + 1):
            response = client.post("/write", n=str(n))
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
        assert statuses[: limit - 1] == [200] * (limit - 1)
        assert statuses[-1] == 429, statuses
        assert_refused(client, response, 429, LIMITED_BODY)
        assert client.post("/write", sid, more="2").status_code == 200
        assert client.read(sid)["data"] == {"mine": "1", "more": "2"}


# -- the integrations ------------------------------------------------------------------------


class TestRawASGI(IntegrationConformance):
    """``coatcheck.asgi.SessionMiddleware`` around a bare ASGI app, under uvicorn."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_raw_asgi


class TestRawWSGI(IntegrationConformance):
    """``coatcheck.wsgi.SessionMiddleware`` around a bare WSGI app, under wsgiref (threads)."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_raw_wsgi


class TestStarlette(IntegrationConformance):
    """``coatcheck.integrations.starlette.SessionMiddleware`` (Starlette's arguments), uvicorn."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_starlette


class TestFastAPI(IntegrationConformance):
    """The Starlette integration's middleware with ``SessionDep``."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_fastapi


class TestLitestar(IntegrationConformance):
    """``CoatcheckSessionConfig(...).middleware`` in a Litestar app, under uvicorn."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_litestar


class TestAiohttp(IntegrationConformance):
    """``coatcheck.integrations.aiohttp.setup``, under aiohttp's own server."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_aiohttp_app


class TestFlask(IntegrationConformance):
    """``coatcheck.integrations.flask.Session(app)`` (``COATCHECK_*`` keys), under wsgiref."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_flask


class TestQuart(IntegrationConformance):
    """``coatcheck.integrations.quart.Session(app)`` (Flask's ``COATCHECK_*`` keys), under
    uvicorn."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_quart


class TestDjango(IntegrationConformance):
    """Django's WSGI handler; CSRF is Django's ``CsrfViewMiddleware`` (``CSRF_USE_SESSIONS``)."""

    @pytest.fixture(scope="class")
    @classmethod
    def serve(cls) -> Serve:
        return apps.serve_django
