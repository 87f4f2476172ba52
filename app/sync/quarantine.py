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
        resourceId=change.reference,
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


class Superseded:
    """A stream's quarantine records during a run, by resource, so that a record goes once
    the target holds a later state of its resource, written by the run: that state replaced
    the refused one there, as `$requeue` would have (docs/push.md, "Quarantine and
    $requeue")."""

    def __init__(self, local: AidboxClient, stream_id: str, held: list[QuarantineRecord]) -> None:
        self._local = local
        self._stream_id = stream_id
        self._by_resource: dict[str, dict[str, int]] = {}  # "Type/id" -> record id -> version
        for record in held:
            self._by_resource.setdefault(record.resourceId, {})[record.id] = record.version

    @classmethod
    async def load(cls, local: AidboxClient, stream_id: str) -> Superseded:
        """The stream's records now (read page by page, records()); none when one of them
        cannot be read (`$sync-status` says which): the run goes on, `$requeue` releases."""
        try:
            held = await records(local, stream_id)
        except QuarantineUnreadable:
            held = []
        return cls(local, stream_id, held)

    def add(self, change: ChangeId) -> None:
        """A record made during the run."""
        kept = self._by_resource.setdefault(change.reference, {})
        kept[record_id(self._stream_id, change)] = change.version

    async def written(self, changes: list[ChangeId]) -> None:
        """The target holds these states now: release the records of their resources at or
        below their versions."""
        if not self._by_resource:
            return  # most runs: nothing is quarantined
        for change in changes:
            kept = self._by_resource.get(change.reference)
            if not kept:
                continue
            for rec_id, version in list(kept.items()):
                if version <= change.version:
                    await release(self._local, rec_id)
                    del kept[rec_id]
