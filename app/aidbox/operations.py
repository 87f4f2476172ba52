"""The App's custom operations, served through the Aidbox REST API (README, "Operations").

Handlers are thin: they validate input, call the sync core, and answer JSON or an
OperationOutcome. Aidbox forwards a call as `{"operation", "request": {"resource", "params",
"route-params", "headers", ...}}` (developer-experience/apps.md, "Request Format"); the SDK
hands us `(operation, request)` with `request["app"]` set to the aiohttp application.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aidbox_python_sdk.sdk import SDK
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.aidbox.client import AidboxError, AidboxUnavailable
from app.aidbox.keys import own_aidbox_key, settings_key, sync_service_key, watermark_key
from app.aidbox.outcome import (
    NOT_OFFERED,
    OperationError,
    invalid_input,
    json_response,
    operation_outcome,
)
from app.aidbox.psql import PsqlError
from app.anonymize import explain
from app.errors import SyncError
from app.model import (
    RESOURCE_TYPE_PATTERN,
    AidboxInstance,
    ChangesInfo,
    Direction,
    ResourceTypeName,
)
from app.registry import pull
from app.registry.instances import Registration, RegistrationConflict, register
from app.registry.inventory import (
    InventoryQuery,
    NotAClinic,
    NotPushed,
    caller_namespace,
    inventory,
)
from app.registry.types import UnregistrableTypes
from app.settings import Role
from app.sync.checkpoint import CheckpointConflict
from app.sync.config import ConfigError
from app.sync.feed import FeedError
from app.sync.instance import InstanceInactive
from app.sync.quarantine import QuarantineUnreadable
from app.sync.quarantine import records as quarantine_records
from app.sync.runner import SyncService, UnknownStream
from app.sync.status import sync_status
from app.sync.stream import failure_reason, logged_reason
from app.sync.watermark import WatermarkError

log = logging.getLogger("aidbox_sync.operations")

Handler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[web.Response]]


def _outcomes(handler: Handler) -> Handler:
    """Turn domain errors into OperationOutcomes (4xx for the caller's mistakes, 503 when an
    Aidbox is unreachable); never a bare 500 for bad input, and no failure logged with more
    than its type and codes (app/errors.py)."""

    @functools.wraps(handler)
    async def wrapped(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
        try:
            return await handler(operation, request)
        except OperationError as exc:
            return exc.response()
        except ConfigError as exc:
            return OperationError(409, "invalid", f"configuration: {exc}").response()
        except UnknownStream as exc:
            return OperationError(404, "not-found", str(exc)).response()
        except CheckpointConflict as exc:
            return OperationError(
                409, "conflict", f"checkpoint changed meanwhile: {exc}"
            ).response()
        except InstanceInactive as exc:
            return OperationError(409, "business-rule", str(exc)).response()
        except pull.NotOffered as exc:
            return OperationError(403, NOT_OFFERED, str(exc)).response()
        except (NotAClinic, NotPushed) as exc:
            return OperationError(403, "forbidden", str(exc)).response()
        except pull.ScopeError as exc:
            return OperationError(409, "invalid", f"configuration: {exc}").response()
        except pull.Unsettled as exc:
            return OperationError(422, "business-rule", str(exc), ["version"]).response()
        except (WatermarkError, PsqlError, FeedError, QuarantineUnreadable) as exc:
            # The App's own Aidbox refused what the App needs, or holds what it cannot read:
            # something to fix there, not a wait.
            return OperationError(502, "exception", str(exc)).response()
        except AidboxUnavailable as exc:
            return OperationError(503, "transient", f"Aidbox unreachable: {exc}").response()
        except AidboxError as exc:
            log.error("operation %s: %s", operation.get("id"), exc.logged)
            if exc.transient:
                return OperationError(503, "transient", f"Aidbox unavailable: {exc}").response()
            return OperationError(502, "exception", f"Aidbox refused: {exc}").response()
        except Exception as exc:
            # Left to aiohttp, it would be logged with its message and traceback, which may
            # quote what the App read (a record's fields, a local id).
            log.error("operation %s failed: %s", operation.get("id"), logged_reason(exc))
            return OperationError(
                500, "exception", f"the App failed: {failure_reason(exc)}"
            ).response()

    return wrapped


def _service(request: dict[str, Any]) -> SyncService:
    return request["app"][sync_service_key]


def _input(request: dict[str, Any]) -> dict[str, Any]:
    """Query parameters merged with a JSON object body (the body wins)."""
    body = request.get("resource")
    merged = dict(request.get("params") or {})
    if isinstance(body, dict):
        merged.update(body)
    elif body is not None:
        raise OperationError(400, "invalid", "the request body must be a JSON object")
    return merged


class SyncInput(BaseModel):
    """`$sync` parameters."""

    model_config = ConfigDict(extra="forbid")
    direction: Direction | None = None
    resourceType: ResourceTypeName | None = None


class ResetInput(BaseModel):
    """`$reset` parameters: replay the stream from `version` (default: from the start)."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(0, ge=0)


