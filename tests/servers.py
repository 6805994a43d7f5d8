"""Real HTTP servers on loopback ports for tests: uvicorn for ASGI, wsgiref for WSGI, and
aiohttp's own server for aiohttp.web applications."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dual_stack_socket() -> socket.socket:
    """A listening socket as a dual-stack server has one: IPv6 with ``IPV6_V6ONLY`` off, bound
    to ``::ffff:127.0.0.1``, so IPv4 clients reach it and it sees them as ``::ffff:a.b.c.d``."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::ffff:127.0.0.1", 0))
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def serve_asgi(
    app: Any,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    sock: socket.socket | None = None,
) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yield its base URL.

    ``cleanup`` runs on the server's event loop after it stops (e.g. closing a store's pool,
    whose connections belong to that loop). ``sock``, a bound socket (e.g.
    :func:`dual_stack_socket`), is served instead of a fresh one on 127.0.0.1; it is closed after.
    """
    port = free_port() if sock is None else int(sock.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        await server.serve(sockets=None if sock is None else [sock])
        if cleanup is not None:
            await cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if sock is not None:
            sock.close()


@contextmanager
def serve_aiohttp(app: Any) -> Iterator[str]:
    """Run an ``aiohttp.web.Application`` under aiohttp's server in a thread; yield its URL."""
    from aiohttp import web

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


WSGI_POLL = 0.02
"""How often a test's WSGI server checks whether it is asked to stop, in seconds."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_wsgi(app: Callable[..., Any]) -> Iterator[str]:
    """Run a WSGI ``app`` on a threading wsgiref server; yield its base URL.

    The server looks for its stop every ``WSGI_POLL`` seconds (socketserver's default, half a
    second, made every stop wait a quarter of a second on average).
    """
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(WSGI_POLL,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Traffic:
    """Reads one session over and over from a thread while a test breaks things.

    ``statuses`` counts the answers, ``slowest`` is the longest wait for one.
    """

    def __init__(self, http: Any, headers: dict[str, str], path: str = "/read") -> None:
        self.http, self.headers, self.path = http, headers, path
        self.statuses: Counter[int] = Counter()
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status = self.http.get(self.path, headers=self.headers).status_code
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses[status] += 1
            time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
