"""The demo shop's session security, black-box: `coatcheck demo` in its own process, real HTTP,
and the store it uses opened behind its back. Each test is one property an attacker (or bad
luck) must not break:

- fixation: the ID from before login is dead after it, and an ID the server never issued is
  never adopted;
- logout, and log out everywhere: an old cookie replayed is anonymous;
- idle and absolute expiry, on the server (cookies are replayed by hand, so that no client
  drops them first);
- the cookie's attributes when it is issued, rotated and cleared;
- CSRF: an unsafe request without its session's token, or from another site, is refused and
  does nothing;
- a tampered or planted record (garbage, flipped bytes, a pickle) is read as no session: the
  request is anonymous, never a 500, and nothing is unpickled;
- a store that dies mid-session fails closed (503), and service resumes when it is back.

Cookies are replayed with an explicit ``Cookie`` header wherever the point is what the server
does with it: httpx's cookie jar would drop an expired or cleared cookie itself.
"""

from __future__ import annotations

import pickle
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from coatcheck.ids import store_key
from coatcheck.limits import is_counter
from coatcheck.stores import SQLiteStore

from .redis_servers import PrivateRedis
from .shop_servers import Demo, csrf_token, log_in, require_program, run_demo

IDLE, ABSOLUTE = 2.0, 4.0
"""The short timeouts of the expiry test's shop, in seconds."""
MARGIN = 0.15
"""How far past a deadline the expiry test looks (the server's and the test's clocks agree)."""


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop-security") / "shop.db"


@pytest.fixture(scope="module")
def shop(database: Path) -> Iterator[Demo]:
    with run_demo("--store", f"sqlite:///{database}") as demo:
        yield demo


def client(shop: Demo) -> httpx.Client:
    return httpx.Client(base_url=shop.url)


def as_cookie(value: str) -> dict[str, str]:
    return {"cookie": f"session={value}"}


def replay(shop: Demo, path: str, cookie: str) -> httpx.Response:
    """A GET carrying ``cookie`` and nothing else, as an attacker holding it would send."""
    return httpx.get(shop.url + path, headers=as_cookie(cookie))


def assert_anonymous(shop: Demo, cookie: str) -> None:
    """The server treats ``cookie`` as no session: no user, an empty cart, a page saying so,
    and never a server error. Each answer replaces the cookie: clears it, or (a page with a
    form) issues a new anonymous session under another ID."""
    me, cart, page = (replay(shop, path, cookie) for path in ("/api/me", "/api/cart", "/"))
    assert me.status_code == 401, me.text
    assert cart.status_code == 200, cart.text
    assert cart.json()["items"] == []
    assert page.status_code == 200, page.text
    assert "Not logged in" in page.text
    for answer in (me, cart, page):
        replaced = set_cookie(answer)
        assert replaced.value != cookie
        assert replaced.value == "" or replaced.attributes["max-age"] != "0"


class SetCookie(NamedTuple):
    name: str
    value: str
    attributes: dict[str, str]
    """Attribute names in lower case; a flag (HttpOnly) maps to ""."""


def set_cookie(response: httpx.Response) -> SetCookie:
    """The one Set-Cookie header of a response, parsed."""
    (header,) = response.headers.get_list("set-cookie")
    pair, *attributes = (part.strip() for part in header.split(";"))
    name, value = pair.split("=", 1)
    parsed = {}
    for attribute in attributes:
        key, _, attribute_value = attribute.partition("=")
        parsed[key.lower()] = attribute_value
    return SetCookie(name, value, parsed)


# -- fixation ------------------------------------------------------------------------------


def test_the_id_from_before_login_is_dead_after_it(shop: Demo) -> None:
    with client(shop) as http:
        csrf_token(http)
        http.post("/api/cart/items", json={"product_id": "scarf"})
        before = http.cookies["session"]
        log_in(http, "bob")
        after = http.cookies["session"]
        assert after != before
        assert_anonymous(shop, before)
        assert [item["product_id"] for item in http.get("/api/cart").json()["items"]] == ["scarf"]
        assert http.get("/api/me").json()["user"] == "bob"


def test_an_id_the_server_never_issued_is_never_adopted(shop: Demo) -> None:
    """An attacker plants an ID of the right form in the victim's browser; the shop issues
    its own instead, before login and again at login."""
    planted = secrets.token_urlsafe(32)
    issued = httpx.get(shop.url + "/api/csrf", headers=as_cookie(planted))
    own = set_cookie(issued).value
    assert own not in ("", planted)
    logged_in = httpx.post(
        shop.url + "/api/login",
        json={"username": "bob", "password": "coatcheck"},
        headers={**as_cookie(own), "x-csrf-token": issued.json()["csrf_token"]},
    )
    assert logged_in.status_code == 200
    assert set_cookie(logged_in).value not in (planted, own)
    assert_anonymous(shop, planted)


