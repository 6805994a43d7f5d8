"""Serialization of session data: JSON only (orjson when installed), never pickle, size-capped.

What a store holds is an *envelope*: ``{"c": created_at, "a": auth_at, "d": data}`` as compact
UTF-8 JSON. Decoding checks the shape of what it reads, so tampered or corrupt store data raises
:class:`DecodeError` rather than reaching the application.
"""

from __future__ import annotations

import functools
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
    """Stored bytes are not a session envelope coatcheck wrote."""


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


def stdlib_loads(data: bytes) -> JSONValue:
    """:func:`loads` with the standard library's json module (used when orjson is missing)."""
    return json.loads(data)


dumps: Callable[[JSONValue], bytes] = stdlib_dumps
"""Serialize a value to compact UTF-8 JSON; TypeError for what JSON cannot hold."""
loads: Callable[[bytes], JSONValue] = stdlib_loads
"""Parse UTF-8 JSON; ValueError when it is not."""

if orjson is not None:  # bound without a Python wrapper: these run several times per request
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    dumps = functools.partial(orjson.dumps, option=_OPTIONS)
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


def encode_data(data: dict[str, JSONValue], max_size: int) -> bytes:
    """Serialize session data, enforcing ``max_size``; TypeError names a bad key."""
    try:
        body = dumps(data)
    except TypeError:
        for key, value in data.items():  # name the culprit: a nested value changed in place
            entry_size(key, value)
        raise
    if len(body) > max_size:
        raise SessionTooLarge(
            f"session data is {len(body)} bytes serialized, over max_size={max_size}"
        )
    return body


_SAFE_TEXT = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def envelope(
    body: bytes,
    created_at: float,
    auth_at: float,
    token: str | None = None,
    binding: str | None = None,
) -> bytes:
    """Wrap serialized data in the stored envelope; the data always comes last.

    ``token`` (the CSRF token) and ``binding`` (the client fingerprint) are base64url or hex.
    """
    head = b'{"c":%s,"a":%s' % (dumps(created_at), dumps(auth_at))
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


def encode(data: dict[str, JSONValue], created_at: float, auth_at: float, max_size: int) -> bytes:
    """Serialize session data in its envelope, enforcing ``max_size`` on the data part."""
    return envelope(encode_data(data, max_size), created_at, auth_at)


_DATA_KEY = b',"d":'


def data_offset(blob: bytes) -> int:
    """Where the data starts in an envelope :func:`envelope` wrote; -1 when it is not one."""
    at = blob.find(_DATA_KEY)
    return -1 if at < 0 or not blob.endswith(b"}") else at + len(_DATA_KEY)


Envelope = tuple[dict[str, JSONValue], float, float, "str | None", "str | None"]
"""Everything a stored envelope holds: data, created_at, auth_at, the CSRF token, the binding."""


def decode(blob: bytes) -> tuple[dict[str, JSONValue], float, float]:
    """Return ``(data, created_at, auth_at)`` from an envelope, or raise :class:`DecodeError`."""
    data, created_at, auth_at, _, _ = decode_envelope(blob)
    return data, created_at, auth_at


def decode_envelope(blob: bytes) -> Envelope:
    """Return all of an envelope, or raise :class:`DecodeError`."""
    try:
        envelope = loads(blob)
        data, created_at, auth_at = envelope["d"], envelope["c"], envelope["a"]
        token, binding = envelope.get("t"), envelope.get("b")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise DecodeError(f"stored session is not an envelope: {exc!r}") from None
    if not (token is None or type(token) is str) or not (binding is None or type(binding) is str):
        raise DecodeError("stored session has a bad token or binding")
    if type(data) is not dict:
        raise DecodeError("stored session has no data object")
    if type(created_at) is not float:
        created_at = _timestamp(created_at)
    if type(auth_at) is not float:
        auth_at = _timestamp(auth_at)
    return data, created_at, auth_at, token, binding


def _timestamp(value: object) -> float:
    if type(value) is not int:
        raise DecodeError("stored session has a bad timestamp")
    return float(value)
