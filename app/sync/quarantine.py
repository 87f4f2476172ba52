"""Quarantine records (`SyncQuarantine` in the local Aidbox): what the global refused.

Only ids, version and the refusal reason are kept, never a body (docs/push.md). The record id
is derived from (stream, resource id, version), so a replay after a crash does not duplicate it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from app.aidbox.client import AidboxClient
from app.errors import SyncError, validation_problems
from app.model import QuarantineRecord
from app.sync.feed import ChangeId

_PAGE = 500  # records per page when listing


class QuarantineUnreadable(SyncError):
    """A SyncQuarantine record the App cannot read (edited in the console, or written by
    another release): which record and which fields, never their values."""

    def __init__(self, rec_id: str, problems: list[tuple[str, str]]) -> None:
        self.rec_id = rec_id
        self.problems = "; ".join(f"{where}: {message}" for where, message in problems)
        super().__init__(f"SyncQuarantine/{rec_id} is not a valid record ({self.problems})")

    @property
    def logged(self) -> str:
        # a record id is a hash of a local id (record_id), which log lines never carry
        return f"a SyncQuarantine record is not a valid record ({self.problems})"


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


async def records(
    local: AidboxClient, stream_id: str | None = None, rec_id: str | None = None
) -> list[QuarantineRecord]:
    """The quarantine records (all, of one stream, or the one of `rec_id`), by stream and
    oldest version first; read page by page."""
    found: list[QuarantineRecord] = []
    page = 1
    while True:
        params = {"_count": str(_PAGE), "_page": str(page), "_sort": "id"}
        resp = await local.call("GET", "/SyncQuarantine", params=params)
        entries = (resp.body or {}).get("entry") or []
        for entry in entries:
            stored = entry["resource"]
            # filtered before it is read, so that one broken record only fails the calls
            # that need it
            if stream_id in (None, stored.get("stream")) and rec_id in (None, stored.get("id")):
                found.append(_read(stored))
        if len(entries) < _PAGE:
            return sorted(found, key=lambda r: (r.stream, r.version))
        page += 1


def _read(stored: dict[str, Any]) -> QuarantineRecord:
    try:
        return QuarantineRecord.model_validate(stored)
    except ValidationError as exc:
        raise QuarantineUnreadable(
            str(stored.get("id")), validation_problems(exc, "SyncQuarantine")
        ) from None


async def release(local: AidboxClient, rec_id: str) -> None:
    """Remove a record whose change the global now holds (or that a newer one replaces)."""
    await local.call("DELETE", f"/SyncQuarantine/{rec_id}")