# -- logout --------------------------------------------------------------------------------


def test_after_logout_the_old_cookie_is_anonymous(shop: Demo) -> None:
    with client(shop) as http:
        log_in(http, "alice")
        http.post("/api/cart/items", json={"product_id": "hat"})
        cookie = http.cookies["session"]
        assert http.post("/api/logout").status_code == 204
    assert_anonymous(shop, cookie)


def test_logging_out_everywhere_ends_another_clients_session(shop: Demo) -> None:
    with client(shop) as laptop, client(shop) as phone:
        log_in(laptop, "carol")
        log_in(phone, "carol")
        phone_cookie = phone.cookies["session"]
        assert laptop.post("/api/logout-all").json() == {"sessions_ended": 2}
        assert_anonymous(shop, phone_cookie)
        assert phone.get("/api/me").status_code == 401


# -- expiry --------------------------------------------------------------------------------


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def me(shop: Demo, cookie: str) -> httpx.Response:
    return replay(shop, "/api/me", cookie)


def test_a_session_ends_when_idle_and_at_its_absolute_deadline_however_active() -> None:
    """One shopper logs in and goes idle; another keeps clicking every second. The first is
    logged out an idle timeout after their last click; the second at the absolute deadline,
    a second after their last click."""
    timeouts = ["--idle-timeout", str(IDLE), "--absolute-timeout", str(ABSOLUTE)]
    with run_demo(*timeouts, "--touch-interval", "0", "--store", "memory://") as shop:
        with client(shop) as idle, client(shop) as busy:
            log_in(idle)
            idle_since = time.time()
            log_in(busy)
            busy_since = time.time()
            idle_cookie, busy_cookie = idle.cookies["session"], busy.cookies["session"]
        assert int(set_cookie(me(shop, busy_cookie)).attributes["max-age"]) <= IDLE

        wait_until(busy_since + 1)
        assert me(shop, busy_cookie).status_code == 200
        wait_until(idle_since + IDLE + MARGIN)
        assert me(shop, idle_cookie).status_code == 401  # idle for IDLE seconds
        assert me(shop, busy_cookie).status_code == 200

        wait_until(busy_since + ABSOLUTE - 1)
        active = me(shop, busy_cookie)
        assert active.status_code == 200
        assert active.json()["expires_at"] == active.json()["absolute_deadline"]
        wait_until(busy_since + ABSOLUTE + MARGIN)
        assert me(shop, busy_cookie).status_code == 401  # active a second ago, yet ended


# -- the cookie ----------------------------------------------------------------------------


def test_the_cookie_is_http_only_lax_site_wide_and_lives_as_long_as_its_session(
    shop: Demo,
) -> None:
    """Checked when the cookie is issued (an anonymous session), rotated (login) and cleared
    (logout). The demo serves plain http on loopback, so its cookie is not ``Secure`` (and so
    cannot be ``__Host-`` prefixed); it has no option to turn that on, since the cookie would
    then never come back over http. ``secure=True`` itself is specified by the core's tests
    (tests/test_cookies.py, tests/test_config.py)."""
    with client(shop) as http:
        issued = http.get("/api/csrf")
        http.headers["x-csrf-token"] = issued.json()["csrf_token"]
        rotated = http.post("/api/login", json={"username": "alice", "password": "coatcheck"})
        http.headers["x-csrf-token"] = rotated.json()["csrf_token"]
        cleared = http.post("/api/logout")
    first, second, last = set_cookie(issued), set_cookie(rotated), set_cookie(cleared)
    assert first.value != second.value
    for cookie in (first, second, last):
        assert cookie.name == "session"
        assert "httponly" in cookie.attributes
        assert cookie.attributes["samesite"] == "Lax"
        assert cookie.attributes["path"] == "/"
        assert "domain" not in cookie.attributes  # this host only
        assert "secure" not in cookie.attributes  # plain http: see the docstring
    for cookie in (first, second):
        assert cookie.value
        assert 1790 <= int(cookie.attributes["max-age"]) <= 1800  # the idle timeout
    assert last.value == ""
    assert last.attributes["max-age"] == "0"
    for response in (issued, rotated, cleared):
        assert response.headers["cache-control"] == "no-store"  # no cache keeps a cookie


# -- CSRF ----------------------------------------------------------------------------------


