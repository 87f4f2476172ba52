"""Aidbox Apps: registration side effects, operation routing, http-rpc forwarding.

developer-experience/apps.md and the SDK's own code. `PUT /App/<id>` stores the manifest;
the emulator then (same transaction) creates one `Operation` per operation id (so
AccessPolicies can link it), the AccessPolicies of `operations.<id>.policies`, and the
manifest's `resources`; Operations dropped from the manifest are deleted (routes replaced).
Subscriptions are read from the App resource at delivery time (subscriptions.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from . import crud
from .model import Req, Res
from .outcome import AidboxError
from .runtime import Ctx, Runtime
from .subscriptions import app_auth

log = logging.getLogger("aidbox_emulator")

DEFAULT_TIMEOUT_MS = 60_000


async def on_app_written(ctx: Ctx, app: dict[str, Any]) -> None:
    """Materialise an App's operations, policies and resources (crud after-write hook)."""
    app_id = app["id"]
    operations: dict[str, Any] = app.get("operations") or {}
    stale = await ctx.conn.fetch(
        "SELECT id FROM operation WHERE resource#>>'{app,id}' = $1", app_id
    )
    for row in stale:
        if row["id"] not in operations:
            await crud.delete(ctx, "Operation", row["id"])
    for op_id, definition in operations.items():
        body = {**definition, "app": {"resourceType": "App", "id": app_id}}
        body.pop("policies", None)
        await crud.update(ctx, "Operation", op_id, body, skip_refs=True)
        for policy_id, policy in (definition.get("policies") or {}).items():
            linked = {**policy, "link": [{"resourceType": "Operation", "id": op_id}]}
            await crud.update(ctx, "AccessPolicy", policy_id, linked)
    for rtype, by_id in (app.get("resources") or {}).items():
        for rid, body in by_id.items():
            await crud.update(ctx, rtype, rid, {**body, "resourceType": rtype})
    if app.get("entities"):
        log.warning("App %s: manifest `entities` (deprecated) are ignored; use FHIRSchema", app_id)


crud.register_after_write("App", on_app_written)


@dataclass(frozen=True)
class OperationMatch:
    """An App operation serving a request, with its route params."""

    operation_id: str
    operation: dict[str, Any]
    app: dict[str, Any]
    route_params: dict[str, str]


def _match_path(path: list[Any], segments: list[str]) -> dict[str, str] | None:
    if len(path) != len(segments):
        return None
    params: dict[str, str] = {}
    for part, seg in zip(path, segments, strict=True):
        if isinstance(part, dict) and "name" in part:
            params[str(part["name"])] = seg
        elif part != seg:
            return None
    return params


async def match_operation(
    conn: asyncpg.Connection, method: str, segments: list[str]
) -> OperationMatch | None:
    """The App operation for `method` + path segments; literal segments beat route params."""
    rows = await conn.fetch(
        "SELECT o.id, o.resource, a.id AS app_id, a.resource AS app FROM operation o"
        " JOIN app a ON a.id = o.resource#>>'{app,id}'"
    )
    best: tuple[int, OperationMatch] | None = None
    for row in rows:
        op = row["resource"]
        if str(op.get("method", "")).upper() != method.upper():
            continue
        params = _match_path(op.get("path") or [], segments)
        if params is None:
            continue
        literal = len(segments) - len(params)
        if best is None or literal > best[0]:
            app = {"id": row["app_id"], **row["app"]}
            best = (literal, OperationMatch(row["id"], op, app, params))
    return best[1] if best else None


async def forward(
    rt: Runtime, match: OperationMatch, req: Req, client: dict[str, Any] | None
) -> Res:
    """Call the App's endpoint (http-rpc) and pass its answer through as is.

    `client` (the caller's Client resource, without its secret) goes in `oauth/client`; an
    anonymous call of a public operation sends none.

    Unreachable App → 502, no answer within the operation's `timeout` (ms) → 504 (open
    points; docs/aidbox-contract-notes.md).
    """
    app = match.app
    url = (app.get("endpoint") or {}).get("url")
    request: dict[str, Any] = {
        "resource": req.body,
        "params": dict(req.query),
        "route-params": match.route_params,
        "headers": dict(req.headers),
    }
    if client is not None:
        request["oauth/client"] = client
    payload = {
        "type": "operation",
        "box": {"base-url": rt.base_url},
        "operation": {"id": match.operation_id, "app": {"id": app["id"], "resourceType": "App"}},
        "request": request,
    }
    timeout = aiohttp.ClientTimeout(
        total=float(match.operation.get("timeout") or DEFAULT_TIMEOUT_MS) / 1000
    )
    try:
        async with rt.http.post(url, json=payload, headers=app_auth(app), timeout=timeout) as resp:
            raw = await resp.read()
            return Res(resp.status, raw=raw, content_type=resp.headers.get("Content-Type"))
    except TimeoutError:
        raise AidboxError.of(
            504, "timeout", f"App {app['id']} did not answer in time", outcome_id="timeout"
        ) from None
    except aiohttp.ClientError as exc:
        raise AidboxError.of(
            502, "transient", f"App {app['id']} is unreachable: {exc}", outcome_id="app-unreachable"
        ) from None
