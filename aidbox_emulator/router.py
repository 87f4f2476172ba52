"""Built-in routes: which interaction a request is, and running it in the right transaction.

Used for HTTP requests and for bundle entries alike. Operation ids follow Aidbox's built-in
operations (`Read`/`FhirRead`, `Create`/`FhirCreate`, …; tutorials/security-access-control-
tutorials/restrict-operations-on-resource-type.md) so AccessPolicies can link to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import changes, crud, fhirschema, psql, search
from .auth import Caller
from .model import Req, Res
from .outcome import AidboxError, unknown_type
from .references import skips_reference_check
from .resource_types import is_type_name
from .runtime import Ctx, Runtime

Handler = Callable[[Ctx, Req, "Route"], Awaitable[Res]]
SelfHandler = Callable[[Runtime, Caller, Req], Awaitable[Res]]


@dataclass(frozen=True)
class Route:
    """A matched built-in interaction."""

    operation_id: str
    handler: Handler | None = None
    self_handler: SelfHandler | None = None  # manages its own connections (bundles, $psql)
    resource_type: str | None = None
    resource_id: str | None = None
    version: str | None = None
    write: bool = False

    @property
    def params(self) -> dict[str, str]:
        """The router's params policies see in `params` (access-policies.md)."""
        params = {}
        if self.resource_type is not None:
            params["resource/type"] = self.resource_type
        if self.resource_id is not None:
            params["resource/id"] = self.resource_id
        return params


def route_not_found(req: Req) -> AidboxError:
    """404 for a path no route serves."""
    return AidboxError.of(
        404,
        "not-found",
        f"No route for {req.method} /{req.path.lstrip('/')}",
        outcome_id="not-found",
    )


async def _search(ctx: Ctx, req: Req, route: Route) -> Res:
    base = ctx.rt.base_url + ("/fhir" if req.fhir else "")
    return Res(
        200,
        await search.search(
            ctx.conn, route.resource_type, req.query, base_url=base, path=f"/{route.resource_type}"
        ),
    )


async def _create(ctx: Ctx, req: Req, route: Route) -> Res:
    skip = skips_reference_check(req.headers)
    if req.query:
        return await crud.conditional_create(
            ctx, route.resource_type, req.query, req.body, skip_refs=skip
        )
    return await crud.create(ctx, route.resource_type, req.body, skip_refs=skip)


async def _conditional_update(ctx: Ctx, req: Req, route: Route) -> Res:
    if not req.query:
        raise route_not_found(req)
    return await crud.conditional_update(
        ctx,
        route.resource_type,
        req.query,
        req.body,
        skip_refs=skips_reference_check(req.headers),
    )


async def _conditional_delete(ctx: Ctx, req: Req, route: Route) -> Res:
    if not req.query:
        raise route_not_found(req)
    return await crud.conditional_delete(ctx, route.resource_type, req.query)


async def _read(ctx: Ctx, req: Req, route: Route) -> Res:
    return await crud.read(ctx, route.resource_type, route.resource_id)


async def _update(ctx: Ctx, req: Req, route: Route) -> Res:
    return await crud.update(
        ctx,
        route.resource_type,
        route.resource_id,
        req.body,
        if_match=crud.parse_if_match(req.headers.get("if-match")),
        skip_refs=skips_reference_check(req.headers),
    )


async def _delete(ctx: Ctx, req: Req, route: Route) -> Res:
    return await crud.delete(
        ctx,
        route.resource_type,
        route.resource_id,
        if_match=crud.parse_if_match(req.headers.get("if-match")),
    )


async def _history(ctx: Ctx, req: Req, route: Route) -> Res:
    return await crud.history(ctx, route.resource_type, route.resource_id)


async def _vread(ctx: Ctx, req: Req, route: Route) -> Res:
    return await crud.vread(ctx, route.resource_type, route.resource_id, route.version)


async def _changes(ctx: Ctx, req: Req, route: Route) -> Res:
    return await changes.changes(ctx.conn, route.resource_type, route.resource_id, req.query)


