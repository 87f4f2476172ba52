"""Clinics pushing into one headquarters at once (issue: a fleet must not fail runs under
normal contention). Aidbox runs a transaction SERIALIZABLE unless `x-max-isolation-level`
lowers it, and answers 412 to one it cannot serialize (api/batch-transaction.md, "Change
transaction isolation level"; api/rest-api/crud/update.md, "Isolation levels"); the push's
transactions ask for read-committed (docs/push.md, "Isolation"), so concurrent clinics, whose
writes never touch the same resource, do not abort each other."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp
from tests.support.clinic import FEMALE, NEXT_TXID, clinic_key, resources, store_rows

BACKLOG = 150  # Patients per clinic: 30 transactions of the tests' 5 entries each


async def _backlog(root: AidboxClient, prefix: str) -> None:
    """Single writes, one txid each (Aidbox's storage tables, database/overview.md)."""
    rows = f"SELECT '{prefix}' || g, {NEXT_TXID}, {FEMALE} FROM generate_series(1, {BACKLOG}) g"
    await store_rows(root, "Patient", rows)


async def test_two_clinics_pushing_at_once_never_abort_each_other(
    sync_app: RunningApp,
    b_app: RunningApp,
    local_root: AidboxClient,
    b_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aidbox_sync.http")
    await _backlog(local_root, "a")
    await _backlog(b_root, "b")
    runs = await asyncio.gather(sync_app.service.sync(["Patient"]), b_app.service.sync(["Patient"]))
    assert [[(s.error, s.counters.written) for s in run] for run in runs] == [
        [(None, BACKLOG)],
        [(None, BACKLOG)],
    ]
    conflicts = [r.getMessage() for r in caplog.records if "-> 412" in r.getMessage()]
    assert conflicts == []  # not even one retried
    held = set(await resources(global_root, "Patient"))
    for clinic, prefix in (("clinic-a", "a"), ("clinic-b", "b")):
        key = clinic_key(clinic)
        assert {key.resource_id("Patient", f"{prefix}{g}") for g in range(1, BACKLOG + 1)} <= held