def test_an_unsafe_request_without_its_sessions_token_is_refused_and_does_nothing(
    shop: Demo,
) -> None:
    with client(shop) as victim, client(shop) as attacker:
        log_in(victim, "bob")
        cookie, token = victim.cookies["session"], victim.headers["x-csrf-token"]
        someone_elses = csrf_token(attacker)
        forgeries: dict[str, dict[str, str]] = {
            "no token": {},
            "an empty token": {"x-csrf-token": ""},
            "another session's token": {"x-csrf-token": someone_elses},
            "a made-up token": {"x-csrf-token": secrets.token_urlsafe(64)},
            "a cross-site origin": {"x-csrf-token": token, "origin": "http://shop.evil.example"},
            "the shop's host and port over https": {
                "x-csrf-token": token,
                "origin": "https://" + shop.url.removeprefix("http://"),
            },
            "a cross-site fetch": {"x-csrf-token": token, "sec-fetch-site": "cross-site"},
            "an opaque origin": {"x-csrf-token": token, "origin": "null"},
        }
        for why, headers in forgeries.items():
            sent = {**as_cookie(cookie), **headers}
            api = httpx.post(shop.url + "/api/cart/items", json={"product_id": "hat"}, headers=sent)
            assert api.status_code == 403, why
            assert api.text == "Forbidden: the request failed its CSRF check.\n"
            form = {"product_id": "hat"}
            if "x-csrf-token" in headers:
                form["csrf_token"] = headers["x-csrf-token"]
            others = {name: value for name, value in sent.items() if name != "x-csrf-token"}
            page = httpx.post(shop.url + "/cart/items", data=form, headers=others)
            assert page.status_code == 403, why
            logout = httpx.post(shop.url + "/api/logout", headers=sent)
            assert logout.status_code == 403, why
        assert victim.get("/api/cart").json()["items"] == []  # nothing was added
        assert victim.get("/api/me").json()["user"] == "bob"  # nor logged out
        same_site = victim.post(
            "/api/cart/items", json={"product_id": "hat"}, headers={"origin": shop.url}
        )
        assert same_site.status_code == 200  # the genuine request, from the shop's own origin


def test_a_token_from_before_login_is_refused_after_it(shop: Demo) -> None:
    with client(shop) as http:
        before = csrf_token(http)
        log_in(http, "alice")
        stale = http.post(
            "/api/cart/items", json={"product_id": "hat"}, headers={"x-csrf-token": before}
        )
        assert stale.status_code == 403
        assert http.get("/api/cart").json()["items"] == []


def stored(database: Path) -> set[tuple[Any, ...]]:
    with closing(sqlite3.connect(database, timeout=5)) as db:
        return set(
            db.execute("SELECT key, data, expires_at, version, user_id FROM coatcheck_sessions")
        )


def test_a_forged_login_is_refused_and_stores_nothing(shop: Demo, database: Path) -> None:
    """Login CSRF: another site logs the victim into the attacker's account."""
    before = stored(database)
    forged = httpx.post(
        shop.url + "/api/login",
        json={"username": "bob", "password": "coatcheck"},
        headers={"origin": "http://shop.evil.example"},
    )
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers
    page = httpx.post(shop.url + "/login", data={"username": "bob", "password": "coatcheck"})
    assert page.status_code == 403
    assert "set-cookie" not in page.headers
    assert stored(database) == before


# -- the store, tampered with --------------------------------------------------------------


def logged_in_with_a_cart(shop: Demo) -> str:
    with client(shop) as http:
        log_in(http, "alice")
        http.post("/api/cart/items", json={"product_id": "umbrella"})
        return http.cookies["session"]


def record_of(database: Path, cookie: str) -> bytes:
    with closing(sqlite3.connect(database, timeout=5)) as db:
        (data,) = db.execute(
            "SELECT data FROM coatcheck_sessions WHERE key = ?", (store_key(cookie),)
        ).fetchone()
    return bytes(data)


def overwrite(database: Path, cookie: str, data: bytes) -> None:
    """Replace the session's stored record, as someone with write access to the store would."""
    with closing(sqlite3.connect(database, timeout=5)) as db, db:
        changed = db.execute(
            "UPDATE coatcheck_sessions SET data = ? WHERE key = ?", (data, store_key(cookie))
        ).rowcount
    assert changed == 1


