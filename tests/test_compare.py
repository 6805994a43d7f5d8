"""`coatcheck compare` measures its table of stores (coupled to one server? survives a restart?)
instead of asserting it: the answers it gets for memory, SQLite and Redis are the ones each is
known for, and it writes its table and chart; with --json it prints its measurements as JSON.

Its credential columns (revocation lag, store calls per request, credential bytes) and its rows
beside the stores (stateless JWT, hybrid, sticky sessions) are measured too: a store that does not
really delete a logged-out session, or a hybrid whose revocation read finds nothing, shows a lag
here, and a stateless token's lag follows the ttl it is given, taking that long to measure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from coatcheck.cli import comparison
from coatcheck.stores import MemoryStore, Record

from .services import REDIS_URL, require
from .shop_servers import require_nginx

SESSION_COOKIE = len("Cookie: __Host-session=") + 43 + len("\r\n")
"""The header a Secure production cookie session sends: its name and a 43-character ID."""


def _compare(*arguments: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coatcheck", "compare", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_compare_measures_what_each_store_is_known_for(tmp_path: Path) -> None:
    require("Redis", "127.0.0.1", 6379)
    table, chart = tmp_path / "compare.md", tmp_path / "compare.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "coatcheck.cli",
            "compare",
            "--stores",
            "memory,sqlite,redis,memcached",
            "--redis",
            REDIS_URL,
            "--memcached",
            "127.0.0.1:1",  # nothing listens there
            "--samples",
            "20",
            "--seconds",
            "0.05",
            "--credentials",
            "stateless-jwt,hybrid",
            "--token-ttl",
            "0.5",
            "--markdown",
            str(table),
            "--chart",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cells = {
        line.split(" | ")[0].strip("| "): [cell.strip(" |") for cell in line.split(" | ")[1:]]
        for line in table.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| store")
    }
    rows = {name: row[:3] for name, row in cells.items()}
    # coupled to one server, survives an app restart, shared across 3 instances
    assert rows["memory"] == ["yes", "no", "no"]
    assert rows["sqlite"] == ["yes", "yes", "yes"]
    assert rows["redis"] == ["no", "yes", "yes"]
    assert rows["memcached"][0] == "not reachable at 127.0.0.1:1"
    # revocation lag, store calls per request, credential bytes per request
    cookie = f"{SESSION_COOKIE} (Cookie)"
    assert cells["memory"][6:] == ["0.00", "1 (in process)", cookie]
    assert cells["sqlite"][6:] == ["0.00", "1 (local file)", cookie]
    assert cells["redis"][6:] == ["0.00", "1 (network)", cookie]
    stateless = cells["stateless JWT"]
    assert stateless[:6] == ["—"] * 6
    # Refused only at its expiry: the lag is what was left of its 0.5 s life at the logout
    # (less the moments since it was issued), plus up to one 10 ms poll.
    assert re.fullmatch(r"0\.[2-5]\d \(expiry; ttl 0\.5 s\)", stateless[6]), stateless
    assert stateless[7] == "0"
    hybrid = cells["hybrid JWT (revocation read on redis)"]  # the store reached over the network
    assert hybrid[6:8] == ["0.00", "1 (network)"]
    assert re.fullmatch(r"\d{3} \(Authorization\)", hybrid[8]), hybrid
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_compare_json_prints_the_measurements() -> None:
    result = _compare(
        *("--stores", "memory,memcached", "--memcached", "127.0.0.1:1", "--credentials", ""),
        *("--samples", "10", "--seconds", "0.05", "--json"),
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    memory, memcached = printed["stores"]
    assert memory["store"] == "memory"
    assert memory["status"] == "measured"
    assert (memory["coupled"], memory["survives_restart"], memory["shared"]) == (True, False, False)
    assert 0 < memory["load_ms"]["p50"] <= memory["load_ms"]["p99"]
    assert memory["writes_per_second"] > 0
    assert 0 <= memory["revocation_lag_s"] < 0.05
    assert memory["accepted_after_logout"] == 0
    assert memory["refused_as"] == "session not found"
    assert (memory["store_calls_per_request"], memory["network_calls_per_request"]) == (1.0, 0.0)
    assert (memory["credential_header"], memory["credential_bytes"]) == ("Cookie", SESSION_COOKIE)
    assert memcached["status"] == "not reachable at 127.0.0.1:1"
    assert memcached["load_ms"] == {"p50": None, "p99": None}
    assert memcached["revocation_lag_s"] is None
    assert memcached["credential_bytes"] is None
    assert printed["credentials"] == []
    assert printed["wrote"] == []


def test_compare_refuses_an_unknown_credential_row() -> None:
    result = _compare("--stores", "memory", "--credentials", "jwt,sticky")
    assert result.returncode == 2
    assert "unknown credential row(s) ['jwt']" in result.stderr


def test_a_stateless_token_is_accepted_until_it_expires_the_hybrid_is_refused_at_once() -> None:
    """The stateless lag is waited out, not computed: the command takes at least that long, the
    token is served meanwhile, and it is finally refused as expired, not revoked."""
    started = time.monotonic()
    result = _compare(
        *("--stores", "memory", "--credentials", "stateless-jwt,hybrid", "--token-ttl", "1"),
        *("--samples", "10", "--seconds", "0.05", "--json"),
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    stateless, hybrid = json.loads(result.stdout)["credentials"]
    assert (stateless["name"], stateless["status"]) == ("stateless JWT", "measured")
    assert (stateless["ttl_s"], stateless["leeway_s"]) == (1.0, 0.0)
    lag = stateless["revocation_lag_s"]
    assert 0.8 < stateless["life_left_at_logout_s"] <= 1.0
    assert stateless["life_left_at_logout_s"] <= lag < stateless["life_left_at_logout_s"] + 0.3
    assert took > lag
    assert stateless["accepted_after_logout"] >= 20  # one every 10 ms, at most, for ~1 s
    assert stateless["refused_as"] == "token expired"
    assert stateless["store_calls_per_request"] == 0.0
    assert stateless["credential_header"] == "Authorization"

    assert (hybrid["name"], hybrid["status"], hybrid["store"]) == (
        "hybrid JWT",
        "measured",
        "memory",
    )
    assert hybrid["revocation_lag_setting_s"] == 0.0
    assert hybrid["revocation_lag_s"] < 0.05
    assert hybrid["accepted_after_logout"] == 0
    assert hybrid["refused_as"] == "token revoked"
    assert (hybrid["store_calls_per_request"], hybrid["network_calls_per_request"]) == (1.0, 0.0)
    # the header of a real token of the same issuer, audience and claims, within what its two
    # times may add or take: iat and exp are floats, whose JSON spelling runs to 17 significant
    # digits or stops short of them (a fraction ending in zeros), a third more in base64
    from coatcheck.tokens import TokenIssuer, TokenKey, TokenKeyRing

    ring = TokenKeyRing([TokenKey.generate("EdDSA")])
    issuer = TokenIssuer(ring, issuer=comparison.ISSUER, audience=comparison.AUDIENCE)
    token = issuer.issue("alice", "K2x0c1Hn7f3QwO1pLx9aQw")
    expected = comparison.header_bytes("Authorization", f"Bearer {token}")
    for row in (stateless, hybrid):
        assert abs(row["credential_bytes"] - expected) <= 16, (row["credential_bytes"], expected)


# -- the measurements themselves, against stores that misbehave ----------------------------------


class Undying(MemoryStore):
    """A store whose delete does nothing: a logged-out session lives on."""

    def delete(self, key: str) -> None:
        pass


class BlindToRevocations(MemoryStore):
    """A store that never finds the tokens' revocation records (written, but not read back)."""

    def load(self, key: str) -> Record | None:
        record = super().load(key)
        if record is not None and record.data.startswith(b'{"revoked":'):
            return None
        return record


