"""SQL stores: :class:`SQLStore` (sync) and :class:`AsyncSQLStore` (asyncio), one
implementation for PostgreSQL, MariaDB and MySQL.

Needs the ``postgresql`` extra (psycopg 3 and its pool) or the ``mysql`` extra (PyMySQL and
aiomysql). The statements, and the schemas as plain SQL, are in
:mod:`coatcheck.stores.sql.dialect`.
"""

from __future__ import annotations

from ._async import AsyncSQLStore
from ._sync import SQLStore
from .dialect import DEFAULT_TABLE, mysql_schema, postgresql_schema

__all__ = ["DEFAULT_TABLE", "AsyncSQLStore", "SQLStore", "mysql_schema", "postgresql_schema"]
