"""Raw SQL: `POST /$psql` (api/other/sql-endpoints.md) and `/db/migrations`.

`/db/migrations`: api/rest-api/other/sql-endpoints.md.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from .auth import Caller
from .model import Req, Res
from .outcome import AidboxError, invalid
from .storage import iso


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict | str | int | float | bool) or value is None:
        return value
    return str(value)


def _affected(status: str) -> int:
    """Rows affected from a command tag such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rsplit(" ", 1)[-1] if status else ""
    return int(last) if last.isdigit() else 0


async def psql_handler(rt: Any, caller: Caller, req: Req) -> Res:
    """`POST /$psql {"query"}` (`?execute=true` for statements without rows); root only.

    Answer in the 2604+ shape the SDK parses (aidbox_python_sdk.db.parse_psql_response):
    `{"query", "duration", "status", "result": [{"type": "rset"|"count", "data"}]}`. A failing
    query answers 200 with `status: "error"` and `error` (the SDK checks `status` after a 2xx;
    Aidbox's HTTP status for it is open).
    """
    if not caller.root:
        raise AidboxError.of(403, "forbidden", "Forbidden", outcome_id="forbidden")
    if not isinstance(req.body, dict) or not isinstance(req.body.get("query"), str):
        raise invalid('Expected {"query": "<sql>"}')
    query = req.body["query"]
    await rt.tables.ensure_for_query(query)
    execute = req.query.get("execute", "false").lower() == "true"
    started = time.perf_counter()
    body: dict[str, Any] = {"query": query}
    async with rt.pool.acquire() as conn:
        try:
            if execute:
                status = await conn.execute(query)
                result = [{"type": "count", "data": _affected(status)}]
            else:
                rows = await conn.fetch(query)
                result = [{"type": "rset", "data": [_jsonable(dict(r)) for r in rows]}]
            body.update(status="success", result=result)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            body.update(status="error", error=str(exc), result=[])
    body["duration"] = round((time.perf_counter() - started) * 1000, 3)
    return Res(200, body)


async def apply_migrations(conn: asyncpg.Connection, body: Any) -> list[dict[str, Any]]:
    """Run the migrations whose id was never applied, in order; return those it ran.

    Runs inside the caller's transaction: the first failing migration rolls back the request.
    """
    if not isinstance(body, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) and isinstance(m.get("sql"), str)
        for m in body
    ):
        raise invalid("Expected a list of {id, sql} migrations")
    ran = []
    for migration in body:
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM _migrations WHERE id = $1)", migration["id"]
        ):
            continue
        try:
            await conn.execute(migration["sql"])
        except asyncpg.PostgresError as exc:
            if str(exc.sqlstate).startswith("40"):  # serialization/deadlock: the tx maps it
                raise
            raise invalid(f"Migration {migration['id']} failed: {exc}") from exc
        await conn.execute(
            "INSERT INTO _migrations (id, sql) VALUES ($1, $2)", migration["id"], migration["sql"]
        )
        ran.append({"id": migration["id"], "sql": migration["sql"]})
    return ran


async def list_migrations(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """`GET /db/migrations`: the applied migrations with their timestamps."""
    rows = await conn.fetch("SELECT id, sql, ts FROM _migrations ORDER BY ts, id")
    return [{"id": r["id"], "sql": r["sql"], "ts": iso(r["ts"])} for r in rows]
