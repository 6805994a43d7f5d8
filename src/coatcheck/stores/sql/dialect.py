"""The SQL the SQL stores send, per dialect, and the schema as plain SQL for your migrations.

One statement per call: load a primary-key SELECT; create an INSERT that does nothing on a key
collision; save an UPDATE guarded by the version (it never inserts, so a deleted session stays
deleted); touch an UPDATE of the expiry alone; purge a DELETE through the expiry index (a
bounded one takes those expired longest first); listing a user's sessions a SELECT through the
partial user index.
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


def mysql_schema(table: str = DEFAULT_TABLE) -> str:
    """The MariaDB / MySQL schema (what the store creates on first use)."""
    return f"""\
CREATE TABLE IF NOT EXISTS {checked(table)} (
    session_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    data MEDIUMBLOB NOT NULL,
    expires_at DOUBLE NOT NULL,
    version BIGINT NOT NULL,
    user_id VARCHAR(255) NULL,
    INDEX {table}_expires_at (expires_at),
    INDEX {table}_user_id (user_id)
) ENGINE=InnoDB;
"""


def checked(table: str) -> str:
    if not _IDENTIFIER.fullmatch(table):
        raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
    return table


@dataclass(frozen=True)
class Statements:
    """Every statement an SQL store sends, for one table in one dialect."""

    schema: tuple[str, ...]
    load: str
    create: str
    save: str
    touch: str
    delete: str
    by_user: str
    delete_user: str
    purge: str
    purge_some: str
    """The purge of at most a number of records, those expired longest first."""
    page: str

    @classmethod
    def for_dialect(cls, dialect: str, table: str = DEFAULT_TABLE) -> Statements:
        """The statements of ``postgresql`` or ``mysql`` (which MariaDB speaks)."""
        t = checked(table)
        columns = "session_key, data, expires_at, version, user_id"
        if dialect == "postgresql":
            # Concurrent CREATE ... IF NOT EXISTS can collide in PostgreSQL: take turns.
            schema = (
                "BEGIN",
                f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})",
                *_statements(postgresql_schema(t)),
                "COMMIT",
            )
            create = (
                f"INSERT INTO {t} ({columns}) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (session_key) DO NOTHING"
            )
            purge_some = (  # PostgreSQL's DELETE takes no LIMIT
                f"DELETE FROM {t} WHERE session_key IN (SELECT session_key FROM {t} "
                "WHERE expires_at <= %s ORDER BY expires_at LIMIT %s)"
            )
        else:
            schema = _statements(mysql_schema(t))
            # A no-op update on a duplicate: 0 rows affected, and no warning (INSERT IGNORE
            # would warn). The drivers do not set CLIENT_FOUND_ROWS, which would count it as 1.
            create = (
                f"INSERT INTO {t} ({columns}) VALUES (%s, %s, %s, %s, %s) "
                "ON DUPLICATE KEY UPDATE session_key = session_key"
            )
            # MariaDB and MySQL take no LIMIT in an IN subquery, but do in a DELETE.
            purge_some = f"DELETE FROM {t} WHERE expires_at <= %s ORDER BY expires_at LIMIT %s"
        return cls(
            schema=schema,
            load=f"SELECT data, expires_at, version, user_id FROM {t} WHERE session_key = %s",
            create=create,
            save=(
                f"UPDATE {t} SET data = %s, expires_at = %s, version = %s, user_id = %s "
                "WHERE session_key = %s AND version = %s"
            ),
            touch=f"UPDATE {t} SET expires_at = %s WHERE session_key = %s",
            delete=f"DELETE FROM {t} WHERE session_key = %s",
            by_user=f"SELECT {columns} FROM {t} WHERE user_id = %s",
            delete_user=f"DELETE FROM {t} WHERE user_id = %s",
            purge=f"DELETE FROM {t} WHERE expires_at <= %s",
            purge_some=purge_some,
            page=f"SELECT {columns} FROM {t} WHERE session_key > %s ORDER BY session_key LIMIT %s",
        )


def _statements(script: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in script.split(";") if part.strip())
