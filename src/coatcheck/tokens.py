"""Access and refresh tokens for APIs: short-lived JWTs over coatcheck's server-side sessions.

Needs the ``tokens`` extra: ``pip install 'coatcheck[tokens]'`` (PyJWT and cryptography).

**Two tokens.** A *refresh token* is the ID of a coatcheck session, sent in the session header
(``transport="header"``, ``X-Session-Token``): an opaque 256-bit value, never a JWT, stored
hashed as every session is. An *access token* is a JWT signed by this service, short-lived
(5 minutes by default), that other services can verify on their own from the published keys.
It carries ``sub`` (the user), ``sid`` (the session's handle: 128 random bits drawn at login and
kept in the session, the same across refreshes; never the ID, nor derived from it), ``iat``,
``exp``, ``jti``, ``iss``, ``aud``, and the signing key's ``kid`` and ``typ: at+jwt`` in its
header. ``iat`` keeps the fraction of a second it was issued at (a JWT NumericDate may), so
that a revocation orders exactly against the tokens issued before and after it.

**Keys.** A :class:`TokenKey` is pinned to one algorithm: ``EdDSA`` (Ed25519, the default),
``ES256`` or ``HS256``. A :class:`TokenKeyRing` signs with its first key and verifies with any
(rotation: put a new key first, keep the old ones until the tokens they signed have expired,
``ttl`` plus ``leeway``; a key in ``upcoming`` is published and accepted but not yet signed
with, so that verifiers caching the JWKS have it before the first token it signs). Its
:meth:`TokenKeyRing.jwks` is the public half, served at ``/.well-known/jwks.json``
(:func:`jwks_json`, :data:`JWKS_PATH`); HS256 secrets are never in it.

**Verifying** (:class:`TokenVerifier`, no I/O) takes an explicit allow-list of algorithms.
Before any cryptography the header must name an allowed algorithm (``none`` never is), a
``kid`` of the ring, and that key's own pinned algorithm (so an HS256 token "signed" with a
public key is refused whatever the HMAC secret), and ``typ`` must be ``at+jwt``; every segment
must be canonical base64url. Then the signature, ``iss`` and ``aud`` (exactly), and ``exp``,
``nbf`` and ``iat`` against the clock with a small ``leeway``. Every refusal is an
:class:`InvalidToken` (a subclass says why), whatever the input: nothing else is raised.

**Revocation at once, in one read.** Everything that revokes access tokens is written to *one
small record per user*, under a hashed key named for the user (``sub``, which every token
carries): a user-wide not-before (tokens of the user issued before it are revoked), a user-wide
sessions-before (sessions authenticated before it can no longer refresh), and a map, bounded
to :data:`MAX_REVOKED_SESSIONS` entries, from ``sid`` to that session's not-before. So
:meth:`Tokens.authenticate` checks both the per-session and the per-user revocation with one
``load`` of a key it computes from the token: O(1), never a scan. Each entry is kept only as
long as a token it revokes can still be accepted (its not-before plus ``ttl`` plus ``leeway``;
the record expires with its last entry). Writes are compare-and-set on the record's version,
retried, so concurrent revocations never lose one another. When the map would outgrow its
bound, its oldest entries are folded into the user-wide values (revoking more, never less).

What each revocation writes:

- :meth:`Tokens.logout`: the session is deleted; its ``sid`` gets a not-before a token's life
  ahead, so that no token of it is accepted, even one a refresh racing the logout issued.
- :meth:`Tokens.logout_everywhere`: every session of the user is deleted; the user-wide
  not-before and sessions-before become now.
- :meth:`Tokens.password_changed`: the user's other sessions are deleted, this one is
  authenticated anew under a new ID; the user-wide not-before and sessions-before move up.
- :meth:`Tokens.privileges_changed`: a new refresh token and access token for the session; its
  ``sid`` gets a not-before of now.
- :meth:`Tokens.revoke_access`: the user-wide not-before becomes now (an administrator changed
  the user's roles); sessions go on, and their next refresh gets new tokens.
- :meth:`Tokens.revoke_session`: one session, by the ``sid`` of one of its access tokens, with
  no lookup: its ``sid`` gets a not-before in the future, so no token of it is accepted and it
  cannot refresh.

A verifier may cache what it read for ``revocation_lag`` seconds (0, the default: read on every
request), so that a revocation takes up to that long to reach it; what this instance itself
writes reaches its own cache at once. With ``stateless=True`` it reads nothing at all: a revoked
access token is accepted until its ``exp`` (5 minutes by default), the price of verifying with no
store call; refresh tokens are still checked, and revocations still written.

**Refresh, and reuse detection.** :meth:`Tokens.refresh` loads the session the refresh token
names, reads its user's revocation record (a session revoked there ends now), rotates the
session to a new ID (no grace window: the old ID is dead at once), and leaves under a key
derived from the old one a small *spent* record: the session's ``sid``, its user and the key it
moved to, kept as long as the old refresh token could have been used (the idle timeout, at most
to the absolute deadline). A refresh token presented again finds no session but that record: it
was used twice, by the client and by someone who copied it (OAuth 2.0's refresh-token reuse
detection). The whole family ends: its ``sid`` is revoked until any session alive now would have
reached its absolute deadline (so no access token of it is accepted, and whatever session holds
it now cannot refresh, however many rotations later), the session it was rotated into is
deleted, and :class:`RefreshReused` is raised. Two requests refreshing the same token at the
same moment are the same case: only one creates the spent record, and the other ends the family.
A refresh is four store calls (load, load the revocation record, rotate, create the spent
record).

Every operation is a plan, as the engine's are: run it with :func:`coatcheck.engine.run` against
a sync store or :func:`coatcheck.engine.run_async` against an async one.

>>> from coatcheck import SessionConfig, SessionEngine
>>> from coatcheck.engine import run
>>> from coatcheck.stores import MemoryStore
>>> store = MemoryStore()
>>> engine = SessionEngine(SessionConfig(transport="header", hash_secret=b"s" * 32))
>>> ring = TokenKeyRing([TokenKey.generate("EdDSA")])
>>> tokens = Tokens(engine, ring, issuer="https://auth.example", audience="api")
>>> pair = run(tokens.login("alice"), store)
>>> run(tokens.authenticate(pair.access_token), store).user_id
'alice'
>>> renewed = run(tokens.refresh(pair.refresh_token), store)
>>> run(tokens.refresh(pair.refresh_token), store)
Traceback (most recent call last):
...
coatcheck.tokens.RefreshReused: refresh token reused: its session has been ended
>>> run(tokens.authenticate(renewed.access_token), store)
Traceback (most recent call last):
...
coatcheck.tokens.TokenRevoked: token revoked
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, Union, cast

from .codec import JSONValue, is_token_record
from .encryption import KeyRing, is_sealed
from .engine import Plan, SessionEngine, WriteConflict, backoff
from .ids import is_well_formed, store_key
from .session import Session
from .stores.base import MissingExtra, Record

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingExtra(
        f"coatcheck.tokens needs the tokens extra: pip install 'coatcheck[tokens]' ({exc})",
        name=exc.name,
    ) from None

__all__ = [
    "ACCESS_TTL",
    "ALGORITHMS",
    "JWKS_CONTENT_TYPE",
    "JWKS_PATH",
    "LEEWAY",
    "MAX_REVOKED_SESSIONS",
    "MAX_TOKEN_LENGTH",
    "REGISTERED_CLAIMS",
    "STATE_KEY",
    "TOKEN_TYPE",
    "Algorithm",
    "AlgorithmRefused",
    "BadSignature",
    "Claims",
    "Entry",
    "InvalidToken",
    "MalformedToken",
    "RefreshFailed",
    "RefreshReused",
    "Revocations",
    "TokenExpired",
    "TokenIssuer",
    "TokenKey",
    "TokenKeyRing",
    "TokenNotYetValid",
    "TokenPair",
    "TokenRevoked",
    "TokenVerifier",
    "Tokens",
    "UnknownKey",
    "WrongAudience",
    "WrongIssuer",
    "WrongType",
    "is_token_record",
    "jwks_json",
]

logger = logging.getLogger("coatcheck")

Algorithm = Literal["EdDSA", "ES256", "HS256"]
"""The signing algorithms coatcheck issues and accepts."""
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("EdDSA", "ES256", "HS256")
ACCESS_TTL: Final = 300.0
"""How long an access token lives by default: 5 minutes."""
LEEWAY: Final = 10.0
"""The clock skew, in seconds, allowed when checking ``exp``, ``nbf`` and ``iat``."""
TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
"""The ``typ`` header of an access token (RFC 9068): no other JWT signed with the same keys (an
ID token, say) passes for one."""
JWKS_PATH: Final = "/.well-known/jwks.json"
"""Where a service publishes its JWKS, by convention."""
JWKS_CONTENT_TYPE: Final = "application/jwk-set+json"
"""The media type of a JWKS document (RFC 7517)."""
MAX_TOKEN_LENGTH: Final = 4096
"""The longest token a verifier looks at; a longer one is refused before it is decoded."""
MAX_REVOKED_SESSIONS: Final = 64
"""The most per-session entries a user's revocation record holds; past it the oldest are folded
into the user-wide values (which revoke more, never less)."""
MAX_WRITE_ATTEMPTS: Final = 16
"""Compare-and-set attempts of one revocation write before it gives up
(:class:`~coatcheck.engine.WriteConflict`)."""
STATE_KEY: Final = "coatcheck.tokens"
"""The key, in a refresh token's session, of what the tokens need: its ``sid`` and the claims
its access tokens carry."""
REGISTERED_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid"})
"""Claims coatcheck sets itself; extra claims may not name them."""
_HEADER_MEMBERS: Final = frozenset({"alg", "kid", "typ"})
_TYPES: Final = frozenset({TOKEN_TYPE, "application/" + TOKEN_TYPE})
_LATEST: Final = 253402300799.0  # 9999-12-31, as the codec's
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_SID = re.compile(r"[A-Za-z0-9_-]{16,64}")


# -- errors ------------------------------------------------------------------------------------


class InvalidToken(Exception):
    """A token was refused: answer 401. ``reason`` is a short fixed text, safe to log or to send
    (as an ``error_description``); no message ever quotes the token."""

    reason = "invalid token"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.reason)


class MalformedToken(InvalidToken):
    """Not a JWT of ours: bad segments, base64url, JSON, header members or claims."""

    reason = "malformed token"


class AlgorithmRefused(InvalidToken):
    """The header names ``none``, an algorithm not allowed, or not the one its key is pinned to."""

    reason = "algorithm refused"


class UnknownKey(InvalidToken):
    """The header names no ``kid``, or one no key of the ring has."""

    reason = "unknown key"


class BadSignature(InvalidToken):
    """The signature does not verify: altered, or signed by another key."""

    reason = "bad signature"


class WrongType(InvalidToken):
    """The ``typ`` header is not ``at+jwt``: some other kind of JWT."""

    reason = "not an access token"


class WrongIssuer(InvalidToken):
    """``iss`` is missing or not this verifier's issuer."""

    reason = "wrong issuer"


