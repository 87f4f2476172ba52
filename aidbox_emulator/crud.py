"""CRUD interactions in Aidbox format (api/rest-api/crud/*.md).

Every function runs on `ctx.conn`; writes run inside `ctx.tx` (one database transaction).
Bodies in and out are Aidbox format; the HTTP edge converts for `/fhir`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from . import credentials, fhirschema, storage
from .model import Res
from .outcome import AidboxError, invalid, not_found
from .references import check_references, iter_references
from .runtime import Ctx
from .search import Query, find_ids
from .transactions import Event

# An App manifest embeds resources (e.g. AccessPolicies linking Operations it is about to
# create); those are checked when the emulator creates them, not inside the App.
_UNCHECKED_REFERENCES = frozenset({"App"})

AfterWrite = Callable[[Ctx, dict[str, Any]], Awaitable[None]]
_after_write: dict[str, AfterWrite] = {}


def register_after_write(resource_type: str, hook: AfterWrite) -> None:
    """Run `hook(ctx, resource)` after each create/update of `resource_type`, same transaction."""
    _after_write[resource_type] = hook


def parse_if_match(raw: str | None) -> str | None:
    """`W/"12"`, `"12"` or `12` → "12"; `*` stays `*`; absent → None."""
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _version_mismatch() -> AidboxError:
    # api/rest-api/crud/update.md, "Versioned Update": 409 with id "conflict".
    return AidboxError.of(409, "conflict", "Version Id mismatch", outcome_id="conflict")


def _precondition_failed(diagnostics: str) -> AidboxError:
    return AidboxError.of(412, "conflict", diagnostics, outcome_id="precondition-failed")


def body_of(resource_type: str, body: Any) -> dict[str, Any]:
    """Check a request body is a resource of `resource_type`; return it with resourceType set."""
    if not isinstance(body, dict):
        raise invalid("Expected a resource (JSON object) in the body")
    declared = body.get("resourceType")
    if declared is not None and declared != resource_type:
        raise invalid(f"resourceType {declared} does not match the URL ({resource_type})")
    return {**body, "resourceType": resource_type}


async def _prepare(
    ctx: Ctx, resource_type: str, resource_id: str, resource: dict[str, Any], skip_refs: bool
) -> dict[str, Any]:
    """Everything Aidbox checks before storing a version; returns the resource to store."""
    resource = {**resource, "id": resource_id, "resourceType": resource_type}
    rejected = ctx.rt.faults.rejection(resource)
    if rejected is not None:
        raise invalid(rejected, expression=[resource_type])
    schema = await fhirschema.schema_for(ctx.conn, resource_type)
    if schema is not None:
        fhirschema.validate(resource, schema)
    if resource_type == "FHIRSchema":
        await fhirschema.install_definition(ctx.conn, resource)
    if resource_type == "Client" and "secret" in resource:
        resource = await _hashed_secret(resource)
    if not skip_refs and resource_type not in _UNCHECKED_REFERENCES:
        known = await fhirschema.known_types(ctx.conn)
        await ctx.rt.tables.ensure({t for _, t, _ in iter_references(resource)} & known)
        await check_references(ctx.conn, resource, known, exempt=ctx.bundle_targets)
    return resource


async def _hashed_secret(client: dict[str, Any]) -> dict[str, Any]:
    """The Client with its secret hashed (core-module-resources.md §Client, credentials.py)."""
    secret = client["secret"]
    if not isinstance(secret, str):
        raise invalid("Client.secret must be a string", expression=["Client.secret"])
    return {**client, "secret": await credentials.hash_secret_async(secret)}


async def _after(ctx: Ctx, resource_type: str, resource: dict[str, Any]) -> None:
    hook = _after_write.get(resource_type)
    if hook is not None:
        await hook(ctx, resource)


async def read(ctx: Ctx, resource_type: str, resource_id: str) -> Res:
    """GET /<type>/<id>: 200, 410 if deleted, 404 if never existed."""
    row = await storage.fetch_current(ctx.conn, resource_type, resource_id)
    if row is not None:
        return Res(200, storage.row_to_resource(row))
    if await storage.was_deleted(ctx.conn, resource_type, resource_id):
        raise AidboxError.of(
            410,
            "deleted",
            f"Resource {resource_type}/{resource_id} was deleted",
            outcome_id="deleted",
        )
    raise not_found(resource_type, resource_id)


async def create(ctx: Ctx, resource_type: str, body: Any, *, skip_refs: bool = False) -> Res:
    """POST /<type>: server id unless the body has one; 409 if that id exists."""
    resource = body_of(resource_type, body)
    resource_id = str(resource.get("id") or uuid.uuid4())
    if await storage.fetch_current(ctx.conn, resource_type, resource_id) is not None:
        raise AidboxError.of(
            409,
            "conflict",
            f"Resource {resource_type}/{resource_id} already exists",
            outcome_id="conflict",
        )
    return await _insert(ctx, resource_type, resource_id, resource, skip_refs)


async def _insert(
    ctx: Ctx, resource_type: str, resource_id: str, resource: dict[str, Any], skip_refs: bool
) -> Res:
    tx = ctx.write_tx()
    resource = await _prepare(ctx, resource_type, resource_id, resource, skip_refs)
    status = (
        "recreated"
        if await storage.was_deleted(ctx.conn, resource_type, resource_id)
        else "created"
    )
    txid = await tx.next_txid()
    row = await storage.insert_row(
        ctx.conn, resource_type, resource_id, txid, storage.split_resource(resource), status
    )
    stored = storage.row_to_resource(row)
    await _after(ctx, resource_type, stored)
    tx.events.append(Event("create", stored, None, txid))
    return Res(201, stored)


async def update(
    ctx: Ctx,
    resource_type: str,
    resource_id: str,
    body: Any,
    *,
    if_match: str | None = None,
    skip_refs: bool = False,
) -> Res:
    """PUT /<type>/<id>: create (201) or new version (200); If-Match per update.md."""
    resource = body_of(resource_type, body)
    current = await storage.fetch_current(ctx.conn, resource_type, resource_id, lock=True)
    if current is None:
        if if_match == "*":
            raise _precondition_failed(f"Resource {resource_type}/{resource_id} does not exist")
        if if_match is not None:
            raise _version_mismatch()
        return await _insert(ctx, resource_type, resource_id, resource, skip_refs)
    if if_match not in (None, "*") and if_match != str(current["txid"]):
        raise _version_mismatch()
    tx = ctx.write_tx()
    resource = await _prepare(ctx, resource_type, resource_id, resource, skip_refs)
    txid = await tx.next_txid()
    row = await storage.replace_row(
        ctx.conn, resource_type, resource_id, txid, storage.split_resource(resource)
    )
    stored = storage.row_to_resource(row)
    await _after(ctx, resource_type, stored)
    tx.events.append(Event("update", stored, storage.row_to_resource(current), txid))
    return Res(200, stored)


async def delete(
    ctx: Ctx, resource_type: str, resource_id: str, *, if_match: str | None = None
) -> Res:
    """DELETE /<type>/<id>: 200 with the body; 204 when missing; 412 on If-Match mismatch."""
    current = await storage.fetch_current(ctx.conn, resource_type, resource_id, lock=True)
    if current is None:
        return Res(204)
    if if_match not in (None, "*") and if_match != str(current["txid"]):
        raise _precondition_failed("Version Id mismatch")
    tx = ctx.write_tx()
    txid = await tx.next_txid()
    marker = await storage.delete_row(ctx.conn, resource_type, resource_id, txid)
    deleted = storage.row_to_resource(marker)
    tx.events.append(Event("delete", deleted, storage.row_to_resource(current), txid))
    return Res(200, deleted)


async def _single_match(ctx: Ctx, resource_type: str, query: Query) -> str | None:
    ids = await find_ids(ctx.conn, resource_type, query, 2)
    if len(ids) > 1:
        raise _precondition_failed("Multiple resources match the criteria")
    return ids[0] if ids else None


async def conditional_create(
    ctx: Ctx, resource_type: str, query: Query, body: Any, *, skip_refs: bool = False
) -> Res:
    """POST /<type>?criteria: 200 with the match, create if none, 412 if several."""
    match = await _single_match(ctx, resource_type, query)
    if match is None:
        return await create(ctx, resource_type, body, skip_refs=skip_refs)
    return await read(ctx, resource_type, match)


async def conditional_update(
    ctx: Ctx, resource_type: str, query: Query, body: Any, *, skip_refs: bool = False
) -> Res:
    """PUT /<type>?criteria: update the match, create if none (body id allowed), 412 if several."""
    match = await _single_match(ctx, resource_type, query)
    if match is None:
        return await create(ctx, resource_type, body, skip_refs=skip_refs)
    return await update(ctx, resource_type, match, body, skip_refs=skip_refs)


async def conditional_delete(ctx: Ctx, resource_type: str, query: Query) -> Res:
    """DELETE /<type>?criteria: 204 if none, delete the match, 412 if several."""
    match = await _single_match(ctx, resource_type, query)
    if match is None:
        return Res(204)
    return await delete(ctx, resource_type, match)


async def history(ctx: Ctx, resource_type: str, resource_id: str) -> Res:
    """GET /<type>/<id>/_history: a `history` Bundle, newest first (api/rest-api/history.md)."""
    rows = await storage.fetch_history(ctx.conn, resource_type, resource_id)
    if not rows:
        raise not_found(resource_type, resource_id)
    entries = []
    for row in rows:
        method = {"created": "POST", "recreated": "POST", "deleted": "DELETE"}.get(
            row["status"], "PUT"
        )
        entries.append({"resource": storage.row_to_resource(row), "request": {"method": method}})
    return Res(
        200, {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    )


async def vread(ctx: Ctx, resource_type: str, resource_id: str, version: str) -> Res:
    """GET /<type>/<id>/_history/<vid>."""
    if not version.isdigit():
        raise not_found(resource_type, resource_id)
    row = await storage.fetch_version(ctx.conn, resource_type, resource_id, int(version))
    if row is None:
        raise not_found(resource_type, resource_id)
    return Res(200, storage.row_to_resource(row))
