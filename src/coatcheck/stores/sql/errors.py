"""How database driver errors reach coatcheck: unreachable or slow means StoreUnavailable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import psycopg_pool

from ..base import StoreError, StoreUnavailable


@contextlib.contextmanager
def reported(call: str) -> Iterator[None]:
    """Turn psycopg's connection, timeout and pool errors into :class:`StoreUnavailable`."""
    try:
        yield
    except (
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
        psycopg.errors.QueryCanceled,
    ) as exc:
        raise StoreUnavailable(f"PostgreSQL {call}: {type(exc).__name__}: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL {call}: {type(exc).__name__}: {exc}") from exc
