"""What the global refuses (docs/push.md, "Refusals"): a version the clinic has replaced since
is not a poison resource; only a refusal of the current state is quarantined, once."""

from __future__ import annotations

import logging

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.integration.test_push import sync
from tests.support.clinic import (
    KEY,
    encounter,
    expected_global,
    global_state,
    observation,
    patient,
    resources,
)
from tests.support.headquarters import Headquarters

# Small transactions, so that a few dozen changes make a backlog of many windows.
SMALL = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "4"}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("aidbox_sync") and r.levelno >= logging.ERROR
    ]


async def _put(client: AidboxClient, body: dict) -> None:
    await client.call("PUT", f"/{body['resourceType']}/{body['id']}", json=body)


def _of_encounter(oid: str, eid: str) -> dict:
    return {**observation(oid, "p1"), "encounter": {"resourceType": "Encounter", "id": eid}}


async def test_parents_deleted_with_their_children_in_a_long_backlog_quarantine_nothing(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await _put(local_root, patient("p1"))
    encounters = [f"e{i}" for i in range(6)]
    for eid in encounters:
        await _put(local_root, encounter(eid, "p1"))
        for j in range(3):
            await _put(local_root, _of_encounter(f"{eid}o{j}", eid))
    for eid in encounters:
        await _put(local_root, _of_encounter(f"{eid}o0", eid) | {"status": "amended"})
    # Half the parents go after their children, half before them: a clinic does either.
    for n, eid in enumerate(encounters):
        children = [f"/Observation/{eid}o{j}" for j in range(3)]
        order = [*children, f"/Encounter/{eid}"] if n % 2 else [f"/Encounter/{eid}", *children]
        for path in order:
            await local_root.call("DELETE", path)
    types = ["Patient", "Encounter", "Observation"]
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        # The parents' stream first: each Observation's older versions then name an Encounter
        # that headquarters has already deleted, and that the clinic no longer has either.
        await sync(local_root, "/ChangesInfo/push-Patient/$sync")
        await sync(local_root, "/ChangesInfo/push-Encounter/$sync")
        pushed = await sync(local_root, "/ChangesInfo/push-Observation/$sync")
    assert pushed["push-Observation"]["quarantined"] == 0
    assert await resources(local_root, "SyncQuarantine") == {}
    assert _errors(caplog) == []
    assert await global_state(global_root, types) == await expected_global(local_root, types)


async def test_a_refused_version_replaced_since_sends_the_current_state_instead(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # Headquarters refuses preliminary Observations; the clinic finalised this one later.
    global_aidbox.faults.reject("Observation", where={"status": "preliminary"})
    await _put(local_root, patient("p1"))
    await _put(local_root, observation("o1", "p1") | {"status": "preliminary"})
    for n in range(12):  # windows between the two versions
        await _put(local_root, observation(f"x{n}", "p1"))
    await _put(local_root, observation("o1", "p1"))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        pushed = await sync(local_root)
    assert pushed["push-Observation"]["quarantined"] == 0
    assert await resources(local_root, "SyncQuarantine") == {}
    assert _errors(caplog) == []
    held = await resources(global_root, "Observation")
    assert held[KEY.resource_id("Observation", "o1")]["status"] == "final"
    types = ["Patient", "Observation"]
    assert await global_state(global_root, types) == await expected_global(local_root, types)


async def test_a_refused_current_state_is_quarantined_once_and_counted_once(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bad = KEY.resource_id("Observation", "o1")
    global_aidbox.faults.reject("Observation", id=bad, diagnostics="value out of range")
    await _put(local_root, patient("p1"))
    await _put(local_root, observation("o1", "p1"))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        first = await sync(local_root, "/ChangesInfo/push-Observation/$sync")
        await local_root.call("POST", "/ChangesInfo/push-Observation/$reset")
        replay = await sync(local_root, "/ChangesInfo/push-Observation/$sync")
    assert first["push-Observation"]["quarantined"] == 1
    assert replay["push-Observation"]["quarantined"] == 0  # the same refusal, seen before
    assert len(await resources(local_root, "SyncQuarantine")) == 1
    [line] = _errors(caplog)
    assert "push-Observation" in line and f"Observation/{bad}" in line
    # what headquarters said may quote values: it stays in the clinic's record, and the log
    # line, which may leave the clinic, says the status and the code
    assert "value out of range" not in line and "422" in line
    [record] = (await resources(local_root, "SyncQuarantine")).values()
    assert "value out of range" in record["reason"]


async def test_an_entry_larger_than_headquarters_takes_is_quarantined_in_the_clinic_unsent(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Headquarters' policy would refuse the whole transaction (403), run after run
    # (docs/access-control.md, "Size limits and cost"): the clinic keeps the entry back instead.
    caplog.set_level(logging.INFO)
    await _put(local_root, patient("p1"))
    heart_rate = {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    large = observation("o1", "p1") | {"component": [heart_rate] * 10_000}  # ~600 KB sent
    await _put(local_root, large)
    await _put(local_root, observation("o2", "p1"))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        pushed = await sync(local_root, "/ChangesInfo/push-Observation/$sync")
    assert pushed["push-Observation"]["quarantined"] == 1
    held = await resources(global_root, "Observation")
    assert KEY.resource_id("Observation", "o1") not in held
    assert KEY.resource_id("Observation", "o2") in held
    [record] = (await resources(local_root, "SyncQuarantine")).values()
    assert record["reason"].startswith("too large: the entry is ")
    [line] = _errors(caplog)
    assert "too large" in line


async def test_a_referenced_type_without_a_push_stream_is_never_pushed_on_its_behalf(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # Organization has no push stream (nor a pull stream: headquarters refuses to hand down a
    # type a clinic may push): the clinic never sends it, even with the right to.
    await headquarters.register("clinic-a", types=["Patient", "Observation", "Organization"])
    await _put(local_root, {"resourceType": "Organization", "id": "org1", "name": "Lab"})
    await _put(local_root, patient("p1"))
    performed = observation("o1", "p1") | {
        "performer": [{"resourceType": "Organization", "id": "org1"}]
    }
    await _put(local_root, performed)
    await _put(local_root, observation("o2", "p1"))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        config = (await local_root.call("GET", "/SyncConfig/default")).body
        config["streams"] = [s for s in config["streams"] if s["type"] != "Organization"]
        await local_root.call("PUT", "/SyncConfig/default", json=config)
        pushed = await sync(local_root)
    assert await resources(global_root, "Organization") == {}
    assert pushed["push-Observation"]["written"] == 1  # o2; o1 waits for its profile rule
    [record] = (await resources(local_root, "SyncQuarantine")).values()
    assert record["resourceId"] == "Observation/o1"
    assert "Organization" in record["reason"] and "does not exist" in record["reason"]


async def test_a_global_refusing_every_observation_stops_the_stream_and_requeue_recovers(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A new FHIRSchema at headquarters refuses every Observation the clinics send.
    caplog.set_level(logging.INFO)
    global_aidbox.faults.reject("Observation", diagnostics="Observation.note is required")
    await _put(local_root, patient("p1"))
    for n in range(30):
        await _put(local_root, observation(f"o{n}", "p1", value=float(60 + n)))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        stopped = (await local_root.call("POST", "/$sync")).body["streams"]
        by_stream = {s["stream"]: s for s in stopped}
        assert "refused by headquarters" in by_stream["push-Observation"]["error"]
        assert "Observation.note is required" in by_stream["push-Observation"]["error"]
        assert "error" not in by_stream["push-Patient"]
        status = (await local_root.call("GET", "/$sync-status")).body["streams"]
        [obs] = [s for s in status if s["stream"] == "push-Observation"]
        assert obs["status"] == "failed"
        assert "refused by headquarters" in obs["lastError"]["message"]
        assert obs["inQuarantine"] == 16
        # Four transactions of four were judged too few to tell; the fifth opened the breaker.
        early = await resources(local_root, "SyncQuarantine")
        assert len(early) == 16
        # the clinic's answers say what headquarters said; the logs, which may leave the
        # clinic, its codes only (a diagnostic may quote the values refused)
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("aidbox_sync")]
        assert any("refused by headquarters" in line for line in logged)
        assert not any("Observation.note is required" in line for line in logged)

        global_aidbox.faults.clear()  # headquarters fixes its schema
        await sync(local_root)  # the stream goes on from its checkpoint
        requeued = await local_root.call("POST", "/ChangesInfo/push-Observation/$requeue")
        status = (await local_root.call("GET", "/$sync-status")).body["streams"]
    assert requeued.status == 200, requeued.body
    assert requeued.body["remaining"] == 0
    [summary] = requeued.body["streams"]
    assert summary["stream"] == "push-Observation" and summary["written"] == 16
    assert await resources(local_root, "SyncQuarantine") == {}
    types = ["Patient", "Observation"]
    assert await global_state(global_root, types) == await expected_global(local_root, types)
    [obs] = [s for s in status if s["stream"] == "push-Observation"]
    assert obs["status"] == "idle" and obs["inQuarantine"] == 0
    for gid in await resources(global_root, "Observation"):
        history = await global_root.call("GET", f"/Observation/{gid}/_history")
        assert len(history.body["entry"]) == 1  # each written once: nothing twice


async def test_one_quarantined_change_is_requeued_as_the_clinics_current_state(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    bad = KEY.resource_id("Observation", "o1")
    global_aidbox.faults.reject("Observation", id=bad)
    await _put(local_root, patient("p1"))
    await _put(local_root, observation("o1", "p1", value=70.0))
    async with headquarters.clinic_app(local_aidbox.url, **SMALL):
        await sync(local_root)
        [record] = (await resources(local_root, "SyncQuarantine")).values()
        await _put(local_root, observation("o1", "p1", value=75.0))  # corrected since
        global_aidbox.faults.clear()
        done = await local_root.call("POST", f"/SyncQuarantine/{record['id']}/$requeue")
        assert done.status == 200 and done.body["remaining"] == 0
        missing = await local_root.request("POST", "/SyncQuarantine/q-none/$requeue")
    assert missing.status == 404 and missing.body["resourceType"] == "OperationOutcome"
    held = (await resources(global_root, "Observation"))[bad]
    assert held["value"]["Quantity"]["value"] == 75.0


async def test_logs_name_no_local_id_even_when_the_clinic_fails_requests(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Logs leave the clinic; a local id may be a medical record number.
    caplog.set_level(logging.DEBUG)
    mrns = [f"mrn-40{n}17" for n in range(4)]
    global_aidbox.faults.reject("Observation", where={"status": "preliminary"})
    await _put(local_root, patient("p1"))
    for mrn in mrns:
        await _put(local_root, observation(mrn, "p1") | {"status": "preliminary"})
    async with headquarters.clinic_app(local_aidbox.url, **SMALL) as app:
        # The App reads the changes and re-reads each refused Observation in the clinic (a
        # search by _id), which fails now and then.
        local_aidbox.faults.set_random(
            error_rate=0.4, drop_rate=0.2, seed=1, methods=["GET"], path_prefix="/Observation"
        )
        [summary] = await app.service.sync(["Observation"])
        local_aidbox.faults.clear()
    assert summary.error is None and summary.counters.quarantined == len(mrns)
    app_log = [r.getMessage() for r in caplog.records if r.name.startswith("aidbox_sync")]
    assert any("retry" in line for line in app_log)  # the failing reads were logged
    assert [line for line in app_log if any(mrn in line for mrn in mrns)] == []
    records = await resources(local_root, "SyncQuarantine")
    assert {r["resourceId"] for r in records.values()} == {f"Observation/{m}" for m in mrns}
