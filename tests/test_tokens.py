"""coatcheck.tokens: keys, issuing and verifying (no store), then the flows over real stores.

The first half needs no store: each algorithm round-trips; ``none``, algorithm confusion (an
HS256 token whose HMAC secret is a public key, however spelt), tampering, expiry, the wrong
audience, issuer or ``typ``, an unknown ``kid`` and a future ``nbf`` are each refused with the
:class:`~coatcheck.tokens.InvalidToken` subclass that says why; keys rotate; the JWKS holds public
keys only. The second half runs the flows on MemoryStore, SQLite and Redis: refresh rotates, a
spent refresh token ends its session, revocations reach a live access token at once (or after
the configured lag; never in stateless mode), and checking one costs exactly one store call.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from coatcheck import SessionConfig, SessionEngine
from coatcheck.engine import Plan, StoreCall, run, run_async
from coatcheck.ids import store_key
from coatcheck.stores import MemoryStore, SQLiteStore, Store, from_url
from coatcheck.stores.base import AsyncStoreAdapter, Record
from coatcheck.testing import CountingStore, FakeClock
from coatcheck.tokens import (
    MAX_REVOKED_SESSIONS,
    STATE_KEY,
    AlgorithmRefused,
    BadSignature,
    Claims,
    Entry,
    InvalidToken,
    MalformedToken,
    RefreshFailed,
    RefreshReused,
    Revocations,
    TokenExpired,
    TokenIssuer,
    TokenKey,
    TokenKeyRing,
    TokenNotYetValid,
    TokenRevoked,
    Tokens,
    TokenVerifier,
    UnknownKey,
    WrongAudience,
    WrongIssuer,
    WrongType,
    is_token_record,
    jwks_json,
)

from .services import REDIS_URL, require

ISS = "https://auth.example"
AUD = "https://api.example"
SID = "K2x0c1Hn7f3QwO1pLx9aQw"
TTL = 300.0
LEEWAY = 10.0
IDLE = 1800.0
ABSOLUTE = 8 * 3600.0
ALGORITHMS = ["EdDSA", "ES256", "HS256"]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload)), unb64(signature)


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None = None) -> str:
    """A token as an attacker writes it: any header, HMAC-SHA256 with ``secret`` (or no
    signature)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), "sha256").digest()
    )
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


def ring_of(algorithm: str) -> TokenKeyRing:
    return TokenKeyRing([TokenKey.generate(algorithm)], allowed=[algorithm])  # type: ignore[arg-type]


def pair_for(
    ring: TokenKeyRing, clock: FakeClock, **options: Any
) -> tuple[TokenIssuer, TokenVerifier]:
    issuer = TokenIssuer(ring, issuer=ISS, audience=AUD, ttl=TTL, clock=clock)
    verifier = TokenVerifier(ring, issuer=ISS, audience=AUD, leeway=LEEWAY, clock=clock, **options)
    return issuer, verifier