class WrongAudience(InvalidToken):
    """``aud`` is missing or not this verifier's audience."""

    reason = "wrong audience"


class TokenExpired(InvalidToken):
    """``exp`` has passed (beyond the leeway)."""

    reason = "token expired"


class TokenNotYetValid(InvalidToken):
    """``nbf`` or ``iat`` is in the future (beyond the leeway)."""

    reason = "token not yet valid"


class TokenRevoked(InvalidToken):
    """Valid, but revoked since it was issued (logout, password change, ...)."""

    reason = "token revoked"


class RefreshFailed(InvalidToken):
    """The refresh token names no live session of ours: unknown, expired, ended or revoked."""

    reason = "invalid refresh token"


class RefreshReused(RefreshFailed):
    """The refresh token was already spent: its session (every rotation of it) has been ended."""

    reason = "refresh token reused: its session has been ended"


# -- base64url and JSON --------------------------------------------------------------------------


def _encode64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode64(text: str) -> bytes:
    """Canonical unpadded base64url only (one spelling per value); ValueError otherwise."""
    if not _SEGMENT.fullmatch(text):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _encode64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


# -- keys ----------------------------------------------------------------------------------------

_AsymmetricKey = Union[ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey]  # noqa: UP007
_PrivateKey = Union[_AsymmetricKey, bytes]  # noqa: UP007
_PublicKey = Union[ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, bytes]  # noqa: UP007
_HMAC_BYTES = 32
_P256_BYTES = 32


