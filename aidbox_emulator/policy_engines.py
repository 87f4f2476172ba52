"""AccessPolicy evaluation engines: `allow`, `matcho`, `sql`, `complex`.

access-control/authorization/access-policies.md, "Evaluation engines". Each engine answers
True (the policy allows the request) or False; an engine that cannot evaluate its policy (bad
pattern, SQL error) raises, and auth.py counts that as a denial. `json-schema`, `allow-rpc`,
`matcho-rpc` and the undocumented engines are not emulated: they deny.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from .matcho import InvalidPattern, lookup, matches


@dataclass(frozen=True)
class Evaluation:
    """One policy evaluated against one request object."""

    conn: asyncpg.Connection
    request: dict[str, Any]
    policy_id: str


Engine = Callable[[Evaluation, dict[str, Any]], Awaitable[bool]]

# The emulator's guard against a runaway policy in a test, not Aidbox's behaviour (which
# documents no time limit for a policy: access-policies.md, "SQL engine"): a policy's SQL
# that runs longer fails its request with 500 (PolicyTimeout), never a denial, so that no
# test can pass by it (docs/emulator.md).
SQL_TIMEOUT_MS = 60_000

# access-policies.md, "Interpolation Rules": `{{path}}` is a value, `{{!path}}` an identifier.
_PLACEHOLDER = re.compile(r"\{\{(!?)([^{}]*)\}\}")


async def _allow(ev: Evaluation, body: dict[str, Any]) -> bool:
    return True


async def _matcho(ev: Evaluation, body: dict[str, Any]) -> bool:
    """reference/matcho-dsl-reference.md; the pattern is under `matcho` (access-policies.md)."""
    if "matcho" not in body:
        raise InvalidPattern("matcho policy without `matcho`")
    return matches(body["matcho"], ev.request, ev.request)


def _text_of(value: Any) -> str | None:
    """How a request value is bound: strings as they are, other JSON as JSON text, null NULL."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def render_sql(query: str, request: dict[str, Any]) -> tuple[str, list[str | None]]:
    """The query with `{{path}}` as bound text parameters and `{{!path}}` as identifiers.

    access-policies.md: parameter expressions are escaped (here: bound, `$n::text`, never
    spliced into the text); `{{!params.resource/type}}` with `Patient` becomes `"patient"`
    ("identifier names are double-quoted and lower-cased"). tutorials/security-access-control-
    tutorials/debug-access-control.md shows the same split (`['SELECT ? FROM "patient"',
    admin]`).
    """
    args: list[str | None] = []

    def substitute(found: re.Match[str]) -> str:
        path = found.group(2).strip()
        if not path:
            raise InvalidPattern("empty {{}} in a sql policy")
        value = lookup(request, path)
        if found.group(1):
            if not isinstance(value, str) or not value:
                raise InvalidPattern(f"{{{{!{path}}}}} is not a non-empty string")
            return '"' + value.lower().replace('"', '""') + '"'
        args.append(_text_of(value))
        return f"${len(args)}::text"

    return _PLACEHOLDER.sub(substitute, query), args


class PolicyTimeout(Exception):
    """A policy's SQL ran past SQL_TIMEOUT_MS: the request fails (500), it is not denied."""


class _RollBack(Exception):
    """Ends a policy's read-only (sub)transaction with a rollback, whatever it did."""


def _allows(rows: list[asyncpg.Record]) -> bool:
    """One row, one column: `true` or a non-zero number allows; anything else denies."""
    if len(rows) != 1 or len(rows[0]) != 1:
        return False
    value = rows[0][0]
    if isinstance(value, bool):
        return value
    return isinstance(value, int | float | decimal.Decimal) and value != 0


async def _sql(ev: Evaluation, body: dict[str, Any]) -> bool:
    """access-policies.md "SQL engine": `sql: {query}`; the single value is the answer.

    The query runs read-only, in a transaction (or a savepoint of the bundle's transaction)
    that is always rolled back, so a policy can neither write nor leave settings behind.
    """
    sql = body.get("sql")
    query = sql.get("query") if isinstance(sql, dict) else None
    if not isinstance(query, str):
        raise InvalidPattern("sql policy without `sql.query`")
    text, args = render_sql(query, ev.request)
    rows: list[asyncpg.Record] = []
    try:
        async with ev.conn.transaction():
            await ev.conn.execute("SET LOCAL transaction_read_only = on")
            await ev.conn.execute(f"SET LOCAL statement_timeout = {SQL_TIMEOUT_MS}")
            rows = await ev.conn.fetch(text, *args)
            raise _RollBack
    except _RollBack:
        pass
    except asyncpg.QueryCanceledError:
        raise PolicyTimeout(ev.policy_id) from None
    return _allows(rows)


async def _complex(ev: Evaluation, body: dict[str, Any]) -> bool:
    """access-policies.md "Complex": `and` / `or` of sub-policies, evaluated top to bottom.

    Both keys on one level is forbidden by the docs; neither, or an empty list, gives no rule
    to grant access: all three deny.
    """
    has_and, has_or = "and" in body, "or" in body
    if has_and == has_or:
        raise InvalidPattern("complex policy needs exactly one of `and`, `or`")
    rules = body["and"] if has_and else body["or"]
    if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
        raise InvalidPattern("complex policy rules must be a non-empty array of policies")
    for rule in rules:
        allowed = await evaluate(ev, rule)
        if has_and and not allowed:
            return False
        if has_or and allowed:
            return True
    return has_and


ENGINES: dict[str, Engine] = {
    "allow": _allow,
    "matcho": _matcho,
    "sql": _sql,
    "complex": _complex,
}


class UnknownEngine(LookupError):
    """An engine the emulator does not implement (the policy denies)."""


async def evaluate(ev: Evaluation, body: dict[str, Any]) -> bool:
    """Evaluate a policy (or a `complex` sub-policy) with its engine."""
    engine = ENGINES.get(str(body.get("engine")))
    if engine is None:
        raise UnknownEngine(str(body.get("engine")))
    return await engine(ev, body)
