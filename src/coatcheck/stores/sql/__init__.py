"""SQL stores: :class:`SQLStore` (sync) and :class:`AsyncSQLStore` (asyncio) on PostgreSQL.

Needs the ``postgresql`` extra (``pip install 'coatcheck[postgresql]'``: psycopg 3 and its
pool). The statements, and the schema as plain SQL, are in :mod:`coatcheck.stores.sql.dialect`.
"""

from __future__ import annotations

from ._async import AsyncSQLStore
from ._sync import SQLStore
from .dialect import DEFAULT_TABLE, postgresql_schema

__all__ = ["DEFAULT_TABLE", "AsyncSQLStore", "SQLStore", "postgresql_schema"]
