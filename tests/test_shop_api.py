"""The shop's JSON API over real HTTP, against `coatcheck demo` in its own process: what it
answers to good and bad input, and a bounded fuzzed run of its OpenAPI document.

The shop runs with ``csrf="token"``: a client fetches its token (``GET /api/csrf``) and sends it
in ``X-CSRF-Token``; ``shop_servers.log_in`` does both. CSRF refusals are specified in
tests/test_shop_security.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from coatcheck.stores import SQLiteStore

from .shop_servers import Demo, csrf_token, log_in, run_demo

EXAMPLES_PER_OPERATION = 25
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop-api") / "shop.db"


@pytest.fixture(scope="module")
def shop(database: Path) -> Iterator[Demo]:
    with run_demo("--store", f"sqlite:///{database}") as demo:
        yield demo


@pytest.fixture
def http(shop: Demo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.url, headers={"user-agent": FIREFOX}) as client:
        yield client


StoredSession = tuple[str, bytes, float, int, str | None]


def stored_sessions(database: Path) -> set[StoredSession]:
    """Everything the store holds: each record's key, data, expiry, version and user."""
    store = SQLiteStore(str(database))
    try:
        return {tuple(record) for record in store.iter_records()}  # type: ignore[misc]
    finally:
        store.close()


def test_every_answer_names_its_instance(http: httpx.Client) -> None:
    for response in (
        http.get("/api/products"),
        http.get("/api/me"),
        http.post("/api/login", content=b"{"),
        http.get("/openapi.json"),
        http.get("/no-such-page"),
    ):
        assert response.headers["x-instance"].startswith("shop (pid ")


def test_products_are_listed(http: httpx.Client) -> None:
    products = http.get("/api/products").json()
    assert {product["id"] for product in products} >= {"wool-coat", "scarf", "umbrella"}
    assert all(isinstance(product["price_cents"], int) for product in products)


def test_a_wrong_password_is_401_and_stores_nothing(http: httpx.Client, database: Path) -> None:
    """The token makes an anonymous session; a failed login then adds no record, changes none
    and logs no session in."""
    csrf_token(http)
    before = stored_sessions(database)
    assert before
    for username, password in (("alice", "wrong"), ("mallory", "coatcheck"), ("", "")):
        response = http.post("/api/login", json={"username": username, "password": password})
        assert response.status_code == 401
        assert response.json() == {"detail": "wrong username or password"}
        assert "set-cookie" not in response.headers
    after = stored_sessions(database)
    assert after == before
    assert all(user is None for *_, user in after - before)


def test_the_csrf_token_is_masked_afresh_and_only_a_token_is_stored(
    http: httpx.Client, database: Path
) -> None:
    first = http.get("/api/csrf")
    assert "HttpOnly" in first.headers["set-cookie"]  # an anonymous session holding the token
    second = http.get("/api/csrf")
    assert first.json()["csrf_token"] != second.json()["csrf_token"]
    assert "set-cookie" not in second.headers  # the same session, unchanged
    assert http.get("/api/cart").json() == {"items": [], "total_cents": 0}
    for token in (first.json()["csrf_token"], second.json()["csrf_token"]):
        added = http.post(
            "/api/cart/items", json={"product_id": "hat"}, headers={"x-csrf-token": token}
        )
        assert added.status_code == 200
    assert http.get("/api/cart").json()["items"][0]["quantity"] == 2


