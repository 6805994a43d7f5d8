"""Session IDs: unguessable, one spelling each, and never stored as they are."""

from __future__ import annotations

import base64
import hashlib

from coatcheck.ids import ID_LENGTH, is_well_formed, new_id, store_key


def test_an_id_is_256_bits_of_url_safe_base64() -> None:
    session_id = new_id()
    assert len(session_id) == ID_LENGTH == 43
    assert len(base64.urlsafe_b64decode(session_id + "=")) == 32
    assert is_well_formed(session_id)


def test_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(is_well_formed(i) for i in ids)


def test_only_the_canonical_spelling_is_well_formed() -> None:
    session_id = new_id()
    raw = base64.urlsafe_b64decode(session_id + "=")
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == session_id
    last = session_id[-1]
    twin = session_id[:-1] + chr(ord(last) + 1)  # same bytes when decoded leniently
    assert not is_well_formed(twin)


def test_malformed_values() -> None:
    for value in ["", "a", new_id() + "A", new_id()[:-1], "+" * 43, "/" * 43, "=" * 43]:
        assert not is_well_formed(value)


def test_the_store_key_is_a_hash() -> None:
    session_id = new_id()
    assert store_key(session_id) == hashlib.sha256(session_id.encode()).hexdigest()
    keyed = store_key(session_id, b"k" * 32)
    assert keyed != store_key(session_id)
    assert len(keyed) == 64
    assert session_id not in keyed
