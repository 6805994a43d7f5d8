"""Connection pools for the SQL stores, one small adapter per driver and face.

Each pool has ``open()``, ``connection()`` (a context manager lending a connection in
autocommit mode whose ``cursor()`` is a context manager too) and ``close()``, so the stores run
the same code on every driver: psycopg 3 for PostgreSQL, aiomysql and PyMySQL for MariaDB and
MySQL.

A pool checks its URL when it is made: its driver must be installed
(:class:`~coatcheck.stores.MissingExtra` names the extra to install otherwise), and its query
options must be ones the driver takes (ValueError names any other). A PostgreSQL URL reaches
libpq as written, with its options intact; a MariaDB/MySQL URL takes :data:`MYSQL_OPTIONS`.

A pooled connection may have been closed by the server while it sat in the pool (the server's
idle timeout, a ``KILL``, a restart, a proxy giving up). Each is checked before it is lent out,
without a round trip: see :func:`readable_at_rest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import select
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from ..base import require_extra

T = TypeVar("T")


def dialect_of(url: str) -> str:
    """``postgresql`` or ``mysql``, from the URL's scheme."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    raise ValueError(f"no SQL dialect for {scheme}://; use postgresql:// or mysql:// (mariadb://)")


def _require_drivers(url: str, *modules: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    extra = "postgresql" if dialect_of(url) == "postgresql" else "mysql"
    require_extra(extra, f"{scheme}://", *modules)


def readable_at_rest(fd: int) -> bool:
    """Whether the socket of a connection at rest has anything to read, looked at without waiting.

    A database server sends an idle client nothing, so anything there means it closed the
    connection (an end of stream, a reset) or spoke before closing it (PostgreSQL's FATAL
    message, MySQL 8's idle timeout notice). The pools ping such a connection before lending it
    and drop it if the ping fails; a quiet one is lent as it is, with no round trip spent.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # POLLHUP and POLLERR are reported too
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


# -- PostgreSQL -----------------------------------------------------------------------------------


def _pg_conninfo(url: str) -> dict[str, Any]:
    """The URL's connection parameters as libpq reads them; ValueError naming any it does not
    know, rather than a pool that never opens."""
    import psycopg  # noqa: PLC0415
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    try:
        return conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ValueError(str(exc).strip()) from None


def _pg_connection_kwargs(conninfo: dict[str, Any], timeout: float) -> dict[str, Any]:
    """What each connection is made with besides the URL: autocommit, and the store's timeout
    as libpq's ``connect_timeout`` and the server's ``statement_timeout``. The URL's own
    ``options`` follow the timeout's (so a ``-c statement_timeout`` of its own wins), and its
    ``connect_timeout``, if it has one, stands."""
    statement_timeout = f"-c statement_timeout={round(timeout * 1000)}"
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "options": f"{statement_timeout} {conninfo.get('options', '')}".strip(),
    }
    if "connect_timeout" not in conninfo:
        kwargs["connect_timeout"] = max(1, round(timeout))
    return kwargs


def _pg_check(conn: Any) -> None:
    """psycopg_pool's check of a connection it is about to lend: a ping, if its socket stirred."""
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    if readable_at_rest(conn.pgconn.socket):  # a closed connection raises here: dropped too
        ConnectionPool.check_connection(conn)


async def _pg_check_async(conn: Any) -> None:
    """:func:`_pg_check` for psycopg's asyncio pool."""
    from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

    if readable_at_rest(conn.pgconn.socket):
        await AsyncConnectionPool.check_connection(conn)


# -- MariaDB and MySQL ----------------------------------------------------------------------------

MYSQL_OPTIONS = ("charset", "unix_socket", "ssl", "ssl_ca", "ssl_cert", "ssl_key")
"""The query options of a ``mysql://`` (``mariadb://``) URL.

``charset=NAME`` the connection's character set (the drivers' default: ``utf8mb4``);
``unix_socket=PATH`` connect through that socket rather than TCP; ``ssl=true`` require TLS and
verify the server against the system's CAs; ``ssl_ca=FILE`` require TLS and verify the server
against the CAs in FILE; ``ssl_cert=FILE`` and ``ssl_key=FILE`` present a client certificate.
"""

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _mysql_options(url: str) -> dict[str, str]:
    """The URL's query options, percent-decoded (a ``+`` stays a plus, as libpq reads it)."""
    options = {}
    for option in filter(None, urlsplit(url).query.split("&")):
        name, _, value = option.partition("=")
        options[unquote(name)] = unquote(value)
    unknown = sorted(set(options) - set(MYSQL_OPTIONS))
    if unknown:
        scheme = urlsplit(url).scheme.lower()
        raise ValueError(
            f"unknown option(s) {unknown}; {scheme}:// takes {', '.join(MYSQL_OPTIONS)}"
        )
    return options


def _mysql_tls(options: dict[str, str]) -> ssl.SSLContext | None:
    """The TLS context the options ask for, or None when they ask for no TLS."""
    files = [name for name in ("ssl_ca", "ssl_cert", "ssl_key") if name in options]
    flag = options.get("ssl", "true" if files else "false").lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"ssl must be true or false, not {options['ssl']!r}")
    if flag in _FALSE:
        if files:
            raise ValueError(f"ssl=false, yet {', '.join(files)} given")
        return None
    if "ssl_key" in options and "ssl_cert" not in options:
        raise ValueError("ssl_key needs ssl_cert, the certificate it is the key of")
    try:
        context = ssl.create_default_context(cafile=options.get("ssl_ca"))
    except OSError as exc:  # ssl.SSLError is one too
        raise ValueError(f"ssl_ca={options['ssl_ca']}: {exc.strerror or exc}") from None
    if "ssl_cert" in options:
        try:
            context.load_cert_chain(options["ssl_cert"], options.get("ssl_key"))
        except OSError as exc:
            raise ValueError(f"ssl_cert/ssl_key: {exc.strerror or exc}") from None
    return context


