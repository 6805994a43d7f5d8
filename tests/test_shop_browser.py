"""The shop in a real browser: Debian's Chromium driven by Playwright, against
`coatcheck demo --instances 3` behind nginx.

On Redis a shopper logs in, fills a cart, sees it served by several instances, loses one
instance and carries on (every form carrying its CSRF token); logging out everywhere from a
second browser logs the first out on its next click. On memory:// the same shopper cannot even
log in: the login form's session and token live in the memory of the instance that served it,
and the form is posted to the next one, whose page says it has never seen that session.

Screenshots go to ``$COATCHECK_SCREENSHOTS`` when set (``docs/img`` for the docs), else to a
temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .shop_servers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Demo,
    redis_store_url,
    require_chromium,
    require_nginx,
    run_demo,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_nginx()
    require_chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("COATCHECK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def served_by(page: Page) -> str:
    return page.inner_text("#instance")


def pid_on(page: Page) -> int:
    found = re.search(r"pid (\d+)", served_by(page))
    assert found is not None
    return int(found.group(1))


def log_in(page: Page, url: str, user: str = "alice") -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "coatcheck")
    page.click("#login")


def add(page: Page, product: str, quantity: int = 1) -> None:
    page.click("nav >> text=Products")
    page.fill(f"#product-{product} input[name=quantity]", str(quantity))
    page.click(f"#product-{product} button")


def test_on_redis_the_session_follows_the_shopper_across_instances(
    browser: Browser, shots: Path
) -> None:
    with redis_store_url() as store, run_demo("--store", store, "--instances", "3") as demo:
        first = browser.new_context(viewport={"width": 1000, "height": 720})
        page = first.new_page()
        page.goto(demo.url + "/login")
        page.screenshot(path=shots / "shop-login.png")
        log_in(page, demo.url)
        assert page.inner_text("#who") == "Logged in as alice"
        page.screenshot(path=shots / "shop-products.png")

        add(page, "wool-coat")
        add(page, "scarf", 2)
        instances = set()
        for _ in range(3):
            page.click("#cart-link")
            assert page.inner_text("#who") == "Logged in as alice"
            assert page.locator("#cart tbody tr").count() == 2
            assert page.inner_text("#total") == "€247.00"
            instances.add(served_by(page))
        assert len(instances) >= 2, instances
        page.screenshot(path=shots / "shop-cart.png")

        os.kill(pid_on(page), signal.SIGKILL)  # the instance that served the last page
        for _ in range(3):
            page.click("#cart-link")
            assert page.inner_text("#who") == "Logged in as alice"
            assert page.locator("#cart tbody tr").count() == 2

        second = browser.new_context(
            viewport={"width": 1000, "height": 560},
            user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        )
        other = second.new_page()
        log_in(other, demo.url)
        other.click("text=Your sessions")
        rows = other.locator("#sessions tbody tr")
        assert rows.count() == 2
        assert "Safari on macOS (this one)" in other.inner_text("#sessions")
        assert "Headless Chrome on Linux" in other.inner_text("#sessions")
        other.screenshot(path=shots / "shop-sessions.png")
        other.click("#logout-everywhere")
        assert "Logged out everywhere" in other.inner_text("main")

        page.click("#cart-link")  # the first browser's next click
        assert page.inner_text("#who") == "Not logged in"
        assert page.locator("#empty").is_visible()
        first.close()
        second.close()


def test_on_memory_the_next_instance_refuses_the_login_form(
    browser: Browser, shots: Path, memory_cluster: Demo
) -> None:
    demo = memory_cluster  # memory://, three instances (tests/conftest.py)
    context = browser.new_context(viewport={"width": 1000, "height": 640})
    page = context.new_page()
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        log_in(page, demo.url)
    # The form came from one instance, which keeps its session and token in memory; nginx
    # sent the post to another, which has never heard of either, and says so.
    assert posted.value.status == 403
    answered = posted.value.headers["x-instance"]
    assert page.inner_text("#lost") == "This instance has never seen your session"
    assert page.inner_text("#lost-instance") == served_by(page) == answered
    assert "memory is per process" in page.inner_text("#why")
    page.screenshot(path=shots / "shop-memory-lost.png")
    page.click("#try-again")
    assert page.url == demo.url + "/login"
    assert page.inner_text("#who") == "Not logged in"
    context.close()
