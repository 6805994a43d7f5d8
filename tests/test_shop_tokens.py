"""The shop's API tokens over real HTTP, against `coatcheck demo` in its own process: logging
in for tokens, refreshing, Bearer requests on the JSON API, and every forged, stale or revoked
token refused with a 401 (never a 500).

The bad tokens are built here, with no access to the demo's private key: what an attacker can
do is all a test can do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from coatcheck.ids import store_key
from coatcheck.shop.tokens import AUDIENCE, ISSUER, SIGNING_KEY_ENV
from coatcheck.tokens import TokenExpired, TokenIssuer, TokenKey, TokenKeyRing, TokenVerifier

from .shop_servers import Demo, log_in, run_demo

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PASSWORD = "coatcheck"
INVALID_TOKEN = 'Bearer error="invalid_token"'


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    database: Path = tmp_path_factory.mktemp("shop-tokens") / "shop.db"
    with run_demo("--store", f"sqlite:///{database}") as demo:
        yield demo


@pytest.fixture
def http(shop: Demo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shop.url, headers={"user-agent": FIREFOX}) as client:
        yield client


def tokens_for(http: httpx.Client, user: str = "alice") -> dict[str, Any]:
    response = http.post("/api/token", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == INVALID_TOKEN


def encode64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(decode64(header)), json.loads(decode64(payload)), signature


def compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = (
        f"{encode64(json.dumps(header).encode())}.{encode64(json.dumps(payload).encode())}"
    )
    return f"{signing_input}.{encode64(signature)}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token signed with ``secret``, by hand (PyJWT refuses a public key as an HMAC
    secret, an attacker's code would not)."""
    unsigned = compact(header, payload).rstrip(".")
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{encode64(signature)}"


def published_key(http: httpx.Client) -> dict[str, str]:
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    return dict(key)


# -- the endpoints -------------------------------------------------------------------------------