def _mysql_kwargs(url: str, timeout: float) -> dict[str, Any]:
    """What PyMySQL and aiomysql both connect with, from the URL (but the database's name,
    which they take under different keywords)."""
    from pymysql.charset import charset_by_name  # noqa: PLC0415

    parts = urlsplit(url)
    options = _mysql_options(url)
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "autocommit": True,
        "connect_timeout": timeout,
    }
    if "charset" in options:
        if charset_by_name(options["charset"]) is None:
            raise ValueError(f"unknown charset {options['charset']!r}")
        kwargs["charset"] = options["charset"]
    if "unix_socket" in options:
        kwargs["unix_socket"] = options["unix_socket"]
    context = _mysql_tls(options)
    if context is not None:
        kwargs["ssl"] = context
    return kwargs


def _mysql_database(url: str) -> str:
    database = urlsplit(url).path.lstrip("/")
    if not database:
        raise ValueError("mysql:// needs a database name, e.g. mysql://root@127.0.0.1/app")
    return unquote(database)


def _refuse_plaintext(conn: Any, kwargs: dict[str, Any]) -> None:
    """Close a connection the URL wanted TLS for, if it has none: PyMySQL and aiomysql both go
    on in plain text when the server offers no TLS."""
    import pymysql  # noqa: PLC0415
    from pymysql.constants import CLIENT  # noqa: PLC0415

    if "ssl" in kwargs and not conn.server_capabilities & CLIENT.SSL:
        conn.close()
        raise pymysql.err.OperationalError(
            2026, "TLS was asked for (ssl options), but the server offers none"
        )


def _mysql_still_open(conn: Any) -> bool:
    """Whether a pooled PyMySQL connection may be lent: quiet at rest, or answering a ping."""
    import pymysql  # noqa: PLC0415

    sock = conn._sock  # PyMySQL has no public way to its socket
    if sock is None:
        return False
    if not readable_at_rest(sock.fileno()):
        return True
    try:
        conn.ping(reconnect=False)
    except (pymysql.err.MySQLError, OSError):
        return False
    return True


async def _aiomysql_still_open(conn: Any, timeout: float) -> bool:
    """:func:`_mysql_still_open` for aiomysql. Its pool drops connections whose end of stream
    the event loop has already read; this also sees one whose close has not been read yet."""
    writer = conn._writer  # aiomysql has no public way to its transport
    if writer is None or writer.transport.is_closing():
        return False
    sock = writer.transport.get_extra_info("socket")
    if sock is not None and not readable_at_rest(sock.fileno()):
        return True
    try:
        await asyncio.wait_for(conn.ping(reconnect=False), timeout)
    except Exception:  # whatever the ping failed with, the connection is not to be lent
        return False
    return True


def _close_quietly(conn: Any) -> None:
    """Close a MySQL connection that may be broken already (either driver)."""
    import pymysql  # noqa: PLC0415

    with contextlib.suppress(pymysql.err.Error, OSError):
        conn.close()


# -- the pools ------------------------------------------------------------------------------------