def claims_now(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = clock()
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "sid": SID,
        "iat": now,
        "exp": now + TTL,
        "jti": "j1",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


# -- issuing and verifying -----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_round_trips(algorithm: str, clock: FakeClock) -> None:
    ring = ring_of(algorithm)
    issuer, verifier = pair_for(ring, clock)
    token = issuer.issue("alice", SID, {"scope": "read"})
    header, payload, _ = parts(token)
    assert header == {"alg": algorithm, "kid": ring.keys[0].kid, "typ": "at+jwt"}
    assert set(payload) == {"iss", "aud", "sub", "sid", "iat", "exp", "jti", "scope"}
    claims = verifier.verify(token)
    assert claims == Claims(
        user_id="alice",
        sid=SID,
        issued_at=clock(),
        expires_at=clock() + TTL,
        token_id=payload["jti"],
        issuer=ISS,
        audience=AUD,
        key_id=ring.keys[0].kid,
        extra={"scope": "read"},
    )
    assert issuer.issue("alice", SID) != issuer.issue("alice", SID)  # a jti of its own


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(alg: str, clock: FakeClock) -> None:
    ring = ring_of("EdDSA")
    _, verifier = pair_for(ring, clock)
    token = forge({"alg": alg, "kid": ring.keys[0].kid, "typ": "at+jwt"}, claims_now(clock))
    with pytest.raises(AlgorithmRefused):
        verifier.verify(token)
    with pytest.raises(AlgorithmRefused):  # however it is spelt, and even if "allowed" could
        verifier.verify(token + "c2ln")


def public_spellings(key: TokenKey) -> list[bytes]:
    """Every form of a key's public half an attacker might use as an HMAC secret."""
    jwk = key.to_jwk()
    public = key._public
    assert not isinstance(public, bytes)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [pem, der, jwk["x"].encode(), unb64(jwk["x"]), json.dumps(jwk).encode()]


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_an_hs256_token_signed_with_a_public_key_is_refused(
    algorithm: str, clock: FakeClock
) -> None:
    public_key = TokenKey.generate(algorithm)  # type: ignore[arg-type]
    shared = TokenKey.generate("HS256")
    # Even a ring that allows HS256 too: the key the kid names decides the algorithm.
    ring = TokenKeyRing([public_key, shared], allowed=[algorithm, "HS256"])
    _, verifier = pair_for(ring, clock)
    _, strict = pair_for(TokenKeyRing([public_key], allowed=[algorithm]), clock)
    for secret in public_spellings(public_key):
        confused = forge(
            {"alg": "HS256", "kid": public_key.kid, "typ": "at+jwt"}, claims_now(clock), secret
        )
        with pytest.raises(AlgorithmRefused):
            verifier.verify(confused)
        with pytest.raises(AlgorithmRefused):
            strict.verify(confused)
        # Naming the HS256 key instead: its own secret is not the public key.
        other = forge(
            {"alg": "HS256", "kid": shared.kid, "typ": "at+jwt"}, claims_now(clock), secret
        )
        with pytest.raises(BadSignature):
            verifier.verify(other)


def test_the_shared_secret_itself_verifies_only_through_its_own_kid(clock: FakeClock) -> None:
    shared = TokenKey.generate("HS256")
    _, verifier = pair_for(TokenKeyRing([shared], allowed=["HS256"]), clock)
    secret = unb64(shared.to_jwk(private=True)["k"])
    token = forge({"alg": "HS256", "kid": shared.kid, "typ": "at+jwt"}, claims_now(clock), secret)
    assert verifier.verify(token).user_id == "alice"


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims.update(changes)
    return f"{header}.{segment(claims)}.{signature}"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tampering_is_refused(algorithm: str, clock: FakeClock) -> None:
    issuer, verifier = pair_for(ring_of(algorithm), clock)
    token = issuer.issue("alice", SID)
    with pytest.raises(BadSignature):
        verifier.verify(tampered(token, sub="mallory"))
    with pytest.raises(BadSignature):
        verifier.verify(tampered(token, exp=clock() + 10 * TTL))
    head, body, signature = token.split(".")
    with pytest.raises(BadSignature):  # a signature one byte short
        verifier.verify(f"{head}.{body}.{b64(unb64(signature)[:-1])}")
    with pytest.raises(BadSignature):
        verifier.verify(f"{head}.{body}.")
    for cut in range(1, 5):  # cut as text: not canonical base64url, or too short
        with pytest.raises((MalformedToken, BadSignature)):
            verifier.verify(token[:-cut])
    with pytest.raises(MalformedToken):  # the same bytes spelt another way: one spelling only
        verifier.verify(f"{head}.{body}.{signature}=")
    with pytest.raises(MalformedToken):
        verifier.verify(f"{head}.{body}")


def test_expiry_with_leeway(clock: FakeClock) -> None:
    issuer, verifier = pair_for(ring_of("EdDSA"), clock)
    token = issuer.issue("alice", SID)
    clock.advance(TTL + LEEWAY - 1)
    assert verifier.verify(token).user_id == "alice"
    clock.advance(1)
    with pytest.raises(TokenExpired):
        verifier.verify(token)


def test_not_yet_valid(clock: FakeClock) -> None:
    ring = ring_of("EdDSA")
    key = ring.keys[0]
    _, verifier = pair_for(ring, clock)
    assert verifier.verify(key.sign(claims_now(clock, nbf=clock() + LEEWAY)))
    with pytest.raises(TokenNotYetValid):
        verifier.verify(key.sign(claims_now(clock, nbf=clock() + LEEWAY + 1)))
    with pytest.raises(TokenNotYetValid):
        verifier.verify(key.sign(claims_now(clock, iat=clock() + LEEWAY + 1)))


def test_wrong_audience_issuer_and_type(clock: FakeClock) -> None:
    ring = ring_of("EdDSA")
    key = ring.keys[0]
    issuer, verifier = pair_for(ring, clock)
    token = issuer.issue("alice", SID)
    with pytest.raises(WrongAudience):
        TokenVerifier(ring, issuer=ISS, audience="https://other.example", clock=clock).verify(token)
    with pytest.raises(WrongIssuer):
        TokenVerifier(ring, issuer="https://evil.example", audience=AUD, clock=clock).verify(token)
    with pytest.raises(WrongAudience):
        verifier.verify(key.sign(claims_now(clock, aud=None)))
    with pytest.raises(WrongAudience):  # a list of audiences is not ours
        verifier.verify(key.sign(claims_now(clock, aud=[AUD, "https://other.example"])))
    with pytest.raises(WrongIssuer):
        verifier.verify(key.sign(claims_now(clock, iss=None)))
    signer = cast(ed25519.Ed25519PrivateKey, key._signing)
    for typ in ("JWT", "id_token+jwt", None):
        headers: dict[str, Any] = {"kid": key.kid, "typ": typ}
        if typ is None:
            del headers["typ"]
        other = jwt.encode(claims_now(clock), signer, algorithm="EdDSA", headers=headers)
        if typ is None:  # PyJWT writes typ JWT unless told otherwise: drop it by hand
            head, body, _ = other.split(".")
            header = json.loads(unb64(head))
            header.pop("typ")
            other = forge(header, json.loads(unb64(body)))
        with pytest.raises(WrongType):
            verifier.verify(other)
    assert verifier.verify(
        jwt.encode(
            claims_now(clock),
            signer,
            algorithm="EdDSA",
            headers={"kid": key.kid, "typ": "application/at+jwt"},
        )
    )


def test_missing_or_mistyped_claims_are_malformed(clock: FakeClock) -> None:
    ring = ring_of("EdDSA")
    key = ring.keys[0]
    _, verifier = pair_for(ring, clock)
    for changes in (
        {"sub": None},
        {"sid": None},
        {"jti": None},
        {"exp": None},
        {"iat": None},
        {"sub": 7},
        {"sid": ""},
        {"exp": "soon"},
        {"exp": True},
        {"iat": 10**400},
        {"nbf": [1]},
    ):
        with pytest.raises(MalformedToken):
            verifier.verify(key.sign(claims_now(clock, **changes)))


def test_unknown_or_missing_kid(clock: FakeClock) -> None:
    ring = ring_of("EdDSA")
    _, verifier = pair_for(ring, clock)
    stranger = TokenKey.generate("EdDSA")
    with pytest.raises(UnknownKey):
        verifier.verify(stranger.sign(claims_now(clock)))
    signer = cast(ed25519.Ed25519PrivateKey, ring.keys[0]._signing)
    no_kid = jwt.encode(claims_now(clock), signer, algorithm="EdDSA", headers={"typ": "at+jwt"})
    with pytest.raises(UnknownKey):
        verifier.verify(no_kid)


@pytest.mark.parametrize(
    "member", [{"crit": ["exp"]}, {"b64": False}, {"jku": "https://evil"}, {"x5u": "x"}]
)
def test_header_members_beyond_alg_kid_typ_are_refused(
    member: dict[str, Any], clock: FakeClock
) -> None:
    ring = ring_of("EdDSA")
    _, verifier = pair_for(ring, clock)
    signer = cast(ed25519.Ed25519PrivateKey, ring.keys[0]._signing)
    headers = {"kid": ring.keys[0].kid, "typ": "at+jwt", **member}
    token = jwt.encode(claims_now(clock), signer, algorithm="EdDSA", headers=headers)
    with pytest.raises(MalformedToken):
        verifier.verify(token)


@pytest.mark.parametrize("junk", [None, 7, b"a.b.c", "", "a.b", "a.b.c.d", "ä.b.c", "x" * 5000])
def test_anything_else_is_malformed(junk: object, clock: FakeClock) -> None:
    _, verifier = pair_for(ring_of("EdDSA"), clock)
    with pytest.raises(MalformedToken):
        verifier.verify(junk)


def test_an_algorithm_outside_the_allow_list_is_refused(clock: FakeClock) -> None:
    es = TokenKey.generate("ES256")
    ring = TokenKeyRing([es], allowed=["ES256"])
    token = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock).issue("alice", SID)
    jwks = ring.jwks()
    with pytest.raises(ValueError, match="no key"):  # an EdDSA-only verifier takes no ES256 key
        TokenVerifier(jwks, issuer=ISS, audience=AUD, clock=clock)
    verifier = TokenVerifier(jwks, issuer=ISS, audience=AUD, allowed=["ES256"], clock=clock)
    assert verifier.verify(token).user_id == "alice"
    narrowed = TokenVerifier(ring, issuer=ISS, audience=AUD, allowed=["EdDSA"], clock=clock)
    with pytest.raises(AlgorithmRefused):
        narrowed.verify(token)


