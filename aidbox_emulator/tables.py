"""Which types have their tables: Aidbox's own types eagerly, FHIR and custom types on first use.

Aidbox has every table from the start. Creating ~300 tables makes each fresh test database
slow (a template copy takes seconds), so the emulator creates a FHIR type's tables the first
time the type is touched (any route, a reference to it, or the first `$psql`, which creates
them all so raw SQL sees the full layout). DDL runs on its own connection, committed before
the request's transaction uses the tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import asyncpg

from .resource_types import AIDBOX_TYPES, BUILTIN_TYPES
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
