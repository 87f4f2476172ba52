"""Turns a local change into what is sent to the global: the anonymized body and its id.

Anonymization happens here, before anything is queued (docs/anonymization.md): an `Outgoing` never
holds an unanonymized body, nor any body at all, only the encoded entry.
"""

from __future__ import annotations

from app.anonymize import Plan, PseudonymKey, anonymize
from app.sync.bundle import Outgoing, find_references
from app.sync.feed import Change


def to_outgoing(
    change: Change, plan: Plan, key: PseudonymKey, *, if_absent: bool = False
) -> Outgoing:
    """The write that makes the global reflect `change` (PUT anonymized body, or DELETE).

    `if_absent` turns the PUT into a create that leaves an existing resource as it is (for a
    missing reference target, which the clinic still has, so never a delete).
    """
    target_id = key.resource_id(change.resource_type, change.id)
    if change.deleted:
        assert not if_absent, "a missing target is pushed from its current state, not a delete"
        return Outgoing(change.identity(), "DELETE", change.resource_type, target_id, body=None)
    body = anonymize(change.resource, plan, key)
    depends_on = {
        (rtype, key.resource_id(rtype, local_id)): local_id
        for rtype, local_id in find_references(change.resource)
    }
    return Outgoing(
        change.identity(),
        "PUT",
        change.resource_type,
        body["id"],
        body=body,
        depends_on=depends_on,
        if_absent=if_absent,
    )
