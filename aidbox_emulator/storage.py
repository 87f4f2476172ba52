"""Rows of Aidbox resource tables: reading, writing, and converting them to resources.

Write functions run on a connection inside the caller's transaction; the caller supplies the
txid (database/overview.md "How data inserted, updated and deleted?").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from .resource_types import history_table_name, table_name

Row = asyncpg.Record
_COLUMNS = "id, txid, ts, cts, resource_type, status, resource"


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb to Python objects (and encode them back) on every pooled connection."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


def iso(ts: datetime) -> str:
    """Timestamp as Aidbox prints meta.lastUpdated: ISO 8601 in UTC with a `Z`."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def split_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """The `resource` column: the body without id, resourceType, meta.versionId/lastUpdated."""
    body = {k: v for k, v in resource.items() if k not in ("id", "resourceType", "meta")}
    meta = resource.get("meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if rest:
            body["meta"] = rest
    return body


def row_to_resource(row: Row) -> dict[str, Any]:
    """A stored row as an Aidbox-format resource with meta.versionId = txid, lastUpdated = ts.

    A Client's `secret` (stored hashed, credentials.py) is never part of what is answered.
    """
    body = dict(row["resource"])
    if row["resource_type"] == "Client":
        body.pop("secret", None)
    meta = {**body.pop("meta", {}), "versionId": str(row["txid"]), "lastUpdated": iso(row["ts"])}
    return {"resourceType": row["resource_type"], "id": row["id"], **body, "meta": meta}


async def fetch_current(
    conn: asyncpg.Connection, resource_type: str, resource_id: str, *, lock: bool = False
) -> Row | None:
    """The live version of a resource, or None."""
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(
        f'SELECT {_COLUMNS} FROM "{table_name(resource_type)}" WHERE id = $1{suffix}', resource_id
    )


async def fetch_latest_history(
    conn: asyncpg.Connection, resource_type: str, resource_id: str
) -> Row | None:
    """The newest history row of a resource (a deletion marker when it was deleted)."""
    return await conn.fetchrow(
        f'SELECT {_COLUMNS} FROM "{history_table_name(resource_type)}" WHERE id = $1'
        " ORDER BY txid DESC LIMIT 1",
        resource_id,
    )


async def fetch_version(
    conn: asyncpg.Connection, resource_type: str, resource_id: str, txid: int
) -> Row | None:
    """One version (current or historical) of a resource."""
    return await conn.fetchrow(
        f'SELECT {_COLUMNS} FROM "{table_name(resource_type)}" WHERE id = $1 AND txid = $2'
        f' UNION ALL SELECT {_COLUMNS} FROM "{history_table_name(resource_type)}"'
        " WHERE id = $1 AND txid = $2 AND status <> 'deleted' LIMIT 1",
        resource_id,
        txid,
    )


async def fetch_history(
    conn: asyncpg.Connection, resource_type: str, resource_id: str
) -> list[Row]:
    """All versions of a resource, newest first (api/rest-api/history.md, "Internals")."""
    return await conn.fetch(
        f'SELECT {_COLUMNS} FROM "{table_name(resource_type)}" WHERE id = $1'
        f' UNION ALL SELECT {_COLUMNS} FROM "{history_table_name(resource_type)}" WHERE id = $1'
        " ORDER BY txid DESC",
        resource_id,
    )


async def insert_row(
    conn: asyncpg.Connection,
    resource_type: str,
    resource_id: str,
    txid: int,
    body: dict[str, Any],
    status: str,
) -> Row:
    """Insert a new live row (a plain INSERT: no read, so no SERIALIZABLE read locks)."""
    return await conn.fetchrow(
        f'INSERT INTO "{table_name(resource_type)}" (id, txid, ts, cts, resource_type, status,'
        f" resource) VALUES ($1, $2, now(), now(), $3, $4, $5) RETURNING {_COLUMNS}",
        resource_id,
        txid,
        resource_type,
        status,
        body,
    )


async def archive_current(conn: asyncpg.Connection, resource_type: str, resource_id: str) -> None:
    """Copy the live row into the history table (before it is replaced or deleted)."""
    await conn.execute(
        f'INSERT INTO "{history_table_name(resource_type)}" ({_COLUMNS})'
        f' SELECT {_COLUMNS} FROM "{table_name(resource_type)}" WHERE id = $1',
        resource_id,
    )


async def replace_row(
    conn: asyncpg.Connection,
    resource_type: str,
    resource_id: str,
    txid: int,
    body: dict[str, Any],
) -> Row:
    """Archive the live row and store a new version (status `updated`, cts kept)."""
    await archive_current(conn, resource_type, resource_id)
    return await conn.fetchrow(
        f"UPDATE \"{table_name(resource_type)}\" SET txid = $2, ts = now(), status = 'updated',"
        f" resource = $3 WHERE id = $1 RETURNING {_COLUMNS}",
        resource_id,
        txid,
        body,
    )


async def delete_row(
    conn: asyncpg.Connection, resource_type: str, resource_id: str, txid: int
) -> Row:
    """Archive the live row, add a `deleted` marker with a new txid, remove the live row.

    Returns the marker row (database/overview.md, "Deleting resources").
    """
    await archive_current(conn, resource_type, resource_id)
    marker = await conn.fetchrow(
        f'INSERT INTO "{history_table_name(resource_type)}" ({_COLUMNS})'
        f" SELECT id, $2, now(), cts, resource_type, 'deleted', resource"
        f' FROM "{table_name(resource_type)}" WHERE id = $1 RETURNING {_COLUMNS}',
        resource_id,
        txid,
    )
    await conn.execute(f'DELETE FROM "{table_name(resource_type)}" WHERE id = $1', resource_id)
    return marker


async def was_deleted(conn: asyncpg.Connection, resource_type: str, resource_id: str) -> bool:
    """True if the newest history row of this id is a deletion marker."""
    row = await fetch_latest_history(conn, resource_type, resource_id)
    return row is not None and row["status"] == "deleted"