# -- keys and rings ------------------------------------------------------------------------------


def test_key_rotation_signs_with_the_newest_and_verifies_with_any(clock: FakeClock) -> None:
    old, new, next_key = (TokenKey.generate() for _ in range(3))
    before = TokenIssuer(TokenKeyRing([old]), issuer=ISS, audience=AUD, clock=clock).issue(
        "alice", SID
    )
    rotated = TokenKeyRing([new, old])
    after = TokenIssuer(rotated, issuer=ISS, audience=AUD, clock=clock).issue("alice", SID)
    assert parts(after)[0]["kid"] == new.kid
    verifier = TokenVerifier(rotated, issuer=ISS, audience=AUD, clock=clock)
    assert verifier.verify(before).key_id == old.kid
    assert verifier.verify(after).key_id == new.kid
    # Published (and accepted) before it signs anything.
    ahead = TokenKeyRing([new, old], upcoming=[next_key])
    assert [jwk["kid"] for jwk in ahead.jwks()["keys"]] == [new.kid, old.kid, next_key.kid]
    assert ahead.signing_key is new
    remote = TokenVerifier(ahead.jwks(), issuer=ISS, audience=AUD, clock=clock)
    assert remote.verify(next_key.sign(claims_now(clock))).key_id == next_key.kid
    # The old key dropped: its tokens no longer verify.
    dropped = TokenVerifier(TokenKeyRing([new]), issuer=ISS, audience=AUD, clock=clock)
    with pytest.raises(UnknownKey):
        dropped.verify(before)


