"""Serialization of session data: JSON only (orjson when installed), never pickle, size-capped.

What a store holds is an *envelope*: ``{"c": created_at, "a": auth_at, "u": user, "d": data}``
as compact UTF-8 JSON. Stored data is untrusted input: decoding checks the shape of what it
reads (finite timestamps in range, a data object, text where text belongs, no NaN or infinity
anywhere, on both JSON paths), so tampered or corrupt store data raises :class:`DecodeError`
rather than reaching the application, and no error message repeats the stored bytes.

The envelope's user is the one the session is logged in as. A store also keeps the user in a
column of its own (for its per-user index); :func:`decode_envelope` refuses a record whose
column says otherwise (:class:`Tampered`). With encryption at rest the envelope is sealed, so
the user, the timestamps, the CSRF token and the binding are all authenticated together.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # tests run this path too (the json_backend fixture)
    orjson = None  # type: ignore[assignment]

JSONValue = Any
"""A value JSON can hold: None, bool, int, float, str, list of these, dict of str to these."""


class DecodeError(ValueError):
    """Stored bytes are not a session envelope coatcheck wrote (the message never quotes
    them)."""


class Tampered(DecodeError):
    """A record's cleartext columns disagree with what its envelope says (its user)."""


class SessionTooLarge(ValueError):
    """The serialized session data would exceed the configured ``max_size``."""


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_keys(value: JSONValue) -> None:
    """Refuse non-str keys, which json would silently turn into strings (orjson refuses)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict key {key!r} is not a str")
            _check_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item)


def stdlib_dumps(value: JSONValue) -> bytes:
    """:func:`dumps` with the standard library's json module (used when orjson is missing)."""
    _check_keys(value)
    try:
        return _encoder.encode(value).encode("utf-8")
    except ValueError as exc:  # NaN, infinity, circular references
        raise TypeError(str(exc)) from exc


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400: out of range, as orjson says too
        raise ValueError("number out of range")
    return number


_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def stdlib_loads(data: bytes) -> JSONValue:
    """:func:`loads` with the standard library's json module (used when orjson is missing).

    Strict as orjson is: no NaN, Infinity or out-of-range numbers.
    """
    return _decoder.decode(data.decode("utf-8"))


dumps: Callable[[JSONValue], bytes] = stdlib_dumps
"""Serialize a value to compact UTF-8 JSON; TypeError for what JSON cannot hold."""
loads: Callable[[bytes], JSONValue] = stdlib_loads
"""Parse UTF-8 JSON; ValueError when it is not."""

if orjson is not None:  # these run several times per request
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def _orjson_dumps(
        value: JSONValue, _dumps: Callable[..., bytes] = orjson.dumps, _options: int = _OPTIONS
    ) -> bytes:
        # The options passed by position: a functools.partial binding them by keyword costs
        # orjson a keyword parse on every call, more than this function's own frame.
        return _dumps(value, None, _options)

    dumps = _orjson_dumps
    loads = orjson.loads


def entry_size(key: str, value: JSONValue) -> int:
    """Bytes that ``"key":value`` takes inside the serialized data; TypeError naming the key."""
    if not isinstance(key, str):
        raise TypeError(f"session keys must be str, not {type(key).__name__}: {key!r}")
    try:
        if isinstance(value, float) and not math.isfinite(value):
            raise TypeError("NaN and infinity are not JSON")  # orjson would write null
        return len(dumps(key)) + 1 + len(dumps(value))
    except TypeError as exc:
        raise TypeError(
            f"session[{key!r}] = {type(value).__name__} value cannot be stored: "
            f"session values must be JSON-compatible ({exc})"
        ) from None


def serialize(data: dict[str, JSONValue]) -> bytes:
    """Serialize session data (no size cap); TypeError names a bad key."""
    try:
        return dumps(data)
    except TypeError:
        for key, value in data.items():  # name the culprit: a nested value changed in place
            entry_size(key, value)
        raise


def check_size(body: bytes, max_size: int) -> bytes:
    """``body``, if it fits in ``max_size``; :class:`SessionTooLarge` if not."""
    if len(body) > max_size:
        raise SessionTooLarge(
            f"session data is {len(body)} bytes serialized, over max_size={max_size}"
        )
    return body


def encode_data(data: dict[str, JSONValue], max_size: int) -> bytes:
    """Serialize session data, enforcing ``max_size``; TypeError names a bad key."""
    return check_size(serialize(data), max_size)


