"""The shop's JSON API over real HTTP, against `coatcheck demo` in its own process: what it
answers to good and bad input, and a bounded fuzzed run of its OpenAPI document."""

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

from .shop_servers import Demo, run_demo

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


def login(http: httpx.Client, user: str = "alice") -> dict[str, Any]:
    response = http.post("/api/login", json={"username": user, "password": "coatcheck"})
    assert response.status_code == 200, response.text
    me: dict[str, Any] = response.json()
    return me


def stored_sessions(database: Path) -> int:
    store = SQLiteStore(str(database))
    try:
        return sum(1 for _ in store.iter_records())
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


def test_a_wrong_password_is_401_and_creates_no_session(http: httpx.Client, database: Path) -> None:
    before = stored_sessions(database)
    for username, password in (("alice", "wrong"), ("mallory", "coatcheck"), ("", "")):
        response = http.post("/api/login", json={"username": username, "password": password})
        assert response.status_code == 401
        assert response.json() == {"detail": "wrong username or password"}
        assert "set-cookie" not in response.headers
    assert stored_sessions(database) == before


def test_malformed_json_is_400(http: httpx.Client) -> None:
    for path in ("/api/login", "/api/cart/items"):
        response = http.post(
            path, content=b'{"username": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "the request body is not valid JSON"}


def test_a_body_of_the_wrong_shape_is_422(http: httpx.Client) -> None:
    assert http.post("/api/login", json={"username": "alice"}).status_code == 422
    assert (
        http.post("/api/cart/items", json={"product_id": "scarf", "quantity": 0}).status_code == 422
    )


def test_an_unknown_product_is_404(http: httpx.Client) -> None:
    assert http.post("/api/cart/items", json={"product_id": "unicorn"}).status_code == 404
    assert http.put("/api/cart/items/unicorn", json={"quantity": 1}).status_code == 404
    assert http.delete("/api/cart/items/unicorn").status_code == 404


def test_routes_for_a_user_are_401_without_one(http: httpx.Client) -> None:
    assert http.get("/api/me").status_code == 401
    assert http.get("/api/sessions").status_code == 401
    assert http.delete("/api/sessions/0123456789abcdef").status_code == 401
    assert http.post("/api/logout-all").status_code == 401


def test_the_cart_is_kept_through_login_and_changed_by_the_api(http: httpx.Client) -> None:
    http.post("/api/cart/items", json={"product_id": "umbrella", "quantity": 2})
    anonymous = http.cookies["session"]
    me = login(http, "bob")
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
            login(client, "carol")
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
        login(alice, "alice")
        login(bob, "bob")
        bobs = bob.get("/api/sessions").json()[0]["fingerprint"]
        assert alice.delete(f"/api/sessions/{bobs}").status_code == 404
        assert bob.get("/api/me").status_code == 200


def test_logout_ends_the_session_on_the_server(http: httpx.Client, shop: Demo) -> None:
    login(http)
    cookie = http.cookies["session"]
    out = http.post("/api/logout")
    assert out.status_code == 204
    assert "Max-Age=0" in out.headers["set-cookie"]
    replay = httpx.get(shop.url + "/api/me", headers={"cookie": f"session={cookie}"})
    assert replay.status_code == 401


def test_no_input_makes_a_server_error(shop: Demo) -> None:
    """Every operation of the OpenAPI document, fed what its schema allows (and, negatively,
    what it does not), anonymous and logged in: never a 5xx. Bounded: a fixed number of
    examples per operation, derandomized."""
    schema = schemathesis.openapi.from_url(shop.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 10
    for operation in operations:
        with httpx.Client(base_url=shop.url) as http:
            login(http, "alice")
            cookie = http.cookies["session"]
        fuzz(operation, cookie)


def fuzz(operation: Any, cookie: str) -> None:
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
        for cookies in ({}, {"session": cookie}):
            response = case.call(cookies=cookies)
            case.validate_response(response, checks=[not_a_server_error])

    never_a_server_error()
