"""Which types have their tables: Aidbox's own types eagerly, FHIR and custom types on first use.

Aidbox has every table from the start. Creating ~300 tables makes each fresh test database
slow (a template copy takes seconds), so the emulator creates a FHIR type's tables the first
time the type is touched: any route, a reference to it, or a `$psql` query naming its table.
A query that reads the catalog (``information_schema``, ``pg_class``, ...) gets them all, so
raw SQL sees the full layout wherever it could tell. DDL runs on its own connection, committed
before the request's transaction uses the tables.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

import asyncpg

from .resource_types import AIDBOX_TYPES, BUILTIN_TYPES, history_table_name, table_name
from .schema import DDL_LOCK, ensure_type_tables


class Tables:
    """Creates missing type tables once per emulator."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._ready: set[str] = set(AIDBOX_TYPES)
        self._lock = asyncio.Lock()

    async def ensure(self, resource_types: Iterable[str]) -> None:
        """Make sure the tables of `resource_types` exist (committed)."""
        missing = sorted(set(resource_types) - self._ready)
        if not missing:
            return
        async with self._lock:
            missing = sorted(set(missing) - self._ready)
            if not missing:
                return
            # A connection of its own: the caller may hold pooled ones inside a transaction.
            conn = await asyncpg.connect(self._dsn)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
                    await ensure_type_tables(conn, missing)
            finally:
                await conn.close()
            self._ready.update(missing)

    async def ensure_all(self) -> None:
        """Create the tables of every built-in type."""
        await self.ensure(BUILTIN_TYPES)

    async def ensure_for_query(self, query: str) -> None:
        """Create the tables a raw SQL query may read: those it names, or every one when it
        reads the catalog (where a missing table would show)."""
        if _CATALOG.search(query):
            await self.ensure_all()
        else:
            await self.ensure(types_named(query))


# Catalog relations a query lists tables through (PostgreSQL docs, "System Catalogs" and
# "The Information Schema").
_CATALOG = re.compile(
    r"information_schema|pg_(?:class|tables|attribute|namespace|indexes|stat_user_tables)\b",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_TYPE_OF_TABLE = {
    name: resource_type
    for resource_type in BUILTIN_TYPES
    for name in (table_name(resource_type), history_table_name(resource_type))
}


def types_named(query: str) -> set[str]:
    """The built-in types whose table or history table a query names (quoted or not; a word
    that is no table, such as ``status`` or ``group`` as a keyword, may add one: harmless)."""
    found = set()
    for word in _IDENTIFIER.findall(query):
        resource_type = _TYPE_OF_TABLE.get(word.lower())
        if resource_type is not None:
            found.add(resource_type)
    return found
