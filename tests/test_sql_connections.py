"""The SQL stores' connections and connection URLs, against real PostgreSQL and MariaDB servers.

Specified here:

- A pooled connection the server drops while it sits idle in the pool (its idle timeout, a
  ``KILL``) costs no call, on either face: the pool sees it is gone
  before lending it, and lends another. A quiet connection is lent with no round trip spent.
- A PostgreSQL URL's options reach libpq as written (percent-encoded values too), after the
  store's own; an option libpq does not know is refused when the store is made, and one the
  server refuses is reported with the server's reason.
- A MariaDB/MySQL URL's options are honoured: ``charset``, ``unix_socket``, and TLS with
  ``ssl``, ``ssl_ca``, ``ssl_cert`` and ``ssl_key``; any other is refused by name when the
  store is made, and so is a bad value.

The TLS and socket cases run on a private MariaDB (:mod:`tests.mariadb_server`): the shared
one has no TLS, and its socket need not be reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import quote, urlsplit

import pytest

from coatcheck.stores import Record, StoreUnavailable, from_url
from coatcheck.stores.sql import AsyncSQLStore, SQLStore

from . import mariadb_server
from .mariadb_server import PrivateMariaDB
from .redis_servers import wait_until
from .servers import free_port
from .services import MARIADB_URL, POSTGRESQL_URL, require
from .test_sql import DATABASES, run_sql

POOL_SIZE = 3
FACES = ["sync", "async"]
CONNECTION_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}


def with_options(url: str, **options: str) -> str:
    """``url`` with more query options, each value percent-encoded."""
    added = "&".join(f"{name}={quote(value, safe='')}" for name, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{added}"


def a_record() -> Record:
    return Record(secrets.token_hex(32), b'{"cart": ["tea"]}', time.time() + 600, 1, "alice")


@pytest.fixture(params=list(DATABASES))
def database(request: pytest.FixtureRequest) -> str:
    url = DATABASES[request.param]
    parts = urlsplit(url)
    require(request.param, parts.hostname or "127.0.0.1", parts.port or 0)
    return url


@pytest.fixture
def postgresql() -> str:
    parts = urlsplit(POSTGRESQL_URL)
    require("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRESQL_URL


@pytest.fixture
def mariadb() -> str:
    parts = urlsplit(MARIADB_URL)
    require("MariaDB", parts.hostname or "127.0.0.1", parts.port or 3306)
    return MARIADB_URL


@pytest.fixture
def new_table() -> Iterator[Callable[[str], str]]:
    """``new_table(url)``: the name of a fresh table in the database at ``url`` (a URL its
    owner can use), dropped afterwards. One per store: a second store making the same table
    would get a warning from aiomysql, which the suite turns into an error."""
    made: list[tuple[str, str]] = []

    def named(url: str) -> str:
        made.append((url, f"coatcheck_test_{secrets.token_hex(4)}"))
        return made[-1][1]

    yield named
    for url, name in made:
        run_sql(url, f"DROP TABLE IF EXISTS {name}")


def query_through_store(url: str, face: str, statement: str) -> list[tuple[Any, ...]]:
    """Make the store at ``url`` (by ``from_url``) on ``face``, make one call through it, then
    run ``statement`` on one of its pooled connections; return the rows."""
    key = secrets.token_hex(32)
    if face == "sync":
        store = from_url(url)
        assert isinstance(store, SQLStore)
        try:
            assert store.load(key) is None
            with store.pool.connection() as conn, conn.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            store.close()

    async def through_async_store() -> list[tuple[Any, ...]]:
        store = from_url(url, asynchronous=True)
        assert isinstance(store, AsyncSQLStore)
        try:
            assert await store.load(key) is None
            async with store.pool.connection() as conn, conn.cursor() as cursor:
                await cursor.execute(statement)
                return list(await cursor.fetchall())
        finally:
            await store.close()

    return asyncio.run(through_async_store())


# -- connections the server drops ------------------------------------------------------------

DROPS = ["killed", "timed out"]
"""How the server drops the pool's idle connections: ``KILL`` (``pg_terminate_backend``), or
its idle timeout (``wait_timeout``, ``idle_session_timeout``) set to one second on each."""

ONE_SECOND_IDLE_TIMEOUT = {
    "postgresql": "SET idle_session_timeout = 1000",
    "mysql": "SET SESSION wait_timeout = 1",
}


def is_postgresql(database: str) -> bool:
    return urlsplit(database).scheme.startswith("postgres")


def wait_until_gone(database: str, ids: list[int]) -> None:
    """Wait until the server has let these connections go."""
    listed = ", ".join(map(str, ids))
    if is_postgresql(database):
        listing = f"SELECT pid FROM pg_stat_activity WHERE pid IN ({listed})"
    else:
        listing = f"SELECT id FROM information_schema.processlist WHERE id IN ({listed})"
    wait_until(lambda: not run_sql(database, listing), "the dropped connections to be gone")


def drop(database: str, how: str, ids: list[int]) -> None:
    """Have the server end these idle connections (see :data:`DROPS`), and wait till it has."""
    if how == "killed":
        for server_id in ids:
            if is_postgresql(database):
                run_sql(database, f"SELECT pg_terminate_backend({server_id})")
            else:
                run_sql(database, f"KILL {server_id}")
    wait_until_gone(database, ids)


def hold_every_connection(store: SQLStore, how: str | None = None) -> list[int]:
    """Take ``POOL_SIZE`` connections from the store's pool at once (so that it has that many),
    then give them back; return the server's id of each. ``how="timed out"`` gives each an
    idle timeout of one second."""
    ids = []
    with contextlib.ExitStack() as held:
        for _ in range(POOL_SIZE):
            conn = held.enter_context(store.pool.connection())
            with conn.cursor() as cursor:
                cursor.execute(CONNECTION_ID[store.pool.dialect])
                ids.append(int(cursor.fetchall()[0][0]))
                if how == "timed out":
                    cursor.execute(ONE_SECOND_IDLE_TIMEOUT[store.pool.dialect])
    return ids


async def hold_every_connection_async(store: AsyncSQLStore, how: str | None = None) -> list[int]:
    """:func:`hold_every_connection` for the asyncio face."""
    ids = []
    async with contextlib.AsyncExitStack() as held:
        for _ in range(POOL_SIZE):
            conn = await held.enter_async_context(store.pool.connection())
            async with conn.cursor() as cursor:
                await cursor.execute(CONNECTION_ID[store.pool.dialect])
                ids.append(int((await cursor.fetchall())[0][0]))
                if how == "timed out":
                    await cursor.execute(ONE_SECOND_IDLE_TIMEOUT[store.pool.dialect])
    return ids


@pytest.mark.parametrize("how", DROPS)
def test_the_sync_pool_serves_on_when_the_server_drops_its_connections(
    database: str, new_table: Callable[[str], str], how: str
) -> None:
    """Every connection in the pool dropped server-side while idle: the next calls all succeed,
    none raises StoreUnavailable, and the pool holds new connections afterwards."""
    store = SQLStore.from_url(database, table=new_table(database), max_size=POOL_SIZE)
    with contextlib.closing(store):
        record = a_record()
        assert store.create(record)
        dropped = hold_every_connection(store, how)
        drop(database, how, dropped)

        for _ in range(2 * POOL_SIZE):
            assert store.load(record.key) == record
        assert store.save(record._replace(data=b"{}", version=2), expected_version=1)
        assert set(hold_every_connection(store)).isdisjoint(dropped)


@pytest.mark.parametrize("how", DROPS)
def test_the_async_pool_serves_on_when_the_server_drops_its_connections(
    database: str, new_table: Callable[[str], str], how: str
) -> None:
    """The same on the asyncio face, with as many calls at once as the pool had connections,
    made before the event loop has even read that the connections ended (the server drops
    them while it is blocked)."""

    async def scenario() -> None:
        store = AsyncSQLStore.from_url(database, table=new_table(database), max_size=POOL_SIZE)
        try:
            record = a_record()
            assert await store.create(record)
            dropped = await hold_every_connection_async(store, how)
            drop(database, how, dropped)  # blocks the event loop: it learns nothing till the calls

            loads = await asyncio.gather(*(store.load(record.key) for _ in range(POOL_SIZE)))
            assert loads == [record] * POOL_SIZE
            assert await store.save(record._replace(data=b"{}", version=2), expected_version=1)
            assert set(await hold_every_connection_async(store)).isdisjoint(dropped)
        finally:
            await store.close()

    asyncio.run(scenario())


def pings_on(conn: Any) -> int:
    """How many pings (and other admin commands) MariaDB has had on this connection."""
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
        return int(cursor.fetchall()[0][1])


def test_a_quiet_mariadb_connection_is_lent_without_a_ping(
    mariadb: str, new_table: Callable[[str], str]
) -> None:
    """The check before lending a connection looks at its socket and sends nothing: ten calls
    on one connection cost MariaDB no ping."""
    store = SQLStore.from_url(mariadb, table=new_table(mariadb), max_size=1)
    with contextlib.closing(store):
        key = secrets.token_hex(32)
        assert store.load(key) is None
        with store.pool.connection() as conn:
            before, connection_id = pings_on(conn), conn.thread_id()
        for _ in range(10):
            assert store.load(key) is None
        with store.pool.connection() as conn:
            assert conn.thread_id() == connection_id
            assert pings_on(conn) == before


def test_a_quiet_mariadb_connection_is_lent_without_a_ping_async(
    mariadb: str, new_table: Callable[[str], str]
) -> None:
    """The same on the asyncio face."""

    async def pings_on_async(conn: Any) -> int:
        async with conn.cursor() as cursor:
            await cursor.execute("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
            return int((await cursor.fetchall())[0][1])

    async def scenario() -> None:
        store = AsyncSQLStore.from_url(mariadb, table=new_table(mariadb), max_size=1)
        try:
            key = secrets.token_hex(32)
            assert await store.load(key) is None
            async with store.pool.connection() as conn:
                before, connection_id = await pings_on_async(conn), conn.thread_id()
            for _ in range(10):
                assert await store.load(key) is None
            async with store.pool.connection() as conn:
                assert conn.thread_id() == connection_id
                assert await pings_on_async(conn) == before
        finally:
            await store.close()

    asyncio.run(scenario())


def start_tracing(conn: Any, trace: IO[bytes]) -> None:
    """Have libpq trace the protocol on this psycopg connection (either face) into ``trace``."""
    from psycopg.pq import Trace

    conn.pgconn.trace(os.dup(trace.fileno()))  # libpq keeps this descriptor open
    conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)


def messages_sent(conn: Any, trace: IO[bytes]) -> list[str]:
    """Stop tracing ``conn``; the name of each message the client sent meanwhile."""
    conn.pgconn.untrace()
    trace.seek(0)
    lines = [line.split("\t") for line in trace.read().decode().splitlines()]
    return [line[2] for line in lines if line[0] == "F"]


QUIET = {"Parse", "Bind", "Describe", "Execute", "Sync"}
"""What a statement of the store's is sent as, in the extended protocol: a ping would add a
Query (psycopg's is an empty one) or another Execute."""


def test_a_quiet_postgresql_connection_is_lent_without_a_ping(
    postgresql: str, new_table: Callable[[str], str]
) -> None:
    """The same for PostgreSQL, in libpq's own trace of the connection: ten calls send ten
    statements (psycopg prepares one on the way), and no query besides to check the
    connection on any of its eleven loans."""
    store = SQLStore.from_url(postgresql, table=new_table(postgresql), max_size=1)
    key = secrets.token_hex(32)
    with contextlib.closing(store), tempfile.TemporaryFile() as trace:
        assert store.load(key) is None
        with store.pool.connection() as conn:
            start_tracing(conn, trace)
        for _ in range(10):
            assert store.load(key) is None
        with store.pool.connection() as conn:
            sent = messages_sent(conn, trace)
    assert sent.count("Execute") == 10
    assert set(sent) <= QUIET


def test_a_quiet_postgresql_connection_is_lent_without_a_ping_async(
    postgresql: str, new_table: Callable[[str], str]
) -> None:
    """The same on the asyncio face."""

    async def scenario(trace: IO[bytes]) -> list[str]:
        store = AsyncSQLStore.from_url(postgresql, table=new_table(postgresql), max_size=1)
        key = secrets.token_hex(32)
        try:
            assert await store.load(key) is None
            async with store.pool.connection() as conn:
                start_tracing(conn, trace)
            for _ in range(10):
                assert await store.load(key) is None
            async with store.pool.connection() as conn:
                return messages_sent(conn, trace)
        finally:
            await store.close()

    with tempfile.TemporaryFile() as trace:
        sent = asyncio.run(scenario(trace))
    assert sent.count("Execute") == 10
    assert set(sent) <= QUIET


# -- PostgreSQL URL options ------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_an_application_name_with_a_space_reaches_postgresql(
    postgresql: str, new_table: Callable[[str], str], face: str
) -> None:
    """``?application_name=my%20app`` names the store's connections ``my app`` (it failed with
    a PoolTimeout: the value reached libpq decoded, unquoted)."""
    name = f"coatcheck test {secrets.token_hex(4)}"
    url = with_options(postgresql, table=new_table(postgresql), application_name=name)
    statement = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    assert query_through_store(url, face, statement) == [(name,)]


