"""Properties of coatcheck.tokens, checked with hypothesis: whatever a client sends as an access
token (any string, any bytes, a valid token mutated, a header and payload of its choosing), the
verifier raises :class:`~coatcheck.tokens.InvalidToken` and nothing else, and accepts a token
only as it was issued; the plans that take a client's token (authenticate, refresh, logout) fail
the same way; keys and JWKS documents of any shape fail as ValueError."""

from __future__ import annotations

import base64
import contextlib
import json
import string
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coatcheck import SessionConfig, SessionEngine
from coatcheck.engine import run
from coatcheck.stores import MemoryStore
from coatcheck.testing import FakeClock
from coatcheck.tokens import (
    InvalidToken,
    RefreshReused,
    TokenIssuer,
    TokenKey,
    TokenKeyRing,
    Tokens,
    TokenVerifier,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ISS, AUD, SID = "https://auth.example", "https://api.example", "K2x0c1Hn7f3QwO1pLx9aQw"
BASE64URL = string.ascii_letters + string.digits + "-_"
CLOCK = FakeClock(time.time())

KEYS = {algorithm: TokenKey.generate(algorithm) for algorithm in ("EdDSA", "ES256", "HS256")}
RING = TokenKeyRing(KEYS.values(), allowed=KEYS)
VERIFIER = TokenVerifier(RING, issuer=ISS, audience=AUD, clock=CLOCK)
TOKENS = {
    algorithm: TokenIssuer(
        TokenKeyRing([key], allowed=[algorithm]), issuer=ISS, audience=AUD, clock=CLOCK
    ).issue("alice", SID, {"scope": "read"})
    for algorithm, key in KEYS.items()
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encoded(value: Any) -> str:
    return b64(json.dumps(value).encode())


def verify_or_refuse(token: object) -> None:
    """Verify, and allow nothing but a refusal, or acceptance of a token exactly as issued."""
    try:
        claims = VERIFIER.verify(token)
    except InvalidToken:
        return
    assert token in TOKENS.values()
    assert claims.user_id == "alice"


@SETTINGS
@given(st.text())
def test_any_text_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        VERIFIER.verify(token)


@SETTINGS
@given(st.text(BASE64URL + ".=", max_size=400))
def test_any_text_of_the_token_alphabet_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        VERIFIER.verify(token)


@SETTINGS
@given(st.binary() | st.integers() | st.none() | st.lists(st.text(max_size=4), max_size=3))
def test_anything_but_text_is_refused(token: object) -> None:
    with pytest.raises(InvalidToken):
        VERIFIER.verify(token)


mutations = st.sampled_from(["replace", "delete", "insert", "swap", "truncate", "duplicate"])


@SETTINGS
@given(
    st.sampled_from(sorted(TOKENS)),
    st.lists(
        st.tuples(mutations, st.integers(min_value=0), st.sampled_from(BASE64URL + ".=+/ \x00é")),
        min_size=1,
        max_size=4,
    ),
)
def test_a_mutated_token_is_refused_or_unchanged(
    algorithm: str, changes: list[tuple[str, int, str]]
) -> None:
    token = TOKENS[algorithm]
    for kind, where, char in changes:
        at = where % (len(token) + 1)
        if kind == "replace" and at < len(token):
            token = token[:at] + char + token[at + 1 :]
        elif kind == "delete":
            token = token[:at] + token[at + 1 :]
        elif kind == "insert":
            token = token[:at] + char + token[at:]
        elif kind == "swap":
            segments = token.split(".")
            segments.reverse()
            token = ".".join(segments)
        elif kind == "truncate":
            token = token[:at]
        elif kind == "duplicate":
            token = token[:at] + token[at:] * 2
    verify_or_refuse(token)


headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["none", "None", "HS256", "EdDSA", "ES256", "RS256", "HS512", ""])
        | json_values,
        "kid": st.sampled_from([key.kid for key in KEYS.values()]) | json_values,
        "typ": st.sampled_from(["at+jwt", "JWT", "application/at+jwt"]) | json_values,
        "crit": json_values,
        "b64": st.booleans(),
        "jku": st.text(max_size=10),
    },
)


@SETTINGS
@given(
    headers | json_values,
    st.dictionaries(st.text(max_size=5), json_values, max_size=6) | json_values,
    st.binary(max_size=80),
    st.sampled_from(sorted(TOKENS)),
)
def test_a_token_of_any_header_and_payload_is_refused(
    header: Any, payload: Any, signature: bytes, algorithm: str
) -> None:
    issued = TOKENS[algorithm].split(".")
    for token in (
        f"{encoded(header)}.{encoded(payload)}.{b64(signature)}",
        f"{encoded(header)}.{issued[1]}.{issued[2]}",  # a real token's payload and signature
        f"{issued[0]}.{encoded(payload)}.{issued[2]}",
        f"{issued[0]}.{issued[1]}.{b64(signature)}",
    ):
        with pytest.raises(InvalidToken):
            VERIFIER.verify(token)


@SETTINGS
@given(st.sampled_from(sorted(TOKENS)), json_values, st.text(max_size=8))
def test_a_token_with_its_payload_re_encoded_is_refused(
    algorithm: str, value: Any, name: str
) -> None:
    head, body, signature = TOKENS[algorithm].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims[name] = value
    token = f"{head}.{encoded(claims)}.{signature}"
    verify_or_refuse(token)


ENGINE = SessionEngine(
    SessionConfig(transport="header", hash_secret=b"h" * 32, clock=CLOCK, idle_timeout=1800)
)
FLOWS = Tokens(ENGINE, TokenKeyRing([KEYS["EdDSA"]]), issuer=ISS, audience=AUD)
STORE = MemoryStore()
PAIR = run(FLOWS.login("alice"), STORE)


@SETTINGS
@given(st.text(max_size=120) | st.sampled_from([PAIR.access_token, PAIR.refresh_token]))
def test_the_plans_that_take_a_clients_token_fail_only_as_invalid_tokens(token: str) -> None:
    with contextlib.suppress(InvalidToken):
        run(FLOWS.authenticate(token), STORE)
    with pytest.raises(InvalidToken):
        # Only the access token is a valid one, and it is not a refresh token.
        run(FLOWS.refresh(token if token != PAIR.refresh_token else token[::-1]), STORE)
    try:
        run(FLOWS.logout(token if token != PAIR.refresh_token else token[::-1]), STORE)
    except RefreshReused:  # pragma: no cover - no spent token is ever drawn
        raise AssertionError("a token never spent was taken for a spent one") from None


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "y", "d", "k", "kid", "alg", "use"]),
        st.sampled_from(
            ["OKP", "EC", "oct", "RSA", "Ed25519", "P-256", "EdDSA", "ES256", "HS256", "sig", "enc"]
        )
        | json_values
        | st.binary(max_size=40).map(b64),
    )
)
def test_a_jwk_of_any_shape_fails_as_a_value_error(jwk: dict[str, Any]) -> None:
    try:
        key = TokenKey.from_jwk(jwk)
    except ValueError:
        return
    assert key.algorithm in ("EdDSA", "ES256", "HS256")


@SETTINGS
@given(json_values | st.text(max_size=40))
def test_a_jwks_of_any_shape_fails_as_a_value_error(document: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - whatever the reason, it is a ValueError
        TokenKeyRing.from_jwks(document if isinstance(document, str) else {"keys": document})
