"""The SQL the SQL stores send, per dialect, and the schema as plain SQL for your migrations.

One statement per call: load a primary-key SELECT; create an INSERT that does nothing on a key
collision; save an UPDATE guarded by the version (it never inserts, so a deleted session stays
deleted); touch an UPDATE of the expiry alone; purge a DELETE through the expiry index; listing
a user's sessions a SELECT through the partial user index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..base import Record

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

DEFAULT_TABLE = "coatcheck_sessions"

SCHEMA_LOCK = 0x636F6174
"""The advisory lock taken while creating the schema, so processes do it one at a time."""


def record_from_row(row: tuple[Any, ...]) -> Record:
    """A record from a ``session_key, data, expires_at, version, user_id`` row."""
    key, data, expires_at, version, user_id = row
    return Record(key, bytes(data), expires_at, version, user_id)


def postgresql_schema(table: str = DEFAULT_TABLE) -> str:
    """The PostgreSQL schema (what the store creates on first use)."""
    return f"""\
CREATE TABLE IF NOT EXISTS {checked(table)} (
    session_key TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    version BIGINT NOT NULL,
    user_id TEXT
);
CREATE INDEX IF NOT EXISTS {table}_expires_at ON {table} (expires_at);
CREATE INDEX IF NOT EXISTS {table}_user_id ON {table} (user_id) WHERE user_id IS NOT NULL;
"""


def checked(table: str) -> str:
    if not _IDENTIFIER.fullmatch(table):
        raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
    return table


@dataclass(frozen=True)
class Statements:
    """Every statement an SQL store sends, for one table."""

    schema: str
    load: str
    create: str
    save: str
    touch: str
    delete: str
    by_user: str
    delete_user: str
    purge: str
    page: str

    @classmethod
    def postgresql(cls, table: str = DEFAULT_TABLE) -> Statements:
        t = checked(table)
        columns = "session_key, data, expires_at, version, user_id"
        return cls(
            schema=postgresql_schema(t),
            load=f"SELECT data, expires_at, version, user_id FROM {t} WHERE session_key = %s",
            create=(
                f"INSERT INTO {t} ({columns}) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (session_key) DO NOTHING"
            ),
            save=(
                f"UPDATE {t} SET data = %s, expires_at = %s, version = %s, user_id = %s "
                "WHERE session_key = %s AND version = %s"
            ),
            touch=f"UPDATE {t} SET expires_at = %s WHERE session_key = %s",
            delete=f"DELETE FROM {t} WHERE session_key = %s",
            by_user=f"SELECT {columns} FROM {t} WHERE user_id = %s",
            delete_user=f"DELETE FROM {t} WHERE user_id = %s",
            purge=f"DELETE FROM {t} WHERE expires_at <= %s",
            page=f"SELECT {columns} FROM {t} WHERE session_key > %s ORDER BY session_key LIMIT %s",
        )
