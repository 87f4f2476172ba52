"""DDL: Aidbox's storage layout in PostgreSQL (database/database-schema.md).

One table per resource type (lower-cased name) and `<type>_history`, the `resource_status` enum,
one global `transaction_id_seq`, and btree indexes on `txid` of both tables
(api/other/changes-api.md, "Cache performance").
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from .resource_types import AIDBOX_TYPES, history_table_name, table_name

# Bump when the layout changes: databases built by an older emulator get the new DDL.
SCHEMA_VERSION = 1
# Advisory lock serialising the emulator's DDL across connections and processes.
DDL_LOCK = 724242

_BASE_DDL = """
DO $$ BEGIN
  CREATE TYPE resource_status AS ENUM ('created', 'updated', 'deleted', 'recreated');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE SEQUENCE IF NOT EXISTS transaction_id_seq;
CREATE TABLE IF NOT EXISTS _migrations (
  id text PRIMARY KEY, sql text, ts timestamptz DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _emulator_schema (version int NOT NULL);
"""


def type_tables_ddl(resource_type: str) -> str:
    """CREATE statements (idempotent) for one type's table, history table and txid indexes."""
    main, hist = table_name(resource_type), history_table_name(resource_type)
    rt = resource_type.replace("'", "''")
    columns = f"""
      txid bigint NOT NULL,
      ts timestamptz DEFAULT now(),
      cts timestamptz DEFAULT now(),
      resource_type text DEFAULT '{rt}',
      status resource_status NOT NULL,
      resource jsonb NOT NULL"""
    return f"""
CREATE TABLE IF NOT EXISTS "{main}" (id text PRIMARY KEY,{columns});
CREATE TABLE IF NOT EXISTS "{hist}" (id text NOT NULL,{columns}, PRIMARY KEY (id, txid));
CREATE INDEX IF NOT EXISTS "{main}_txid_btree" ON "{main}" USING btree (txid);
CREATE INDEX IF NOT EXISTS "{hist}_txid_btree" ON "{hist}" USING btree (txid);
"""


async def ensure_type_tables(conn: asyncpg.Connection, resource_types: Iterable[str]) -> None:
    """Create the tables of `resource_types` if missing (used for custom types at run time)."""
    await conn.execute("".join(type_tables_ddl(t) for t in resource_types))


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create the base layout once; a no-op (two queries) on a database that already has it."""
    if (
        await conn.fetchval("SELECT to_regclass('_emulator_schema') IS NOT NULL")
        and (await conn.fetchval("SELECT max(version) FROM _emulator_schema") or 0)
        >= SCHEMA_VERSION
    ):
        return
    async with conn.transaction():
        # Two emulators starting on one database must not interleave their DDL.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DDL_LOCK)
        await conn.execute(_BASE_DDL)
        # Aidbox's own types now; FHIR types on first use (tables.py explains why).
        await ensure_type_tables(conn, sorted(AIDBOX_TYPES))
        await conn.execute("DELETE FROM _emulator_schema")
        await conn.execute("INSERT INTO _emulator_schema (version) VALUES ($1)", SCHEMA_VERSION)


async def prepare_database(dsn: str) -> None:
    """Create the emulator's layout in the database at `dsn` (e.g. to use it as a template)."""
    conn = await asyncpg.connect(dsn)
    try:
        await ensure_schema(conn)
    finally:
        await conn.close()
