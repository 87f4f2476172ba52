"""Search over one type's table: enough of FHIR/Aidbox search for the App and the SDK.

Supported: `_id` (comma list), `identifier` (`system|value`, `value`), dot expressions
(`.name.0.family=x`, api/rest-api/aidbox-search.md), equality on a top-level element
(`status=active`, `subject=Patient/p1`), `_count` (default 100), `_page` (1-based), `_sort`
(`id`, `_id`, `_lastUpdated`, top-level elements; `-` for descending), `_elements`, `_total`
(`none` omits the total).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import asyncpg
from multidict import MultiDict, MultiDictProxy

from .outcome import invalid
from .resource_types import table_name
from .storage import row_to_resource

DEFAULT_COUNT = 100
_IGNORED = frozenset({"_format", "_summary", "_totalMethod", "_pretty"})
_RESULT_PARAMS = frozenset({"_count", "_page", "_sort", "_elements", "_total"})
_REF_VALUE = re.compile(r"^([A-Z][A-Za-z0-9]+)/([^/]+)$")
_ELEMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

Query = MultiDictProxy[str] | MultiDict[str]


class Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def _int_param(query: Query, name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer, got {raw!r}", status=400) from None
    if value < minimum:
        raise invalid(f"{name} must be >= {minimum}", status=400)
    return value


def dot_filter(where: Where, key: str, value: str) -> None:
    """Aidbox dot expression `.a.0.b=value`: equality on the value at that path."""
    path = [p for p in key.split(".") if p]
    where.clauses.append(f"resource #>> {where.arg(path)}::text[] = {where.arg(value)}")


def _build_where(query: Query) -> Where:
    where = Where()
    for key, value in query.items():
        if key in _RESULT_PARAMS or key in _IGNORED:
            continue
        name = key.split(":", 1)[0]
        values = [v for v in value.split(",") if v != ""]
        if name == "_id":
            where.clauses.append(f"id = ANY({where.arg(values)}::text[])")
        elif name == "identifier":
            where.clauses.append("(" + " OR ".join(_identifier(where, v) for v in values) + ")")
        elif key.startswith("."):
            dot_filter(where, key, value)
        elif _ELEMENT.match(name) and values:
            where.clauses.append("(" + " OR ".join(_equals(where, name, v) for v in values) + ")")
        elif not name.startswith("_"):
            raise invalid(f"Unsupported search parameter {key}", status=400)
    return where


def _identifier(where: Where, token: str) -> str:
    if "|" in token:
        system, value = token.split("|", 1)
        item = {"system": system, "value": value} if system else {"value": value}
    else:
        item = {"value": token}
    return f"resource->'identifier' @> {where.arg([item])}::jsonb"


def _equals(where: Where, element: str, value: str) -> str:
    key = where.arg(element)
    val = where.arg(value)
    parts = [f"resource->>{key} = {val}", f"resource->{key} ? {val}"]
    ref = _REF_VALUE.match(value)
    if ref:
        target = {"resourceType": ref.group(1), "id": ref.group(2)}
        parts.append(f"resource->{key} @> {where.arg(target)}::jsonb")
    return "(" + " OR ".join(parts) + ")"


def _order_by(query: Query) -> str:
    raw = query.get("_sort")
    if not raw:
        return " ORDER BY id"
    terms = []
    for item in raw.split(","):
        desc = item.startswith("-")
        name = item.lstrip("-")
        if name in ("id", "_id"):
            col = "id"
        elif name == "_lastUpdated":
            col = "ts"
        elif _ELEMENT.match(name):
            col = f"resource->>'{name}'"
        else:
            raise invalid(f"Unsupported _sort {item}", status=400)
        terms.append(col + (" DESC" if desc else ""))
    return " ORDER BY " + ", ".join([*terms, "id"])


def _elements(resource: dict[str, Any], raw: str | None) -> dict[str, Any]:
    if not raw:
        return resource
    keep = {e.split(".")[-1] for e in raw.split(",")} | {"resourceType", "id", "meta"}
    return {k: v for k, v in resource.items() if k in keep}


async def find_ids(
    conn: asyncpg.Connection, resource_type: str, query: Query, limit: int
) -> list[str]:
    """Ids of up to `limit` resources matching `query` (for conditional interactions)."""
    where = _build_where(query)
    rows = await conn.fetch(
        f'SELECT id FROM "{table_name(resource_type)}"{where.sql()} ORDER BY id LIMIT {limit}',
        *where.args,
    )
    return [r["id"] for r in rows]


async def search(
    conn: asyncpg.Connection,
    resource_type: str,
    query: Query,
    *,
    base_url: str,
    path: str,
) -> dict[str, Any]:
    """A `searchset` Bundle of matching resources (Aidbox format)."""
    count = _int_param(query, "_count", DEFAULT_COUNT, 0)
    page = _int_param(query, "_page", 1, 1)
    where = _build_where(query)
    table = table_name(resource_type)
    rows = await conn.fetch(
        f'SELECT * FROM "{table}"{where.sql()}{_order_by(query)}'
        f" LIMIT {count} OFFSET {(page - 1) * count}",
        *where.args,
    )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if query.get("_total") != "none":
        bundle["total"] = await conn.fetchval(
            f'SELECT count(*) FROM "{table}"{where.sql()}', *where.args
        )
    bundle["link"] = _links(base_url, path, query, page, count, len(rows))
    bundle["entry"] = [
        {
            "resource": _elements(row_to_resource(row), query.get("_elements")),
            "fullUrl": f"{base_url}/{resource_type}/{row['id']}",
        }
        for row in rows
    ]
    return bundle


def _links(
    base_url: str, path: str, query: Mapping[str, str], page: int, count: int, got: int
) -> list[dict[str, str]]:
    def url(p: int) -> str:
        params = [(k, v) for k, v in query.items() if k != "_page"] + [("_page", str(p))]
        return f"{base_url}{path}?{urlencode(params)}"

    links = [{"relation": "first", "url": url(1)}, {"relation": "self", "url": url(page)}]
    if count and got == count:
        links.append({"relation": "next", "url": url(page + 1)})
    return links