class AsyncPool:
    """An asyncio pool: psycopg's for PostgreSQL, aiomysql's for MariaDB and MySQL."""

    def __init__(self, url: str, *, timeout: float, max_size: int) -> None:
        self.dialect = dialect_of(url)
        self.timeout = timeout
        self._url, self._max_size = url, max_size
        self._pool: Any = None
        if self.dialect == "postgresql":
            _require_drivers(url, "psycopg", "psycopg_pool")
            self._kwargs = _pg_connection_kwargs(_pg_conninfo(url), timeout)
        else:
            _require_drivers(url, "pymysql", "aiomysql")
            self._kwargs = _mysql_kwargs(url, timeout)
            self._database = _mysql_database(url)

    async def open(self) -> None:
        if self.dialect == "postgresql":
            import psycopg  # noqa: PLC0415
            from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

            # A first connection made directly: a server refusing raises its own reason here,
            # where the pool would time out with it only in psycopg's log.
            first = await psycopg.AsyncConnection.connect(self._url, **self._kwargs)
            await first.close()
            pool = AsyncConnectionPool(
                self._url,
                kwargs=self._kwargs,
                min_size=1,
                max_size=self._max_size,
                timeout=self.timeout,
                open=False,
                check=_pg_check_async,
            )
            try:
                await pool.open(wait=True, timeout=self.timeout)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        else:
            import aiomysql  # noqa: PLC0415

            self._pool = await aiomysql.create_pool(
                minsize=1, maxsize=self._max_size, db=self._database, **self._kwargs
            )

    async def bounded(self, statement: Awaitable[T]) -> T:
        """Await a statement's execution for at most ``timeout`` seconds (TimeoutError after).
        PostgreSQL bounds statements itself (``statement_timeout``); aiomysql has no read
        timeout, so a MariaDB/MySQL statement waiting for a lock would wait out the server's
        (50 s by default), and is bounded here."""
        if self.dialect == "postgresql":
            return await statement
        return await asyncio.wait_for(statement, self.timeout)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        if self.dialect == "postgresql":
            async with self._pool.connection() as conn:
                yield conn
            return
        conn = await self._lend_mysql()
        try:
            yield conn
        except BaseException:
            _close_quietly(conn)  # never lend out a connection in an unknown state
            raise
        finally:
            await self._pool.release(conn)

    async def _lend_mysql(self) -> Any:
        """A connection from aiomysql's pool that is still open and, if the URL asks, on TLS."""
        while True:
            conn = await self._pool.acquire()
            try:
                _refuse_plaintext(conn, self._kwargs)
                if await _aiomysql_still_open(conn, self.timeout):
                    return conn
            except BaseException:
                _close_quietly(conn)
                await self._pool.release(conn)
                raise
            _close_quietly(conn)
            await self._pool.release(conn)

    async def close(self) -> None:
        if self._pool is None:
            return
        if self.dialect == "postgresql":
            await self._pool.close()
        else:
            self._pool.close()
            await self._pool.wait_closed()


class Pool:
    """A thread-safe pool: psycopg's for PostgreSQL, a small LIFO of PyMySQL connections."""

    @staticmethod
    def bounded(statement: T) -> T:
        """The sync face of :meth:`AsyncPool.bounded`: the drivers' own timeouts bound a
        statement here (``statement_timeout``, PyMySQL's read and write timeouts)."""
        return statement

    def __init__(self, url: str, *, timeout: float, max_size: int) -> None:
        self.dialect = dialect_of(url)
        self.timeout = timeout
        self._url, self._max_size = url, max_size
        self._pool: Any = None
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        if self.dialect == "postgresql":
            _require_drivers(url, "psycopg", "psycopg_pool")
            self._kwargs = _pg_connection_kwargs(_pg_conninfo(url), timeout)
        else:
            _require_drivers(url, "pymysql")
            self._kwargs = _mysql_kwargs(url, timeout)
            self._database = _mysql_database(url)

    def open(self) -> None:
        if self.dialect == "postgresql":
            import psycopg  # noqa: PLC0415
            from psycopg_pool import ConnectionPool  # noqa: PLC0415

            # A first connection made directly: a server refusing raises its own reason here,
            # where the pool would time out with it only in psycopg's log.
            psycopg.connect(self._url, **self._kwargs).close()
            pool = ConnectionPool(
                self._url,
                kwargs=self._kwargs,
                min_size=1,
                max_size=self._max_size,
                timeout=self.timeout,
                open=False,
                check=_pg_check,
            )
            try:
                pool.open(wait=True, timeout=self.timeout)
            except BaseException:
                pool.close()
                raise
            self._pool = pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        if self.dialect == "postgresql":
            with self._pool.connection() as conn:
                yield conn
            return
        if not self._slots.acquire(timeout=self.timeout):
            import pymysql  # noqa: PLC0415

            raise pymysql.err.OperationalError(2013, "no free connection in the pool")
        try:
            conn = self._take()
            try:
                yield conn
            except BaseException:
                _close_quietly(conn)  # never lend out a connection in an unknown state
                raise
            self._idle.put(conn)
        finally:
            self._slots.release()

    def _take(self) -> Any:
        """The most recently used idle connection that is still open, or a new one."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                break
            if _mysql_still_open(conn):
                return conn
            _close_quietly(conn)
        import pymysql  # noqa: PLC0415

        conn = pymysql.connect(
            database=self._database,
            read_timeout=self.timeout,
            write_timeout=self.timeout,
            **self._kwargs,
        )
        _refuse_plaintext(conn, self._kwargs)
        return conn

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        while not self._idle.empty():
            _close_quietly(self._idle.get_nowait())