def test_the_jwks_holds_public_keys_only(clock: FakeClock) -> None:
    ed, es, hs = TokenKey.generate("EdDSA"), TokenKey.generate("ES256"), TokenKey.generate("HS256")
    ring = TokenKeyRing([ed, es, hs], allowed=ALGORITHMS)
    document = json.loads(jwks_json(ring))
    assert document == ring.jwks()
    assert [jwk["kid"] for jwk in document["keys"]] == [ed.kid, es.kid]
    for jwk in document["keys"]:
        assert "d" not in jwk
        assert "k" not in jwk
        assert jwk["use"] == "sig"
    secret = hs.to_jwk(private=True)["k"]
    assert secret not in jwks_json(ring)
    with pytest.raises(ValueError, match="shared secret"):
        hs.to_jwk()
    # A service that only verifies needs nothing but the document.
    remote = TokenVerifier(
        jwks_json(ring), issuer=ISS, audience=AUD, allowed=["EdDSA", "ES256"], clock=clock
    )
    issuer = TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)
    assert remote.verify(issuer.issue("alice", SID)).key_id == ed.kid
    assert remote.verify(es.sign(claims_now(clock))).key_id == es.kid
    with pytest.raises(ValueError, match="only verifies"):
        TokenIssuer(remote.ring, issuer=ISS, audience=AUD)


def test_a_published_jwks_with_a_secret_or_private_key_is_refused() -> None:
    ed, hs = TokenKey.generate("EdDSA"), TokenKey.generate("HS256")
    with pytest.raises(ValueError, match="public"):
        TokenKeyRing.from_jwks({"keys": [ed.to_jwk(private=True)]})
    with pytest.raises(ValueError, match="public"):
        TokenKeyRing.from_jwks({"keys": [ed.to_jwk(), hs.to_jwk(private=True)]}, allowed=ALGORITHMS)
    rsa = {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"}
    assert TokenKeyRing.from_jwks({"keys": [rsa, ed.to_jwk()]}).find(ed.kid) is not None
    bad_documents: list[Any] = [{}, {"keys": {}}, {"keys": [1]}, "[]", {"keys": [rsa]}]
    for bad in bad_documents:
        with pytest.raises(ValueError, match="JWKS"):
            TokenKeyRing.from_jwks(bad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_private_jwk_round_trips(algorithm: str, clock: FakeClock) -> None:
    key = TokenKey.generate(algorithm)  # type: ignore[arg-type]
    saved = json.dumps(key.to_jwk(private=True))
    restored = TokenKey.from_jwk(saved)
    assert (restored.kid, restored.algorithm, restored.can_sign) == (key.kid, algorithm, True)
    ring = TokenKeyRing([restored], allowed=[algorithm])
    token = restored.sign(claims_now(clock))
    assert TokenVerifier(
        TokenKeyRing([key], allowed=[algorithm]), issuer=ISS, audience=AUD, clock=clock
    ).verify(token)
    assert TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock).verify(
        key.sign(claims_now(clock))
    )
    assert "kid=" in repr(key)
    assert saved.split('"d":')[-1][:20] not in repr(key)


def test_the_default_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037, appendix A.2 and A.3: an Ed25519 public key and its thumbprint.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert TokenKey.from_jwk(jwk).kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    private = {**jwk, "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}
    assert TokenKey.from_jwk(private).can_sign


def test_bad_keys_are_refused() -> None:
    ed = TokenKey.generate("EdDSA").to_jwk(private=True)
    other = TokenKey.generate("EdDSA").to_jwk(private=True)
    es = TokenKey.generate("ES256").to_jwk(private=True)
    bad_keys: list[Any] = [
        {**ed, "d": other["d"]},  # a private part of another key
        {**ed, "alg": "HS256"},  # an alg that does not fit the key
        {**ed, "use": "enc"},
        {**ed, "x": ed["x"][:-2]},
        {**es, "y": es["x"]},  # not a point on the curve
        {**es, "d": b64(b"\xff" * 32)},  # d past the curve's order
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed448", "x": ed["x"]},
        {"kty": "oct", "k": b64(b"short"), "kid": "s"},
        {"kty": "oct", "k": b64(secrets.token_bytes(32))},  # a secret needs a kid
        {**ed, "kid": 5},
        [],
    ]
    for bad in bad_keys:
        with pytest.raises(ValueError, match=r"JWK|coatcheck uses"):
            TokenKey.from_jwk(bad)
    key = TokenKey.generate()
    with pytest.raises(ValueError, match="allowed"):
        TokenKeyRing([TokenKey.generate("HS256")])  # EdDSA only unless told
    with pytest.raises(ValueError, match="twice"):
        TokenKeyRing([key, key])
    with pytest.raises(ValueError, match="allows only"):
        TokenKeyRing([key], allowed=["none"])
    with pytest.raises(ValueError, match="allows only"):
        TokenKeyRing([key], allowed=["RS256"])
    with pytest.raises(TypeError):
        TokenKeyRing([key], allowed="EdDSA")
    with pytest.raises(ValueError, match="at least one key"):
        TokenKeyRing([])
    public_only = TokenKey.from_jwk(key.to_jwk())
    with pytest.raises(ValueError, match="only verifies"):
        public_only.sign({})
    with pytest.raises(ValueError, match="no private part"):
        public_only.to_jwk(private=True)


def test_extra_claims_may_not_override_the_registered_ones(clock: FakeClock) -> None:
    issuer, _ = pair_for(ring_of("EdDSA"), clock)
    for name in ("sub", "sid", "exp", "iat", "aud", "iss", "jti", "nbf"):
        with pytest.raises(ValueError, match=name):
            issuer.issue("alice", SID, {name: "x"})
    with pytest.raises(TypeError):
        issuer.issue("alice", SID, {"when": object()})
    with pytest.raises(ValueError, match="sid"):
        issuer.issue("alice", "not a sid!")


# -- revocation state ------------------------------------------------------------------------------


def test_a_revocation_record_stays_bounded_and_revokes_more_never_less() -> None:
    now = 1_000_000.0
    sids = {f"sid{n:04d}xxxxxxxxxxxx": (now - 100 + n, now + 200 + n) for n in range(100)}
    ended = {f"end{n:04d}xxxxxxxxxxxx": (now + 5000, now + 5000) for n in range(3)}
    state = Revocations(sids={k: Entry(*v) for k, v in {**sids, **ended}.items()})
    bounded = state.bounded(now)
    assert len(bounded.sids) == MAX_REVOKED_SESSIONS
    assert all(sid in bounded.sids for sid in ended)  # the longest kept stay
    for sid, (not_before, _) in sids.items():
        claims = Claims("alice", sid, not_before - 1, not_before + TTL, "j", ISS, AUD, "k")
        assert bounded.revokes(claims)
    assert Revocations.decode(bounded.encode()) == bounded
    assert bounded.pruned(now + 10_000) == Revocations()


# -- the flows, on real stores -------------------------------------------------------------------


@pytest.fixture
def redis_store() -> Iterator[Store]:
    parts_ = urlsplit(REDIS_URL)
    require("Redis", parts_.hostname or "127.0.0.1", parts_.port or 6379)
    prefix = f"coatcheck-tokens-test-{secrets.token_hex(4)}:"
    store = from_url(f"{REDIS_URL}?prefix={prefix}")
    assert isinstance(store, Store)
    yield store
    store.close()
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=prefix + "*"))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        sqlite = SQLiteStore(str(tmp_path / "tokens.db"))
        yield sqlite
        sqlite.close()
    else:
        yield request.getfixturevalue("redis_store")


