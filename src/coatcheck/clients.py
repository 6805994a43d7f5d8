"""Who is asking: a request's client address (through trusted proxies only) and its binding.

A session can be bound to its client's user agent and/or network (an IPv4 /24 or IPv6 /48 by
default): the binding is a keyed digest of those, stored with the session and compared on
every load, so a stolen cookie replayed from elsewhere is refused or flagged. ``X-Forwarded-For``
is believed only when the connection comes from a configured trusted proxy.

An IPv4-mapped address (``::ffff:a.b.c.d``, how a dual-stack socket sees IPv4 clients) is the
IPv4 address it maps, for trust, limits and binding alike (:func:`parse_address`).

>>> client_address("10.0.0.2", "203.0.113.9, 10.0.0.1", trusted_proxies=("10.0.0.0/8",))
'203.0.113.9'
>>> client_address("198.51.100.7", "203.0.113.9", trusted_proxies=("10.0.0.0/8",))
'198.51.100.7'
>>> network_of("203.0.113.77", ipv4_prefix=24, ipv6_prefix=48)
'203.0.113.0/24'
>>> client_address("::ffff:10.0.0.2", "::ffff:203.0.113.9", trusted_proxies=("10.0.0.0/8",))
'203.0.113.9'
>>> network_of("::ffff:203.0.113.77", ipv4_prefix=24, ipv6_prefix=48)
'203.0.113.0/24'
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Collection
from typing import NamedTuple

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Client(NamedTuple):
    """What a request says about its client: the address it came from and its user agent."""

    address: str | None
    user_agent: str | None


ClientSource = Client | Callable[[], Client] | None
"""A request's client, or a function that finds it when it is first needed (most requests never
need it, so adapters pass a cheap callable rather than parsing headers up front). The function
holds what it needs of the request, never the request itself: the request holds the session,
which holds the source, and that cycle would leave every request to the garbage collector."""


def client_of(source: ClientSource) -> Client | None:
    """The client ``source`` gives (calling it if it is a function)."""
    return source() if callable(source) else source


def found_client(
    peer: str | None,
    forwarded_for: str | None,
    user_agent: str | None,
    trusted_proxies: Collection[str] = (),
) -> Client:
    """The client of a request from ``peer`` with these headers (what adapters defer)."""
    return Client(client_address(peer, forwarded_for, trusted_proxies), user_agent)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (None if it is not one), an IPv4-mapped IPv6 address
    (``::ffff:a.b.c.d``, how a dual-stack socket sees an IPv4 client) as the IPv4 address it
    is. Every address coatcheck reads (a peer, an ``X-Forwarded-For`` hop) goes through here
    before it is compared with a network or cut to a prefix, so an IPv4 client is the same
    client whichever socket it reached, and never just one of ``::/64``."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_network(text: str) -> Network:
    """A configured network; one inside ``::ffff:0:0/96`` is the IPv4 network it maps."""
    network = ipaddress.ip_network(text, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        low_bits = int(network.network_address) & 0xFFFF_FFFF
        return ipaddress.IPv4Network((low_bits, network.prefixlen - _MAPPED.prefixlen))
    return network


@functools.lru_cache(maxsize=64)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(_parse_network(item) for item in trusted)


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    ip = parse_address(address)
    return ip is not None and any(ip in network for network in _networks(trusted))


def _normal(address: str) -> str:
    """``address`` in its canonical form (IPv4 for a mapped one); as it is if it is not one."""
    ip = parse_address(address)
    return address if ip is None else str(ip)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Collection[str] = ()
) -> str | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not itself a trusted proxy; canonical, and IPv4
    when it is an IPv4-mapped IPv6 address (see :func:`parse_address`)."""
    trusted = tuple(trusted_proxies)
    if peer is None or not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return None if peer is None else _normal(peer)
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return _normal(hop)
    return _normal(hops[0] if hops else peer)


def network_of(address: str | None, *, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The network an address belongs to at the configured prefix lengths ("" if unknown);
    an IPv4-mapped address is in its IPv4 network."""
    ip = parse_address(address) if address else None
    if ip is None:
        return ""
    prefix = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def binding(
    client: Client,
    *,
    user_agent: bool,
    network: bool,
    ipv4_prefix: int,
    ipv6_prefix: int,
    secret: bytes | None,
) -> str:
    """A digest of the bound parts of ``client`` (16 hex digits; keyed when there is a secret).

    Neither the address nor the user agent is stored, only this digest.
    """
    parts = [
        client.user_agent or "" if user_agent else "",
        network_of(client.address, ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix)
        if network
        else "",
    ]
    message = "\x00".join(parts).encode("utf-8", "replace")
    if secret is None:
        return hashlib.sha256(b"coatcheck-binding\x00" + message).hexdigest()[:16]
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:16]


FORWARDED_SCHEMES = frozenset({"http", "https"})
"""The ``X-Forwarded-Proto`` values :func:`request_scheme` believes (from a trusted proxy)."""


def request_scheme(
    received: str,
    peer: str | None,
    forwarded_proto: str | None,
    trusted_proxies: Collection[str] = (),
) -> str:
    """The scheme the browser used for a request: the one it was ``received`` on (``http``,
    ``https``, ``ws`` or ``wss``, as the server reports it), or, when the ``peer`` is a trusted
    proxy (one that terminates TLS, say), the first value of the ``X-Forwarded-Proto`` it
    relays, if that is ``http`` or ``https``. The CSRF ``Origin`` check compares it with the
    ``Origin``'s scheme; every adapter finds it here.

    >>> request_scheme("http", "10.0.0.2", "https", trusted_proxies=("10.0.0.0/8",))
    'https'
    >>> request_scheme("http", "198.51.100.7", "https", trusted_proxies=("10.0.0.0/8",))
    'http'
    """
    trusted = tuple(trusted_proxies)
    if peer is None or not trusted or not forwarded_proto or not _is_trusted(peer, trusted):
        return received
    claimed = forwarded_proto.split(",", 1)[0].strip().lower()
    return claimed if claimed in FORWARDED_SCHEMES else received
