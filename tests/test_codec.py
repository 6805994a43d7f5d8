"""Serialization: JSON only, checked on the way in and on the way out."""

from __future__ import annotations

import pickle

import pytest

from coatcheck import codec

pytestmark = pytest.mark.usefixtures("json_backend")


def test_round_trip() -> None:
    data = {"a": [1, 2.5, None, True], "b": {"c": "é€😀"}}
    blob = codec.encode(data, 10.0, 20.0, 1000)
    assert codec.decode(blob) == (data, 10.0, 20.0)


def test_encoding_is_deterministic_so_unchanged_data_is_not_rewritten() -> None:
    data = {"z": 1, "a": [0.1, 1e300]}
    blob = codec.encode(data, 1.5, 1.5, 1000)
    again, created, auth = codec.decode(blob)
    assert codec.encode(again, created, auth, 1000) == blob


def test_the_size_cap_applies_to_the_data() -> None:
    with pytest.raises(codec.SessionTooLarge, match="max_size=10"):
        codec.encode({"a": "x" * 10}, 1.0, 1.0, 10)


def test_a_nested_bad_value_is_named_at_encoding() -> None:
    with pytest.raises(TypeError, match="session\\['cart'\\]"):
        codec.encode({"ok": 1, "cart": [object()]}, 1.0, 1.0, 1000)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xff",
        b"[]",
        b"null",
        b'{"d":{}}',
        b'{"d":[],"c":1,"a":1}',
        b'{"d":{},"c":"1","a":1}',
        b'{"d":{},"c":true,"a":1}',
        pickle.dumps({"d": {}, "c": 1, "a": 1}),
    ],
)
def test_anything_else_is_a_decode_error(blob: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(blob)


def test_a_pickle_payload_is_never_executed(tmp_path: object) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pickle ran",))

    with pytest.raises(codec.DecodeError):
        codec.decode(pickle.dumps(Boom()))
