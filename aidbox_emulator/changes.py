"""Changes API (api/other/changes-api.md).

`GET /<type>/$changes` → `{"version": N}` (N = highest txid of the type, 0 if none);
`?version=V` → changes with txid > V; `version=lo,hi` → lo < txid <= hi; 304 if none;
`_count`/`_page`; `omit-resources=true`; `fhir=true`; dot filters; instance level with an id.

Open points, chosen conservatively (docs/aidbox-contract-notes.md):
- every stored version in the window is one change (current rows and history rows), in txid
  order, so an id may appear several times; consumers must apply them in order;
- `version` in the answer is the highest txid among the returned changes (the page), never the
  head beyond it, so continuing from it never skips a change of the same read;
- a `deleted` change carries only `{id, resourceType}`.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from .fhir_format import to_fhir
from .model import Res
from .outcome import invalid
from .resource_types import history_table_name, table_name
from .search import DEFAULT_COUNT, Query, Where, dot_filter
from .storage import row_to_resource

_EVENT = {"created": "created", "recreated": "created", "updated": "updated", "deleted": "deleted"}


def parse_version(raw: str) -> tuple[int, int | None]:
    """`V` or `lo,hi` → (lo, hi); 400 OperationOutcome if malformed."""
    parts = raw.split(",")
    try:
        if len(parts) == 1:
            return int(parts[0]), None
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise invalid(f"version must be an integer or lo,hi; got {raw!r}", status=400)


def _flag(query: Query, name: str) -> bool:
    return query.get(name, "false").lower() == "true"


def _positive(query: Query, name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise invalid(f"{name} must be an integer >= {minimum}", status=400)
    return int(raw)


async def changes(
    conn: asyncpg.Connection, resource_type: str, resource_id: str | None, query: Query
) -> Res:
    """Answer a `$changes` request at type or instance level."""
    where = Where()
    if resource_id is not None:
        where.clauses.append(f"id = {where.arg(resource_id)}")
    for key, value in query.items():
        if key.startswith("."):
            dot_filter(where, key, value)
    main, hist = table_name(resource_type), history_table_name(resource_type)
    raw_version = query.get("version")
    if raw_version is None:
        sql = (
            f'SELECT GREATEST((SELECT max(txid) FROM "{main}"{where.sql()}),'
            f' (SELECT max(txid) FROM "{hist}"{where.sql()}))'
        )
        return Res(200, {"version": await conn.fetchval(sql, *where.args) or 0})
    lo, hi = parse_version(raw_version)
    count = _positive(query, "_count", DEFAULT_COUNT, 1)
    page = _positive(query, "_page", 1, 1)
    where.clauses.append(f"txid > {where.arg(lo)}")
    if hi is not None:
        where.clauses.append(f"txid <= {where.arg(hi)}")
    cols = "id, txid, ts, resource_type, status, resource"
    rows = await conn.fetch(
        f'SELECT {cols} FROM "{main}"{where.sql()} UNION ALL'
        f' SELECT {cols} FROM "{hist}"{where.sql()}'
        f" ORDER BY txid, id LIMIT {count} OFFSET {(page - 1) * count}",
        *where.args,
    )
    if not rows:
        return Res(304)
    body: dict[str, Any] = {
        "version": max(r["txid"] for r in rows),
        "changes": [_change(r, query) for r in rows],
    }
    return Res(200, body)


def _change(row: asyncpg.Record, query: Query) -> dict[str, Any]:
    event = _EVENT[row["status"]]
    if event == "deleted" or _flag(query, "omit-resources"):
        resource: dict[str, Any] = {"id": row["id"], "resourceType": row["resource_type"]}
    else:
        resource = row_to_resource(row)
        if _flag(query, "fhir"):
            resource = to_fhir(resource)
    return {"event": event, "resource": resource}