@pytest.fixture
def schema(postgresql: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards with what is in it."""
    name = f"coatcheck_schema_{secrets.token_hex(4)}"
    run_sql(postgresql, f"CREATE SCHEMA {name}")
    yield name
    run_sql(postgresql, f"DROP SCHEMA {name} CASCADE")


@pytest.mark.parametrize("face", FACES)
def test_options_search_path_puts_the_sessions_in_that_schema(
    postgresql: str, new_table: Callable[[str], str], schema: str, face: str
) -> None:
    """``?options=-c%20search_path%3DNAME`` selects the schema: the store makes its table there
    (it failed to connect), and the store's statement timeout still holds."""
    table = new_table(postgresql)
    url = with_options(postgresql, table=table, timeout="3", options=f"-c search_path={schema}")
    assert query_through_store(url, face, "SHOW statement_timeout") == [("3s",)]
    placed = run_sql(
        postgresql,
        f"SELECT table_schema FROM information_schema.tables WHERE table_name = '{table}'",
    )
    assert placed == [(schema,)]


def test_the_urls_own_options_come_after_the_stores(
    postgresql: str, new_table: Callable[[str], str]
) -> None:
    """A ``-c statement_timeout`` in the URL's ``options`` wins over the store's timeout, and the
    URL's ``connect_timeout`` stands."""
    url = with_options(
        postgresql,
        table=new_table(postgresql),
        options="-c statement_timeout=1234",
        connect_timeout="7",
    )
    assert query_through_store(url, "sync", "SHOW statement_timeout") == [("1234ms",)]
    store = from_url(url)
    assert isinstance(store, SQLStore)
    with contextlib.closing(store):
        store.load(secrets.token_hex(32))
        with store.pool.connection() as conn:
            assert conn.info.get_parameters()["connect_timeout"] == "7"


def test_an_option_libpq_does_not_know_is_refused_when_the_store_is_made() -> None:
    """No pool that never opens: from_url names the option (no server is needed for that)."""
    with pytest.raises(ValueError, match='invalid URI query parameter: "sslmod"') as refused:
        from_url("postgresql://app:hunter2@127.0.0.1/test?sslmod=require")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("face", FACES)
def test_a_server_refusing_the_options_is_reported_with_its_reason(
    postgresql: str, new_table: Callable[[str], str], face: str
) -> None:
    """An option the server refuses makes the store unavailable with the server's own words, not
    a pool timeout whose cause only psycopg's log told."""
    url = with_options(
        postgresql, table=new_table(postgresql), timeout="2", options="-c no_such_setting=1"
    )
    with pytest.raises(StoreUnavailable, match='unrecognized configuration parameter "no_such'):
        query_through_store(url, face, "SELECT 1")


# -- MariaDB and MySQL URL options -----------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("charset", ["latin1", "utf8mb4"])
def test_charset_sets_the_connections_character_set(
    mariadb: str, new_table: Callable[[str], str], face: str, charset: str
) -> None:
    url = with_options(mariadb, table=new_table(mariadb), charset=charset)
    assert query_through_store(url, face, "SELECT @@character_set_client") == [(charset,)]


def test_an_unknown_mysql_option_is_refused_by_name_with_the_ones_it_takes() -> None:
    """Refused when the store is made, naming what mysql:// takes (no server is needed)."""
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sslmode'\]") as refused:
        from_url("mysql://app:hunter2@127.0.0.1/test?sslmode=require&table=web")
    message = str(refused.value)
    assert "charset, unix_socket, ssl, ssl_ca, ssl_cert, ssl_key" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        ("charset=klingon", "unknown charset 'klingon'"),
        ("ssl=maybe", "ssl must be true or false"),
        ("ssl=false&ssl_ca=/ca.pem", "ssl=false, yet ssl_ca given"),
        ("ssl_ca=/nonexistent/ca.pem", "ssl_ca=/nonexistent/ca.pem: No such file"),
        ("ssl_key=/nonexistent/key.pem", "ssl_key needs ssl_cert"),
    ],
)
@pytest.mark.parametrize("face", FACES)
def test_a_bad_mysql_option_value_is_refused_when_the_store_is_made(
    options: str, refusal: str, face: str
) -> None:
    with pytest.raises(ValueError, match="bad store URL") as refused:
        from_url(f"mysql://root@127.0.0.1/test?{options}", asynchronous=face == "async")
    assert refusal in str(refused.value)