def test_the_lag_is_measured_until_the_first_refusal() -> None:
    sent: list[float] = []
    ends = time.monotonic() + 0.2

    def refusal() -> str | None:
        sent.append(time.monotonic())
        return "gone" if sent[-1] >= ends else None

    lag, served, refused = comparison.revocation_lag(lambda: None, refusal, limit=5, poll=0.01)
    assert lag is not None
    assert 0.18 < lag < 0.5
    assert served == len(sent) - 1 >= 5
    assert refused == "gone"


def test_a_session_that_outlives_its_logout_shows_a_lag() -> None:
    honest = comparison.session_credential(MemoryStore(), "in process", limit=0.3)
    assert honest.revocation_lag is not None
    assert honest.revocation_lag < 0.05
    assert (honest.accepted_after_logout, honest.refused_as) == (0, "session not found")
    assert (honest.store_calls, honest.bytes) == (1.0, SESSION_COOKIE)

    undying = comparison.session_credential(Undying(), "in process", limit=0.3)
    assert undying.revocation_lag is None
    assert undying.accepted_after_logout >= 10
    assert undying.refused_as == "still accepted 0.3 s after the logout"


def test_a_hybrid_that_cannot_read_its_revocations_lags_until_expiry() -> None:
    kept = comparison.token_credential(
        MemoryStore(), "in process", stateless=False, ttl=0.5, leeway=0.0
    )
    assert kept.revocation_lag is not None
    assert kept.revocation_lag < 0.05
    assert (kept.accepted_after_logout, kept.refused_as) == (0, "token revoked")
    assert kept.store_calls == 1.0

    blind = comparison.token_credential(
        BlindToRevocations(), "in process", stateless=False, ttl=0.5, leeway=0.0
    )
    assert blind.revocation_lag is not None
    assert 0.3 < blind.revocation_lag < 0.8
    assert blind.accepted_after_logout >= 10
    assert blind.refused_as == "token expired"


def test_sticky_sessions_are_measured_through_nginx() -> None:
    require_nginx()  # skipped outside CI without nginx; under CI=true a failure
    sticky = comparison.sticky_sessions(requests=5)
    assert sticky.status == "measured"
    credential = sticky.credential
    assert credential is not None
    assert credential.details == {
        "instances": 2,
        "instances_seen": 1,  # every request went to the instance that holds the session
        "another_instance_finds_it": False,  # and it is the only one that does
    }
    assert credential.store_calls == 1.0  # counted in that instance: one MemoryStore load each
    assert credential.network_calls == 0.0
    assert credential.revocation_lag is not None
    assert credential.revocation_lag < 0.5
    assert (credential.accepted_after_logout, credential.refused_as) == (0, "401 from its instance")
    # nginx's routing cookie ($request_id: 32 hex digits) and the session's, in one header
    routing = len("coatcheck_route=") + 32 + len("; ")
    assert credential.bytes == SESSION_COOKIE + routing