def make_tokens(clock: FakeClock, ring: TokenKeyRing | None = None, **options: Any) -> Tokens:
    config_options = {
        key: options.pop(key) for key in ("encryption_keys", "hash_secret") if key in options
    }
    config = SessionConfig(
        transport="header",
        idle_timeout=IDLE,
        absolute_timeout=ABSOLUTE,
        clock=clock,
        **{"hash_secret": b"h" * 32, **config_options},
    )
    return Tokens(
        SessionEngine(config),
        ring or TokenKeyRing([TokenKey.generate()]),
        issuer=ISS,
        audience=AUD,
        ttl=TTL,
        leeway=LEEWAY,
        **options,
    )


@pytest.fixture
def tokens(clock: FakeClock) -> Tokens:
    return make_tokens(clock)


def revoked(tokens: Tokens, store: Store, access_token: str) -> bool:
    try:
        run(tokens.authenticate(access_token), store)
    except TokenRevoked:
        return True
    return False


def test_login_and_authenticate(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    pair = run(tokens.login("alice", {"scope": "read"}), store)
    claims = run(tokens.authenticate(pair.access_token), store)
    assert (claims.user_id, claims.extra) == ("alice", {"scope": "read"})
    assert pair.expires_in == TTL
    assert pair.as_oauth()["token_type"] == "Bearer"
    # The token holds neither the refresh token nor anything the store knows it by.
    key = store_key(pair.refresh_token, tokens.engine.config.hash_secret)
    decoded = base64.urlsafe_b64decode(pair.access_token.split(".")[1] + "==").decode()
    for secret in (pair.refresh_token, key, key[:16]):
        assert secret not in pair.access_token
        assert secret not in decoded
    assert claims.sid not in key


def test_refresh_rotates_and_a_spent_token_ends_the_session(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    first = run(tokens.login("alice"), store)
    clock.advance(60)
    second = run(tokens.refresh(first.refresh_token), store)
    assert second.refresh_token != first.refresh_token
    assert run(tokens.authenticate(second.access_token), store).user_id == "alice"
    clock.advance(60)
    third = run(tokens.refresh(second.refresh_token), store)
    # The first one again, two rotations on: the whole family ends.
    with pytest.raises(RefreshReused):
        run(tokens.refresh(first.refresh_token), store)
    assert revoked(tokens, store, third.access_token)
    assert revoked(tokens, store, first.access_token)
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(third.refresh_token), store)
    # Other sessions of the user go on.
    other = run(tokens.login("alice"), store)
    assert run(tokens.authenticate(other.access_token), store)
    assert run(tokens.refresh(other.refresh_token), store)


def test_a_spent_token_presented_right_after_ends_the_session_it_became(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    first = run(tokens.login("alice"), store)
    second = run(tokens.refresh(first.refresh_token), store)
    with pytest.raises(RefreshReused) as raised:
        run(tokens.refresh(first.refresh_token), store)
    assert isinstance(raised.value, InvalidToken)
    assert store.load(store_key(second.refresh_token, tokens.engine.config.hash_secret)) is None
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(second.refresh_token), store)
    assert revoked(tokens, store, second.access_token)


def step_until(plan: Plan[Any], store: Store, method: str) -> tuple[StoreCall, Any]:
    """Run ``plan`` against ``store`` until it yields a call to ``method`` (not made)."""
    result: Any = None
    while True:
        call = plan.send(result)
        if call[0] == method:
            return call, None
        result = make(store, call)


def make(store: Store, call: StoreCall) -> Any:
    """Make one call of a plan (a pause: none, no need to wait here)."""
    return None if call[0] == "pause" else getattr(store, call[0])(*call[1])


def finish(plan: Plan[Any], store: Store, call: StoreCall) -> Any:
    """Make ``call`` and run ``plan`` to its end."""
    try:
        result = make(store, call)
        while True:
            call = plan.send(result)
            result = make(store, call)
    except StopIteration as done:
        return done.value


def test_two_refreshes_of_one_token_at_once_end_the_session(tokens: Tokens, store: Store) -> None:
    first = run(tokens.login("alice"), store)
    slow: Generator[StoreCall, Any, Any] = tokens.refresh(first.refresh_token)
    call, _ = step_until(slow, store, "rotate")  # loaded and checked; not yet rotated
    fast = run(tokens.refresh(first.refresh_token), store)  # the other request wins
    with pytest.raises(RefreshReused):
        finish(slow, store, call)
    assert revoked(tokens, store, fast.access_token)
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(fast.refresh_token), store)


