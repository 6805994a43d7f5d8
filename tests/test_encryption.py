"""Encryption at rest: AES-256-GCM under a key ring, bound to each record's store key."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coatcheck import ConfigError, SessionConfig, SessionEngine
from coatcheck.codec import DecodeError
from coatcheck.encryption import MAGIC, KeyRing, is_sealed, parse_key
from coatcheck.engine import run
from coatcheck.ids import store_key
from coatcheck.stores import MemoryStore, Record, SQLiteStore

from .apps import starlette_app

OLD, NEW = secrets.token_bytes(32), secrets.token_bytes(32)


def cookie_of(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def engine_with(*keys: bytes) -> SessionEngine:
    return SessionEngine(SessionConfig(secure=False, encryption_keys=keys))


def stored_session(engine: SessionEngine, store: MemoryStore, **data: object) -> str:
    session = run(engine.load(None), store)
    session.update(data)
    set_cookie = run(engine.commit(session), store)
    assert set_cookie is not None
    return cookie_of(set_cookie)


# -- the key ring ------------------------------------------------------------------------------


def test_a_sealed_record_opens_only_for_its_own_store_key() -> None:
    ring = KeyRing([NEW])
    sealed = ring.seal(b'{"d":{"cart":[1]}}', "key-a")
    assert sealed.startswith(MAGIC)
    assert b"cart" not in sealed
    assert ring.open(sealed, "key-a") == b'{"d":{"cart":[1]}}'
    with pytest.raises(DecodeError):
        ring.open(sealed, "key-b")


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = KeyRing([NEW])
    assert ring.seal(b"same", "k") != ring.seal(b"same", "k")


@pytest.mark.parametrize("position", [0, 5, 10, 25, -1])
def test_any_flipped_byte_is_refused(position: int) -> None:
    ring = KeyRing([NEW])
    sealed = bytearray(ring.seal(b'{"c":1,"a":1,"d":{}}', "k"))
    sealed[position] ^= 0x01
    with pytest.raises(DecodeError):
        ring.open(bytes(sealed), "k")


def test_a_ring_seals_with_its_newest_key_and_opens_with_any() -> None:
    sealed_by_old = KeyRing([OLD]).seal(b"old data", "k")
    rotated = KeyRing([NEW, OLD])
    assert rotated.open(sealed_by_old, "k") == b"old data"
    assert not rotated.is_current(sealed_by_old)
    resealed = rotated.seal(b"old data", "k")
    assert rotated.is_current(resealed)
    with pytest.raises(DecodeError):
        KeyRing([OLD]).open(resealed, "k")  # the old key alone cannot read the new record


def test_plain_records_are_refused_once_encryption_is_on() -> None:
    with pytest.raises(DecodeError, match="not encrypted"):
        KeyRing([NEW]).open(b'{"c":1,"a":1,"d":{}}', "k")
    assert not is_sealed(b'{"c":1,"a":1,"d":{}}')


def test_keys_are_32_bytes_raw_or_base64url() -> None:
    text = "A" * 43  # 32 bytes of base64url, as `coatcheck keygen` prints
    assert parse_key(text) == parse_key(parse_key(text))
    with pytest.raises(ConfigError, match=r"encryption_keys: .*32 bytes, not 16"):
        SessionConfig(encryption_keys=(bytes(16),))
    with pytest.raises(ConfigError, match=r"encryption_keys: .*base64url"):
        SessionConfig(encryption_keys=("not base64!",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a list of keys"):
        SessionConfig(encryption_keys=NEW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same key twice"):
        KeyRing([NEW, NEW])


def test_keys_never_appear_in_a_config_repr() -> None:
    config = SessionConfig(encryption_keys=(NEW,), hash_secret=OLD)
    assert NEW.hex() not in repr(config)
    assert repr(NEW) not in repr(config)
    assert repr(OLD) not in repr(config)


# -- through the engine ------------------------------------------------------------------------


def test_the_store_holds_only_ciphertext() -> None:
    engine, store = engine_with(NEW), MemoryStore()
    session_id = stored_session(engine, store, card="4111-1111")
    record = store.load(store_key(session_id))
    assert record is not None
    assert is_sealed(record.data)
    assert b"4111" not in record.data
    assert run(engine.load(session_id), store)["card"] == "4111-1111"


def test_sessions_survive_a_key_rotation_and_move_to_the_new_key_on_their_next_write() -> None:
    store = MemoryStore()
    session_id = stored_session(engine_with(OLD), store, step=1)
    rotated = engine_with(NEW, OLD)
    session = run(rotated.load(session_id), store)
    assert session["step"] == 1
    session["step"] = 2
    run(rotated.commit(session), store)
    record = store.load(store_key(session_id))
    assert record is not None
    assert KeyRing([NEW]).open(record.data, record.key)
    assert run(engine_with(NEW).load(session_id), store)["step"] == 2


def test_a_session_whose_key_left_the_ring_is_a_fresh_one() -> None:
    store = MemoryStore()
    session_id = stored_session(engine_with(OLD), store, step=1)
    session = run(engine_with(NEW).load(session_id), store)
    assert session.is_new
    assert dict(session) == {}


def test_a_record_copied_under_another_key_does_not_open() -> None:
    engine, store = engine_with(NEW), MemoryStore()
    victim = stored_session(engine, store, user="victim")
    attacker = stored_session(engine, store, user="attacker")
    stolen = store.load(store_key(victim))
    mine = store.load(store_key(attacker))
    assert stolen is not None
    assert mine is not None
    store.save(mine._replace(data=stolen.data, version=mine.version + 1), mine.version)
    session = run(engine.load(attacker), store)
    assert session.is_new
    assert "user" not in session


def test_concurrent_writers_merge_through_encrypted_records() -> None:
    engine, store = engine_with(NEW), MemoryStore()
    session_id = stored_session(engine, store, base=0)
    first, second = run(engine.load(session_id), store), run(engine.load(session_id), store)
    first["x"] = 1
    run(engine.commit(first), store)
    second["y"] = 2
    run(engine.commit(second), store)  # a version conflict: reload, decrypt, replay
    assert dict(run(engine.load(session_id), store)) == {"base": 0, "x": 1, "y": 2}


# -- through the middleware and on disk -----------------------------------------------------


def test_nothing_readable_reaches_the_sqlite_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.db")
    with TestClient(starlette_app(store, encryption_keys=[NEW])) as client:
        written = client.post("/write", json={"secret": "plaintext-canary"})
        assert written.json() == {"secret": "plaintext-canary"}
        assert json.loads(client.get("/read").text) == {"secret": "plaintext-canary"}
    store.close()
    disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"plaintext-canary" not in disk


def test_tampered_ciphertext_gives_a_clean_anonymous_session_not_an_error() -> None:
    store = MemoryStore()
    with TestClient(starlette_app(store, encryption_keys=[NEW])) as client:
        client.post("/write", json={"role": "user"})
        (record,) = list(store.iter_records())
        tampered = bytearray(record.data)
        tampered[-1] ^= 0x80
        store.save(record._replace(data=bytes(tampered), version=record.version + 1), 1)
        response = client.get("/read")
        assert response.status_code == 200
        assert json.loads(response.text) == {}
        assert "session=" in response.headers["set-cookie"]  # the dead cookie is expired
        assert "Max-Age=0" in response.headers["set-cookie"]


def test_a_planted_plain_record_is_discarded_when_encryption_is_on() -> None:
    store = MemoryStore()
    with TestClient(starlette_app(store, encryption_keys=[NEW])) as client:
        client.post("/write", json={"role": "user"})
        (record,) = list(store.iter_records())
        planted = b'{"c":1,"a":1,"d":{"role":"admin"}}'
        store.save(Record(record.key, planted, record.expires_at, record.version + 1), 1)
        assert json.loads(client.get("/read").text) == {}