class AnonymizeInput(BaseModel):
    """`$anonymize`: a resource given inline, or a type and id to read from the clinic."""

    model_config = ConfigDict(extra="forbid")
    resourceType: ResourceTypeName | None = None
    id: str | None = None


class NoInput(BaseModel):
    """An operation that takes no parameters beyond its route."""

    model_config = ConfigDict(extra="forbid")


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], request: dict[str, Any]) -> M:
    try:
        return model.model_validate(_input(request))
    except ValidationError as exc:
        raise invalid_input(exc, model.__name__) from None


async def _run_sync(
    service: SyncService, types: list[str] | None, direction: Direction | None
) -> web.Response:
    summaries = await service.sync(types, direction=direction)
    body: dict[str, Any] = {"streams": [s.as_json() for s in summaries]}
    status = 200 if all(s.error is None for s in summaries) else 207
    if service.config.error:
        # The newest SyncConfig was refused; the streams ran under the one before it.
        refused = f"configuration refused, the previous one stays in force: {service.config.error}"
        body["configuration"] = operation_outcome("invalid", refused, ["SyncConfig/default"])
        status = 207
    return json_response(body, status)


@_outcomes
async def sync_all(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /$sync [direction, resourceType]: run streams now; answer a summary per stream."""
    params = _parse(SyncInput, request)
    types = [params.resourceType] if params.resourceType else None
    return await _run_sync(_service(request), types, params.direction)


def _stream_id(request: dict[str, Any]) -> tuple[Direction, str]:
    sid = (request.get("route-params") or {}).get("id", "")
    direction, _, rtype = sid.partition("-")
    if direction not in (d.value for d in Direction) or not _TYPE_NAME.fullmatch(rtype):
        raise OperationError(404, "not-found", f"ChangesInfo/{sid} is not a stream id")
    return Direction(direction), rtype


_TYPE_NAME = re.compile(RESOURCE_TYPE_PATTERN)


@_outcomes
async def sync_stream(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /ChangesInfo/<id>/$sync: run one stream now."""
    params = _parse(SyncInput, request)
    direction, rtype = _stream_id(request)
    if params.resourceType not in (None, rtype) or params.direction not in (None, direction):
        raise OperationError(
            422,
            "business-rule",
            f"the body names another stream than ChangesInfo/{direction.value}-{rtype}",
            ["resourceType"],
        )
    return await _run_sync(_service(request), [rtype], direction)


class ReconcileInput(BaseModel):
    """`$reconcile` parameters: one type or every pushed one; repair what differs or not."""

    model_config = ConfigDict(extra="forbid")
    resourceType: ResourceTypeName | None = None
    repair: bool = False


@_outcomes
async def reconcile(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /$reconcile [resourceType, repair]: what headquarters holds of this clinic,
    against the anonymized clinic: missing, stale and extra resources, counted, with ids."""
    params = _parse(ReconcileInput, request)
    types = [params.resourceType] if params.resourceType else None
    reports = await _service(request).reconcile(types, repair=params.repair)
    failed = any("error" in r for r in reports)
    clean = not failed and all(not (r["missing"] or r["stale"] or r["extra"]) for r in reports)
    return json_response({"types": reports, "clean": clean}, 207 if failed else 200)


class RequeueInput(BaseModel):
    """`$requeue` parameters: one stream's quarantine, or all of it."""

    model_config = ConfigDict(extra="forbid")
    stream: str | None = Field(None, pattern=r"^(push|pull)-[A-Za-z][A-Za-z0-9]*$")


async def _run_requeue(
    service: SyncService, stream_id: str | None = None, record_id: str | None = None
) -> web.Response:
    summaries = await service.requeue(stream_id, record_id)
    remaining = len(await quarantine_records(service.local, stream_id))
    status = 200 if all(s.error is None for s in summaries) else 207
    body = {"streams": [s.as_json() for s in summaries], "remaining": remaining}
    return json_response(body, status)


@_outcomes
async def requeue_all(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /$requeue [stream]: send the quarantined changes again, as current states."""
    params = _parse(RequeueInput, request)
    return await _run_requeue(_service(request), params.stream)


@_outcomes
async def requeue_stream(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /ChangesInfo/<id>/$requeue: one stream's quarantine."""
    _parse(NoInput, request)
    direction, rtype = _stream_id(request)
    return await _run_requeue(_service(request), ChangesInfo.stream_id(direction, rtype))


@_outcomes
async def requeue_record(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /SyncQuarantine/<id>/$requeue: one quarantined change."""
    _parse(NoInput, request)
    record_id = (request.get("route-params") or {}).get("id", "")
    return await _run_requeue(_service(request), record_id=record_id)


@_outcomes
async def reset_stream(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /ChangesInfo/<id>/$reset [version]: replay the stream from a version (backfill)."""
    params = _parse(ResetInput, request)
    direction, rtype = _stream_id(request)
    try:
        saved = await _service(request).reset(direction, rtype, params.version)
    except ValueError as exc:
        raise OperationError(422, "business-rule", str(exc), ["version"]) from None
    return json_response(saved.model_dump(mode="json", exclude_none=True))


@_outcomes
async def status(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """GET /$sync-status: checkpoint, head, lag, counters and errors of every stream."""
    _parse(SyncInput, request)
    return json_response(await sync_status(_service(request)))


@_outcomes
async def anonymize_preview(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /$anonymize: exactly what would leave the clinic for a resource (dry run).

    The body is the resource to preview; without a body, `?resourceType=&id=` names a resource
    of the clinic."""
    service = _service(request)
    body = request.get("resource")
    if body is not None:
        if not (isinstance(body, dict) and body.get("resourceType") and body.get("id")):
            raise OperationError(
                400, "required", "the body must be a resource with resourceType and id"
            )
        resource = body
    else:
        target = _parse(AnonymizeInput, request)
        if not (target.resourceType and target.id):
            raise OperationError(
                400, "required", "give a resource as the body, or resourceType and id parameters"
            )
        change = await service.read_local(target.resourceType, target.id)
        if change is None:
            raise OperationError(
                404, "not-found", f"{target.resourceType}/{target.id} does not exist"
            )
        resource = change.resource
    try:
        plan = (await service.configured()).plan
    except SyncError:  # headquarters unreachable: what was learned of its resources before
        plan = (await service.config.load()).plan
    return json_response(explain(resource, plan, service.key).to_dict())


@_outcomes
async def instances_overview(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """GET /$instances (global role): every registered clinic and its status."""
    _parse(NoInput, request)
    own = request["app"][own_aidbox_key]
    resp = await own.call("GET", "/AidboxInstance", params={"_count": "1000", "_sort": "id"})
    instances = []
    for entry in (resp.body or {}).get("entry", []):
        instance = AidboxInstance.model_validate(entry["resource"])
        instances.append(instance.model_dump(mode="json", exclude_none=True))
    return json_response({"instances": instances, "total": len(instances)})


def _caller_id(request: dict[str, Any]) -> str | None:
    """The id of the Client that called (Aidbox forwards it as `oauth/client`)."""
    return (request.get("oauth/client") or {}).get("id")


@_outcomes
async def sync_inventory(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """GET /$sync-inventory?type=&partitions=&partition=&after= (global role; registered,
    active clinics, by policy aidbox-sync-inventory): ids and content digests of one type the
    caller pushes, in its own namespace, a page at a time, for its `$reconcile`; 403 for any
    other type."""
    query = _parse(InventoryQuery, request)
    own = request["app"][own_aidbox_key]
    namespace = await caller_namespace(own, _caller_id(request), query.type)
    return json_response(await inventory(own, namespace, query))


@_outcomes
async def pull_changes(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """GET /$pull-changes?type=[&settle=true] | ?type=&version=lo,hi&_count=[&omit-resources=]
    (global role; registered, active clinics, by policy aidbox-sync-pull): the settled bound,
    or an offered type's changes in a settled window as the caller may see them
    (docs/pull.md)."""
    query = _parse(pull.ChangesQuery, request)
    app = request["app"]
    who = await pull.puller(app[own_aidbox_key], _caller_id(request), query.type)
    if query.version is None:
        wait = app[settings_key].settle_timeout if query.settle else None
        answer = await pull.head(app[watermark_key], wait)
    else:
        answer = await pull.changes(app[own_aidbox_key], app[watermark_key], who, query)
    return json_response({"type": query.type, **answer})


@_outcomes
async def pull_read(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """GET /$pull-read?type=&_id=a,b (global role; as $pull-changes): headquarters' current
    state of each id that exists and is in the caller's scope."""
    query = _parse(pull.ReadQuery, request)
    own = request["app"][own_aidbox_key]
    who = await pull.puller(own, _caller_id(request), query.type)
    return json_response({"type": query.type, **await pull.read(own, who, query)})


@_outcomes
async def register_instance(operation: dict[str, Any], request: dict[str, Any]) -> web.Response:
    """POST /$register-instance (global role; root, or whom an operator's policy lets): create
    or update a clinic's AidboxInstance and Client; a generated secret is answered once."""
    registration = _parse(Registration, request)
    try:
        done = await register(request["app"][own_aidbox_key], registration)
    except RegistrationConflict as exc:
        raise OperationError(409, "conflict", str(exc), ["id"]) from None
    except UnregistrableTypes as exc:
        raise OperationError(422, "business-rule", str(exc), ["types"]) from None
    except ValueError as exc:
        raise OperationError(422, "required", str(exc)) from None
    return json_response(done.as_json(), 201 if done.created else 200)


def register_operations(sdk: SDK, role: Role) -> None:
    """Declare the operations of `role` with the SDK (they become the App manifest's routes)."""
    if role is Role.LOCAL:
        sdk.operation(["POST"], ["$sync"])(sync_all)
        sdk.operation(["POST"], ["ChangesInfo", {"name": "id"}, "$sync"])(sync_stream)
        sdk.operation(["POST"], ["ChangesInfo", {"name": "id"}, "$reset"])(reset_stream)
        sdk.operation(["GET"], ["$sync-status"])(status)
        sdk.operation(["POST"], ["$requeue"])(requeue_all)
        sdk.operation(["POST"], ["$reconcile"])(reconcile)
        sdk.operation(["POST"], ["ChangesInfo", {"name": "id"}, "$requeue"])(requeue_stream)
        sdk.operation(["POST"], ["SyncQuarantine", {"name": "id"}, "$requeue"])(requeue_record)
        sdk.operation(["POST"], ["$anonymize"])(anonymize_preview)
    else:
        sdk.operation(["GET"], ["$instances"])(instances_overview)
        sdk.operation(["POST"], ["$register-instance"])(register_instance)
        sdk.operation(["GET"], ["$sync-inventory"])(sync_inventory)
        sdk.operation(["GET"], ["$pull-changes"])(pull_changes)
        sdk.operation(["GET"], ["$pull-read"])(pull_read)
