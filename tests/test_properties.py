"""Properties that hold for every input, checked with hypothesis: cookie parsing, ID validation,
the codec and the encrypted envelope never fail in any way but the documented one."""

from __future__ import annotations

import base64
import collections
import math
import statistics
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coatcheck import codec
from coatcheck.cookies import AMBIGUOUS, find_cookie
from coatcheck.encryption import KeyRing
from coatcheck.ids import ID_BYTES, ID_LENGTH, is_well_formed, new_id

NAME = "session"
BASE64URL = string.ascii_letters + string.digits + "-_"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cookie_names = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)
cookie_values = st.text(st.characters(exclude_characters=';"', codec="utf-8"), max_size=40).map(
    str.strip
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=8)


# -- cookie parsing -----------------------------------------------------------------------------


@SETTINGS
@given(st.text())
def test_find_cookie_never_raises_and_returns_a_value_without_separators(header: str) -> None:
    found = find_cookie(header, NAME)
    assert found is None or ";" not in found


@SETTINGS
@given(st.lists(st.tuples(cookie_names, cookie_values), max_size=6), cookie_values)
def test_find_cookie_finds_ours_among_any_others(pairs: list[tuple[str, str]], ours: str) -> None:
    others = [(name, value) for name, value in pairs if name != NAME]
    cookies = [*others[:3], (NAME, ours), *others[3:]]
    header = "; ".join(f"{name}={value}" for name, value in cookies)
    assert find_cookie(header, NAME) == ours


@SETTINGS
@given(cookie_values, cookie_values)
def test_a_cookie_sent_twice_with_different_values_is_trusted_for_neither(a: str, b: str) -> None:
    found = find_cookie(f"{NAME}={a}; {NAME}={b}", NAME)
    assert found == (a if a == b else AMBIGUOUS)


# -- ID validation -------------------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=60))
def test_only_canonical_43_character_base64url_is_an_id(value: str) -> None:
    canonical = False
    if len(value) == ID_LENGTH and all(
        c in string.ascii_letters + string.digits + "-_" for c in value
    ):
        raw = base64.urlsafe_b64decode(value + "=")
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value
    assert is_well_formed(value) == canonical


@SETTINGS
@given(st.binary(min_size=ID_BYTES, max_size=ID_BYTES))
def test_every_256_bit_value_has_exactly_one_well_formed_spelling(raw: bytes) -> None:
    spelled = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert is_well_formed(spelled)
    for other in set(BASE64URL) - {spelled[-1]}:
        alternate = spelled[:-1] + other
        if base64.urlsafe_b64decode(alternate + "=") == raw:  # the same bits, spelled otherwise
            assert not is_well_formed(alternate)


# -- the codec ---------------------------------------------------------------------------------


@SETTINGS
@given(json_objects, st.floats(0, 2e9), st.floats(0, 2e9))
def test_what_is_encoded_decodes_to_the_same(data: dict, created: float, auth: float) -> None:  # type: ignore[type-arg]
    blob = codec.encode(data, created, auth, max_size=1 << 20)
    assert codec.decode(blob) == (data, created, auth)
    offset = codec.data_offset(blob)
    assert blob[offset:-1] == codec.encode_data(data, 1 << 20)


@SETTINGS
@given(st.binary(max_size=200) | json_values.map(codec.dumps))
def test_decoding_anything_gives_a_session_or_a_decode_error(blob: bytes) -> None:
    try:
        data, created, auth = codec.decode(blob)
    except codec.DecodeError:
        return
    assert type(data) is dict
    assert type(created) is float
    assert type(auth) is float


@SETTINGS
@given(st.binary(max_size=200), st.text(string.hexdigits, max_size=64))
def test_opening_anything_gives_plaintext_or_a_decode_error(blob: bytes, key: str) -> None:
    with pytest.raises(codec.DecodeError):
        KeyRing([bytes(32)]).open(blob, key)


@SETTINGS
@given(st.binary(max_size=300), st.text(string.hexdigits, min_size=1, max_size=64))
def test_sealed_data_opens_to_itself(plaintext: bytes, key: str) -> None:
    ring = KeyRing([bytes(range(32))])
    assert ring.open(ring.seal(plaintext, key), key) == plaintext


# -- the quality of issued IDs -----------------------------------------------------------------

SAMPLES = 100_000


def chi_square_critical(degrees: int, p: float) -> float:
    """The chi-square value exceeded with probability ``p`` (Wilson-Hilferty approximation)."""
    z = statistics.NormalDist().inv_cdf(1 - p)
    k = degrees
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3


def test_100k_issued_ids_are_unique_well_formed_and_unbiased_at_every_byte_position() -> None:
    ids = [new_id() for _ in range(SAMPLES)]
    assert len(set(ids)) == SAMPLES
    assert all(len(i) == ID_LENGTH and is_well_formed(i) for i in ids)
    raw = b"".join(base64.urlsafe_b64decode(i + "=") for i in ids)
    assert len(raw) == SAMPLES * ID_BYTES
    expected = SAMPLES / 256
    # One chance in a million per position (Bonferroni over the 32 positions) of a false alarm.
    critical = chi_square_critical(255, 1e-6 / ID_BYTES)
    for position in range(ID_BYTES):
        counts = collections.Counter(raw[position::ID_BYTES])
        chi2 = sum((counts.get(b, 0) - expected) ** 2 / expected for b in range(256))
        assert chi2 < critical, (
            f"byte {position} is biased: chi-square {chi2:.0f} >= {critical:.0f}"
        )
