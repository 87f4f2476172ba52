"""Rows from an Aidbox's own database through `POST /$psql` (the App's own Aidbox only).

Both answer shapes are parsed by the SDK's `parse_psql_response` (before and from Aidbox 2604;
api/other/sql-endpoints.md). Queries are built from validated names only (resource types,
instance ids, FHIR ids), never from values a caller typed freely.
"""

from __future__ import annotations

from typing import Any

from aidbox_python_sdk.db import parse_psql_response

from app.aidbox.client import AidboxClient
from app.errors import SyncError


class PsqlError(SyncError):
    """`$psql` is not usable (no permission, a failing query, an unexpected answer)."""


def table(resource_type: str) -> str:
    """The table of a resource type as a quoted SQL identifier: Aidbox names it by the type in
    lower case (database/database-schema.md), which may be a word PostgreSQL reserves
    (`group`); quoted, it is only ever a name."""
    return '"' + resource_type.lower().replace('"', '""') + '"'


async def rows(client: AidboxClient, sql: str) -> list[dict[str, Any]]:
    """The rows of one query."""
    resp = await client.call("POST", "/$psql", json={"query": sql}, accept=(401, 403))
    if resp.status != 200:
        raise PsqlError(f"$psql answered {resp.status}; the App's client needs $psql")
    try:
        found = parse_psql_response(resp.body)[0]
    except Exception as exc:
        raise PsqlError(f"$psql refused the query: {type(exc).__name__}") from None
    if not isinstance(found, list):
        raise PsqlError("unexpected $psql answer: no rows")
    return found
