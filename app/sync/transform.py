"""A stream's transform: what a change becomes on its way to the target.

- Push anonymizes (docs/anonymization.md), before anything is queued: an `Outgoing` never holds
  an unanonymized body, nor any body at all, only the encoded entry. References to the types
  this clinic pulls keep headquarters' ids: those resources are headquarters' own (docs/pull.md,
  "References across the two directions").
- Pull copies: headquarters' administrative data reaches the clinic unchanged, ids included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from app.anonymize import Plan, PseudonymKey, anonymize_with_targets
from app.sync.bundle import Outgoing, find_references
from app.sync.feed import Change

# What the server writes itself (api/rest-api/crud/update.md): never copied from the source.
_SERVER_META = ("versionId", "lastUpdated")


class Transform(Protocol):
    """Turns a change into the write that makes the target reflect it."""

    def __call__(self, change: Change, *, if_absent: bool = False) -> Outgoing:
        """The PUT of the change's state (a create-if-absent with `if_absent`, for a missing
        reference target, so never a delete), or its DELETE."""


def _deletion(change: Change, target_id: str, if_absent: bool) -> Outgoing:
    assert not if_absent, "a missing target is written from its current state, not a delete"
    return Outgoing(change.identity(), "DELETE", change.resource_type, target_id, body=None)


@dataclass(frozen=True)
class Anonymize:
    """Push: the anonymized body under a pseudonymous id."""

    plan: Plan
    key: PseudonymKey

    def __call__(self, change: Change, *, if_absent: bool = False) -> Outgoing:
        """The write of `change` to headquarters."""
        if change.deleted:
            target = self.key.resource_id(change.resource_type, change.id)
            return _deletion(change, target, if_absent)
        # What the body references (but headquarters' own resources, never pushed on a
        # referrer's behalf), from the anonymizer's walk: a reference the profile removes
        # needs no target (one removed later with its element may still be listed, which
        # only orders the batch).
        body, depends_on = anonymize_with_targets(change.resource, self.plan, self.key)
        return Outgoing(
            change.identity(),
            "PUT",
            change.resource_type,
            body["id"],
            body=body,
            depends_on=depends_on,
            if_absent=if_absent,
        )


@dataclass(frozen=True)
class Copy:
    """Pull: the source's body as it is, under the same id."""

    def __call__(self, change: Change, *, if_absent: bool = False) -> Outgoing:
        """The write of `change` to the clinic."""
        if change.deleted:
            return _deletion(change, change.id, if_absent)
        body: dict[str, Any] = dict(change.resource)
        meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in _SERVER_META}
        if meta:
            body["meta"] = meta
        else:
            body.pop("meta", None)
        depends_on = {ref: ref[1] for ref in find_references(change.resource)}
        return Outgoing(
            change.identity(),
            "PUT",
            change.resource_type,
            change.id,
            body=body,
            depends_on=depends_on,
            if_absent=if_absent,
        )
