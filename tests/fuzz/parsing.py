"""An atheris fuzz target: cookie and header parsing, ID checks and payload decoding.

Anything may arrive in a Cookie header or come back from a tampered store; whatever it is, these
must answer with a value or their documented error, never anything else. Run it with
``python -m tests.fuzz.parsing -max_total_time=60`` (tests/test_fuzz.py runs it briefly).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from coatcheck import codec
    from coatcheck.cookies import find_cookie
    from coatcheck.encryption import KeyRing
    from coatcheck.engine import SessionEngine, run
    from coatcheck.ids import is_well_formed, store_key
    from coatcheck.stores import MemoryStore, Record

RING = KeyRing([bytes(range(32))])
ENGINE = SessionEngine()
STORE = MemoryStore()


def one_input(data: bytes) -> None:
    fuzzed = atheris.FuzzedDataProvider(data)
    header = fuzzed.ConsumeUnicodeNoSurrogates(200)
    payload = fuzzed.ConsumeBytes(fuzzed.ConsumeIntInRange(0, 400))
    value = find_cookie(header, "session")
    if value is not None and is_well_formed(value):
        key = store_key(value)
        STORE.delete(key)
        STORE.create(Record(key, payload, 2e9))
        session = run(ENGINE.load(value), STORE)  # a tampered record: a session, never a crash
        assert isinstance(session, dict)
    with contextlib.suppress(codec.DecodeError):
        codec.decode(payload)
    with contextlib.suppress(codec.DecodeError):
        RING.open(payload, "k")
    # A cookie value taken from the header is then checked: no exception either way.
    is_well_formed(header)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
