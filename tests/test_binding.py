"""Hijack detection: a session bound to its client's user agent and/or network refuses (or
flags) a replay of its cookie from another client; forwarded addresses count only from
trusted proxies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from coatcheck import ConfigError, SessionConfig
from coatcheck.clients import Client, client_address, network_of
from coatcheck.engine import SessionEngine, run
from coatcheck.events import SessionEvent
from coatcheck.stores import MemoryStore

from .apps import starlette_app
from .wsgi_app import wsgi_app

FIREFOX, CHROME = "Mozilla/5.0 Firefox/140.0", "Mozilla/5.0 Chrome/150.0"


def cookie_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def session_for(engine: SessionEngine, store: MemoryStore, client: Client) -> str:
    session = run(engine.load(None, client), store)
    session["cart"] = [1]
    set_cookie = run(engine.commit(session), store)
    assert set_cookie is not None
    return cookie_of(set_cookie)


def engine_binding(**options: Any) -> SessionEngine:
    return SessionEngine(SessionConfig(secure=False, **options))


def test_binding_is_off_by_default() -> None:
    engine, store = engine_binding(), MemoryStore()
    sid = session_for(engine, store, Client("203.0.113.5", FIREFOX))
    assert run(engine.load(sid, Client("198.51.100.1", CHROME)), store)["cart"] == [1]


def test_a_user_agent_bound_session_refuses_another_browser() -> None:
    events: list[SessionEvent] = []
    engine, store = engine_binding(bind_to=("user_agent",), on_event=events.append), MemoryStore()
    sid = session_for(engine, store, Client("203.0.113.5", FIREFOX))
    assert run(engine.load(sid, Client("198.51.100.1", FIREFOX)), store)["cart"] == [1]
    stolen = run(engine.load(sid, Client("203.0.113.5", CHROME)), store)
    assert stolen.is_new
    assert dict(stolen) == {}
    assert (events[-1].kind, events[-1].reason) == ("rejected", "binding")
    # The real owner is unaffected by the attempt.
    assert run(engine.load(sid, Client("203.0.113.5", FIREFOX)), store)["cart"] == [1]


def test_a_network_bound_session_allows_the_same_slash_24_only() -> None:
    engine, store = engine_binding(bind_to=("network",)), MemoryStore()
    sid = session_for(engine, store, Client("203.0.113.5", FIREFOX))
    assert not run(engine.load(sid, Client("203.0.113.200", CHROME)), store).is_new
    assert run(engine.load(sid, Client("203.0.114.5", FIREFOX)), store).is_new


def test_ipv6_clients_are_bound_to_their_slash_48() -> None:
    engine, store = engine_binding(bind_to=("network",)), MemoryStore()
    sid = session_for(engine, store, Client("2001:db8:1:2::5", None))
    assert not run(engine.load(sid, Client("2001:db8:1:ffff::9", None)), store).is_new
    assert run(engine.load(sid, Client("2001:db8:2::5", None)), store).is_new


def test_ipv4_mapped_clients_are_bound_to_their_ipv4_network() -> None:
    # A dual-stack server sees IPv4 clients as ::ffff:a.b.c.d; they are IPv4 clients all the
    # same, each in its own /24, not all together in ::/48.
    engine, store = engine_binding(bind_to=("network",)), MemoryStore()
    sid = session_for(engine, store, Client("::ffff:203.0.113.9", None))
    assert not run(engine.load(sid, Client("::ffff:203.0.113.200", None)), store).is_new
    assert not run(engine.load(sid, Client("203.0.113.9", None)), store).is_new
    assert run(engine.load(sid, Client("::ffff:198.51.100.1", None)), store).is_new
    assert run(engine.load(sid, Client("198.51.100.1", None)), store).is_new


def test_flag_mode_keeps_the_session_and_says_so() -> None:
    events: list[SessionEvent] = []
    engine = engine_binding(bind_to=("user_agent",), binding_action="flag", on_event=events.append)
    store = MemoryStore()
    sid = session_for(engine, store, Client(None, FIREFOX))
    assert not run(engine.load(sid, Client(None, FIREFOX)), store).flagged
    flagged = run(engine.load(sid, Client(None, CHROME)), store)
    assert flagged.flagged
    assert flagged["cart"] == [1]
    assert (events[-1].kind, events[-1].reason) == ("flagged", "binding")


def test_sessions_stored_before_binding_was_on_are_bound_by_their_next_write() -> None:
    store = MemoryStore()
    sid = session_for(engine_binding(), store, Client("203.0.113.5", FIREFOX))
    bound = engine_binding(bind_to=("user_agent",))
    session = run(bound.load(sid, Client("203.0.113.5", FIREFOX)), store)
    session["more"] = True
    run(bound.commit(session), store)
    assert run(bound.load(sid, Client("203.0.113.5", CHROME)), store).is_new


def test_login_keeps_the_binding_of_the_client_that_logged_in() -> None:
    engine, store = engine_binding(bind_to=("user_agent",)), MemoryStore()
    sid = session_for(engine, store, Client(None, FIREFOX))
    session = run(engine.load(sid, Client(None, FIREFOX)), store)
    session.login("alice")
    new_sid = cookie_of(run(engine.commit(session), store) or "")
    assert run(engine.load(new_sid, Client(None, FIREFOX)), store).user_id == "alice"
    assert run(engine.load(new_sid, Client(None, CHROME)), store).is_new


def test_no_address_or_user_agent_is_stored_only_a_digest() -> None:
    engine, store = engine_binding(bind_to=("user_agent", "network")), MemoryStore()
    session_for(engine, store, Client("203.0.113.5", FIREFOX))
    (record,) = list(store.iter_records())
    assert b"203.0.113" not in record.data
    assert b"Firefox" not in record.data


# -- the client's address -------------------------------------------------------------------


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = ("10.0.0.0/8", "fd00::/8")
    assert client_address("10.1.2.3", "198.51.100.9", trusted) == "198.51.100.9"
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.9, 10.0.0.7", trusted) == (
        "198.51.100.9"  # the nearest hop that is not one of ours; the left one is forgeable
    )
    assert client_address("198.51.100.9", "10.9.9.9", trusted) == "198.51.100.9"
    assert client_address("10.1.2.3", "198.51.100.9", ()) == "10.1.2.3"
    assert client_address(None, "198.51.100.9", trusted) is None


def test_ipv4_mapped_addresses_are_ipv4_addresses() -> None:
    # The peer of a dual-stack socket, and any hop of X-Forwarded-For, is an IPv4 address in
    # its IPv4 form, and a mapped proxy is trusted by the IPv4 network it is in.
    assert client_address("::ffff:198.51.100.9", None) == "198.51.100.9"
    assert client_address("::FFFF:c633:6409", None) == "198.51.100.9"
    assert client_address("::ffff:10.1.2.3", "198.51.100.9", ("10.0.0.0/8",)) == "198.51.100.9"
    assert client_address("10.1.2.3", "::ffff:198.51.100.9", ("10.0.0.0/8",)) == "198.51.100.9"
    assert client_address("10.1.2.3", "198.51.100.9, ::ffff:10.0.0.7", ("10.0.0.0/8",)) == (
        "198.51.100.9"  # a mapped hop of ours is still one of ours
    )
    assert client_address("::ffff:10.1.2.3", "198.51.100.9", ("::ffff:10.0.0.0/104",)) == (
        "198.51.100.9"  # a proxy network written in mapped form is that IPv4 network
    )
    assert client_address("::ffff:198.51.100.9", "10.9.9.9", ("10.0.0.0/8",)) == "198.51.100.9"


def test_networks_at_the_configured_prefixes() -> None:
    assert network_of("198.51.100.77", ipv4_prefix=16, ipv6_prefix=48) == "198.51.0.0/16"
    assert network_of("2001:db8:1:2::5", ipv4_prefix=24, ipv6_prefix=64) == "2001:db8:1:2::/64"
    assert network_of("not an address", ipv4_prefix=24, ipv6_prefix=48) == ""


def test_an_ipv4_mapped_address_is_in_its_ipv4_network() -> None:
    assert network_of("::ffff:203.0.113.77", ipv4_prefix=24, ipv6_prefix=48) == "203.0.113.0/24"
    assert network_of("::ffff:127.0.0.2", ipv4_prefix=32, ipv6_prefix=64) == "127.0.0.2/32"
    # Only ::ffff:0:0/96 is IPv4: its neighbours are IPv6 addresses like any other.
    assert network_of("::fffe:7f00:2", ipv4_prefix=32, ipv6_prefix=64) == "::/64"
    assert network_of("64:ff9b::7f00:2", ipv4_prefix=32, ipv6_prefix=64) == "64:ff9b::/64"


def test_bad_binding_options_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="bind_to"):
        SessionConfig(bind_to=("ip",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="binding_action"):
        SessionConfig(binding_action="log")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ipv4_prefix"):
        SessionConfig(ipv4_prefix=33)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        SessionConfig(trusted_proxies=("not-a-network",))


# -- through the middleware ----------------------------------------------------------------------


Make = Callable[..., Any]


@pytest.fixture(params=["asgi", "wsgi"])
def make(request: pytest.FixtureRequest) -> Make:
    def build(**options: Any) -> Any:
        store = MemoryStore()
        if request.param == "asgi":
            return TestClient(starlette_app(store, **options), client=("127.0.0.1", 50000))
        return httpx.Client(
            transport=httpx.WSGITransport(app=wsgi_app(store, **options)),
            base_url="http://testserver",
        )

    return build


def test_a_cookie_replayed_from_another_browser_is_anonymous(make: Make) -> None:
    with make(bind_to=("user_agent",)) as client:
        first = client.post("/write?a=1", json={"a": "1"}, headers={"User-Agent": FIREFOX})
        sid = cookie_of(first.headers["set-cookie"])
        own = client.get("/read", headers={"User-Agent": FIREFOX, "Cookie": f"session={sid}"})
        assert "1" in own.text
        other = client.get("/read", headers={"User-Agent": CHROME, "Cookie": f"session={sid}"})
        assert "1" not in other.text
        assert "Max-Age=0" in other.headers["set-cookie"]


def test_the_client_address_comes_through_a_trusted_proxy(make: Make) -> None:
    with make(bind_to=("network",), trusted_proxies=("127.0.0.0/8",)) as client:
        headers = {"X-Forwarded-For": "203.0.113.5"}
        first = client.post("/write?a=1", json={"a": "1"}, headers=headers)
        sid = cookie_of(first.headers["set-cookie"])
        same = client.get("/read", headers={**headers, "Cookie": f"session={sid}"})
        elsewhere = {"X-Forwarded-For": "198.51.100.5", "Cookie": f"session={sid}"}
        moved = client.get("/read", headers=elsewhere)
        assert "1" in same.text
        assert "set-cookie" not in same.headers
        assert "1" not in moved.text
        assert "Max-Age=0" in moved.headers["set-cookie"]


def test_a_cookie_replayed_from_another_mapped_ipv4_address_is_anonymous() -> None:
    store = MemoryStore()
    app = starlette_app(store, bind_to=("network",))
    with (
        TestClient(app, client=("::ffff:203.0.113.9", 50000)) as owner,
        TestClient(app, client=("::ffff:198.51.100.1", 50000)) as thief,
    ):
        sid = cookie_of(owner.post("/login/alice").headers["set-cookie"])
        cookie = {"Cookie": f"session={sid}"}
        assert thief.get("/whoami", headers=cookie).json() == {"user": None, "new": True}
        assert owner.get("/whoami", headers=cookie).json() == {"user": "alice", "new": False}