async def _resource_types(ctx: Ctx, req: Req, route: Route) -> Res:
    types = sorted(await fhirschema.known_types(ctx.conn))
    return Res(200, {t: {"resourceType": "Entity", "id": t, "type": "resource"} for t in types})


async def _migrations_post(ctx: Ctx, req: Req, route: Route) -> Res:
    return Res(200, await psql.apply_migrations(ctx.conn, req.body))


async def _migrations_get(ctx: Ctx, req: Req, route: Route) -> Res:
    return Res(200, await psql.list_migrations(ctx.conn))


def _op(req: Req, name: str) -> str:
    return ("Fhir" if req.fhir else "") + name


async def match(rt: Runtime, conn: Any, req: Req, bundle_handler: SelfHandler) -> Route:
    """The built-in route for `req`; 404 OperationOutcome for unknown types and paths."""
    segs, method = req.segments, req.method.upper()
    if not segs:
        if method == "POST":
            return Route(_op(req, "Transaction"), self_handler=bundle_handler)
        raise route_not_found(req)
    head = segs[0]
    if segs == ["$psql"] and method == "POST":
        return Route("PSQL", self_handler=psql.psql_handler)
    if segs == ["$resource-types"] and method == "GET":
        return Route("ResourceTypes", _resource_types)
    if segs == ["db", "migrations"] and method in ("GET", "POST"):
        if method == "GET":
            return Route("DbMigrations", _migrations_get)
        return Route("DbMigrations", _migrations_post, write=True)
    if not is_type_name(head):
        raise route_not_found(req)
    if not await fhirschema.is_known_type(conn, head):
        raise unknown_type(head)
    route = _type_route(req, segs, method)
    await rt.tables.ensure([head])
    return route


def _type_route(req: Req, segs: list[str], method: str) -> Route:
    rtype = segs[0]
    tail = segs[1:]
    table: dict[tuple[int, str], tuple[str, Handler, bool]] = {
        (0, "GET"): ("Search", _search, False),
        (0, "POST"): ("Create", _create, True),
        (0, "PUT"): ("ConditionalUpdate", _conditional_update, True),
        (0, "DELETE"): ("ConditionalDelete", _conditional_delete, True),
        (1, "GET"): ("Read", _read, False),
        (1, "PUT"): ("Update", _update, True),
        (1, "DELETE"): ("Delete", _delete, True),
    }
    if tail == ["$changes"] and method == "GET":
        return Route("Changes", _changes, resource_type=rtype)
    if len(tail) == 2 and tail[1] == "$changes" and method == "GET":
        return Route("Changes", _changes, resource_type=rtype, resource_id=tail[0])
    if len(tail) == 2 and tail[1] == "_history" and method == "GET":
        return Route(_op(req, "History"), _history, resource_type=rtype, resource_id=tail[0])
    if len(tail) == 3 and tail[1] == "_history" and method == "GET":
        return Route(
            _op(req, "VRead"), _vread, resource_type=rtype, resource_id=tail[0], version=tail[2]
        )
    entry = table.get((len(tail), method))
    if entry is None or (tail and tail[0].startswith("$")):
        raise route_not_found(req)
    name, handler, write = entry
    return Route(
        _op(req, name),
        handler,
        resource_type=rtype,
        resource_id=tail[0] if tail else None,
        write=write,
    )


async def run(rt: Runtime, req: Req, route: Route, caller: Caller) -> Res:
    """Run a route in its own connection or write transaction (HTTP requests, batch entries)."""
    if route.self_handler is not None:
        return await route.self_handler(rt, caller, req)
    if route.write:
        types = [route.resource_type] if route.resource_type else []
        async with rt.write(types, req.headers.get("x-max-isolation-level")) as tx:
            return await route.handler(Ctx(rt, tx.conn, tx, caller), req, route)
    async with rt.pool.acquire() as conn:
        return await route.handler(Ctx(rt, conn, None, caller), req, route)