def flip(data: bytes, at: int) -> bytes:
    """``data`` with every bit of one byte inverted."""
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "its first byte flipped": lambda raw: flip(raw, 0),
    "a byte in the middle flipped": lambda raw: flip(raw, len(raw) // 2),
    "its last byte flipped": lambda raw: flip(raw, -1),
    "cut in half": lambda raw: raw[: len(raw) // 2],
    "emptied": lambda raw: b"",
    "binary garbage": lambda raw: bytes(range(256)) * 4,
    "JSON of another shape": lambda raw: b'{"c":"yesterday","a":null,"d":[1,2]}',
    "the bare data, without its envelope": lambda raw: b'{"user":"admin","cart":{}}',
    "JSON null": lambda raw: b"null",
}


@pytest.mark.parametrize("how", TAMPERINGS)
def test_a_tampered_record_is_no_session_and_no_error(shop: Demo, database: Path, how: str) -> None:
    cookie = logged_in_with_a_cart(shop)
    overwrite(database, cookie, TAMPERINGS[how](record_of(database, cookie)))
    assert_anonymous(shop, cookie)


@pytest.mark.parametrize(
    "creation", [b"1e300", b"-5", b"253402300800"], ids=["1e300", "negative", "past 9999"]
)
def test_another_session_with_an_absurd_creation_time_leaves_the_sessions_page_working(
    shop: Demo, database: Path, creation: bytes
) -> None:
    # Alice's other session, altered by a store writer: once, the page's date raised (a 500).
    other = logged_in_with_a_cart(shop)
    record = record_of(database, other)
    overwrite(database, other, b'{"c":' + creation + record[record.index(b',"a":') :])
    with client(shop) as http:
        log_in(http, "alice")
        for path in ("/sessions", "/api/sessions"):
            response = http.get(path)
            assert response.status_code == 200, response.text


class Planted:
    """A pickle whose unpickling creates ``marker`` (``open(marker, "x")``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "x"))


def test_a_planted_pickle_is_never_unpickled(shop: Demo, database: Path, tmp_path: Path) -> None:
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Planted(control))).close()  # the payload is live:
    assert control.exists()  # unpickling it does create its marker
    marker = tmp_path / "marker"
    for protocol in (0, pickle.DEFAULT_PROTOCOL):
        cookie = logged_in_with_a_cart(shop)
        overwrite(database, cookie, pickle.dumps(Planted(marker), protocol=protocol))
        assert_anonymous(shop, cookie)
        assert not marker.exists()


# -- the store, gone -----------------------------------------------------------------------


def test_a_dead_store_fails_closed_and_service_resumes_when_it_is_back(tmp_path: Path) -> None:
    """Redis, a private one, is killed mid-session: every request that carries the session
    gets a 503 (never the page without its session, never a 500). Restarted (it keeps its data
    on disk), it serves the same session again."""
    require_program("redis-server", shutil.which("redis-server"), "apt-get install redis-server")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        store = f"redis://127.0.0.1:{redis.port}/0?prefix=shop-security:"
        with run_demo("--store", store) as shop, client(shop) as http:
            log_in(http, "alice")
            http.post("/api/cart/items", json={"product_id": "scarf"})
            redis.kill()
            for answer in (
                http.get("/api/me"),
                http.get("/api/cart"),
                http.get("/"),
                http.post("/api/cart/items", json={"product_id": "hat"}),
                http.post("/api/logout"),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "5"
                assert "set-cookie" not in answer.headers
            newcomer = httpx.get(shop.url + "/api/csrf")  # a new session cannot be stored either
            assert newcomer.status_code == 503
            assert httpx.get(shop.url + "/api/products").status_code == 200  # no session needed

            redis.start()
            deadline = time.monotonic() + 10
            while (answer := http.get("/api/me")).status_code != 200:
                assert answer.status_code == 503, answer.text
                assert time.monotonic() < deadline, "service did not resume"
                time.sleep(0.05)
            assert answer.json()["user"] == "alice"
            cart = http.get("/api/cart").json()
            assert [item["product_id"] for item in cart["items"]] == ["scarf"]  # the hat never was
    finally:
        redis.kill()


# -- creation floods -----------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_limit_window")
def test_a_creation_flood_gets_429_while_a_logged_in_user_is_unaffected(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'flood.db'}"
    with (
        run_demo("--store", store, "--max-new-sessions", "5") as shop,
        httpx.Client(base_url=shop.url) as alice,
    ):
        log_in(alice)  # one new session (for the login form's token), then a login
        statuses = []
        for _ in range(10):  # cookie-less clients asking for a token: each makes a session
            answer = httpx.get(shop.url + "/api/csrf")
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert 1 <= int(answer.headers["retry-after"]) <= 60
                assert "set-cookie" not in answer.headers
        assert statuses[:4] == [200] * 4
        assert statuses[4:] == [429] * 6
        assert alice.get("/api/me").json()["user"] == "alice"
        added = alice.post("/api/cart/items", json={"product_id": "scarf", "quantity": 1})
        assert added.status_code == 200
        records = SQLiteStore(tmp_path / "flood.db")
        sessions = [r for r in records.iter_records() if not is_counter(r)]
        records.close()
        assert len(sessions) == 5  # alice's, and the four the flood got before the limit
