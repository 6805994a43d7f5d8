"""A post naming a session the instance that answered has never seen, over real HTTP: the shop
says so (its page, or under /api/ a JSON body, still a 403), and every other CSRF refusal stays
the session middleware's plain text.

On `coatcheck demo --store memory:// --instances 3` nginx sends each request to the next
instance, so a form posted right after its page lands on another instance than the one that
served the page (and holds the session and the form's token in its memory).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from .shop_servers import Demo, csrf_token, form_token, log_in, pid_of, run_demo

PLAIN_REFUSAL = "Forbidden: the request failed its CSRF check.\n"
LOGIN = {"username": "alice", "password": "coatcheck"}


@pytest.fixture
def cluster(memory_cluster: Demo) -> Demo:
    """The shop on memory:// behind nginx, three instances (tests/conftest.py)."""
    return memory_cluster


def words(page: str) -> str:
    """A page's text with its whitespace (line breaks in the template) as single spaces."""
    return " ".join(page.split())


def a_page_from_one_instance(http: httpx.Client, path: str) -> tuple[int, str]:
    """Load ``path`` (a page with a form): the instance that answered, and the form's token."""
    page = http.get(path)
    assert page.status_code == 200, page.text
    assert "session" in http.cookies  # the session and its token, in that instance's memory
    return pid_of(page), form_token(page.text)


def test_a_form_posted_to_another_instance_gets_the_shops_page(cluster: Demo) -> None:
    with httpx.Client(base_url=cluster.url) as http:
        home, token = a_page_from_one_instance(http, "/login")
        posted = http.post("/login", data={**LOGIN, "csrf_token": token})
        assert pid_of(posted) != home  # nginx sent the form to the next instance
        assert posted.status_code == 403
        assert posted.headers["content-type"] == "text/html; charset=utf-8"
        assert posted.headers["cache-control"] == "no-store"
        assert "Max-Age=0" in posted.headers["set-cookie"]  # the unknown cookie is dropped

        page, instance = posted.text, posted.headers["x-instance"]
        assert re.fullmatch(r"shop-[123] \(pid \d+, port \d+\)", instance)
        assert '<a class="brand" href="/">coatcheck shop</a>' in page  # the shop's layout
        assert f'<dd id="instance">{instance}</dd>' in page  # the footer's "Served by"
        assert f'<b id="lost-instance">{instance}</b>, the instance that answered' in page
        text = words(page)
        assert "This instance has never seen your session" in text
        assert "The form was refused, and nothing was changed." in text
        assert "memory is per process: each instance holds only the sessions it started" in text
        assert "A store shared by all instances, such as <code>redis://</code>" in text
        assert '<a id="try-again" href="/login">Try again</a>' in page
        assert 'type="hidden"' not in page  # no form: its token would be stored nowhere

        again = http.get("/login")  # the link: a new session, from whichever instance
        assert again.status_code == 200
        assert form_token(again.text)


def test_the_link_goes_back_to_the_page_of_the_form_posted(cluster: Demo) -> None:
    for action, form, page in [
        ("/cart/items", {"product_id": "scarf", "quantity": "1"}, "/"),  # the products' page
        ("/cart/items/scarf/remove", {}, "/cart"),
        ("/sessions/logout-everywhere", {}, "/sessions"),
        ("/logout", {}, "/"),  # on every page
    ]:
        with httpx.Client(base_url=cluster.url) as http:
            home, token = a_page_from_one_instance(http, "/")
            posted = http.post(action, data={**form, "csrf_token": token})
            assert pid_of(posted) != home
            assert posted.status_code == 403
            assert f'<a id="try-again" href="{page}">Try again</a>' in posted.text, action


def test_an_api_call_to_another_instance_gets_the_same_in_json(cluster: Demo) -> None:
    with httpx.Client(base_url=cluster.url) as http:
        issued = http.get("/api/csrf")  # the session and its token, in one instance's memory
        token = issued.json()["csrf_token"]
        added = http.post(
            "/api/cart/items",
            json={"product_id": "scarf", "quantity": 1},
            headers={"x-csrf-token": token},
        )
        assert pid_of(added) != pid_of(issued)
        assert added.status_code == 403
        assert added.headers["content-type"] == "application/json"
        assert "Max-Age=0" in added.headers["set-cookie"]
        instance = added.headers["x-instance"]
        body = added.json()
        assert body == {
            "detail": body["detail"],
            "error": "unknown_session",
            "instance": instance,
            "try_again": "/api/csrf",
        }
        assert body["detail"].startswith(f"{instance} has never seen this session: memory://")
        assert "keeps each instance's sessions in its own process" in body["detail"]
        assert token not in body["detail"]


def test_a_cross_site_post_naming_an_unknown_session_is_still_refused_plain(
    cluster: Demo,
) -> None:
    """The origin check comes first: a forged post gets the middleware's 403, not the page."""
    forged = {"origin": "http://shop.evil.example"}, {"sec-fetch-site": "cross-site"}
    for headers in forged:
        with httpx.Client(base_url=cluster.url) as http:
            home, token = a_page_from_one_instance(http, "/login")
            posted = http.post("/login", data={**LOGIN, "csrf_token": token}, headers=headers)
            assert pid_of(posted) != home
            assert posted.status_code == 403, headers
            assert posted.text == PLAIN_REFUSAL, headers
            assert "session" not in http.cookies  # nothing was logged in
    with httpx.Client(base_url=cluster.url) as http:
        home, _ = a_page_from_one_instance(http, "/login")
        no_token = http.post("/login", data=LOGIN)
        assert pid_of(no_token) != home
        assert (no_token.status_code, no_token.text) == (403, PLAIN_REFUSAL)


def test_on_a_shared_store_the_page_says_the_session_is_gone(tmp_path: Path) -> None:
    """One instance on SQLite: a session logged out, then posted to with its old token, is
    unknown too, and the page says so without blaming memory; a wrong token on a session the
    instance holds stays the middleware's plain refusal."""
    with run_demo("--store", f"sqlite:///{tmp_path / 'shop.db'}") as demo:
        with httpx.Client(base_url=demo.url) as http:
            log_in(http)
            cookie, token = http.cookies["session"], http.headers["x-csrf-token"]
            with httpx.Client(base_url=demo.url) as other:
                someone_elses = csrf_token(other)
            wrong = http.post("/api/logout", headers={"x-csrf-token": someone_elses})
            assert (wrong.status_code, wrong.text) == (403, PLAIN_REFUSAL)
            assert http.post("/api/logout").status_code == 204
        replayed = {"cookie": f"session={cookie}"}
        page = httpx.post(demo.url + "/logout", data={"csrf_token": token}, headers=replayed)
        assert page.status_code == 403
        text = words(page.text)
        assert "Your session is gone" in text
        assert "it expired, or it was logged out" in text
        assert "memory://" not in text
        api = httpx.post(
            demo.url + "/api/logout", headers={**replayed, "x-csrf-token": token}
        ).json()
        assert api["error"] == "unknown_session"
        assert api["detail"].startswith(f"{api['instance']} holds no session by the ID sent")
