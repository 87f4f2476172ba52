"""The App's custom resources (README, "What the App registers") as typed models.

Their Aidbox definitions (FHIRSchema) live in `manifest/resources/`; these models are what the
code reads and writes. Field names are the wire names (Aidbox format, camelCase).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A FHIR resource type name (R4 and custom types alike are PascalCase identifiers).
RESOURCE_TYPE_PATTERN = r"^[A-Z][A-Za-z0-9]{0,63}$"
ResourceTypeName = Annotated[str, Field(pattern=RESOURCE_TYPE_PATTERN)]
# A clinic's id (AidboxInstance, its Client, the prefix of its ids at the global). A FHIR id
# is [A-Za-z0-9\-\.]{1,64}; this one prefixes pseudonymous global ids, so it stays short.
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9\-]{0,23}$"
InstanceId = Annotated[str, Field(pattern=INSTANCE_ID_PATTERN)]


class Direction(StrEnum):
    """push: local → global (anonymized); pull: global → local (unchanged)."""

    PUSH = "push"
    PULL = "pull"


class _Resource(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Counters(BaseModel):
    """Totals for one stream since its checkpoint was created (or last reset)."""

    read: int = 0
    written: int = 0
    deleted: int = 0
    skipped: int = 0
    quarantined: int = 0

    def add(self, other: Counters) -> Counters:
        """Sum of two counter sets."""
        return Counters(**{k: getattr(self, k) + getattr(other, k) for k in Counters.model_fields})


class LastError(BaseModel):
    """The latest failure of a stream: a reason, never a resource body."""

    at: datetime
    message: str


class Lease(BaseModel):
    """Which runner may push a stream, and until when (renewed on every checkpoint)."""

    owner: str
    until: datetime


class LocalEdit(BaseModel):
    """A clinic's own write of a pulled resource (app/sync/local_edits.py)."""

    id: str
    version: int
    event: str
    at: datetime


class LocalEdits(BaseModel):
    """Pull streams: the clinic's edits of pulled resources, which headquarters overwrites."""

    checked: int = Field(0, ge=0, description="the clinic's version looked at up to")
    count: int = 0
    recent: list[LocalEdit] = Field(default_factory=list)


class ChangesInfo(_Resource):
    """Checkpoint and run facts of one stream; id = `<direction>-<type>`."""

    resourceType: Literal["ChangesInfo"] = "ChangesInfo"
    id: str
    direction: Direction
    type: ResourceTypeName
    version: int = Field(0, ge=0, description="last version fully applied on the target")
    fence: int = Field(0, ge=0, description="last fence token known written at the target")
    status: Literal["idle", "failed"] = "idle"
    lastStartedAt: datetime | None = None
    lastFinishedAt: datetime | None = None
    lastSuccessAt: datetime | None = None
    counters: Counters = Field(default_factory=Counters)
    lastError: LastError | None = None
    lease: Lease | None = None
    localEdits: LocalEdits | None = None
    meta: dict | None = Field(None, exclude=True)

    @staticmethod
    def stream_id(direction: Direction, resource_type: str) -> str:
        """The checkpoint id of a stream."""
        return f"{direction.value}-{resource_type}"

    @property
    def version_id(self) -> str | None:
        """meta.versionId, used for If-Match when advancing the checkpoint."""
        return (self.meta or {}).get("versionId")


class StreamConfig(BaseModel):
    """One configured stream."""

    model_config = ConfigDict(extra="forbid")

    type: ResourceTypeName
    direction: Direction
    enabled: bool = True
    # Lower runs first; referenced types (Patient) before referrers (Observation) keeps the
    # global's reference checks happy on the common path.
    order: int = 100


class SyncConfig(_Resource):
    """The clinic's sync configuration (singleton `SyncConfig/default`), editable in the console."""

    resourceType: Literal["SyncConfig"] = "SyncConfig"
    id: str = "default"
    streams: list[StreamConfig]
    profile: str = Field("safe-harbor", description="id of the AnonymizationProfile in force")

    @field_validator("streams")
    @classmethod
    def _unique_streams(cls, streams: list[StreamConfig]) -> list[StreamConfig]:
        seen: dict[str, Direction] = {}
        for s in streams:
            other = seen.get(s.type)
            if other is s.direction:
                raise ValueError(f"stream {s.direction.value} {s.type} is listed twice")
            if other is not None:
                # Headquarters is authoritative for what it sends down, and pushed data is
                # anonymized: a type flowing both ways would overwrite one with the other
                # (docs/pull.md, "One way only").
                raise ValueError(f"{s.type} is configured both to push and to pull")
            seen[s.type] = s.direction
        return streams

    def enabled_streams(self, direction: Direction | None = None) -> list[StreamConfig]:
        """Enabled streams in run order, optionally of one direction."""
        chosen = [
            s for s in self.streams if s.enabled and (direction is None or s.direction == direction)
        ]
        return sorted(chosen, key=lambda s: (s.order, s.type))


class QuarantineRecord(_Resource):
    """A change the target refused: ids, version and reason only, never the body."""

    resourceType: Literal["SyncQuarantine"] = "SyncQuarantine"
    id: str
    stream: str
    resourceId: str
    version: int
    reason: str
    at: datetime


InstanceStatus = Literal["active", "suspended"]


class AidboxInstance(_Resource):
    """A clinic registered in the global Aidbox; its Client has the same id (the global's
    access policy joins them by it)."""

    resourceType: Literal["AidboxInstance"] = "AidboxInstance"
    id: InstanceId
    name: str
    status: InstanceStatus
    client: dict = Field(description="Reference to the Client the clinic authenticates as")
    region: str | None = None
    country: str | None = None
    types: list[ResourceTypeName] = Field(
        default_factory=list, description="resource types the clinic may push"
    )