def _algorithm_of(jwk: Mapping[str, Any]) -> Algorithm | None:
    """The algorithm a JWK's key type and curve call for; None for one coatcheck does not use."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "oct":
        return "HS256"
    return None


def _member(jwk: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the JWK's {name!r} is missing or not a string")
    raw = _decode64(value)
    if size is not None and len(raw) != size:
        raise ValueError(f"the JWK's {name!r} is not {size} bytes")
    return raw


class TokenKey:
    """One signing key, pinned to one algorithm, named by ``kid``.

    Made by :meth:`generate` or :meth:`from_jwk`; saved with ``to_jwk(private=True)`` (keep that
    secret). An asymmetric key without its private part only verifies. An Ed25519 or P-256 key's
    default ``kid`` is its RFC 7638 thumbprint.

    >>> key = TokenKey.generate("ES256")
    >>> key.algorithm, key.can_sign, sorted(key.to_jwk())
    ('ES256', True, ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    >>> TokenKey.from_jwk(key.to_jwk()).can_sign
    False
    """

    __slots__ = ("_public", "_signing", "algorithm", "kid")

    def __init__(
        self, kid: str, algorithm: Algorithm, signing: _PrivateKey | None, public: _PublicKey
    ) -> None:
        """Use :meth:`generate` or :meth:`from_jwk`."""
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise ValueError("a key's kid must be a non-empty string of at most 128 characters")
        self.kid = kid
        self.algorithm: Algorithm = algorithm
        self._signing = signing
        self._public = public

    def __repr__(self) -> str:
        return f"<TokenKey {self.algorithm} kid={self.kid!r}{'' if self.can_sign else ' public'}>"

    @property
    def can_sign(self) -> bool:
        """Whether the key holds its private part (or, for HS256, is the shared secret)."""
        return self._signing is not None

    @classmethod
    def generate(cls, algorithm: Algorithm = "EdDSA", kid: str | None = None) -> TokenKey:
        """A new random key for ``algorithm`` (HS256: 256 random bits, and a random ``kid``)."""
        if algorithm == "EdDSA":
            private: _AsymmetricKey = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "HS256":
            secret = secrets.token_bytes(_HMAC_BYTES)
            return cls(kid or secrets.token_urlsafe(12), "HS256", secret, secret)
        else:
            raise ValueError(f"coatcheck signs with {', '.join(ALGORITHMS)}, not {algorithm!r}")
        public = private.public_key()
        return cls(kid or _thumbprint(algorithm, public), algorithm, private, public)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any] | str) -> TokenKey:
        """The key a JWK (a mapping, or its JSON) holds: private when it has ``d`` (an ``oct``
        key always is). Its algorithm follows from ``kty`` and ``crv``; an ``alg`` member must
        agree. ValueError for anything else (RSA, other curves, wrong sizes, a ``d`` that does
        not match the public part, an HS256 secret shorter than 32 bytes or without a ``kid``).
        """
        if isinstance(jwk, str):
            jwk = json.loads(jwk)
        if not isinstance(jwk, Mapping):
            raise ValueError("a JWK is a JSON object")
        algorithm = _algorithm_of(jwk)
        if algorithm is None:
            raise ValueError(
                f"coatcheck uses Ed25519 (OKP), P-256 (EC) and oct keys, not kty "
                f"{jwk.get('kty')!r} crv {jwk.get('crv')!r}"
            )
        if jwk.get("alg", algorithm) != algorithm:
            raise ValueError(f"the JWK's alg {jwk.get('alg')!r} does not fit its key ({algorithm})")
        if jwk.get("use", "sig") != "sig":
            raise ValueError("the JWK is not a signing key (use is not 'sig')")
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError("the JWK's kid is not a string")
        try:
            return cls._from_members(jwk, algorithm, kid)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ValueError(f"invalid {algorithm} JWK: {exc}") from None

    @classmethod
    def _from_members(
        cls, jwk: Mapping[str, Any], algorithm: Algorithm, kid: str | None
    ) -> TokenKey:
        if algorithm == "HS256":
            secret = _member(jwk, "k")
            if len(secret) < _HMAC_BYTES:
                raise ValueError(f"an HS256 secret must be at least {_HMAC_BYTES} bytes")
            if kid is None:
                raise ValueError("an HS256 key needs a kid")
            return cls(kid, "HS256", secret, secret)
        private: _AsymmetricKey | None = None
        if algorithm == "EdDSA":
            x = _member(jwk, "x", 32)
            public: _PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(x)
            if "d" in jwk:
                private = ed25519.Ed25519PrivateKey.from_private_bytes(_member(jwk, "d", 32))
        else:
            x, y = _member(jwk, "x", _P256_BYTES), _member(jwk, "y", _P256_BYTES)
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            public = numbers.public_key()
            if "d" in jwk:
                d = int.from_bytes(_member(jwk, "d", _P256_BYTES), "big")
                private = ec.derive_private_key(d, ec.SECP256R1())
        if private is not None and _public_members(algorithm, private.public_key()) != (
            _public_members(algorithm, public)
        ):
            raise ValueError("its private part does not match its public part")
        return cls(kid or _thumbprint(algorithm, public), algorithm, private, public)

    def to_jwk(self, *, private: bool = False) -> dict[str, str]:
        """The key as a JWK: by default its public half (with ``kid``, ``alg`` and ``use``);
        with ``private=True`` the whole key, to store it secretly. An HS256 key is a shared
        secret with no public half: ``to_jwk()`` refuses it (ValueError)."""
        head = {"alg": self.algorithm, "kid": self.kid, "use": "sig"}
        if self.algorithm == "HS256":
            if not private:
                raise ValueError("an HS256 key is a shared secret: it has no public JWK")
            return {"kty": "oct", "k": _encode64(cast(bytes, self._signing)), **head}
        jwk = {**_public_members(self.algorithm, self._public), **head}
        if private:
            signing = self._signing
            if isinstance(signing, ed25519.Ed25519PrivateKey):
                jwk["d"] = _encode64(
                    signing.private_bytes(
                        serialization.Encoding.Raw,
                        serialization.PrivateFormat.Raw,
                        serialization.NoEncryption(),
                    )
                )
            elif isinstance(signing, ec.EllipticCurvePrivateKey):
                value = signing.private_numbers().private_value
                jwk["d"] = _encode64(value.to_bytes(_P256_BYTES, "big"))
            else:
                raise ValueError(f"key {self.kid} has no private part")
        return jwk

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A JWT of exactly ``claims``, signed with this key: header ``alg`` (the pinned one),
        ``kid`` and ``typ: at+jwt``. :class:`TokenIssuer` is the usual way to make tokens."""
        if self._signing is None:
            raise ValueError(f"key {self.kid} has no private part: it only verifies")
        return jwt.encode(
            dict(claims),
            self._signing,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": TOKEN_TYPE},
        )


def _public_members(algorithm: Algorithm, public: _PublicKey) -> dict[str, str]:
    """The members of a public JWK that RFC 7638 hashes (in their order)."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _encode64(raw)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _encode64(numbers.x.to_bytes(_P256_BYTES, "big")),
            "y": _encode64(numbers.y.to_bytes(_P256_BYTES, "big")),
        }
    raise ValueError(f"an {algorithm} key has no public members")


def _thumbprint(algorithm: Algorithm, public: _PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the default ``kid``."""
    members = _public_members(algorithm, public)
    return _encode64(hashlib.sha256(_compact(members).encode("ascii")).digest())


def _allow_list(allowed: Iterable[str]) -> frozenset[Algorithm]:
    if isinstance(allowed, str):
        raise TypeError("allowed is a list of algorithms, e.g. ('EdDSA',)")
    chosen = frozenset(allowed)
    unknown = chosen - set(ALGORITHMS)
    if unknown:
        raise ValueError(
            f"coatcheck allows only {', '.join(ALGORITHMS)}, not {', '.join(sorted(unknown))}"
        )
    if not chosen:
        raise ValueError("allowed must name at least one algorithm")
    return cast(frozenset[Algorithm], chosen)


class TokenKeyRing:
    """Signing keys, newest first: signs with the first, verifies with any.

    ``allowed`` is the explicit allow-list of algorithms (``("EdDSA",)`` unless given); a key of
    another algorithm is refused here, when the ring is made. Keys in ``upcoming`` are published
    in :meth:`jwks` and accepted, but not signed with yet.

    >>> old, new = TokenKey.generate(), TokenKey.generate()
    >>> ring = TokenKeyRing([new, old])
    >>> ring.signing_key is new, ring.find(old.kid) is old
    (True, True)
    >>> [jwk["kid"] for jwk in ring.jwks()["keys"]] == [new.kid, old.kid]
    True
    """

    def __init__(
        self,
        keys: Iterable[TokenKey],
        *,
        allowed: Iterable[str] = ("EdDSA",),
        upcoming: Iterable[TokenKey] = (),
    ) -> None:
        self.keys = tuple(keys)
        self.upcoming = tuple(upcoming)
        self.allowed = _allow_list(allowed)
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        found: dict[str, TokenKey] = {}
        for key in (*self.keys, *self.upcoming):
            if not isinstance(key, TokenKey):
                raise TypeError(f"a key ring holds TokenKey objects, not {type(key).__name__}")
            if key.algorithm not in self.allowed:
                raise ValueError(
                    f"key {key.kid} is {key.algorithm}, which allowed does not list "
                    f"({', '.join(sorted(self.allowed))})"
                )
            if key.kid in found:
                raise ValueError(f"the key ring holds kid {key.kid} twice")
            found[key.kid] = key
        self._by_kid = found

    @property
    def signing_key(self) -> TokenKey:
        """The key new tokens are signed with: the first. ValueError for a ring that can only
        verify (one made from a JWKS)."""
        key = self.keys[0]
        if not key.can_sign:
            raise ValueError("this key ring only verifies: its first key has no private part")
        return key

    def find(self, kid: str) -> TokenKey | None:
        """The key named ``kid``, or None."""
        return self._by_kid.get(kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWKS document; never a private part, never an HS256 secret."""
        every = (*self.keys, *self.upcoming)
        return {"keys": [key.to_jwk() for key in every if key.algorithm != "HS256"]}

    @classmethod
    def from_jwks(
        cls, jwks: Mapping[str, Any] | str, *, allowed: Iterable[str] = ("EdDSA",)
    ) -> TokenKeyRing:
        """A ring that verifies with the public keys of a JWKS (a mapping, or its JSON).

        Keys of algorithms not in ``allowed``, and keys of other kinds (RSA, encryption keys),
        are passed over; a secret (``oct``) or private key in a published JWKS is a leak, and
        raises ValueError, as a JWKS with no usable key does.
        """
        document = json.loads(jwks) if isinstance(jwks, str) else jwks
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("a JWKS is a JSON object with a list of keys")
        chosen = _allow_list(allowed)
        keys = []
        for jwk in entries:
            if not isinstance(jwk, Mapping):
                raise ValueError("a JWKS holds JSON objects")
            if jwk.get("kty") == "oct" or "d" in jwk:
                raise ValueError("a JWKS is public: it must hold no secret or private key")
            algorithm = _algorithm_of(jwk)
            if algorithm is None or algorithm not in chosen or jwk.get("use", "sig") != "sig":
                continue
            keys.append(TokenKey.from_jwk(jwk))
        if not keys:
            raise ValueError(f"the JWKS holds no key for {', '.join(sorted(chosen))}")
        return cls(keys, allowed=chosen)


def jwks_json(ring: TokenKeyRing) -> str:
    """The body of ``GET /.well-known/jwks.json`` (:data:`JWKS_PATH`) for ``ring``: its public
    keys as compact JSON, to serve as :data:`JWKS_CONTENT_TYPE` (cacheable: keep a new key in
    ``upcoming`` longer than a verifier caches it before signing with it)."""
    return _compact(ring.jwks())


# -- issuing and verifying -----------------------------------------------------------------------


@dataclass(frozen=True)
class Claims:
    """What a verified access token says."""

    user_id: str
    """``sub``: the user."""
    sid: str
    """``sid``: the handle of the session the token was issued from (never its ID)."""
    issued_at: float
    """``iat``, in Unix seconds (with its fraction)."""
    expires_at: float
    """``exp``, in Unix seconds."""
    token_id: str
    """``jti``: unique to the token."""
    issuer: str
    """``iss``."""
    audience: str
    """``aud``."""
    key_id: str
    """The ``kid`` of the key that signed it."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Every other claim (those the session was given at login, say)."""


def _extra_claims(claims: Mapping[str, JSONValue] | None) -> dict[str, JSONValue]:
    """Extra claims, checked: string names other than the registered ones, JSON values."""
    if not claims:
        return {}
    extra = dict(claims)
    for name in extra:
        if not isinstance(name, str):
            raise TypeError(f"a claim's name is a string, not {type(name).__name__}")
    taken = REGISTERED_CLAIMS & extra.keys()
    if taken:
        raise ValueError(f"claims set by coatcheck cannot be given: {', '.join(sorted(taken))}")
    _compact(extra)  # TypeError/ValueError unless JSON
    return extra


class TokenIssuer:
    """Signs access tokens with a ring's newest key (no I/O).

    >>> issuer = TokenIssuer(TokenKeyRing([TokenKey.generate()]), issuer="auth", audience="api")
    >>> token = issuer.issue("alice", "K2x0c1Hn7f3QwO1pLx9aQw")
    >>> token.count(".")
    2
    """

    def __init__(
        self,
        ring: TokenKeyRing,
        *,
        issuer: str,
        audience: str,
        ttl: float = ACCESS_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (isinstance(issuer, str) and issuer and isinstance(audience, str) and audience):
            raise ValueError("issuer and audience are non-empty strings")
        if not (isinstance(ttl, (int, float)) and 0 < ttl < math.inf):
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        ring.signing_key  # noqa: B018 - refuse a verify-only ring now, not at the first token
        self.ring = ring
        self.issuer = issuer
        self.audience = audience
        self.ttl = float(ttl)
        self.clock = clock

    def issue(self, user_id: str, sid: str, claims: Mapping[str, JSONValue] | None = None) -> str:
        """An access token for ``user_id`` from the session ``sid``, living ``ttl`` seconds,
        with ``claims`` besides the registered ones."""
        if not isinstance(user_id, str) or not user_id:
            raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            raise ValueError("sid must be 16 to 64 base64url characters")
        now = self.clock()
        payload: dict[str, Any] = {
            **_extra_claims(claims),
            "iss": self.issuer,
            "sub": user_id,
            "aud": self.audience,
            "sid": sid,
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(16),
        }
        return self.ring.signing_key.sign(payload)


_PYJWT_OPTIONS: Final[Any] = {
    "verify_exp": False,  # checked here, against the verifier's own clock
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": True,
    "require": ["iss", "sub", "aud", "exp", "iat", "jti", "sid"],
}


def _time_claim(payload: Mapping[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= _LATEST:  # not bool; not NaN
        raise MalformedToken(f"the {name} claim is not a time")
    return float(value)


def _text_claim(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if type(value) is not str or not value:
        raise MalformedToken(f"the {name} claim is not a non-empty string")
    return value


class TokenVerifier:
    """Verifies access tokens (no I/O): with a :class:`TokenKeyRing`, or a JWKS (a mapping or its
    JSON) for a service that only verifies.

    ``allowed`` is the allow-list of algorithms: by default the ring's (a JWKS: ``("EdDSA",)``).
    ``leeway`` is the clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        keys: TokenKeyRing | Mapping[str, Any] | str,
        *,
        issuer: str,
        audience: str,
        leeway: float = LEEWAY,
        allowed: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(keys, TokenKeyRing):
            ring = keys
            chosen = ring.allowed if allowed is None else _allow_list(allowed)
        else:
            chosen = _allow_list(("EdDSA",) if allowed is None else allowed)
            ring = TokenKeyRing.from_jwks(keys, allowed=chosen)
        if not (isinstance(issuer, str) and issuer and isinstance(audience, str) and audience):
            raise ValueError("issuer and audience are non-empty strings")
        if not (isinstance(leeway, (int, float)) and 0 <= leeway < math.inf):
            raise ValueError(f"leeway must be a number of seconds, not {leeway!r}")
        self.ring = ring
        self.allowed = chosen
        self.issuer = issuer
        self.audience = audience
        self.leeway = float(leeway)
        self.clock = clock

    def _key(self, token: object) -> TokenKey:
        """The key the token's header names, once the header passes every check."""
        if not isinstance(token, str):
            raise MalformedToken("a token is a string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise MalformedToken("the token is too long")
        segments = token.split(".")
        if len(segments) != 3:
            raise MalformedToken("a JWT has three segments")
        try:
            for segment in segments[1:]:
                _decode64(segment)
            header = json.loads(_decode64(segments[0]))
        except (ValueError, RecursionError):  # binascii and Unicode errors are ValueErrors
            raise MalformedToken("a segment is not base64url JSON") from None
        if type(header) is not dict:
            raise MalformedToken("the header is not a JSON object")
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if type(alg) is not str or alg.lower() == "none" or alg not in self.allowed:
            raise AlgorithmRefused(f"algorithm {str(alg)[:16]!r} is not allowed")
        if not header.keys() <= _HEADER_MEMBERS:
            raise MalformedToken("the header has members coatcheck does not understand")
        if type(typ) is not str or typ.lower() not in _TYPES:
            raise WrongType
        if type(kid) is not str:
            raise UnknownKey("the header names no kid")
        key = self.ring.find(kid)
        if key is None:
            raise UnknownKey
        if key.algorithm != alg:  # algorithm confusion: the key decides, never the token
            raise AlgorithmRefused(f"key {kid} is pinned to {key.algorithm}")
        return key

    def verify(self, token: object) -> Claims:
        """The claims of a valid access token; :class:`InvalidToken` (a subclass saying why)
        for anything else, whatever ``token`` is."""
        key = self._key(token)
        assert isinstance(token, str)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key._public,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options=_PYJWT_OPTIONS,
            )
        except jwt.InvalidSignatureError:
            raise BadSignature from None
        except jwt.InvalidAudienceError:
            raise WrongAudience from None
        except jwt.InvalidIssuerError:
            raise WrongIssuer from None
        except jwt.MissingRequiredClaimError as missing:
            if missing.claim == "aud":
                raise WrongAudience from None
            if missing.claim == "iss":
                raise WrongIssuer from None
            raise MalformedToken(f"the {missing.claim} claim is missing") from None
        except jwt.InvalidAlgorithmError:
            raise AlgorithmRefused from None
        except jwt.PyJWTError:
            raise MalformedToken from None
        return self._claims(payload, key)

    def _claims(self, payload: dict[str, Any], key: TokenKey) -> Claims:
        """Check the times against this verifier's clock, and the claims' types."""
        now, leeway = self.clock(), self.leeway
        expires_at = _time_claim(payload, "exp")
        issued_at = _time_claim(payload, "iat")
        not_before = _time_claim(payload, "nbf")
        if expires_at is None or issued_at is None:
            raise MalformedToken("the exp or iat claim is missing")
        if expires_at <= now - leeway:
            raise TokenExpired
        if issued_at > now + leeway or (not_before is not None and not_before > now + leeway):
            raise TokenNotYetValid
        user_id, sid = _text_claim(payload, "sub"), _text_claim(payload, "sid")
        token_id = _text_claim(payload, "jti")
        extra = {name: value for name, value in payload.items() if name not in REGISTERED_CLAIMS}
        return Claims(
            user_id,
            sid,
            issued_at,
            expires_at,
            token_id,
            self.issuer,
            self.audience,
            key.kid,
            extra,
        )


# -- revocation records --------------------------------------------------------------------------


class Entry(NamedTuple):
    """One revocation: ``not_before`` (tokens issued before it are revoked), kept until
    ``keep_until`` (when no token it revokes can still be accepted)."""

    not_before: float
    keep_until: float


_NONE = Entry(0.0, 0.0)


def _later(a: Entry, b: Entry) -> Entry:
    return Entry(max(a.not_before, b.not_before), max(a.keep_until, b.keep_until))


@dataclass(frozen=True)
class Revocations:
    """What a user's revocation record holds; what :meth:`Tokens.authenticate` checks a token
    against, and :meth:`Tokens.refresh` a session."""

    tokens: Entry = _NONE
    """User-wide: the user's access tokens issued before ``tokens.not_before`` are revoked."""
    sessions: Entry = _NONE
    """User-wide: the user's sessions authenticated before ``sessions.not_before`` cannot
    refresh (logged out everywhere)."""
    sids: Mapping[str, Entry] = field(default_factory=dict)
    """Per session, by ``sid``: its tokens issued before the entry's not-before are revoked; a
    not-before still ahead means the session can issue no token: it has ended."""

    def revokes(self, claims: Claims) -> bool:
        """Whether the access token ``claims`` came from is revoked."""
        if claims.issued_at < self.tokens.not_before:
            return True
        entry = self.sids.get(claims.sid)
        return entry is not None and claims.issued_at < entry.not_before

    def ends(self, sid: str, authenticated_at: float, now: float) -> bool:
        """Whether the session ``sid``, authenticated at ``authenticated_at``, may no longer
        refresh at ``now``."""
        if authenticated_at < self.sessions.not_before:
            return True
        entry = self.sids.get(sid)
        return entry is not None and entry.not_before > now

    def pruned(self, now: float) -> Revocations:
        """Without the entries that can no longer revoke anything."""

        def kept(entry: Entry) -> Entry:
            return entry if entry.keep_until > now else _NONE

        sids = {sid: entry for sid, entry in self.sids.items() if entry.keep_until > now}
        return Revocations(kept(self.tokens), kept(self.sessions), sids)

    def bounded(self, now: float) -> Revocations:
        """At most :data:`MAX_REVOKED_SESSIONS` per-session entries: the excess, those kept
        the shortest, folded into the user-wide ones (a past not-before into ``tokens``; an
        ended session into ``tokens`` and ``sessions`` as of now)."""
        if len(self.sids) <= MAX_REVOKED_SESSIONS:
            return self
        order = sorted(self.sids.items(), key=lambda item: (item[1].keep_until, item[0]))
        excess = len(order) - MAX_REVOKED_SESSIONS
        tokens, sessions = self.tokens, self.sessions
        for _, entry in order[:excess]:
            if entry.not_before <= now:
                tokens = _later(tokens, entry)
            else:
                ended = Entry(now, entry.keep_until)
                tokens, sessions = _later(tokens, ended), _later(sessions, ended)
        return Revocations(tokens, sessions, dict(order[excess:]))

    @property
    def keep_until(self) -> float:
        """When the record can go: its last entry's end."""
        ends = [self.tokens.keep_until, self.sessions.keep_until]
        ends.extend(entry.keep_until for entry in self.sids.values())
        return max(ends)

    def encode(self) -> bytes:
        sids = {sid: list(entry) for sid, entry in self.sids.items()}
        body = {"t": list(self.tokens), "a": list(self.sessions), "s": sids}
        return _compact({"revoked": body}).encode("ascii")

    @classmethod
    def decode(cls, raw: bytes) -> Revocations:
        """ValueError unless ``raw`` is what :meth:`encode` writes."""
        try:
            body = json.loads(raw)["revoked"]
            sids = {sid: _entry(entry) for sid, entry in body["s"].items()}
            state = cls(_entry(body["t"]), _entry(body["a"]), sids)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            raise ValueError("not a revocation record") from None
        if not all(type(sid) is str for sid in sids):
            raise ValueError("not a revocation record")
        return state


def _entry(value: object) -> Entry:
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError("not an entry")
    first, second = value
    if not all(type(v) in (int, float) and math.isfinite(v) for v in (first, second)):
        raise ValueError("not an entry")
    return Entry(float(first), float(second))


class _Spent(NamedTuple):
    """What a spent refresh token's record says: the session family it belonged to."""

    sid: str
    user_id: str
    successor: str
    """The store key the session was rotated to."""

    def encode(self) -> bytes:
        return _compact({"spent": list(self)}).encode("ascii")

    @classmethod
    def decode(cls, raw: bytes) -> _Spent | None:
        try:
            sid, user_id, successor = json.loads(raw)["spent"]
        except (ValueError, TypeError, KeyError, RecursionError):
            return None
        if (type(sid), type(user_id), type(successor)) != (str, str, str):
            return None
        return cls(sid, user_id, successor)


class _Cache:
    """Revocation records read lately, for ``revocation_lag`` seconds (LRU, bounded)."""

    def __init__(self, lag: float, size: int) -> None:
        self.lag, self.size = lag, size
        self._entries: OrderedDict[str, tuple[float, Revocations]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> Revocations | None:
        if self.lag <= 0:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None or not 0 <= now - found[0] < self.lag:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, state: Revocations, now: float) -> None:
        if self.lag <= 0:
            return
        with self._lock:
            self._entries[key] = (now, state)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


# -- the flows -------------------------------------------------------------------------------------


class TokenPair(NamedTuple):
    """What a login or a refresh gives the client."""

    access_token: str
    refresh_token: str
    """The session's new ID: send it back, in the session header, to refresh."""
    expires_in: int
    """The access token's lifetime, in seconds."""

    def as_oauth(self) -> dict[str, str | int]:
        """The pair as an OAuth 2.0 token response body (RFC 6749, section 5.1)."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


class _Handle(NamedTuple):
    """A refresh token's session, as the tokens see it."""

    sid: str
    user_id: str
    claims: dict[str, JSONValue]


def _handle_of(session: Session) -> _Handle | None:
    """What the tokens keep in ``session``; None for a session they did not make."""
    state = session.get(STATE_KEY)
    user_id = session.user_id
    if not (isinstance(state, dict) and user_id is not None):
        return None
    sid, claims = state.get("sid"), state.get("claims")
    if not (isinstance(sid, str) and _SID.fullmatch(sid) and isinstance(claims, dict)):
        return None
    return _Handle(sid, user_id, claims)


class Tokens:
    """Access tokens over the refresh-token sessions of ``engine``: every method is a plan.

    ``engine`` must carry the ID by header (``SessionConfig(transport="header")``); its config
    gives the clock, the timeouts (a refresh token lives ``idle_timeout`` unused, and at most
    ``absolute_timeout`` from login), ``hash_secret`` (which keys the records' names) and the
    encryption keys (which seal them). ``ttl`` is the access tokens' lifetime, ``leeway`` the
    clock skew allowed in verifying them. ``revocation_lag`` lets :meth:`authenticate` reuse a
    revocation record it read that many seconds ago; ``stateless=True`` makes it read none
    (revoked tokens then live until ``exp``).
    """

    def __init__(
        self,
        engine: SessionEngine,
        ring: TokenKeyRing,
        *,
        issuer: str,
        audience: str,
        ttl: float = ACCESS_TTL,
        leeway: float = LEEWAY,
        stateless: bool = False,
        revocation_lag: float = 0.0,
        cache_size: int = 10_000,
    ) -> None:
        config = engine.config
        if config.transport != "header":
            raise ValueError(
                "refresh tokens travel in the session header: SessionConfig(transport='header')"
            )
        if not (isinstance(revocation_lag, (int, float)) and 0 <= revocation_lag < math.inf):
            raise ValueError(f"revocation_lag must be seconds, not {revocation_lag!r}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, not {cache_size}")
        clock = config.clock
        self.engine = engine
        self.token_issuer = TokenIssuer(
            ring, issuer=issuer, audience=audience, ttl=ttl, clock=clock
        )
        self.token_verifier = TokenVerifier(
            ring, issuer=issuer, audience=audience, leeway=leeway, clock=clock
        )
        self.stateless = stateless
        self.revocation_lag = float(revocation_lag)
        self._clock = clock
        self._secret = config.hash_secret
        keys = config.encryption_keys
        self._ring = KeyRing(keys) if keys else None
        self._cache = _Cache(self.revocation_lag, cache_size)

    @property
    def token_life(self) -> float:
        """How long after its ``iat`` an access token can still be accepted: ``ttl`` plus
        ``leeway``. Revocation entries are kept that long."""
        return self.token_issuer.ttl + self.token_verifier.leeway

    # -- records ---------------------------------------------------------------------------

    def revocation_key(self, user_id: str) -> str:
        """The store key of ``user_id``'s revocation record (hashed, as session keys are)."""
        named = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
        return store_key(f"coatcheck-tokens:revoked:{named}", self._secret)

    def _spent_key(self, key: str) -> str:
        return store_key(f"coatcheck-tokens:spent:{key}", self._secret)

    def _seal(self, raw: bytes, key: str) -> bytes:
        return raw if self._ring is None else self._ring.seal(raw, key)

    def _open(self, record: Record) -> bytes:
        """A record's bytes, opened when sealed; ValueError (a DecodeError) when they do not
        open."""
        if not is_sealed(record.data):
            return record.data
        if self._ring is None:
            raise ValueError("a sealed record, and no encryption keys")
        return self._ring.open(record.data, record.key)

    def _revocations(self, record: Record | None, now: float) -> Revocations:
        if record is None or record.expires_at <= now:
            return Revocations()
        try:
            return Revocations.decode(self._open(record)).pruned(now)
        except ValueError:
            # Undecodable stored data is as good as none: whoever can write the store can
            # delete the record too.
            logger.warning("ignoring an unreadable token revocation record")
            return Revocations()

    def _revise(
        self, user_id: str, change: Callable[[Revocations, float], Revocations]
    ) -> Plan[Revocations]:
        """Write ``change`` into the user's revocation record (compare-and-set, retried)."""
        key = self.revocation_key(user_id)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if attempt:
                yield backoff(attempt)
            now = self._clock()
            current: Record | None = yield ("load", (key,))
            state = change(self._revocations(current, now), now).bounded(now)
            until = state.keep_until
            version = 1 if current is None else current.version + 1
            record = Record(key, self._seal(state.encode(), key), until, version, None, until)
            if current is None:
                written = yield ("create", (record,))
            else:
                written = yield ("save", (record, current.version))
            if written:
                self._cache.put(key, state, now)
                return state
        raise WriteConflict(f"gave up writing a token revocation after {MAX_WRITE_ATTEMPTS} tries")

    def _revoke_sid(self, user_id: str, sid: str, entry: Entry) -> Plan[Revocations]:
        def change(state: Revocations, _now: float) -> Revocations:
            sids = dict(state.sids)
            sids[sid] = _later(sids.get(sid, _NONE), entry)
            return Revocations(state.tokens, state.sessions, sids)

        return (yield from self._revise(user_id, change))

    # -- sessions --------------------------------------------------------------------------

    def _end(self, session: Session) -> Plan[None]:
        """Delete a session (its logout's commit)."""
        session.logout()
        plan = self.engine.commit(session)
        if plan is not None:
            yield from plan

    def _commit(self, session: Session) -> Plan[None]:
        """Store a new or rotated session; RefreshFailed when it could not be (its absolute
        timeout passed meanwhile)."""
        plan = self.engine.commit(session)
        if plan is not None:
            yield from plan
        if session.stored is None:
            raise RefreshFailed("the session has ended")

    def _pair(self, session: Session, handle: _Handle) -> TokenPair:
        stored = session.stored
        assert stored is not None
        access = self.token_issuer.issue(handle.user_id, handle.sid, handle.claims)
        return TokenPair(access, stored.id, math.ceil(self.token_issuer.ttl))

    def _find(self, refresh_token: object) -> Plan[tuple[Session, _Handle] | None]:
        """The session a refresh token names, or None; a spent one ends its family and raises
        :class:`RefreshReused`."""
        if not isinstance(refresh_token, str):
            return None
        session = yield from self.engine.load(refresh_token)
        if session.stored is None:
            if is_well_formed(refresh_token):
                yield from self._detect_reuse(refresh_token)
            return None
        handle = _handle_of(session)
        return None if handle is None else (session, handle)

    def _detect_reuse(self, refresh_token: str) -> Plan[None]:
        """End the family of a spent refresh token (raising :class:`RefreshReused`); nothing
        for a token that never was one."""
        key = self._spent_key(store_key(refresh_token, self._secret))
        record: Record | None = yield ("load", (key,))
        now = self._clock()
        if record is None or record.expires_at <= now:
            return
        try:
            spent = _Spent.decode(self._open(record))
        except ValueError:
            spent = None
        if spent is None:
            return
        self.engine.emit("rejected", None, spent.user_id, "refresh token reused")
        yield from self._end_family(spent.user_id, spent.sid, spent.successor)
        raise RefreshReused

    def _ended_until(self) -> float:
        """Until when a session that is live now, or a token of it, can be: its absolute
        deadline at the latest (from a login no later than now), plus a token's life."""
        return self._clock() + self.engine.config.absolute_timeout + self.token_life

    def _end_family(self, user_id: str, sid: str, successor: str) -> Plan[None]:
        """No token of ``sid`` is accepted and no session of it refreshes any more (however
        many rotations on); the session it was rotated into is deleted."""
        until = self._ended_until()
        yield from self._revoke_sid(user_id, sid, Entry(until, until))
        yield ("delete", (successor,))
        self.engine.emit("revoked", successor, user_id, "refresh token reused")

    def _live(self, refresh_token: object) -> Plan[tuple[Session, _Handle]]:
        """The live session of a refresh token, checked against its user's revocations."""
        found = yield from self._find(refresh_token)
        if found is None:
            raise RefreshFailed
        session, handle = found
        key = self.revocation_key(handle.user_id)
        now = self._clock()
        state = self._revocations((yield ("load", (key,))), now)
        self._cache.put(key, state, now)
        if state.ends(handle.sid, session.authenticated_at, now):
            yield from self._end(session)
            raise RefreshFailed("the session has been revoked")
        return session, handle

    def _rotate(self, session: Session, handle: _Handle) -> Plan[None]:
        """Commit the session's rotation (asked for by the caller), and leave the spent record
        behind."""
        old = session.stored
        assert old is not None
        yield from self._commit(session)
        new = session.stored
        assert new is not None
        now = self._clock()
        spent = _Spent(handle.sid, handle.user_id, new.key)
        key = self._spent_key(old.key)
        until = min(now + self.engine.config.idle_timeout, old.deadline)
        record = Record(key, self._seal(spent.encode(), key), until, 1, None, until)
        if until > now and not (yield ("create", (record,))):
            # Another request spent the same refresh token a moment ago: a replay race.
            self.engine.emit("rejected", None, handle.user_id, "refresh token reused")
            yield from self._end_family(handle.user_id, handle.sid, new.key)
            raise RefreshReused

    # -- the API ---------------------------------------------------------------------------

    def login(self, user_id: str, claims: Mapping[str, JSONValue] | None = None) -> Plan[TokenPair]:
        """Start a refresh-token session for ``user_id`` (after checking their credentials):
        a new refresh token and access token. ``claims`` go into every access token of the
        session (e.g. ``{"scope": "read"}``)."""
        handle = _Handle(secrets.token_urlsafe(16), user_id, _extra_claims(claims))
        session = self.engine.fresh()
        session[STATE_KEY] = {"sid": handle.sid, "claims": handle.claims}
        session.login(user_id)  # TypeError unless a non-empty str
        yield from self._commit(session)
        return self._pair(session, handle)

    def refresh(self, refresh_token: str) -> Plan[TokenPair]:
        """A new access token and a new refresh token for a refresh token, which is spent:
        presented again, it ends its session (:class:`RefreshReused`). :class:`RefreshFailed`
        for a token that names no live session."""
        session, handle = yield from self._live(refresh_token)
        session.privileges_changed()  # a new ID, and no grace window for the old one
        yield from self._rotate(session, handle)
        return self._pair(session, handle)

    def authenticate(self, access_token: str) -> Plan[Claims]:
        """The claims of a valid, unrevoked access token; :class:`InvalidToken` otherwise.

        One store call (a ``load`` of the user's revocation record), or none: when the record
        was read less than ``revocation_lag`` seconds ago, or when ``stateless``.
        """
        claims = self.token_verifier.verify(access_token)
        if self.stateless:
            return claims
        key = self.revocation_key(claims.user_id)
        now = self._clock()
        state = self._cache.get(key, now)
        if state is None:
            state = self._revocations((yield ("load", (key,))), now)
            self._cache.put(key, state, now)
        if state.revokes(claims):
            raise TokenRevoked
        return claims

    def logout(self, refresh_token: str) -> Plan[bool]:
        """End the session of a refresh token, and revoke its access tokens; whether there was
        one to end. A spent refresh token ends its family too (and raises
        :class:`RefreshReused`)."""
        found = yield from self._find(refresh_token)
        if found is None:
            return False
        session, handle = found
        yield from self._end(session)
        # Ahead, not now: a refresh racing this logout may have rotated the session meanwhile;
        # neither the tokens it issued nor its next refresh pass, while any token could.
        until = self._clock() + self.token_life
        yield from self._revoke_sid(handle.user_id, handle.sid, Entry(until, until))
        return True

    def logout_everywhere(self, user_id: str) -> Plan[int]:
        """End every session of ``user_id`` and revoke all their access tokens; how many
        sessions were deleted. Needs a store with a user index, as the engine's does."""

        def change(state: Revocations, now: float) -> Revocations:
            tokens = _later(state.tokens, Entry(now, now + self.token_life))
            ended = Entry(now, now + self.engine.config.absolute_timeout + self.token_life)
            return Revocations(tokens, _later(state.sessions, ended), state.sids)

        yield from self._revise(user_id, change)
        count: int = yield ("delete_by_user", (user_id,))
        self.engine.emit("revoked", None, user_id, "logout everywhere", count)
        return count

    def password_changed(self, refresh_token: str) -> Plan[TokenPair]:
        """After the user changed their password: every other session ends, every access token
        issued before is revoked, and this session goes on, authenticated anew, with new
        tokens. Needs a store with a user index."""
        session, handle = yield from self._live(refresh_token)
        session.password_changed()
        session.login(handle.user_id)  # authenticated anew: not ended by the sessions-before
        yield from self._rotate(session, handle)
        authenticated = session.authenticated_at

        def change(state: Revocations, now: float) -> Revocations:
            tokens = _later(state.tokens, Entry(now, now + self.token_life))
            ended = Entry(authenticated, now + self.engine.config.absolute_timeout)
            return Revocations(tokens, _later(state.sessions, ended), state.sids)

        yield from self._revise(handle.user_id, change)
        return self._pair(session, handle)

    def privileges_changed(
        self, refresh_token: str, claims: Mapping[str, JSONValue] | None = None
    ) -> Plan[TokenPair]:
        """After the session's privileges changed (step-up, a role given up): new tokens
        (carrying ``claims`` from now on, when given), and the session's earlier access tokens
        revoked."""
        session, handle = yield from self._live(refresh_token)
        if claims is not None:
            handle = handle._replace(claims=_extra_claims(claims))
            session[STATE_KEY] = {"sid": handle.sid, "claims": handle.claims}
        session.privileges_changed()
        yield from self._rotate(session, handle)
        now = self._clock()
        yield from self._revoke_sid(handle.user_id, handle.sid, Entry(now, now + self.token_life))
        return self._pair(session, handle)

    def revoke_access(self, user_id: str) -> Plan[None]:
        """Revoke every access token of ``user_id`` issued until now; sessions go on, and their
        next refresh gets new tokens (after an administrator changed the user's roles, say)."""

        def change(state: Revocations, now: float) -> Revocations:
            tokens = _later(state.tokens, Entry(now, now + self.token_life))
            return Revocations(tokens, state.sessions, state.sids)

        yield from self._revise(user_id, change)
        self.engine.emit("revoked", None, user_id, "access tokens revoked", 0)

    def revoke_session(self, user_id: str, sid: str) -> Plan[None]:
        """End the session ``sid`` of ``user_id`` (an access token's ``claims.sid``), with no
        lookup: none of its access tokens is accepted any more, and it cannot refresh (its
        record is deleted at its next refresh attempt, or expires)."""
        until = self._ended_until()
        yield from self._revoke_sid(user_id, sid, Entry(until, until))
        self.engine.emit("revoked", None, user_id, "session revoked")