_SAFE_TEXT = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def envelope(
    body: bytes,
    created_at: float,
    auth_at: float,
    token: str | None = None,
    binding: str | None = None,
    user: str | None = None,
) -> bytes:
    """Wrap serialized data in the stored envelope; the data always comes last.

    ``token`` (the CSRF token) and ``binding`` (the client fingerprint) are base64url or hex;
    ``user`` is the logged-in user, if any.
    """
    head = b'{"c":%s,"a":%s' % (dumps(created_at), dumps(auth_at))
    if user is not None:
        head += b',"u":%s' % dumps(user)
    for name, text in ((b"t", token), (b"b", binding)):
        if text is not None:
            if not _SAFE_TEXT.fullmatch(text):
                raise ValueError(f"envelope field {name.decode()} must be base64url or hex")
            head += b',"%s":"%s"' % (name, text.encode("ascii"))
    return head + b',"d":%s}' % body


def forwarder(new_key: str, until: float) -> bytes:
    """What the old record of a regenerated session holds during the grace window: where the
    session went (its new store key, a hash; never an ID) and until when (Unix seconds)."""
    if not _SAFE_TEXT.fullmatch(new_key):
        raise ValueError("a forwarding record points at a store key (hex)")
    return b'{"m":"%s","u":%s}' % (new_key.encode("ascii"), dumps(float(until)))


_FORWARDER = re.compile(rb'\{"m":"([0-9a-f]{1,128})","u":([0-9.eE+-]{1,32})\}')


def forwarded_to(blob: bytes) -> tuple[str, float] | None:
    """The store key a forwarding record points at and the end of its grace window; None for
    anything else."""
    found = _FORWARDER.fullmatch(blob)
    if found is None:
        return None
    try:
        return found[1].decode("ascii"), float(found[2])
    except ValueError:
        return None


def encode(
    data: dict[str, JSONValue],
    created_at: float,
    auth_at: float,
    max_size: int,
    user: str | None = None,
) -> bytes:
    """Serialize session data in its envelope, enforcing ``max_size`` on the data part."""
    return envelope(encode_data(data, max_size), created_at, auth_at, user=user)


DATA_KEY = b',"d":'
"""What precedes the data in an envelope :func:`envelope` writes (its last member)."""


def data_offset(blob: bytes) -> int:
    """Where the data starts in an envelope :func:`envelope` wrote; -1 when it is not one."""
    at = blob.find(DATA_KEY)
    return -1 if at < 0 or not blob.endswith(b"}") else at + len(DATA_KEY)


Envelope = tuple[dict[str, JSONValue], float, float, "str | None", "str | None", "str | None"]
"""Everything a stored envelope holds: data, created_at, auth_at, the CSRF token, the binding,
the user."""

LATEST = 253402300799.0
"""The last timestamp a stored session may carry (9999-12-31, the end of ``datetime``)."""


def decode(blob: bytes) -> tuple[dict[str, JSONValue], float, float]:
    """Return ``(data, created_at, auth_at)`` from an envelope, or raise :class:`DecodeError`."""
    data, created_at, auth_at, _, _, _ = decode_envelope(blob)
    return data, created_at, auth_at


_ANY_USER: Any = object()


def decode_envelope(blob: bytes, user_column: str | None = _ANY_USER) -> Envelope:
    """Return all of an envelope, or raise :class:`DecodeError`.

    With ``user_column`` (the user a store keeps beside the record), a record whose envelope
    names another user (or none) raises :class:`Tampered`.
    """
    try:
        envelope = loads(blob)
        data, created_at, auth_at = envelope["d"], envelope["c"], envelope["a"]
        token, binding, user = envelope.get("t"), envelope.get("b"), envelope.get("u")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # Never the exception's text: a UnicodeDecodeError's repr holds the stored bytes.
        raise DecodeError(f"stored session is not an envelope ({type(exc).__name__})") from None
    if not (
        (token is None or type(token) is str)
        and (binding is None or type(binding) is str)
        and (user is None or type(user) is str)
    ):
        raise DecodeError("stored session has a bad token, binding or user")
    if type(data) is not dict:
        raise DecodeError("stored session has no data object")
    if not (  # the common case, checked inline: this runs on every request
        type(created_at) is float
        and type(auth_at) is float
        and 0 <= created_at <= LATEST
        and 0 <= auth_at <= LATEST
    ):
        created_at, auth_at = _timestamp(created_at), _timestamp(auth_at)
    if user_column is not _ANY_USER and user != user_column:
        raise Tampered("stored session's user column disagrees with its envelope")
    return data, created_at, auth_at, token, binding, user


def _timestamp(value: object) -> float:
    """A stored timestamp: a finite number of Unix seconds from 1970 to 9999."""
    if (type(value) is float or type(value) is int) and 0 <= value <= LATEST:  # not NaN
        return float(value)
    raise DecodeError("stored session has a bad timestamp")


def is_token_record(record: object) -> bool:
    """Whether a stored record is one of :mod:`coatcheck.tokens`' own (a revocation or spent
    record) rather than a session: tools that list sessions pass them by. A sealed one cannot be
    told apart."""
    data = getattr(record, "data", b"")
    return isinstance(data, bytes) and data.startswith((b'{"revoked":', b'{"spent":'))
