"""A dual-stack server (an IPv6 socket with ``IPV6_V6ONLY`` off) sees its IPv4 clients as
``::ffff:a.b.c.d``. Over real HTTP, each of them is still its own IPv4 client: one address
using up its new sessions leaves the next address alone, and a session bound to its network
refuses a replay from another IPv4 address."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coatcheck.asgi import SessionMiddleware
from coatcheck.session import Session
from coatcheck.stores import MemoryStore

from .servers import dual_stack_socket, serve_asgi

FIRST, SECOND = "127.0.0.1", "127.0.0.2"


async def whoami(request: Request) -> Response:
    """What the server saw: the peer's address as the socket gave it, and the session."""
    session = request.session
    assert isinstance(session, Session)
    assert request.client is not None
    return JSONResponse({"peer": request.client.host, "user": session.user_id})


async def write(request: Request) -> Response:
    request.session["cart"] = [1]
    return JSONResponse({"peer": request.client.host if request.client else None})


async def login(request: Request) -> Response:
    session = request.session
    assert isinstance(session, Session)
    session.login(request.path_params["user"])
    return JSONResponse({"user": session.user_id})


def dual_stack_app(**options: Any) -> SessionMiddleware:
    routes = [
        Route("/whoami", whoami),
        Route("/write", write, methods=["POST"]),
        Route("/login/{user}", login, methods=["POST"]),
    ]
    return SessionMiddleware(Starlette(routes=routes), store=MemoryStore(), secure=False, **options)


def listening_socket() -> socket.socket:
    try:
        return dual_stack_socket()
    except OSError as exc:  # no IPv6 here at all
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs a dual-stack socket: {exc}", pytrace=False)
        pytest.skip(f"no dual-stack socket on this machine: {exc}")


@contextmanager
def server(**options: Any) -> Iterator[str]:
    """A real uvicorn server of :func:`dual_stack_app` on a dual-stack socket; its URL (IPv4)."""
    with serve_asgi(dual_stack_app(**options), sock=listening_socket()) as url:
        yield url


@contextmanager
def client_from(address: str, url: str) -> Iterator[httpx.Client]:
    """An HTTP client whose connections leave from ``address`` (any of 127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, base_url=url) as client:
        yield client


def cookie_of(response: httpx.Response) -> str:
    return response.headers["set-cookie"].split(";", 1)[0]


def test_the_server_sees_its_ipv4_clients_as_mapped_addresses() -> None:
    with server() as url, client_from(FIRST, url) as first, client_from(SECOND, url) as second:
        assert first.get("/whoami").json()["peer"] == f"::ffff:{FIRST}"
        assert second.get("/whoami").json()["peer"] == f"::ffff:{SECOND}"


@pytest.mark.usefixtures("fresh_limit_window")
def test_one_ipv4_client_using_up_its_new_sessions_leaves_the_next_alone() -> None:
    with (
        server(max_creations_per_client=3) as url,
        client_from(FIRST, url) as first,
        client_from(SECOND, url) as second,
    ):
        for _ in range(3):
            first.cookies.clear()
            created = first.post("/write")
            assert created.status_code == 200
            assert created.json()["peer"] == f"::ffff:{FIRST}"
        first.cookies.clear()
        assert first.post("/write").status_code == 429
        # Another IPv4 address on the same dual-stack socket has its own allowance.
        created = second.post("/write")
        assert created.status_code == 200
        assert created.json()["peer"] == f"::ffff:{SECOND}"


def test_a_network_bound_login_is_refused_from_another_ipv4_address() -> None:
    with (
        server(bind_to=["network"], ipv4_prefix=32) as url,
        client_from(FIRST, url) as first,
        client_from(SECOND, url) as second,
    ):
        cookie = cookie_of(first.post("/login/alice"))
        first.cookies.clear()
        second.cookies.clear()
        own = first.get("/whoami", headers={"Cookie": cookie})
        assert own.json() == {"peer": f"::ffff:{FIRST}", "user": "alice"}
        assert "set-cookie" not in own.headers
        replayed = second.get("/whoami", headers={"Cookie": cookie})
        assert replayed.json() == {"peer": f"::ffff:{SECOND}", "user": None}
        assert "Max-Age=0" in replayed.headers["set-cookie"]
        # The owner, on its own address, is unaffected by the attempt.
        assert first.get("/whoami", headers={"Cookie": cookie}).json()["user"] == "alice"
