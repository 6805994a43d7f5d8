"""The real servers the store tests use, and what happens when one is missing.

Outside CI a missing server skips its tests; under ``CI=true`` it fails them loudly, since
scripts/test starts every server the suite needs.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) unless a server answers at ``host:port``."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide it (scripts/test starts it)", pytrace=False)
    pytest.skip(message)


POSTGRESQL_URL = os.environ.get(
    "COATCHECK_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("COATCHECK_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")
MEMCACHED_ADDRESS = os.environ.get("COATCHECK_TEST_MEMCACHED", "127.0.0.1:21211")
"""Where scripts/test starts a Memcached of the suite's own."""
