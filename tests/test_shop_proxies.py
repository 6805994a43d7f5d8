"""Whose ``X-Forwarded-For`` the demo shop believes, over real HTTP: nobody's, unless it runs
behind its own nginx (``--instances``), and even then only nginx's, which states the address
that connected to it. So a client that names another address in every request still counts as
itself against ``--max-new-sessions``.

The single instance runs uvicorn with its proxy headers off: by default uvicorn believes
``X-Forwarded-For`` from loopback and rewrites the ASGI client before coatcheck sees it, which is
how a forged header once got 30 new sessions out of 30 past a limit of 20.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .shop_servers import require_nginx, run_demo

LIMIT = 20


def statuses_of_new_sessions(url: str, forged: list[str]) -> list[int]:
    """The status of each cookie-less ``GET /api/csrf`` (each would store a new session), the
    request claiming to come from that address, up to the first refusal."""
    statuses: list[int] = []
    for address in forged:
        status = httpx.get(url + "/api/csrf", headers={"x-forwarded-for": address}).status_code
        statuses.append(status)
        if status != 200:
            break
    return statuses


def assert_limited(statuses: list[int]) -> None:
    """The first ``LIMIT`` new sessions are served, and a 429 follows. Counting windows are
    aligned to the clock, so a window may end mid-test and reset the count once: the 429 comes
    within twice the limit (the forged addresses number one more than that)."""
    assert statuses[:LIMIT] == [200] * LIMIT
    assert statuses[-1] == 429, statuses


FORGERIES = {
    "another address each time": [f"203.0.113.{n}" for n in range(1, 2 * LIMIT + 2)],
    "another address before a loopback hop": [
        f"198.51.100.{n}, 127.0.0.1" for n in range(1, 2 * LIMIT + 2)
    ],
}


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_forwarded_for_gets_no_more_new_sessions_than_the_limit(
    tmp_path: Path, forged: list[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    with run_demo("--store", store, "--max-new-sessions", str(LIMIT)) as shop:
        statuses = statuses_of_new_sessions(shop.url, forged)
    assert_limited(statuses)


@pytest.mark.parametrize("forged", FORGERIES.values(), ids=FORGERIES.keys())
def test_behind_its_own_nginx_a_forged_forwarded_for_is_replaced_by_the_real_address(
    tmp_path: Path, forged: list[str]
) -> None:
    require_nginx()
    store = f"sqlite:///{tmp_path / 'shop.db'}"
    demo = ("--store", store, "--max-new-sessions", str(LIMIT), "--instances", "2")
    with run_demo(*demo) as shop:
        statuses = statuses_of_new_sessions(shop.url, forged)
    assert_limited(statuses)
