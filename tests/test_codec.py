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


# -- stored data is untrusted input: what does not decode to sane shapes is a DecodeError ------


@pytest.mark.parametrize(
    "blob",
    [
        b'{"c":NaN,"a":1,"d":{}}',
        b'{"c":1,"a":NaN,"d":{}}',
        b'{"c":Infinity,"a":1,"d":{}}',
        b'{"c":1,"a":-Infinity,"d":{}}',
        b'{"c":1e400,"a":1,"d":{}}',
        b'{"c":1,"a":1,"d":{"price":NaN}}',
        b'{"c":1,"a":1,"d":{"price":[1e999]}}',
        b'{"c":-1,"a":1,"d":{}}',
        b'{"c":1,"a":1e300,"d":{}}',
        b'{"c":1,"a":1,"u":7,"d":{}}',
        b'{"c":1,"a":1,"t":["x"],"d":{}}',
    ],
)
def test_numbers_that_are_not_finite_timestamps_are_decode_errors(blob: bytes) -> None:
    with pytest.raises(codec.DecodeError):
        codec.decode(blob)


def test_a_record_nested_beyond_any_sane_depth_is_a_decode_error() -> None:
    deep = b'{"c":1,"a":1,"d":{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(codec.DecodeError):
        codec.decode(deep)


def test_a_decode_error_never_repeats_the_stored_bytes() -> None:
    secret = b'{"c":1,"a":1,"t":"csrf-secret-token","d":{"cart":["ring"]}}'
    for blob in (secret + b"\xff", secret[:-1], b"\xff" + secret):
        with pytest.raises(codec.DecodeError) as raised:
            codec.decode(blob)
        assert "csrf-secret-token" not in str(raised.value)
        assert "ring" not in str(raised.value)
        assert "csrf-secret-token" not in repr(raised.value)


def test_the_envelope_carries_the_user_and_decoding_checks_it_against_the_column() -> None:
    blob = codec.envelope(b"{}", 1.0, 2.0, user="alice")
    assert codec.decode_envelope(blob, "alice")[5] == "alice"
    with pytest.raises(codec.Tampered):
        codec.decode_envelope(blob, "mallory")
    with pytest.raises(codec.Tampered):
        codec.decode_envelope(blob, None)
    anonymous = codec.envelope(b"{}", 1.0, 2.0)
    with pytest.raises(codec.Tampered):
        codec.decode_envelope(anonymous, "alice")


def test_a_user_with_any_characters_round_trips() -> None:
    user = 'a"b\\c\u2028é'
    blob = codec.envelope(b"{}", 1.0, 2.0, user=user)
    assert codec.decode_envelope(blob, user)[5] == user
