"""`coatcheck demo` on one instance, over real HTTP: the shop's pages walk a session through its
life on the embedded SQLite store, every form posting the CSRF token the page gave it; a bad
command line, or a store it cannot reach, is one clear line before anything listens; and the
store's password is never printed."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coatcheck.shop.cluster import NGINX_MISSING, ClusterError, find_nginx

from .redis_servers import PrivateRedis
from .servers import free_port
from .shop_servers import Demo, form_token, require_nginx, require_program, run_demo


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    database = tmp_path_factory.mktemp("shop") / "shop.db"
    with run_demo("--store", f"sqlite:///{database}") as demo:
        yield demo
    assert database.exists()


def cookie_of(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def footer(page: str) -> tuple[str, str]:
    instance = re.search(r'<dd id="instance">(.*?)</dd>', page)
    expiry = re.search(r'<dd id="expiry">(.*?)</dd>', page)
    assert instance
    assert expiry
    return instance.group(1), expiry.group(1)


def test_a_session_from_first_visit_to_logout(shop: Demo) -> None:
    with httpx.Client(base_url=shop.url) as http:
        empty = http.get("/cart")
        assert "set-cookie" not in empty.headers  # a page without a form stores nothing
        assert "none stored yet" in footer(empty.text)[1]

        first = http.get("/")
        assert first.status_code == 200
        instance, expiry = footer(first.text)
        assert instance == first.headers["x-instance"]
        assert "holding only" in expiry  # its forms need a token: a session holding only that
        visitor = cookie_of(first)
        token = form_token(first.text)
        assert first.text.count(token) == 1  # every form gets the token masked afresh

        as_visitor = {"cookie": f"session={visitor}"}
        scarves = {"product_id": "scarf", "quantity": "2"}
        refused = http.post("/cart/items", data=scarves, headers=as_visitor)
        assert refused.status_code == 403  # a form without its token
        added = http.post("/cart/items", data={**scarves, "csrf_token": token}, headers=as_visitor)
        assert added.status_code == 303
        cart = http.get("/cart", headers=as_visitor).text
        assert "Striped scarf" in cart
        assert "expires at" in footer(cart)[1]

        login_form = http.get("/login", headers=as_visitor).text
        logged_in = http.post(
            "/login",
            data={
                "username": "alice",
                "password": "coatcheck",
                "csrf_token": form_token(login_form),
            },
            headers=as_visitor,
        )
        alice = cookie_of(logged_in)
        assert alice != visitor  # login regenerated the ID
        as_alice = {"cookie": f"session={alice}"}
        page = http.get("/cart", headers=as_alice).text
        assert "Logged in as <b>alice</b>" in page
        assert "Striped scarf" in page  # the cart came along
        stale = http.get("/cart", headers=as_visitor).text
        assert "Your cart is empty" in stale  # the old ID is dead

        stale_token = {"csrf_token": token}  # login renewed the session's token
        assert http.post("/logout", data=stale_token, headers=as_alice).status_code == 403
        assert "Logged in as <b>alice</b>" in http.get("/", headers=as_alice).text
        out = http.post("/logout", data={"csrf_token": form_token(page)}, headers=as_alice)
        assert out.status_code == 303
        replay = http.get("/cart", headers=as_alice).text
        assert "Not logged in" in replay
        assert "Your cart is empty" in replay


def test_the_cart_changes_quantity_and_removes(shop: Demo) -> None:
    with httpx.Client(base_url=shop.url) as http:
        token = form_token(http.get("/").text)
        http.post("/cart/items", data={"product_id": "gloves", "csrf_token": token})
        http.post("/cart/items", data={"product_id": "hat", "csrf_token": token})
        http.post("/cart/items/gloves", data={"quantity": "3", "csrf_token": token})
        http.post("/cart/items/hat/remove", data={"csrf_token": token})
        page = http.get("/cart").text
        assert 'value="3"' in page
        assert "Felt hat" not in page
        assert '<th id="total">€135.00</th>' in page


def test_the_login_page_names_the_demo_users_and_refuses_a_wrong_password(shop: Demo) -> None:
    with httpx.Client(base_url=shop.url) as http:
        form = http.get("/login").text
        for user in ("alice", "bob", "carol"):
            assert f"<b>{user}</b>" in form
        assert "<b>coatcheck</b>" in form
        wrong = http.post(
            "/login",
            data={"username": "bob", "password": "hunter2", "csrf_token": form_token(form)},
        )
        assert wrong.status_code == 401
        assert "Wrong user or password" in wrong.text
        assert "set-cookie" not in wrong.headers  # the visitor's session is left as it was
        form_token(wrong.text)  # and the form, shown again, carries the token again


def log_in_on_the_page(http: httpx.Client, user: str) -> None:
    token = form_token(http.get("/login").text)
    http.post("/login", data={"username": user, "password": "coatcheck", "csrf_token": token})


def test_the_sessions_page_lists_devices_by_fingerprint_and_ends_one(shop: Demo) -> None:
    laptop = httpx.Client(
        base_url=shop.url, headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
    )
    phone = httpx.Client(
        base_url=shop.url,
        headers={
            "user-agent": "Mozilla/5.0 (iPhone; CPU "
            "iPhone OS 17_0 like Mac OS X) Version/17.0 Mobile Safari/604.1"
        },
    )
    with laptop, phone:
        for client in (laptop, phone):
            log_in_on_the_page(client, "carol")
        page = laptop.get("/sessions").text
        assert "Firefox on Linux <b>(this one)</b>" in page
        assert "Safari on iPhone" in page
        for cookie in (laptop.cookies["session"], phone.cookies["session"]):
            assert cookie not in page  # never a raw ID
        phone_row = re.search(r'<tr id="session-([0-9a-f]{16})">\s*<td>Safari', page)
        assert phone_row is not None
        token = {"csrf_token": form_token(page)}
        laptop.post(f"/sessions/{phone_row.group(1)}/logout", data=token)
        assert "Not logged in" in phone.get("/").text
        assert "Logged in as <b>carol</b>" in laptop.get("/").text
        laptop.post("/sessions/logout-everywhere", data=token)
        assert "Not logged in" in laptop.get("/").text


def test_a_bad_store_url_is_one_line_and_a_nonzero_exit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", "demo", "--store", "nope://x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:{port}/0",
        "postgresql://ops@127.0.0.1:{port}/db?password=hunter2&timeout=0.5",
    ],
)
@pytest.mark.parametrize("instances", ["1", "2"])
def test_a_store_it_cannot_reach_is_one_line_naming_it_redacted_before_anything_listens(
    url: str, instances: str
) -> None:
    store = url.format(port=free_port())
    command = [sys.executable, "-m", "coatcheck.cli", "demo", "--store", store]
    result = subprocess.run(
        [*command, "--port", str(free_port()), "--instances", instances],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""  # no banner: it never served
    (line,) = result.stderr.splitlines()
    shown = store.replace(":hunter2@", ":***@").replace("=hunter2", "=***")
    assert line.startswith(f"coatcheck: demo: cannot use the store {shown} (")
    assert line.endswith("; start it, or pass another --store")
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("instances", ["1", "2"])
def test_the_banner_shows_the_stores_url_without_its_password(
    tmp_path: Path, instances: str
) -> None:
    """A Redis that needs a password: the demo logs in with it, and prints *** in its place."""
    require_program("redis-server", shutil.which("redis-server"), "apt-get install redis-server")
    if instances != "1":
        require_nginx()
    password = secrets.token_hex(12)
    redis = PrivateRedis(tmp_path / "redis", "--requirepass", password)
    redis.start()
    try:
        store = f"redis://:{password}@127.0.0.1:{redis.port}/0"
        with run_demo("--store", store, "--instances", instances) as demo:
            assert httpx.get(demo.url + "/api/csrf").status_code == 200  # a session stored
            output = demo.output()
        assert f"coatcheck demo on redis://:***@127.0.0.1:{redis.port}/0: " in output
        assert password not in output
    finally:
        redis.kill()


def test_json_announces_where_the_shop_serves_and_an_absolute_timeout_may_come_alone() -> None:
    with run_demo("--store", "memory://", "--absolute-timeout", "600", "--json") as demo:
        (announced,) = [
            json.loads(line) for line in demo.output().splitlines() if line.startswith("{")
        ]
        port = int(demo.url.rsplit(":", 1)[1])
        assert announced == {
            "url": f"{demo.url}/",
            "store": "memory://",
            "instances": [{"name": "shop", "pid": demo.process.pid, "port": port}],
        }
        created = httpx.get(demo.url + "/api/csrf")
        assert created.headers["set-cookie"].endswith("; Max-Age=600")  # 600 s at most


def test_two_timeouts_that_contradict_are_one_line_before_anything_listens() -> None:
    timeouts = ["--idle-timeout", "7200", "--absolute-timeout", "3600"]
    result = subprocess.run(
        [sys.executable, "-m", "coatcheck", "demo", *timeouts, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "coatcheck: idle_timeout (7200.0) must not exceed absolute_timeout (3600.0)\n"
    )


def test_sticky_without_instances_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", "demo", "--sticky"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--sticky needs --instances" in result.stderr


def test_a_missing_nginx_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as raised:
        find_nginx(search_path=str(tmp_path))
    assert str(raised.value) == NGINX_MISSING
    assert "apt-get install nginx" in NGINX_MISSING