def test_logging_in_for_tokens_sets_no_cookie(http: httpx.Client) -> None:
    response = http.post("/api/token", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    me = http.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "alice"
    assert "set-cookie" not in me.headers


def test_a_wrong_password_gets_no_tokens(http: httpx.Client) -> None:
    response = http.post("/api/token", json={"username": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert "access_token" not in response.text


def test_a_refresh_gives_a_new_pair(http: httpx.Client) -> None:
    first = tokens_for(http, "bob")
    response = http.post("/api/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert http.get("/api/me", headers=bearer(second["access_token"])).json()["user"] == "bob"
    # The refreshed session is the same one: its tokens carry the same sid.
    assert parts(first["access_token"])[1]["sid"] == parts(second["access_token"])[1]["sid"]


def test_the_jwks_publishes_the_public_key_only(http: httpx.Client) -> None:
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    key = published_key(http)
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert "d" not in key
    token = tokens_for(http)["access_token"]
    assert parts(token)[0]["kid"] == key["kid"]
    # Anyone can verify a token with the published key alone.
    verified = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="coatcheck-demo-shop-api",
        issuer="coatcheck-demo-shop",
    )
    assert verified["sub"] == "alice"


def test_the_cart_of_a_bearer_client_is_its_own(http: httpx.Client) -> None:
    phone = tokens_for(http, "bob")["access_token"]
    tablet = tokens_for(http, "bob")["access_token"]
    added = http.post("/api/cart/items", json={"product_id": "scarf"}, headers=bearer(phone))
    assert added.status_code == 200, added.text
    assert [line["product_id"] for line in added.json()["items"]] == ["scarf"]
    changed = http.put("/api/cart/items/scarf", json={"quantity": 3}, headers=bearer(phone))
    assert changed.json()["items"][0]["quantity"] == 3
    assert http.get("/api/cart", headers=bearer(phone)).json()["items"][0]["quantity"] == 3
    # Another token session of the same user has its own cart.
    assert http.get("/api/cart", headers=bearer(tablet)).json()["items"] == []
    missing = http.post("/api/cart/items", json={"product_id": "nope"}, headers=bearer(phone))
    assert missing.status_code == 404
    removed = http.delete("/api/cart/items/scarf", headers=bearer(phone))
    assert removed.json()["items"] == []


def test_a_bearer_client_lists_the_users_sessions(http: httpx.Client) -> None:
    token = tokens_for(http, "bob")["access_token"]
    response = http.get("/api/sessions", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()


def test_browser_only_routes_refuse_a_bearer_request(http: httpx.Client) -> None:
    token = tokens_for(http)["access_token"]
    assert http.get("/api/csrf", headers=bearer(token)).status_code == 400
    login = {"username": "alice", "password": PASSWORD}
    assert http.post("/api/login", json=login, headers=bearer(token)).status_code == 400


def test_a_bearer_logout_ends_the_tokens_session(http: httpx.Client) -> None:
    pair = tokens_for(http, "bob")
    response = http.post("/api/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204, response.text
    assert_refused(http.get("/api/me", headers=bearer(pair["access_token"])))
    again = http.post("/api/token/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401


# -- the security cases --------------------------------------------------------------------------


def test_a_bearer_post_from_a_foreign_origin_is_served(http: httpx.Client) -> None:
    """CSRF rides on what a browser sends by itself; an Authorization header is not that."""
    token = tokens_for(http, "bob")["access_token"]
    foreign = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    response = http.post(
        "/api/cart/items", json={"product_id": "rain-jacket"}, headers={**foreign, **bearer(token)}
    )
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers
    # The same post riding a cookie session is refused.
    with httpx.Client(base_url=str(http.base_url), headers={"user-agent": FIREFOX}) as browser:
        log_in(browser, "bob")
        refused = browser.post(
            "/api/cart/items", json={"product_id": "rain-jacket"}, headers=foreign
        )
        assert refused.status_code == 403


@pytest.mark.parametrize("value", ["Bearer", "Bearer  x", "Bearer x", "Bearer a.b.c", "bearer ..."])
def test_garbage_is_a_401(http: httpx.Client, value: str) -> None:
    assert_refused(http.get("/api/me", headers={"authorization": value}))
    assert_refused(http.post("/api/logout-all", headers={"authorization": value}))


def test_alg_none_is_refused(http: httpx.Client) -> None:
    header, payload, _ = parts(tokens_for(http)["access_token"])
    for alg in ("none", "None", "NONE"):
        assert_refused(
            http.get("/api/me", headers=bearer(compact({**header, "alg": alg}, payload)))
        )


def test_a_tampered_payload_is_refused(http: httpx.Client) -> None:
    token = tokens_for(http, "bob")["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(decode64(payload))
    claims["sub"] = "alice"
    forged = f"{header}.{encode64(json.dumps(claims).encode())}.{signature}"
    assert_refused(http.get("/api/me", headers=bearer(forged)))
    claims = {**json.loads(decode64(payload)), "exp": time.time() + 86400}
    forged = f"{header}.{encode64(json.dumps(claims).encode())}.{signature}"
    assert_refused(http.get("/api/me", headers=bearer(forged)))


def test_a_truncated_signature_is_refused(http: httpx.Client) -> None:
    token = tokens_for(http)["access_token"]
    for cut in (1, 4, 20, len(token.rpartition(".")[2])):
        assert_refused(http.get("/api/me", headers=bearer(token[:-cut])))


def test_wrong_audience_or_issuer_is_refused(http: httpx.Client) -> None:
    """Signed with a key of our own under the demo's kid: the signature fails anyway, and the
    answer is the same 401."""
    header, payload, _ = parts(tokens_for(http)["access_token"])
    mine = ed25519.Ed25519PrivateKey.generate()
    for change in ({"aud": "another-api"}, {"iss": "https://evil.example"}, {}):
        forged = jwt.encode({**payload, **change}, mine, algorithm="EdDSA", headers=header)
        assert_refused(http.get("/api/me", headers=bearer(forged)))


def test_an_unknown_kid_is_refused(http: httpx.Client) -> None:
    header, payload, _ = parts(tokens_for(http)["access_token"])
    mine = ed25519.Ed25519PrivateKey.generate()
    forged = jwt.encode(payload, mine, algorithm="EdDSA", headers={**header, "kid": "mine"})
    assert_refused(http.get("/api/me", headers=bearer(forged)))
    token = tokens_for(http)["access_token"]
    header, payload, signature = token.split(".")
    relabelled = json.loads(decode64(header)) | {"kid": "someone-else"}
    assert_refused(
        http.get(
            "/api/me",
            headers=bearer(f"{encode64(json.dumps(relabelled).encode())}.{payload}.{signature}"),
        )
    )


def test_hs256_signed_with_the_public_key_is_refused(http: httpx.Client) -> None:
    key = published_key(http)
    raw = decode64(key["x"])
    pem = ed25519.Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload, _ = parts(tokens_for(http)["access_token"])
    hs = {**header, "alg": "HS256"}
    for secret in (pem, raw, key["x"].encode(), json.dumps(key).encode()):
        assert_refused(http.get("/api/me", headers=bearer(hs256(hs, payload, secret))))


def test_a_spent_refresh_token_is_refused_and_ends_its_session(http: httpx.Client) -> None:
    first = tokens_for(http, "bob")
    renewed = http.post("/api/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200
    second = renewed.json()
    replayed = http.post("/api/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert replayed.status_code == 401
    assert "access_token" not in replayed.text
    # The family is over: the session it became cannot refresh, its access token is refused.
    after = http.post("/api/token/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    assert_refused(http.get("/api/me", headers=bearer(second["access_token"])))


def test_logging_out_everywhere_in_the_browser_refuses_the_phones_token(
    http: httpx.Client,
) -> None:
    phone = tokens_for(http, "carol")
    assert http.get("/api/me", headers=bearer(phone["access_token"])).status_code == 200
    with httpx.Client(base_url=str(http.base_url), headers={"user-agent": FIREFOX}) as browser:
        log_in(browser, "carol")
        ended = browser.post("/api/logout-all")
        assert ended.status_code == 200, ended.text
        assert ended.json()["sessions_ended"] >= 2  # the browser's and the phone's
    assert_refused(http.get("/api/me", headers=bearer(phone["access_token"])))
    assert_refused(http.get("/api/cart", headers=bearer(phone["access_token"])))
    again = http.post("/api/token/refresh", json={"refresh_token": phone["refresh_token"]})
    assert again.status_code == 401
    # A new login works again.
    fresh = tokens_for(http, "carol")["access_token"]
    assert http.get("/api/me", headers=bearer(fresh)).status_code == 200


def test_logging_out_everywhere_with_a_token(http: httpx.Client) -> None:
    with httpx.Client(base_url=str(http.base_url), headers={"user-agent": FIREFOX}) as browser:
        log_in(browser, "carol")
        phone = tokens_for(http, "carol")["access_token"]
        ended = http.post("/api/logout-all", headers=bearer(phone))
        assert ended.status_code == 200, ended.text
        assert_refused(http.get("/api/me", headers=bearer(phone)))
        assert browser.get("/api/me").status_code == 401


def test_tokens_hold_no_session_id_or_refresh_token(http: httpx.Client) -> None:
    with httpx.Client(base_url=str(http.base_url), headers={"user-agent": FIREFOX}) as browser:
        log_in(browser, "alice")
        cookie = next(iter(browser.cookies.values()))
    pair = tokens_for(http)
    renewed = http.post("/api/token/refresh", json={"refresh_token": pair["refresh_token"]})
    for access, refresh in (
        (pair["access_token"], pair["refresh_token"]),
        (renewed.json()["access_token"], renewed.json()["refresh_token"]),
    ):
        header, payload, _ = parts(access)
        decoded = json.dumps([header, payload])
        for secret in (refresh, store_key(refresh), cookie, store_key(cookie)):
            assert secret not in access
            assert secret not in decoded
        assert set(payload) == {"sub", "sid", "iat", "exp", "jti", "iss", "aud"}


def test_an_expired_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--token-ttl 1. The shop is handed its signing key (as --instances hands it to each
    instance), so the test can sign a token of the same session issued two minutes ago: past its
    second of life and the verifier's 10 s of clock leeway, with no waiting for it."""
    key = TokenKey.generate("EdDSA")
    monkeypatch.setenv(SIGNING_KEY_ENV, json.dumps(key.to_jwk(private=True)))
    with (
        run_demo("--store", f"sqlite:///{tmp_path / 'shop.db'}", "--token-ttl", "1") as demo,
        httpx.Client(base_url=demo.url) as http,
    ):
        pair = tokens_for(http)
        assert pair["expires_in"] == 1
        assert http.get("/api/me", headers=bearer(pair["access_token"])).status_code == 200
        claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
        ring = TokenKeyRing([key])
        earlier = TokenIssuer(
            ring, issuer=ISSUER, audience=AUDIENCE, ttl=1, clock=lambda: time.time() - 120
        )
        expired = earlier.issue(claims["sub"], claims["sid"])
        with pytest.raises(TokenExpired):  # its only fault
            TokenVerifier(ring, issuer=ISSUER, audience=AUDIENCE).verify(expired)
        assert_refused(http.get("/api/me", headers=bearer(expired)))
        # The refresh token still works: a new access token.
        renewed = http.post("/api/token/refresh", json={"refresh_token": pair["refresh_token"]})
        assert renewed.status_code == 200
        assert (
            http.get("/api/me", headers=bearer(renewed.json()["access_token"])).status_code == 200
        )
