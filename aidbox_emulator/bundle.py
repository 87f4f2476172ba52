"""Batch and transaction bundles at `POST /` and `POST /fhir` (api/batch-transaction.md).

Entries run in the order given (not FHIR's reordering); several entries for one id apply in
turn. `transaction`: one database transaction, rolled back on the first error, whose status and
OperationOutcome become the answer; `urn:uuid` fullUrls are resolved. `batch`: each entry in its
own transaction; failures are reported per entry and the rest goes on.

Access control: the bundle request itself is checked (operation `Transaction` /
`FhirTransaction` for both types, api/rest-api/bundle.md: one operation accepts both), then
each entry as its own request (tutorials/security-access-control-tutorials/accesspolicy-
examples.md #18; access-control/authorization/smart-on-fhir/smart-scopes-for-limiting-access.md
§Bundle), just before it runs: a denied entry fails a transaction (nothing lands) and answers
403 in its slot of a batch. The entry's request object is a choice (docs/aidbox-contract-
notes.md): method, url path and query of the entry, `params` with `resource/type` and
`resource/id` of its route, the entry's `resource` as sent, its route's operation id, and the
bundle's client, headers, scheme and remote address.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from multidict import MultiDict

from . import fhirschema, router
from .auth import Caller, authorize
from .fhir_format import from_fhir
from .model import Req, Res
from .outcome import AidboxError, invalid, operation_outcome
from .references import resolve_urns
from .resource_types import is_type_name
from .runtime import Ctx, Runtime

log = logging.getLogger("aidbox_emulator")


def _entry_request(outer: Req, index: int, entry: Any) -> tuple[Req, str | None]:
    """A bundle entry as an interaction, and its fullUrl."""
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise invalid(f"Bundle.entry[{index}].request is required")
    request = entry["request"]
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        raise invalid(f"Bundle.entry[{index}].request needs method and url")
    parts = urlsplit(url)
    # Absolute urls keep only their path; `/fhir/...` urls are the same interactions.
    path = parts.path
    if path == "/fhir" or path.startswith("/fhir/"):
        path = path[len("/fhir") :]
    body = entry.get("resource")
    if outer.fhir and isinstance(body, dict):
        body = from_fhir(body)
    headers = dict(outer.headers)
    if isinstance(request.get("ifMatch"), str):
        headers["if-match"] = request["ifMatch"]
    req = Req(
        method=method.upper(),
        path=path,
        query=MultiDict(parse_qsl(parts.query, keep_blank_values=True)),
        body=body,
        headers=headers,
        fhir=outer.fhir,
        query_string=parts.query,
        scheme=outer.scheme,
        remote_addr=outer.remote_addr,
        wire_body=entry.get("resource"),
    )
    return req, entry.get("fullUrl")


def _urn_targets(
    entries: list[tuple[Req, str | None]],
) -> tuple[list[Req], dict[str, tuple[str, str]]]:
    """Give urn-identified entries their ids; map each urn to (type, id)."""
    targets: dict[str, tuple[str, str]] = {}
    out: list[Req] = []
    for entry_req, full_url in entries:
        req, segs = entry_req, entry_req.segments
        if (
            isinstance(full_url, str)
            and full_url.startswith("urn:")
            and segs
            and is_type_name(segs[0])
            and req.method in ("POST", "PUT")
            and isinstance(req.body, dict)
        ):
            rid = segs[1] if req.method == "PUT" and len(segs) == 2 else None
            rid = rid or str(req.body.get("id") or uuid.uuid4())
            targets[full_url] = (segs[0], rid)
            if req.method == "POST":
                req = req.with_body({**req.body, "id": rid})
        out.append(req)
    return out, targets


def _entry_response(res: Res) -> dict[str, Any]:
    entry: dict[str, Any] = {"response": {"status": str(res.status)}}
    if res.body is not None:
        entry["resource"] = res.body
    return entry


async def _nested_bundle(rt: Runtime, caller: Caller, req: Req) -> Res:
    """Stands for the bundle endpoint when an entry is matched; `_match` refuses it first."""
    raise invalid("a bundle cannot be an entry of a bundle")


async def _match(rt: Runtime, conn: Any, req: Req) -> router.Route:
    """The route of an entry; 422 for one that is itself a bundle or that manages its own
    connections ($psql): the entry runs in the bundle's transaction or in none.

    What Aidbox does with nested bundles is not documented: an emulator choice
    (docs/aidbox-contract-notes.md), refused before the entry's access check, like any entry
    that is no interaction on a resource.
    """
    route = await router.match(rt, conn, req, _nested_bundle)
    where = f"{req.method} /{req.path.lstrip('/')}"
    if route.self_handler is _nested_bundle:
        raise invalid(f"{where}: a bundle cannot be an entry of a bundle")
    if route.self_handler is not None:
        raise invalid(f"{where} is not allowed in a bundle")
    return route


async def bundle_handler(rt: Runtime, caller: Caller, req: Req) -> Res:
    """`POST /` or `POST /fhir` with a Bundle of type batch or transaction."""
    body = req.body
    if not isinstance(body, dict) or body.get("resourceType", "Bundle") != "Bundle":
        raise invalid("Expected a Bundle resource")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise invalid(f"Bundle.type must be batch or transaction, got {kind!r}")
    raw_entries = body.get("entry") or []
    if not isinstance(raw_entries, list):
        raise invalid("Bundle.entry must be an array")
    entries = [_entry_request(req, i, e) for i, e in enumerate(raw_entries)]
    if kind == "transaction":
        return await _transaction(rt, caller, req, entries)
    return await _batch(rt, caller, [r for r, _ in entries])


async def _transaction(
    rt: Runtime, caller: Caller, outer: Req, entries: list[tuple[Req, str | None]]
) -> Res:
    reqs, targets = _urn_targets(entries)
    if targets:
        reqs = [r.with_body(resolve_urns(r.body, targets)) for r in reqs]
    types = {r.segments[0] for r in reqs if r.segments and is_type_name(r.segments[0])}
    async with rt.pool.acquire() as conn:
        # Create missing tables before the transaction starts (tables.py).
        await rt.tables.ensure([t for t in types if await fhirschema.is_known_type(conn, t)])
    results = []
    async with rt.write(types, outer.headers.get("x-max-isolation-level")) as tx:
        ctx = Ctx(rt, tx.conn, tx, caller, bundle_targets=frozenset(targets.values()))
        for req in reqs:
            route = await _match(rt, tx.conn, req)
            # Inside the transaction: sql policies see the earlier entries (in a savepoint).
            await authorize(tx.conn, caller, route.operation_id, req, route.params)
            results.append(_entry_response(await route.handler(ctx, req, route)))
    return Res(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": results})


async def _batch(rt: Runtime, caller: Caller, reqs: list[Req]) -> Res:
    results = []
    for req in reqs:
        try:
            async with rt.pool.acquire() as conn:
                route = await _match(rt, conn, req)
                await authorize(conn, caller, route.operation_id, req, route.params)
            results.append(_entry_response(await router.run(rt, req, route, caller)))
        except AidboxError as err:
            results.append(_entry_response(Res(err.status, err.outcome)))
        except Exception:
            log.exception("batch entry %s %s failed", req.method, req.path)
            outcome = operation_outcome("exception", "Internal server error")
            results.append(_entry_response(Res(500, outcome)))
    return Res(200, {"resourceType": "Bundle", "type": "batch-response", "entry": results})