def test_concurrent_revocations_keep_each_other(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    one, two = run(tokens.login("alice"), store), run(tokens.login("alice"), store)
    sid = run(tokens.authenticate(two.access_token), store).sid
    clock.advance(1)
    slow = tokens.logout(one.refresh_token)
    call, _ = step_until(slow, store, "create")  # its revocation loaded: none yet
    run(tokens.revoke_session("alice", sid), store)  # another writer gets there first
    finish(slow, store, call)  # the create fails, the write is retried onto the other's
    assert revoked(tokens, store, one.access_token)
    assert revoked(tokens, store, two.access_token)
    record = store.load(tokens.revocation_key("alice"))
    assert record is not None
    assert len(Revocations.decode(record.data).sids) == 2


def test_refresh_tokens_expire_and_are_ours_only(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    for junk in ("", "nope", "A" * 43, None, 7):
        with pytest.raises(RefreshFailed):
            run(tokens.refresh(junk), store)  # type: ignore[arg-type]
    # A session of the same engine that the tokens did not start is no refresh token.
    engine = tokens.engine
    plain = engine.fresh()
    plain.login("alice")
    run(engine.commit(plain), store)
    assert plain.stored is not None
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(plain.stored.id), store)
    assert store.load(plain.stored.key) is not None  # left alone
    pair = run(tokens.login("alice"), store)
    renewed = run(tokens.refresh(pair.refresh_token), store)
    clock.advance(IDLE + 1)  # unused for longer than the idle timeout
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(renewed.refresh_token), store)
    with pytest.raises(RefreshFailed) as raised:  # its spent record has gone too: not a reuse
        run(tokens.refresh(pair.refresh_token), store)
    assert not isinstance(raised.value, RefreshReused)


def test_logout_revokes_at_once(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    mine, other = run(tokens.login("alice"), store), run(tokens.login("alice"), store)
    clock.advance(1)
    assert run(tokens.logout(mine.refresh_token), store) is True
    assert revoked(tokens, store, mine.access_token)
    assert not revoked(tokens, store, other.access_token)
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(mine.refresh_token), store)
    assert run(tokens.logout(mine.refresh_token), store) is False
    assert run(tokens.logout("junk"), store) is False
    # The revocation lasts as long as a token it revokes could: then the record is gone.
    clock.advance(TTL + LEEWAY + 1)
    record = store.load(tokens.revocation_key("alice"))
    assert record is None or record.expires_at <= clock()


