"""Which of headquarters' administrative resources go to which clinic (docs/pull.md, "Pull
scope").

A `SyncScope` row offers one type for pull and names the element paths whose values tie a
resource to countries or regions. The rule is a pure function of a resource, its type's scope
and the calling clinic's AidboxInstance, so that `$pull-changes` and `$pull-read` judge alike.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.model import INSTANCE_ID_PATTERN, AidboxInstance, ResourceTypeName
from app.registry.types import REGISTRABLE_TYPES

# What may be offered for pull: data types (app/registry/types.py) and the App's geography;
# never Aidbox's own resources (Client, AccessPolicy, ...) or conformance and terminology, so
# that a row created by mistake cannot hand clinics headquarters' secrets or configuration.
OFFERABLE_TYPES = REGISTRABLE_TYPES | {"AdministrativeArea"}

# The shape of an id a clinic's push gives: `<namespace>-<26 hex digits>`
# (app/anonymize/pseudonym.py). Such a resource is clinic data, even of an offered type.
PUSHED_ID = re.compile(INSTANCE_ID_PATTERN.removesuffix("$") + r"-[0-9a-f]{26}$")

# A dotted Aidbox-format element path (address.country); arrays are stepped through.
ScopePath = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")]


class SyncScope(BaseModel):
    """A type offered for pull (id = the type) and the paths that scope its resources."""

    model_config = ConfigDict(extra="ignore")
    resourceType: Literal["SyncScope"] = "SyncScope"
    id: str | None = None
    type: ResourceTypeName
    country: list[ScopePath] = Field(default_factory=list)
    region: list[ScopePath] = Field(default_factory=list)
    description: str | None = None

    @model_validator(mode="after")
    def _id_is_the_type(self) -> SyncScope:
        # The operations find a type's scope by id: a row under another id would scope nothing.
        if self.id is not None and self.id != self.type:
            raise ValueError("a SyncScope's id is its type")
        if self.type not in OFFERABLE_TYPES:
            raise ValueError(f"{self.type} may not be offered for pull (docs/pull.md)")
        return self


def _normal(value: str) -> str:
    return value.strip().casefold()


def values_at(resource: dict[str, Any], path: str) -> set[str]:
    """The non-blank string values at a dotted path, trimmed and case-folded; an array is
    stepped through at every step (`address.country` of every address)."""
    nodes: list[Any] = [resource]
    for key in path.split("."):
        found = [node.get(key) for node in nodes if isinstance(node, dict)]
        nodes = [item for v in found for item in (v if isinstance(v, list) else [v])]
    return {_normal(node) for node in nodes if isinstance(node, str) and node.strip()}


def _belongs(resource: dict[str, Any], paths: list[str], mine: str | None) -> bool:
    """No value at any path: every clinic's. Otherwise only a clinic that one value names."""
    named = set().union(*(values_at(resource, path) for path in paths))
    return not named or (mine is not None and _normal(mine) in named)


def in_scope(resource: dict[str, Any], scope: SyncScope, instance: AidboxInstance) -> bool:
    """Whether headquarters sends `resource`, of the scope's type, to the clinic `instance`.

    A resource with a pushed id is another clinic's data and never goes. Otherwise it goes
    unless its `country` paths name countries and none is the clinic's, or its `region` paths
    name regions and none is the clinic's (a clinic without a country gets only resources
    that name none).
    """
    if PUSHED_ID.fullmatch(str(resource.get("id") or "")):
        return False
    return _belongs(resource, scope.country, instance.country) and _belongs(
        resource, scope.region, instance.region
    )
