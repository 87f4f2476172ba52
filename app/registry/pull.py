"""Headquarters' side of pull (docs/pull.md): the settled bound of its changes, the changes of
an offered type in a settled window, and the current state of resources, each as the calling
clinic may see it.

Only a registered, active clinic may call (policy aidbox-sync-pull and `caller_instance`),
only for a type headquarters offers (a `SyncScope` row) and that the clinic does not push (a
type flows one way only), and what it receives is judged by `in_scope` (scope.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from app.aidbox.client import AidboxClient
from app.errors import SyncError
from app.model import AidboxInstance, ResourceTypeName
from app.registry.inventory import caller_instance
from app.registry.scope import PUSHED_ID, SyncScope, in_scope
from app.sync.feed import HIDDEN, FeedError
from app.sync.source import HEADQUARTERS_MAX_PROBE
from app.sync.watermark import Watermark

log = logging.getLogger("aidbox_sync.pull")

MAX_COUNT = 10_000  # entries per window read with resources
MAX_IDS = 100  # ids per $pull-read
# A FHIR id (FHIR R4 datatypes, "id").
_FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"


class NotOffered(SyncError):
    """The type is not offered for pull to this clinic."""


class ScopeError(SyncError):
    """The type's SyncScope row is invalid (an operator's edit): nothing can be judged."""


class Unsettled(SyncError):
    """A window reaches above the settled bound: its content could still grow."""


class ChangesQuery(BaseModel):
    """`$pull-changes` parameters: without `version`, the settled bound (waiting a little for
    open transactions with `settle`); with `version=lo,hi`, the changes of that window."""

    model_config = ConfigDict(extra="forbid")
    type: ResourceTypeName
    version: tuple[int, int] | None = None
    count: int = Field(1000, ge=1, le=HEADQUARTERS_MAX_PROBE, alias="_count")
    omit_resources: bool = Field(False, alias="omit-resources")
    settle: bool = False

    @model_validator(mode="after")
    def _bodies_bounded(self) -> ChangesQuery:
        # ids alone are small: a transaction larger than a page is counted by its ids
        # (app/sync/feed.py), and a country's subdivisions may be thousands in one import
        if not self.omit_resources and self.count > MAX_COUNT:
            raise ValueError(f"_count: at most {MAX_COUNT} with resources")
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _window(cls, raw: object) -> object:
        if not isinstance(raw, str):
            return raw
        found = re.fullmatch(r"([0-9]{1,19}),([0-9]{1,19})", raw)
        if not found or int(found[1]) > int(found[2]):
            raise ValueError("version must be lo,hi: two integers, lo <= hi")
        return int(found[1]), int(found[2])


class ReadQuery(BaseModel):
    """`$pull-read` parameters: a type and up to MAX_IDS ids, comma-separated in `_id`."""

    model_config = ConfigDict(extra="forbid")
    type: ResourceTypeName
    ids: list[str] = Field(alias="_id", min_length=1, max_length=MAX_IDS)

    @field_validator("ids", mode="before")
    @classmethod
    def _split(cls, raw: object) -> object:
        return raw.split(",") if isinstance(raw, str) else raw

    @field_validator("ids")
    @classmethod
    def _fhir_ids(cls, ids: list[str]) -> list[str]:
        if not all(re.fullmatch(_FHIR_ID, i) for i in ids):
            raise ValueError("each id must be a FHIR id")
        return ids


@dataclass(frozen=True)
class Puller:
    """A registered, active clinic pulling one offered type, and that type's scope."""

    instance: AidboxInstance
    scope: SyncScope

    def sees(self, resource: dict[str, Any]) -> bool:
        """Whether this clinic receives `resource` (scope.py)."""
        return in_scope(resource, self.scope, self.instance)


async def puller(own: AidboxClient, client_id: str | None, resource_type: str) -> Puller:
    """The calling clinic and the scope of the type it asks for (NotAClinic, NotOffered)."""
    instance = await caller_instance(own, client_id)
    if resource_type in instance.types:
        raise NotOffered(f"clinic {instance.id} pushes {resource_type}: it cannot pull it")
    resp = await own.call("GET", f"/SyncScope/{resource_type}", accept=(404, 410))
    if resp.status != 200:
        raise NotOffered(f"{resource_type} is not offered for pull")
    try:
        scope = SyncScope.model_validate(resp.body)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "id" for e in exc.errors())
        log.error("SyncScope/%s is invalid (%s): the type is not served", resource_type, fields)
        raise ScopeError(f"SyncScope/{resource_type} is invalid: {fields}") from None
    return Puller(instance, scope)


async def head(watermark: Watermark, settle: float | None) -> dict[str, Any]:
    """The settled bound of headquarters' changes, and whether a newer head waits to settle;
    with `settle`, first wait up to that many seconds for transactions open now."""
    bound = await (watermark.settle(settle) if settle is not None else watermark.advance())
    return {"version": bound, "pending": watermark.pending}


def _as_seen(entry: Any, resource_type: str, who: Puller, *, judged: bool) -> Any:
    """An entry as the clinic receives it: as Aidbox answered it, or, where the clinic may not
    see the resource, a deletion (a resource that moved out of its scope must disappear
    there); another clinic's resource, which no clinic ever holds, is hidden, its id
    included. Either keeps the window's count. Without `judged` (ids only, nothing to judge
    the scope by) only the hiding applies."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        return entry
    if PUSHED_ID.match(str(resource.get("id"))):
        return {"event": HIDDEN}
    if not judged or who.sees(resource):
        return entry
    version_id = (resource.get("meta") or {}).get("versionId")
    meta = {"versionId": version_id} if version_id else {}
    return {
        "event": "deleted",
        "resource": {"resourceType": resource_type, "id": resource.get("id"), "meta": meta},
    }


async def changes(
    own: AidboxClient, watermark: Watermark, who: Puller, q: ChangesQuery
) -> dict[str, Any]:
    """One settled window (lo, hi] of the type's changes: one entry per entry Aidbox answers,
    in its order (the clinic counts them to split windows), each as the clinic may see it.
    With `omit_resources` entries carry no body to judge the scope by: only other clinics'
    ids are hidden."""
    assert q.version is not None
    lo, hi = q.version
    if hi > watermark.settled and hi > await watermark.advance():
        raise Unsettled(f"version {hi} is above the settled bound {watermark.settled}")
    params = {"version": f"{lo},{hi}", "_count": str(q.count)}
    if q.omit_resources:
        params["omit-resources"] = "true"
    resp = await own.call("GET", f"/{q.type}/$changes", params=params)
    if resp.status == 304:
        return {"version": hi, "changes": []}
    raw = resp.body.get("changes") if isinstance(resp.body, dict) else None
    if not isinstance(raw, list):  # only 304 means "nothing" (app/sync/feed.py)
        raise FeedError(f"{q.type} $changes answered 200 without changes")
    judged = not q.omit_resources
    return {"version": hi, "changes": [_as_seen(e, q.type, who, judged=judged) for e in raw]}


async def read(own: AidboxClient, who: Puller, q: ReadQuery) -> dict[str, Any]:
    """The current state of each id that exists and that the clinic may see; others are
    left out."""
    params = {"_id": ",".join(q.ids), "_count": str(len(q.ids))}
    resp = await own.call("GET", f"/{q.type}", params=params)
    found = [e.get("resource") for e in (resp.body or {}).get("entry") or []]
    return {"resources": [r for r in found if isinstance(r, dict) and who.sees(r)]}