@pytest.mark.parametrize("face", FACES)
def test_ssl_against_a_server_without_tls_is_refused_not_plain_text(
    mariadb: str, new_table: Callable[[str], str], face: str
) -> None:
    """The drivers would go on in plain text when the server offers no TLS (as the shared test
    server does): the store refuses to."""
    url = with_options(mariadb, table=new_table(mariadb), ssl="true")
    with pytest.raises(StoreUnavailable, match="TLS was asked for"):
        query_through_store(url, face, "SELECT 1")


@pytest.fixture(scope="module")
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A MariaDB of this module's own, with TLS: ``tls`` may log in only over TLS, ``certified``
    only with a client certificate from the server's CA."""
    if not mariadb_server.available():
        message = "the TLS and socket tests need root and MariaDB's server binaries"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = PrivateMariaDB()
    try:
        server.start()
        for user, requirement in (("tls", "SSL"), ("certified", "X509")):
            server.sql(f"CREATE USER '{user}'@'%' REQUIRE {requirement}")
            server.sql(f"GRANT ALL ON test.* TO '{user}'@'%'")
        yield server
    finally:
        server.remove()


CIPHER = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"


@pytest.mark.parametrize("face", FACES)
def test_ssl_ca_connects_over_tls_verified_against_that_ca(
    private_mariadb: PrivateMariaDB, new_table: Callable[[str], str], face: str
) -> None:
    table = new_table(private_mariadb.url())
    url = with_options(private_mariadb.url("tls"), table=table, ssl_ca=str(private_mariadb.ca))
    [(_, cipher)] = query_through_store(url, face, CIPHER)
    assert cipher


