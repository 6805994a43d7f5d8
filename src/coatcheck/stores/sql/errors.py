"""How database driver errors reach coatcheck: unreachable or slow means StoreUnavailable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..base import StoreError, StoreUnavailable


def _driver_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(errors meaning the database cannot be reached in time, every other driver error)."""
    unavailable: list[type[BaseException]] = [TimeoutError, ConnectionError]
    other: list[type[BaseException]] = []
    try:
        import psycopg  # noqa: PLC0415
        import psycopg_pool  # noqa: PLC0415
    except ImportError:
        pass
    else:
        unavailable += [psycopg.OperationalError, psycopg_pool.PoolTimeout]
        unavailable.append(psycopg.errors.QueryCanceled)
        other.append(psycopg.Error)
    try:
        import pymysql  # noqa: PLC0415
    except ImportError:
        pass
    else:
        unavailable += [pymysql.err.OperationalError, pymysql.err.InterfaceError]
        other.append(pymysql.err.MySQLError)
    return tuple(unavailable), tuple(other)


UNAVAILABLE, OTHER = _driver_errors()


@contextlib.contextmanager
def reported(call: str) -> Iterator[None]:
    """Turn driver errors into :class:`StoreUnavailable` (unreachable, timed out) or
    :class:`StoreError` (anything else the driver raised)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"SQL store {call}: {type(exc).__name__}: {exc}") from exc
    except OTHER as exc:
        raise StoreError(f"SQL store {call}: {type(exc).__name__}: {exc}") from exc