def test_the_openapi_document_asks_every_unsafe_operation_for_the_token(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    unsafe = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if method in ("post", "put", "patch", "delete"):
                unsafe += 1
                assert "X-CSRF-Token" in headers, (method, path)
                assert "403" in operation["responses"], (method, path)
            else:
                assert "X-CSRF-Token" not in headers, (method, path)
    assert unsafe == 7
    assert "/api/csrf" in document["paths"]


def test_malformed_json_is_400(http: httpx.Client) -> None:
    csrf_token(http)
    for path in ("/api/login", "/api/cart/items"):
        response = http.post(
            path, content=b'{"username": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "the request body is not valid JSON"}


def test_a_body_of_the_wrong_shape_is_422(http: httpx.Client) -> None:
    csrf_token(http)
    assert http.post("/api/login", json={"username": "alice"}).status_code == 422
    assert (
        http.post("/api/cart/items", json={"product_id": "scarf", "quantity": 0}).status_code == 422
    )


def test_an_unknown_product_is_404(http: httpx.Client) -> None:
    csrf_token(http)
    assert http.post("/api/cart/items", json={"product_id": "unicorn"}).status_code == 404
    assert http.put("/api/cart/items/unicorn", json={"quantity": 1}).status_code == 404
    assert http.delete("/api/cart/items/unicorn").status_code == 404


def test_routes_for_a_user_are_401_without_one(http: httpx.Client) -> None:
    csrf_token(http)
    assert http.get("/api/me").status_code == 401
    assert http.get("/api/sessions").status_code == 401
    assert http.delete("/api/sessions/0123456789abcdef").status_code == 401
    assert http.post("/api/logout-all").status_code == 401


def test_the_cart_is_kept_through_login_and_changed_by_the_api(http: httpx.Client) -> None:
    csrf_token(http)
    http.post("/api/cart/items", json={"product_id": "umbrella", "quantity": 2})
    anonymous = http.cookies["session"]
    me = log_in(http, "bob")
    assert me["user"] == "bob"
    assert http.cookies["session"] != anonymous
    assert me["expires_at"] <= me["absolute_deadline"]
    http.post("/api/cart/items", json={"product_id": "scarf"})
    cart = http.put("/api/cart/items/umbrella", json={"quantity": 3}).json()
    assert [(item["product_id"], item["quantity"]) for item in cart["items"]] == [
        ("umbrella", 3),
        ("scarf", 1),
    ]
    assert cart["total_cents"] == 3 * 3500 + 2900
    cart = http.delete("/api/cart/items/umbrella").json()
    assert [item["product_id"] for item in cart["items"]] == ["scarf"]
    assert http.get("/api/cart").json() == cart


def test_sessions_are_listed_by_fingerprint_and_ended_one_by_one_or_all(shop: Demo) -> None:
    laptop = httpx.Client(base_url=shop.url, headers={"user-agent": FIREFOX})
    phone = httpx.Client(
        base_url=shop.url,
        headers={"user-agent": "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile"},
    )
    tablet = httpx.Client(base_url=shop.url)
    with laptop, phone, tablet:
        for client in (laptop, phone, tablet):
            log_in(client, "carol")
        listed = laptop.get("/api/sessions").json()
        assert len(listed) == 3
        devices = {item["device"]: item for item in listed}
        assert devices["Firefox on Linux"]["current"] is True
        assert devices["Chrome on Android"]["current"] is False
        text = str(listed)
        for client in (laptop, phone, tablet):
            assert client.cookies["session"] not in text  # fingerprints, never IDs
        for item in listed:
            assert item["created_at"] <= item["last_active"] <= item["expires_at"]

        phone_print = devices["Chrome on Android"]["fingerprint"]
        assert laptop.delete(f"/api/sessions/{phone_print}").status_code == 204
        assert phone.get("/api/me").status_code == 401
        assert laptop.delete(f"/api/sessions/{phone_print}").status_code == 404
        assert len(laptop.get("/api/sessions").json()) == 2

        ended = laptop.post("/api/logout-all")
        assert ended.json() == {"sessions_ended": 2}
        assert "Max-Age=0" in ended.headers["set-cookie"]
        assert laptop.get("/api/me").status_code == 401
        assert tablet.get("/api/me").status_code == 401


def test_another_users_fingerprint_ends_nothing(shop: Demo) -> None:
    with httpx.Client(base_url=shop.url) as alice, httpx.Client(base_url=shop.url) as bob:
        log_in(alice, "alice")
        log_in(bob, "bob")
        bobs = bob.get("/api/sessions").json()[0]["fingerprint"]
        assert alice.delete(f"/api/sessions/{bobs}").status_code == 404
        assert bob.get("/api/me").status_code == 200


def test_logout_ends_the_session_on_the_server(http: httpx.Client, shop: Demo) -> None:
    log_in(http)
    cookie = http.cookies["session"]
    out = http.post("/api/logout")
    assert out.status_code == 204
    assert "Max-Age=0" in out.headers["set-cookie"]
    replay = httpx.get(shop.url + "/api/me", headers={"cookie": f"session={cookie}"})
    assert replay.status_code == 401


def test_no_input_makes_a_server_error(shop: Demo) -> None:
    """Every operation of the OpenAPI document, fed what its schema allows (and, negatively,
    what it does not), without a session and logged in: never a 5xx. Bounded: a fixed number
    of examples per operation, derandomized.

    The token header is fuzzed like any other parameter (so nearly every unsafe call is a 403);
    every unsafe call is made again with the session's valid token, anonymous and logged in, so
    that the routes behind the CSRF check are fuzzed too: each one must be reached."""
    schema = schemathesis.openapi.from_url(shop.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 10
    anonymous, alice = Visitor(shop.url, None), Visitor(shop.url, "alice")
    for operation in operations:
        if operation.method.upper() in UNSAFE_METHODS:
            reached = fuzz(operation, [(alice, False), (alice, True), (anonymous, True)])
            assert reached, f"{operation.method} {operation.path}: never got past the CSRF check"
        else:
            fuzz(operation, [(alice, False)])


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Visitor:
    """A client of the fuzzed calls: its session cookie and CSRF token, anonymous or logged in,
    made again when a call has ended its session (logout)."""

    def __init__(self, url: str, user: str | None) -> None:
        self.url = url
        self.user = user
        self.cookie: str | None = None
        self.token = ""

    def credentials(self, valid_token: bool) -> tuple[dict[str, str], dict[str, str]]:
        """The cookies and headers a call sends: the session, and its token if asked for (else
        the token header stays as the fuzzer made it)."""
        if self.cookie is None:
            with httpx.Client(base_url=self.url) as http:
                if self.user is None:
                    self.token = csrf_token(http)
                else:
                    self.token = log_in(http, self.user)["csrf_token"]
                self.cookie = http.cookies["session"]
        return {"session": self.cookie}, {"X-CSRF-Token": self.token} if valid_token else {}

    def saw(self, response: Any) -> None:
        """Forget a session the response ended (its cookie expired)."""
        if any("Max-Age=0" in cookie for cookie in response.headers.get("set-cookie", [])):
            self.cookie = None


def fuzz(operation: Any, calls: list[tuple[Visitor, bool]]) -> int:
    """Fuzz one operation: each example is sent without a session, then as each of ``calls``
    says (which visitor, with its valid token or not). Returns how many calls with a valid
    token got past the CSRF check."""
    reached = 0
    cases = strategies.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def never_a_server_error(case: Any) -> None:
        nonlocal reached
        case.validate_response(case.call(), checks=[not_a_server_error])
        for visitor, valid_token in calls:
            cookies, headers = visitor.credentials(valid_token)
            response = case.call(cookies=cookies, headers=headers)
            case.validate_response(response, checks=[not_a_server_error])
            visitor.saw(response)
            reached += valid_token and response.status_code != 403

    never_a_server_error()
    return reached