@pytest.mark.parametrize("face", FACES)
def test_ssl_true_verifies_the_server_against_the_systems_cas(
    private_mariadb: PrivateMariaDB, new_table: Callable[[str], str], face: str
) -> None:
    """The private server's CA is in no system store: its certificate is not accepted.
    (aiomysql says only "Can't connect": the certificate's refusal is the error's cause.)"""
    table = new_table(private_mariadb.url())
    url = with_options(private_mariadb.url("tls"), table=table, ssl="true", timeout="2")
    with pytest.raises(StoreUnavailable) as refused:
        query_through_store(url, face, CIPHER)
    causes: list[BaseException] = []
    error: BaseException | None = refused.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any("CERTIFICATE_VERIFY_FAILED" in str(cause) for cause in causes)


@pytest.mark.parametrize("face", FACES)
def test_ssl_cert_and_ssl_key_present_a_client_certificate(
    private_mariadb: PrivateMariaDB, new_table: Callable[[str], str], face: str
) -> None:
    """A user who must show a certificate gets in with one, and is refused without."""
    table = new_table(private_mariadb.url())
    without = with_options(
        private_mariadb.url("certified"), table=table, ssl_ca=str(private_mariadb.ca), timeout="2"
    )
    certified = with_options(
        without,
        ssl_cert=str(private_mariadb.client_certificate),
        ssl_key=str(private_mariadb.client_key),
    )
    [(_, cipher)] = query_through_store(certified, face, CIPHER)
    assert cipher
    with pytest.raises(StoreUnavailable, match="Access denied"):
        query_through_store(without, face, CIPHER)


@pytest.mark.parametrize("face", FACES)
def test_unix_socket_connects_through_that_socket(
    private_mariadb: PrivateMariaDB, new_table: Callable[[str], str], face: str
) -> None:
    """The URL's host and port lead nowhere: the store still connects, through the socket, and
    the server sees a local client."""
    nowhere = private_mariadb.url(host=f"127.0.0.1:{free_port()}")
    url = with_options(nowhere, table=new_table(private_mariadb.url()))
    url = with_options(url, unix_socket=str(private_mariadb.socket))
    client = "SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()"
    assert query_through_store(url, face, client) == [("localhost",)]
