"""What headquarters holds of one clinic: the ids and content digests of one resource type in
the clinic's namespace, page by page, for the clinic's `$reconcile` (docs/push.md,
"Reconciliation").

The clinic compares them with its own anonymized resources. Both sides split a type into the
same partitions of the id space, so that neither holds a whole type in memory: a global id is
`<namespace>-<26 hex digits>` (app/anonymize/pseudonym.py), and its partition is its first 8
hex digits modulo the number of partitions.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.aidbox.client import AidboxClient
from app.aidbox.psql import rows, table
from app.errors import SyncError
from app.model import INSTANCE_ID_PATTERN, AidboxInstance, ResourceTypeName
from app.registry.types import REGISTRABLE_TYPES
from app.sync.bundle import content_digest

PAGE = 1000  # ids per page
_HEX = 26  # hex digits after the namespace (pseudonym.py)


class InventoryQuery(BaseModel):
    """`$sync-inventory` parameters: a type, one partition of its id space, a cursor."""

    model_config = ConfigDict(extra="forbid")
    type: ResourceTypeName
    partitions: int = Field(1, ge=1, le=65_536)
    partition: int = Field(0, ge=0)
    after: str = Field("", pattern=r"^[A-Za-z0-9\-.]{0,64}$", description="last id of a page")

    @model_validator(mode="after")
    def _partition_exists(self) -> InventoryQuery:
        if self.partition >= self.partitions:
            raise ValueError("partition must be below partitions")
        return self


class NotAClinic(SyncError):
    """The caller is not a registered, active clinic."""


async def caller_instance(own: AidboxClient, client_id: str | None) -> AidboxInstance:
    """The AidboxInstance of the calling clinic, if its Client is that of an active one (the
    Client and the instance share the id, instances.py)."""
    if not client_id or not re.fullmatch(INSTANCE_ID_PATTERN, client_id):
        raise NotAClinic("the caller is not a registered clinic")
    resp = await own.call("GET", f"/AidboxInstance/{client_id}", accept=(404, 410))
    if resp.status != 200:
        raise NotAClinic("the caller is not a registered clinic")
    instance = AidboxInstance.model_validate(resp.body)
    if instance.status != "active":
        raise NotAClinic(f"clinic {client_id} is not active")
    return instance


class NotPushed(SyncError):
    """The calling clinic may not push the type it asks about: it holds none of it here."""


async def caller_namespace(own: AidboxClient, client_id: str | None, resource_type: str) -> str:
    """The namespace of the calling clinic (its instance id, caller_instance), if it may push
    `resource_type`: one of its registered `types` that is clinical data, as the clinics'
    policy requires of every write (docs/access-control.md, "Registrable types"). Any other
    type is none of its business, and reaches no query: no table of Aidbox's own (`Client`,
    `AccessPolicy`) is read, nor a name that is no table."""
    instance = await caller_instance(own, client_id)
    if resource_type not in instance.types or resource_type not in REGISTRABLE_TYPES:
        raise NotPushed(f"clinic {instance.id} does not push {resource_type}")
    return instance.id


def partition_of(global_id: str, namespace: str, partitions: int) -> int:
    """The partition of a global id of the namespace (the same rule as the query below)."""
    start = len(namespace) + 1
    return int(global_id[start : start + 8], 16) % partitions


def _query(namespace: str, q: InventoryQuery) -> str:
    # Only validated names reach the text: a type name, an instance id, a FHIR id.
    shape = f"^{namespace}-[0-9a-f]{{{_HEX}}}$"
    start = len(namespace) + 2  # SQL strings count from 1
    part = f"('x' || substr(id, {start}, 8))::bit(32)::bigint % {q.partitions}"
    return (
        f"SELECT id, resource FROM {table(q.type)} "
        f"WHERE id > '{q.after}' AND id LIKE '{namespace}-%' "
        f"AND CASE WHEN id ~ '{shape}' THEN {part} = {q.partition} ELSE false END "
        f"ORDER BY id LIMIT {PAGE}"
    )


async def inventory(own: AidboxClient, namespace: str, q: InventoryQuery) -> dict[str, Any]:
    """One page: `items` [{id, digest}] in id order, and `next` (the cursor of the next page,
    or null after the last)."""
    found = await rows(own, _query(namespace, q))
    items = [{"id": r["id"], "digest": content_digest(r["resource"])} for r in found]
    last = items[-1]["id"] if len(items) == PAGE else None
    return {"type": q.type, "partition": q.partition, "items": items, "next": last}