def test_logout_everywhere(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    one, two = run(tokens.login("alice"), store), run(tokens.login("alice"), store)
    bob = run(tokens.login("bob"), store)
    clock.advance(1)
    assert run(tokens.logout_everywhere("alice"), store) == 2
    for pair in (one, two):
        assert revoked(tokens, store, pair.access_token)
        with pytest.raises(RefreshFailed):
            run(tokens.refresh(pair.refresh_token), store)
    assert not revoked(tokens, store, bob.access_token)
    clock.advance(1)
    again = run(tokens.login("alice"), store)  # a login afterwards is not affected
    assert not revoked(tokens, store, again.access_token)
    assert run(tokens.refresh(again.refresh_token), store)


def test_password_change(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    mine, other = run(tokens.login("alice"), store), run(tokens.login("alice"), store)
    clock.advance(1)
    changed = run(tokens.password_changed(mine.refresh_token), store)
    assert revoked(tokens, store, mine.access_token)
    assert revoked(tokens, store, other.access_token)
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(other.refresh_token), store)
    assert not revoked(tokens, store, changed.access_token)
    clock.advance(1)
    assert run(tokens.refresh(changed.refresh_token), store)
    with pytest.raises(RefreshReused):  # the refresh token before the change is spent
        run(tokens.refresh(mine.refresh_token), store)


def test_privilege_change(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    mine, other = (
        run(tokens.login("alice", {"role": "admin"}), store),
        run(tokens.login("alice"), store),
    )
    clock.advance(1)
    changed = run(tokens.privileges_changed(mine.refresh_token, {"role": "user"}), store)
    assert revoked(tokens, store, mine.access_token)
    assert not revoked(tokens, store, other.access_token)
    assert run(tokens.authenticate(changed.access_token), store).extra == {"role": "user"}
    renewed = run(tokens.refresh(changed.refresh_token), store)
    assert run(tokens.authenticate(renewed.access_token), store).extra == {"role": "user"}
    # An administrator's change: every access token of the user, sessions go on.
    clock.advance(1)
    run(tokens.revoke_access("alice"), store)
    assert revoked(tokens, store, renewed.access_token)
    assert revoked(tokens, store, other.access_token)
    clock.advance(1)
    fresh = run(tokens.refresh(other.refresh_token), store)
    assert not revoked(tokens, store, fresh.access_token)


def test_revoke_session_by_its_sid(tokens: Tokens, store: Store, clock: FakeClock) -> None:
    mine, other = run(tokens.login("alice"), store), run(tokens.login("alice"), store)
    claims = run(tokens.authenticate(mine.access_token), store)
    run(tokens.revoke_session("alice", claims.sid), store)
    assert revoked(tokens, store, mine.access_token)
    with pytest.raises(RefreshFailed):
        run(tokens.refresh(mine.refresh_token), store)
    assert store.load(store_key(mine.refresh_token, tokens.engine.config.hash_secret)) is None
    assert not revoked(tokens, store, other.access_token)


def test_the_revocation_check_is_one_store_read(store: Store, clock: FakeClock) -> None:
    counting = CountingStore(store)
    tokens = make_tokens(clock)
    pair = run(tokens.login("alice"), counting)
    counting.reset()
    run(tokens.authenticate(pair.access_token), counting)
    assert counting.calls == Counter({"load": 1})
    for n in range(5):  # as many revocations as you like: still one read
        run(tokens.login("alice"), counting)
        run(tokens.revoke_session("alice", f"sid{n}-xxxxxxxxxxxxxxxx"), counting)
    run(tokens.logout_everywhere("bob"), store)
    counting.reset()
    run(tokens.authenticate(pair.access_token), counting)
    assert counting.calls == Counter({"load": 1})
    counting.reset()
    run(tokens.refresh(pair.refresh_token), counting)
    assert counting.calls == Counter({"load": 2, "rotate": 1, "create": 1})


def test_the_store_calls_of_each_plan(store: Store, clock: FakeClock) -> None:
    counting = CountingStore(store)
    tokens = make_tokens(clock)

    def calls(plan: Plan[Any]) -> Counter[str]:
        counting.reset()
        run(plan, counting)
        return Counter(counting.calls)

    assert calls(tokens.login("alice")) == {"create": 1}
    pair = run(tokens.login("alice"), store)
    pair = run(tokens.refresh(pair.refresh_token), store)
    # load, load revocations, rotate, create the spent record, then the revocation: a load
    # and a write (a create: the user has no revocation record yet)
    assert calls(tokens.privileges_changed(pair.refresh_token)) == {
        "load": 3,
        "rotate": 1,
        "create": 2,
    }
    assert calls(tokens.revoke_access("alice")) == {"load": 1, "save": 1}
    assert calls(tokens.revoke_session("bob", SID)) == {"load": 1, "create": 1}
    other = run(tokens.login("alice"), store)
    assert calls(tokens.logout(other.refresh_token)) == {"load": 2, "delete": 1, "save": 1}


def test_a_cached_revocation_reaches_other_instances_after_the_lag(
    store: Store, clock: FakeClock
) -> None:
    ring = TokenKeyRing([TokenKey.generate()])
    cached = make_tokens(clock, ring, revocation_lag=30)
    writer = make_tokens(clock, ring)
    pair = run(writer.login("alice"), store)
    counting = CountingStore(store)
    assert run(cached.authenticate(pair.access_token), counting)
    assert run(cached.authenticate(pair.access_token), counting)
    assert counting.calls == Counter({"load": 1})  # the second from the cache
    clock.advance(1)
    run(writer.logout(pair.refresh_token), store)
    assert not revoked(cached, store, pair.access_token)  # within the lag
    clock.advance(30)
    assert revoked(cached, store, pair.access_token)
    # What an instance writes itself reaches its own cache at once.
    other = run(cached.login("bob"), store)
    assert run(cached.authenticate(other.access_token), store)
    clock.advance(1)
    run(cached.revoke_access("bob"), store)
    assert revoked(cached, store, other.access_token)


def test_stateless_mode_reads_nothing_and_accepts_a_revoked_token_until_exp(
    store: Store, clock: FakeClock
) -> None:
    ring = TokenKeyRing([TokenKey.generate()])
    stateless = make_tokens(clock, ring, stateless=True)
    checked = make_tokens(clock, ring)
    pair = run(stateless.login("alice"), store)
    clock.advance(1)
    run(stateless.logout(pair.refresh_token), store)  # written all the same
    counting = CountingStore(store)
    assert run(stateless.authenticate(pair.access_token), counting).user_id == "alice"
    assert counting.calls == Counter()
    assert revoked(checked, store, pair.access_token)
    clock.advance(TTL + LEEWAY)
    with pytest.raises(TokenExpired):
        run(stateless.authenticate(pair.access_token), counting)
    with pytest.raises(RefreshFailed):  # refresh tokens are checked in every mode
        run(stateless.refresh(pair.refresh_token), store)


def test_records_are_sealed_with_the_engines_encryption_keys(
    store: Store, clock: FakeClock
) -> None:
    tokens = make_tokens(clock, encryption_keys=[secrets.token_bytes(32)])
    pair = run(tokens.login("alice"), store)
    renewed = run(tokens.refresh(pair.refresh_token), store)
    clock.advance(1)
    run(tokens.logout(renewed.refresh_token), store)
    record = store.load(tokens.revocation_key("alice"))
    assert record is not None
    assert not is_token_record(record)  # sealed: nothing of it readable
    assert b"alice" not in record.data
    assert revoked(tokens, store, renewed.access_token)
    with pytest.raises(RefreshReused):
        run(tokens.refresh(pair.refresh_token), store)


def test_token_records_are_told_from_sessions(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    pair = run(tokens.login("alice"), store)
    session = store.load(store_key(pair.refresh_token, tokens.engine.config.hash_secret))
    assert session is not None
    assert not is_token_record(session)
    clock.advance(1)
    run(tokens.logout(pair.refresh_token), store)
    record = store.load(tokens.revocation_key("alice"))
    assert record is not None
    assert is_token_record(record)
    assert record.user_id is None  # never one of the user's sessions (logout everywhere)
    assert record.expires_at == pytest.approx(clock() + TTL + LEEWAY)


def test_an_unreadable_revocation_record_is_ignored(store: Store, clock: FakeClock) -> None:
    tokens = make_tokens(clock)
    pair = run(tokens.login("alice"), store)
    key = tokens.revocation_key("alice")
    assert store.create(Record(key, b'{"revoked":"garbage"}', clock() + 60))
    assert run(tokens.authenticate(pair.access_token), store)
    clock.advance(1)
    run(tokens.revoke_access("alice"), store)  # written over
    assert revoked(tokens, store, pair.access_token)


@pytest.mark.parametrize("user", ["josé", "用户", "a:b"])
def test_any_user_id(user: str, tokens: Tokens, store: Store, clock: FakeClock) -> None:
    pair = run(tokens.login(user), store)
    assert run(tokens.authenticate(pair.access_token), store).user_id == user
    renewed = run(tokens.refresh(pair.refresh_token), store)
    clock.advance(1)
    run(tokens.revoke_access(user), store)
    assert revoked(tokens, store, renewed.access_token)
    assert tokens.revocation_key(user) != tokens.revocation_key(user + "x")


def test_a_revocation_after_the_last_has_expired(
    tokens: Tokens, store: Store, clock: FakeClock
) -> None:
    run(tokens.revoke_access("alice"), store)
    clock.advance(TTL + LEEWAY + 1)  # the record expired; a store may still hold it
    pair = run(tokens.login("alice"), store)
    assert not revoked(tokens, store, pair.access_token)
    clock.advance(1)
    run(tokens.revoke_access("alice"), store)
    assert revoked(tokens, store, pair.access_token)


def test_a_browser_engine_is_refused(clock: FakeClock) -> None:
    engine = SessionEngine(SessionConfig(secure=False, clock=clock))
    with pytest.raises(ValueError, match="header"):
        Tokens(engine, TokenKeyRing([TokenKey.generate()]), issuer=ISS, audience=AUD)


def test_the_session_keeps_the_sid_across_refreshes(tokens: Tokens, store: Store) -> None:
    pair = run(tokens.login("alice"), store)
    sid = run(tokens.authenticate(pair.access_token), store).sid
    for _ in range(3):
        pair = run(tokens.refresh(pair.refresh_token), store)
        assert run(tokens.authenticate(pair.access_token), store).sid == sid
    session = run(tokens.engine.load(pair.refresh_token), store)
    assert session[STATE_KEY] == {"sid": sid, "claims": {}}


@pytest.mark.anyio
async def test_the_flows_run_against_an_async_store(clock: FakeClock) -> None:
    tokens = make_tokens(clock)
    store = AsyncStoreAdapter(MemoryStore())
    pair = await run_async(tokens.login("alice"), store)
    renewed = await run_async(tokens.refresh(pair.refresh_token), store)
    assert (await run_async(tokens.authenticate(renewed.access_token), store)).user_id == "alice"
    with pytest.raises(RefreshReused):
        await run_async(tokens.refresh(pair.refresh_token), store)
    with pytest.raises(TokenRevoked):
        await run_async(tokens.authenticate(renewed.access_token), store)


def test_the_guides_example_runs() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "tokens.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/tokens.md", "exec"), {})


def test_without_the_extra_the_import_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['jwt'] = None\n"
        "from coatcheck.stores import MissingExtra\n"
        "try:\n"
        "    import coatcheck.tokens\n"
        "except MissingExtra as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'coatcheck[tokens]'" in done.stdout
