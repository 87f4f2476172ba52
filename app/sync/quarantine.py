"""Quarantine records (`SyncQuarantine` in the local Aidbox): what the global refused.

Only ids, version and the refusal reason are kept, never a body (docs/push.md). The record id
is derived from (stream, resource id, version), so a replay after a crash does not duplicate it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from app.aidbox.client import AidboxClient
from app.model import QuarantineRecord
from app.sync.feed import ChangeId


def record_id(stream_id: str, change: ChangeId) -> str:
    """Deterministic, FHIR-id-safe record id."""
    raw = f"{stream_id}/{change.resource_type}/{change.id}/{change.version}".encode()
    return "q-" + hashlib.sha256(raw).hexdigest()[:40]


async def quarantine(local: AidboxClient, stream_id: str, change: ChangeId, reason: str) -> bool:
    """Store (or overwrite) the record of a refused change; True if it is new (a replay of
    the same refusal finds its record and counts nothing)."""
    rec = QuarantineRecord(
        id=record_id(stream_id, change),
        stream=stream_id,
        resourceId=f"{change.resource_type}/{change.id}",
        version=change.version,
        reason=reason[:500],
        at=datetime.now(UTC),
    )
    body = rec.model_dump(mode="json")
    resp = await local.call("PUT", f"/SyncQuarantine/{rec.id}", json=body)
    return resp.status == 201  # api/rest-api/crud/update.md: 201 created, 200 updated
