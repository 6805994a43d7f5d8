"""`coatcheck demo --instances 3` over real HTTP: three app processes behind a real nginx.

Why the store must be shared, measured: on a shared store (Redis) a session is kept whichever
instance answers, and survives one being killed; on memory:// it is lost as soon as nginx picks
another instance (so is its CSRF token: a login sent to the next instance is refused);
``--sticky`` keeps memory:// working until the pinned instance dies.
"""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest

from .shop_servers import (
    Demo,
    csrf_token,
    log_in,
    pid_of,
    redis_store_url,
    require_nginx,
    run_demo,
)


@pytest.fixture(autouse=True)
def nginx() -> None:
    require_nginx()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def instance_pids(demo: Demo) -> set[int]:
    with httpx.Client(base_url=demo.url) as http:
        return {pid_of(http.get("/api/products")) for _ in range(6)}


def test_on_redis_every_instance_serves_the_session_and_one_can_die() -> None:
    with redis_store_url() as store, run_demo("--store", store, "--instances", "3") as demo:
        pids = instance_pids(demo)
        assert len(pids) == 3  # round-robin over three processes
        with httpx.Client(base_url=demo.url) as http:
            log_in(http)
            http.post("/api/cart/items", json={"product_id": "scarf", "quantity": 2})
            seen = set()
            for _ in range(3):
                cart = http.get("/api/cart")
                seen.add(pid_of(cart))
                assert [item["product_id"] for item in cart.json()["items"]] == ["scarf"]
            assert seen == pids

            victim = pid_of(http.get("/api/me"))
            os.kill(victim, signal.SIGKILL)
            for _ in range(6):
                me = http.get("/api/me")
                assert me.status_code == 200
                assert me.json()["user"] == "alice"
                assert pid_of(me) != victim
        deadline = time.monotonic() + 5
        while "shop-" not in demo.output() or "stopped" not in demo.output():
            assert time.monotonic() < deadline, demo.output()
            time.sleep(0.05)
    assert not any(alive(pid) for pid in pids - {victim})  # stopping the demo stopped them


def json_lines(demo: Demo, count: int) -> list[dict[str, object]]:
    """The first COUNT lines the demo announced with --json (its log also holds nginx's and
    uvicorn's lines), waiting up to five seconds for them: nginx may answer the first request
    before the demo has seen every instance ready and announced them."""
    deadline = time.monotonic() + 5
    while True:
        output = demo.output()
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        if len(lines) >= count:
            return lines[:count]
        assert time.monotonic() < deadline, output
        time.sleep(0.05)


def test_json_announces_the_instances_and_each_one_that_stops() -> None:
    with run_demo("--store", "memory://", "--instances", "2", "--json") as demo:
        (announced,) = json_lines(demo, 1)
        instances = announced["instances"]
        assert isinstance(instances, list)
        assert announced == {
            "url": f"{demo.url}/",
            "store": "memory://",
            "balance": "round-robin",
            "instances": instances,
        }
        assert [instance["name"] for instance in instances] == ["shop-1", "shop-2"]
        assert {instance["pid"] for instance in instances} == instance_pids(demo)
        victim = instances[0]
        os.kill(victim["pid"], signal.SIGKILL)
        stopped = {"name": "shop-1", "pid": victim["pid"], "status": -signal.SIGKILL}
        assert json_lines(demo, 2)[1] == {"stopped": stopped}


def log_in_where_the_token_is(demo: Demo, http: httpx.Client) -> None:
    """Log in on memory:// round-robin: the login must reach the instance that holds the
    session and its token, so others answer (without the cookie) until it is that one's turn."""
    issued = http.get("/api/csrf")
    home = pid_of(issued)
    http.headers["x-csrf-token"] = issued.json()["csrf_token"]
    others: set[int] = set()
    while len(others) < 2:
        others.add(pid_of(httpx.get(demo.url + "/api/products")))
    assert home not in others
    response = http.post("/api/login", json={"username": "alice", "password": "coatcheck"})
    assert response.status_code == 200, response.text
    http.headers["x-csrf-token"] = response.json()["csrf_token"]


def test_on_memory_the_session_is_lost_when_another_instance_answers(
    memory_cluster: Demo,
) -> None:
    demo = memory_cluster  # memory://, three instances (tests/conftest.py)
    with httpx.Client(base_url=demo.url) as http:
        csrf_token(http)  # the session and its token, in one instance's memory
        refused = http.post("/api/login", json={"username": "alice", "password": "coatcheck"})
        assert refused.status_code == 403  # another instance: no such session, no token
        assert "Max-Age=0" in refused.headers["set-cookie"]  # it drops the unknown cookie
        assert "session" not in http.cookies

        log_in_where_the_token_is(demo, http)
        first = http.cookies["session"]
        me = http.get("/api/me")
        assert me.status_code == 401  # another instance, which never heard of it
        assert "Max-Age=0" in me.headers["set-cookie"]
        assert "session" not in http.cookies
    replay = [
        httpx.get(demo.url + "/api/me", headers={"cookie": f"session={first}"}) for _ in range(3)
    ]
    assert sorted(response.status_code for response in replay) == [200, 401, 401]


def test_sticky_memory_works_until_its_instance_dies() -> None:
    with (
        run_demo("--store", "memory://", "--instances", "3", "--sticky") as demo,
        httpx.Client(base_url=demo.url) as http,
    ):
        http.get("/api/products")  # nginx's routing cookie first, as a browser would get
        log_in(http)
        answers = [http.get("/api/me") for _ in range(6)]
        assert {response.status_code for response in answers} == {200}
        pinned = {pid_of(response) for response in answers}
        assert len(pinned) == 1
        os.kill(pinned.pop(), signal.SIGKILL)
        lost = http.get("/api/me")
        assert lost.status_code == 401
        log_in(http)
        assert http.get("/api/me").status_code == 200  # pinned again, to a live one


def test_an_access_token_one_instance_issued_is_accepted_by_every_instance() -> None:
    """The demo hands its instances one signing key: a token from one is good at all of them,
    and each publishes the same key."""
    with (
        redis_store_url() as store,
        run_demo("--store", store, "--instances", "2") as demo,
        httpx.Client(base_url=demo.url) as http,
    ):
        issued = http.post("/api/token", json={"username": "alice", "password": "coatcheck"})
        assert issued.status_code == 200, issued.text
        bearer = {"authorization": f"Bearer {issued.json()['access_token']}"}
        served = set()
        for _ in range(4):  # round-robin: both instances answer
            me = http.get("/api/me", headers=bearer)
            assert me.status_code == 200, me.text
            assert me.json()["user"] == "alice"
            served.add(pid_of(me))
        assert len(served) == 2
        published = {json.dumps(http.get("/.well-known/jwks.json").json()) for _ in range(4)}
        assert len(published) == 1
