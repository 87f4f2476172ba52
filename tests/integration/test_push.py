"""Push pipeline over real HTTP: emulated local + emulated global + the App (README, "How push
works")."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from aidbox_emulator import Emulator
from aidbox_emulator.faults import RequestHold
from app.aidbox.client import AidboxClient
from app.aidbox.psql import rows
from app.sync.stream import RunSummary
from tests.phi.scanner import find_planted
from tests.support.apps import RunningApp
from tests.support.clinic import (
    KEY,
    bulk_load,
    encounter,
    expected_global,
    global_state,
    last_txid,
    observation,
    patient,
    questionnaire_response,
    resources,
)
from tests.support.headquarters import Headquarters

TYPES = ["Patient", "Encounter", "Observation", "QuestionnaireResponse"]
PHI = ["Smith", "Alice", "555-0100", "1980-04-12", "Elm Street", "Springfield", "alice@example.org"]


async def sync(local_root: AidboxClient, path: str = "/$sync") -> dict:
    """Run a sync through the local Aidbox's operation; fail on any stream error."""
    resp = await local_root.call("POST", path)
    errors = [s for s in resp.body["streams"] if s.get("error")]
    assert not errors, errors
    return {s["stream"]: s for s in resp.body["streams"]}


async def seed_clinic(local_root: AidboxClient) -> None:
    for body in (
        patient("p1"),
        patient("p2", family="Jones"),
        encounter("e1", "p1"),
        observation("o1", "p1"),
        observation("o2", "p2"),
        questionnaire_response("q1", "p1"),
    ):
        await local_root.call("PUT", f"/{body['resourceType']}/{body['id']}", json=body)


async def test_create_update_delete_reach_the_global_anonymized(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await seed_clinic(local_root)
    first = await sync(local_root)
    assert first["push-Patient"]["written"] == 2
    assert await global_state(global_root, TYPES) == await expected_global(local_root, TYPES)

    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="other"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1", value=90))
    await local_root.call("DELETE", "/Observation/o2")
    await sync(local_root)

    held = await global_state(global_root, TYPES)
    assert held == await expected_global(local_root, TYPES)
    assert KEY.resource_id("Observation", "o2") not in held["Observation"]
    gone = await global_root.request("GET", f"/Observation/{KEY.resource_id('Observation', 'o2')}")
    assert gone.status == 410
    assert find_planted(PHI, held) == []
    assert find_planted(PHI, caplog.text) == []


async def test_late_commit_is_not_missed(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    local_aidbox: Emulator,
) -> None:
    # txid is taken at transaction start; a lower txid can commit after a higher
    # (api/other/changes-api.md, "Possible Race Condition"). The two writers run at
    # read-committed (api/batch-transaction.md, x-max-isolation-level) so that SERIALIZABLE
    # cannot abort one of them: the race, not a conflict, is under test.
    rc = {"x-max-isolation-level": "read-committed"}
    hold = local_aidbox.faults.hold_next_write("Patient")
    late = asyncio.create_task(
        local_root.call("PUT", "/Patient/late", json=patient("late"), headers=rc)
    )
    late_txid = await hold.txid_taken()
    await local_root.call("PUT", "/Patient/early", json=patient("early"), headers=rc)

    summary = await sync(local_root)
    # The open transaction keeps the window unsettled: the checkpoint must stay below it.
    assert summary["push-Patient"]["version"] < late_txid

    hold.release()
    await late
    await sync(local_root)
    arrived = await resources(global_root, "Patient")
    assert {KEY.resource_id("Patient", "late"), KEY.resource_id("Patient", "early")} <= set(arrived)


async def test_unchanged_anonymized_body_is_not_resent(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await sync(local_root)
    before = await last_txid(global_root)
    # Only PHI changes: the anonymized body is the same.
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", family="Brown"))
    summary = await sync(local_root)
    assert summary["push-Patient"]["skipped"] == 1
    assert await last_txid(global_root) == before


async def test_idle_system_writes_nothing_to_the_global(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await seed_clinic(local_root)
    await sync(local_root)
    before = await last_txid(global_root)
    for _ in range(3):
        await sync(local_root)
    assert await last_txid(global_root) == before


async def test_observation_ahead_of_its_patient_brings_the_patient(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    summary = await sync(local_root, "/ChangesInfo/push-Observation/$sync")
    assert summary["push-Observation"]["written"] == 1
    assert summary["push-Observation"]["quarantined"] == 0
    assert KEY.resource_id("Patient", "p1") in await resources(global_root, "Patient")

    brought = await resources(global_root, "Patient")
    # Its own stream still writes it, the same body: a create on a referrer's behalf is not
    # taken for sent (test_a_target_created_on_a_referrers_behalf_is_never_taken_for_sent).
    later = await sync(local_root, "/ChangesInfo/push-Patient/$sync")
    assert later["push-Patient"]["written"] == 1
    assert await resources(global_root, "Patient") == brought


async def test_a_full_batch_of_the_largest_size_is_accepted_by_headquarters(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The clinics' policy caps a bundle's entries (docs/access-control.md): the App's largest
    # batch, its run's first transaction (fence token, reserve) included, stays within it
    # (helper-32's review: 1,000 entries and the fence's were refused).
    await bulk_load(local_root, "Patient", [f"p{n}" for n in range(1000)])
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "1000"}
    async with headquarters.clinic_app(local_aidbox.url, **env) as app:
        [run] = await app.service.sync(["Patient"])
    assert run.error is None, run.error
    assert len(await resources(global_root, "Patient")) == 1000


async def test_targets_created_on_referrers_behalf_never_grow_a_transaction_past_a_batch(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each Observation refers to a Patient headquarters lacks: each is created on its behalf
    # in the Observation's transaction, and a batch they outgrow goes as batches.
    for n in range(4):
        await local_root.call("PUT", f"/Patient/p{n}", json=patient(f"p{n}"))
        await local_root.call("PUT", f"/Observation/o{n}", json=observation(f"o{n}", f"p{n}"))
    sizes: list[int] = []
    carry_out = Emulator._carry_out

    async def counted(self: Emulator, request: web.Request) -> web.StreamResponse:
        if self is global_aidbox and request.method == "POST" and request.path == "/":
            entries = (await request.json()).get("entry") or []
            sizes.append(sum(1 for e in entries if "SyncFence" not in e["request"]["url"]))
        return await carry_out(self, request)

    monkeypatch.setattr(Emulator, "_carry_out", counted)
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "4"}
    async with headquarters.clinic_app(local_aidbox.url, **env) as app:
        [run] = await app.service.sync(["Observation"])
    assert run.error is None and run.counters.written == 4
    assert len(await resources(global_root, "Patient")) == 4
    assert max(sizes) <= 4, sizes


async def test_rejected_resource_is_quarantined_and_the_rest_arrives(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    global_aidbox: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await seed_clinic(local_root)
    bad = KEY.resource_id("Observation", "o2")
    global_aidbox.faults.reject("Observation", id=bad, diagnostics="value out of range")
    summary = await sync(local_root)
    assert summary["push-Observation"]["quarantined"] == 1
    assert summary["push-Observation"]["written"] == 1
    arrived = await resources(global_root, "Observation")
    assert set(arrived) == {KEY.resource_id("Observation", "o1")}

    records = await resources(local_root, "SyncQuarantine")
    [record] = records.values()
    assert record["resourceId"] == "Observation/o2"
    assert record["stream"] == "push-Observation"
    assert "value out of range" in record["reason"]
    assert find_planted(PHI, records) == []
    # One log line names the refused version by its pseudonymous id: logs leave the clinic,
    # its local id (an MRN, maybe) stays in the record above.
    app_log = [r.getMessage() for r in caplog.records if r.name.startswith("aidbox_sync")]
    [line] = [m for m in app_log if "quarantined" in m]
    assert "push-Observation" in line and f"Observation/{bad}" in line
    assert not [m for m in app_log if "Observation/o2" in m]
    assert find_planted(PHI, caplog.text) == []

    status = await local_root.call("GET", "/$sync-status")
    obs = next(s for s in status.body["streams"] if s["stream"] == "push-Observation")
    assert obs["quarantined"] == 1
    assert obs["lag"]["versions"] == 0  # the stream moved on


async def test_a_quarantined_change_goes_once_a_later_state_of_its_resource_is_written(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    global_aidbox: Emulator,
) -> None:
    # Headquarters refuses a preliminary Observation; the clinic corrects it, and the push
    # writes the correction: the record of the refused version is released, as a $requeue
    # would have (docs/push.md, "Quarantine and $requeue"), not left for an operator.
    refused = {"status": "preliminary"}
    global_aidbox.faults.reject("Observation", diagnostics="not final", where=refused)
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1") | refused)
    first = await sync(local_root)
    assert first["push-Observation"]["quarantined"] == 1
    assert len(await resources(local_root, "SyncQuarantine")) == 1
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    second = await sync(local_root)
    assert second["push-Observation"]["written"] == 1
    assert await resources(local_root, "SyncQuarantine") == {}
    status = await local_root.call("GET", "/$sync-status")
    obs = next(s for s in status.body["streams"] if s["stream"] == "push-Observation")
    assert obs["inQuarantine"] == 0
    assert KEY.resource_id("Observation", "o1") in await resources(global_root, "Observation")


async def test_transient_failures_on_the_global_lose_nothing(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    global_aidbox: Emulator,
) -> None:
    for i in range(40):
        await local_root.call("PUT", f"/Patient/p{i}", json=patient(f"p{i}"))
        await local_root.call("PUT", f"/Observation/o{i}", json=observation(f"o{i}", f"p{i}"))
    global_aidbox.faults.set_random(error_rate=0.2, drop_rate=0.1, seed=7)
    await sync(local_root)
    global_aidbox.faults.clear()
    assert await global_state(global_root, ["Patient", "Observation"]) == await expected_global(
        local_root, ["Patient", "Observation"]
    )


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("global down", "503"),
        # A SERIALIZABLE conflict (412, api/rest-api/crud/update.md) says nothing about the
        # content: it is retried, and if it persists the run stops at its checkpoint.
        ("serialization conflicts", "412"),
    ],
)
async def test_a_persistent_failure_on_the_global_keeps_the_checkpoint_then_catches_up(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    global_aidbox: Emulator,
    fault: str,
    status: str,
) -> None:
    await seed_clinic(local_root)
    if fault == "global down":
        global_aidbox.faults.set_random(error_rate=1.0, seed=1)
        # the clinic's registration cannot even be read: nothing is tried
        resp = await local_root.request("POST", "/$sync")
        assert resp.status == 503, resp.body
        assert status in resp.body["issue"][0]["diagnostics"]
    else:
        global_aidbox.faults.serialization_failures(1000)
        resp = await local_root.call("POST", "/$sync", accept=(207,))
        failed = {s["stream"]: s for s in resp.body["streams"]}["push-Patient"]
        assert status in failed["error"]
        assert failed["version"] == 0  # nothing acknowledged, nothing advanced
        assert failed["quarantined"] == 0
    info = await local_root.call("GET", "/ChangesInfo/push-Patient", accept=(404,))
    assert info.status == 404 or info.body["version"] == 0
    assert await resources(local_root, "SyncQuarantine") == {}
    global_aidbox.faults.clear()
    await sync(local_root)
    assert await global_state(global_root, TYPES) == await expected_global(local_root, TYPES)


async def test_wrong_global_credentials_sync_nothing_and_quarantine_nothing(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    async with headquarters.clinic_app(
        local_aidbox.url, SYNC_RUNNER_ENABLED="false", SYNC_GLOBAL_CLIENT_SECRET="wrong"
    ):
        await seed_clinic(local_root)
        resp = await local_root.request("POST", "/$sync")
        assert resp.status == 409
        assert "credentials" in resp.body["issue"][0]["diagnostics"]
        assert await resources(local_root, "SyncQuarantine") == {}
        assert await resources(global_root, "Patient") == {}
        status = await local_root.call("GET", "/$sync-status")
        assert status.body["instance"]["state"] == "refused"
        patient_status = next(s for s in status.body["streams"] if s["stream"] == "push-Patient")
        assert patient_status["checkpoint"] == 0


async def test_subscription_wakes_the_background_runner(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A poll interval far beyond the test's timeout: only the wake-up can deliver in time.
    async with headquarters.clinic_app(local_aidbox.url, SYNC_POLL_INTERVAL="3600") as app:
        created = await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        version = int(created.body["meta"]["versionId"])
        await asyncio.wait_for(app.service.wait_synced("Patient", version), timeout=10)
        assert KEY.resource_id("Patient", "p1") in await resources(global_root, "Patient")


async def test_a_type_enabled_later_gets_its_subscription_without_a_restart(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    await headquarters.register("clinic-a", types=["Patient", "Coverage"])
    async with headquarters.clinic_app(local_aidbox.url, SYNC_POLL_INTERVAL="3600") as app:
        config = (await local_root.call("GET", "/SyncConfig/default")).body
        config["streams"].append({"type": "Coverage", "direction": "push", "order": 60})
        await local_root.call("PUT", "/SyncConfig/default", json=config)
        await sync(local_root)  # the configuration is loaded: Coverage is followed from now
        coverage = {"status": "active", "beneficiary": {"resourceType": "Patient", "id": "p1"}}
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        created = await local_root.call("PUT", "/Coverage/c1", json=coverage)
        version = int(created.body["meta"]["versionId"])
        # A poll interval far beyond the test's timeout: only the subscription can wake it.
        await asyncio.wait_for(app.service.wait_synced("Coverage", version), timeout=10)
        assert app.service.wakeups.get("Coverage", 0) >= 1
    assert KEY.resource_id("Coverage", "c1") in await resources(global_root, "Coverage")


async def test_a_transaction_larger_than_a_page_is_pushed_whole_in_parts(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A bulk load wrote 30 Patients in one transaction: one txid, 7 pages of 4.
    await bulk_load(local_root, "Patient", [f"bulk{n}" for n in range(30)])
    end = await last_txid(local_root)
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "4"}
    async with headquarters.clinic_app(local_aidbox.url, **env):
        pushed = await sync(local_root, "/ChangesInfo/push-Patient/$sync")
    assert pushed["push-Patient"]["written"] == 30 and pushed["push-Patient"]["version"] >= end
    assert await global_state(global_root, ["Patient"]) == await expected_global(
        local_root, ["Patient"]
    )


async def test_metrics_and_status_report_each_stream(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    await seed_clinic(local_root)
    await sync(local_root)
    await local_root.call("PUT", "/Patient/p3", json=patient("p3"))
    status = await local_root.call("GET", "/$sync-status")
    patient_status = next(s for s in status.body["streams"] if s["stream"] == "push-Patient")
    assert patient_status["counters"]["written"] == 2
    assert patient_status["head"] > patient_status["checkpoint"]
    assert patient_status["lag"]["versions"] > 0
    assert patient_status["lastSuccessAt"]

    async with aiohttp.ClientSession() as http:
        text = await (await http.get(f"{sync_app.url}/metrics")).text()
    assert 'aidbox_sync_changes_total{outcome="written",stream="push-Patient"} 2.0' in text
    assert 'aidbox_sync_checkpoint_version{stream="push-Patient"}' in text


async def test_delete_then_recreate_ends_recreated_on_the_global(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    gid = KEY.resource_id("Patient", "p1")
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await sync(local_root)
    # Within one window: deleted, created again, then another write after it. The delete
    # entry carries no version, so only the clinic's current state can order it.
    await local_root.call("DELETE", "/Patient/p1")
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    await local_root.call("PUT", "/Patient/p9", json=patient("p9"))
    await sync(local_root)
    assert (await resources(global_root, "Patient"))[gid]["gender"] == "male"
    # Across windows: deleted, pushed, created again, pushed.
    await local_root.call("DELETE", "/Patient/p1")
    await sync(local_root)
    assert (await global_root.request("GET", f"/Patient/{gid}")).status == 410
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="other"))
    await sync(local_root)
    assert (await resources(global_root, "Patient"))[gid]["gender"] == "other"


async def test_refused_target_quarantines_its_referrers_instead_of_looping(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    global_aidbox: Emulator,
) -> None:
    await seed_clinic(local_root)
    global_aidbox.faults.reject("Patient", id=KEY.resource_id("Patient", "p2"))
    summary = await asyncio.wait_for(sync(local_root), timeout=60)
    assert summary["push-Patient"]["quarantined"] == 1
    assert summary["push-Observation"]["quarantined"] == 1  # o2 refers to the refused p2
    quarantined = {
        r["resourceId"] for r in (await resources(local_root, "SyncQuarantine")).values()
    }
    assert {"Patient/p2", "Observation/o2"} <= quarantined
    arrived = await resources(global_root, "Observation")
    assert set(arrived) == {KEY.resource_id("Observation", "o1")}


async def test_reset_replays_the_stream_to_the_global(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await seed_clinic(local_root)
    await sync(local_root)
    gid = KEY.resource_id("Patient", "p1")
    await global_root.call("DELETE", f"/Patient/{gid}")  # e.g. lost in a restore of the global
    before = (await local_root.call("GET", "/ChangesInfo/push-Patient")).body["counters"]
    assert before["written"] == 2
    reset = await local_root.call("POST", "/ChangesInfo/push-Patient/$reset", json={"version": 0})
    assert reset.body["version"] == 0
    assert all(n == 0 for n in reset.body["counters"].values())  # they restart with the replay
    replay = await sync(local_root, "/ChangesInfo/push-Patient/$sync")
    assert replay["push-Patient"]["written"] == 2  # sent again, though unchanged
    assert gid in await resources(global_root, "Patient")


async def test_a_second_service_for_the_same_clinic_does_not_push_the_same_stream(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    first = await sync_app.service.sync(["Patient"])
    assert first[0].error is None
    await local_root.call("PUT", "/Patient/p2", json=patient("p2"))
    async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as second:
        [refused] = await second.service.sync(["Patient"])
        # The second service registered last: Aidbox now asks it, and it says who runs what.
        status = (await local_root.call("GET", "/$sync-status")).body
    assert refused.error and "held by runner" in refused.error
    [patients] = [s for s in status["streams"] if s["stream"] == "push-Patient"]
    assert patients["heldElsewhere"].startswith("held by runner")
    assert KEY.resource_id("Patient", "p2") not in await resources(global_root, "Patient")
    [resumed] = await sync_app.service.sync(["Patient"])  # the holder goes on
    assert resumed.error is None and resumed.counters.written == 1


async def _expire_lease(local_root: AidboxClient, stream: str) -> None:
    info = (await local_root.call("GET", f"/ChangesInfo/{stream}")).body
    info["lease"]["until"] = "2000-01-01T00:00:00+00:00"  # its runner stopped long ago
    await local_root.call("PUT", f"/ChangesInfo/{stream}", json=info)


async def test_a_run_renews_its_own_lapsing_lease_before_writing(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
) -> None:
    # A lease left by this service's earlier run has lapsed; the next run must renew it before
    # its first write, or a second service could take the stream while that write is on its way.
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await sync_app.service.sync(["Patient"])
    await _expire_lease(local_root, "push-Patient")
    await local_root.call("PUT", "/Patient/p2", json=patient("p2"))
    hold = global_aidbox.faults.hold_next_write("Patient")
    first = asyncio.create_task(sync_app.service.sync(["Patient"]))
    await hold.txid_taken()  # the first service's write is on its way to the global
    async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as second:
        [refused] = await second.service.sync(["Patient"])
    assert refused.error and "held by runner" in refused.error
    hold.release()
    [done] = await first
    assert done.error is None and done.counters.written == 1


async def test_a_service_that_gets_its_stream_back_does_not_trust_what_it_sent_before(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # Service A sends p1 as female; service B, holding the stream meanwhile, sends it as male;
    # when p1 turns female again and A has the stream back, A's memory says "female was sent"
    # and it must send it all the same: headquarters holds male.
    gid = KEY.resource_id("Patient", "p1")

    async def held() -> str:
        return (await resources(global_root, "Patient"))[gid]["gender"]

    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="female"))
    await sync_app.service.sync(["Patient"])
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    await _expire_lease(local_root, "push-Patient")
    async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as b:
        [run] = await b.service.sync(["Patient"])
        assert run.error is None and await held() == "male"
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="female"))
    await _expire_lease(local_root, "push-Patient")
    [back] = await sync_app.service.sync(["Patient"])
    assert back.error is None
    assert await held() == "female"


async def _a_transaction_waits_on_a_lock(root: AidboxClient) -> None:
    """Return once a transaction of this Aidbox's database waits on a lock (PostgreSQL has no
    event for it: pg_stat_activity is looked at until it shows one)."""
    query = "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    while True:
        if int((await rows(root, query))[0]["n"]):
            return
        await asyncio.sleep(0.01)


async def test_a_dependency_push_racing_the_targets_own_write_is_sent_again(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The Observation stream creates its missing Patient if absent while the Patient is being
    # created at headquarters by another transaction: at read-committed the create waits for
    # it and fails with 409 (docs/push.md, "Isolation"); sent again, it finds the Patient.
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    gid = KEY.resource_id("Patient", "p1")
    hold = global_aidbox.faults.hold_next_write("Patient")
    rc = {"x-max-isolation-level": "read-committed"}
    other = asyncio.create_task(
        global_root.call("PUT", f"/Patient/{gid}", json={"gender": "female"}, headers=rc)
    )
    await hold.txid_taken()
    run = asyncio.create_task(sync_app.service.sync(["Observation"]))
    await _a_transaction_waits_on_a_lock(global_root)  # the create, on the Patient's row
    hold.release()
    await other
    [summary] = await run
    assert summary.error is None and summary.counters.written == 1
    assert KEY.resource_id("Observation", "o1") in await resources(global_root, "Observation")


async def _creating_on_o1s_behalf(
    sync_app: RunningApp, global_aidbox: Emulator, *, answer: bool
) -> tuple[asyncio.Task[list[RunSummary]], RequestHold]:
    """Start the Observation stream on o1, whose Patient p1 headquarters lacks: o1 alone is
    refused (422), then the transaction creating p1 on its behalf arrives and is held (before
    it runs, or with `answer` after it ran); returns the run and that hold."""
    refused = global_aidbox.faults.hold_next_request("POST", "/")  # o1 alone: p1 is missing
    observations = asyncio.create_task(sync_app.service.sync(["Observation"]))
    await refused.arrived()
    create = global_aidbox.faults.hold_next_request("POST", "/", answer=answer)
    refused.release()
    assert await refused.answered() == 422
    await create.arrived()
    return observations, create


async def test_a_target_created_on_a_referrers_behalf_after_the_clinic_deleted_it_goes_again(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The Observation stream reads p1 for its create-if-absent; the clinic then deletes p1,
    # and the Patient stream's deletion lands (headquarters has no p1 yet) before the create
    # does. Headquarters must end as the clinic is: no p1 (docs/push.md, "Refusals").
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    # p1 as the clinic had it, and o1: held before they are written
    observations, create = await _creating_on_o1s_behalf(sync_app, global_aidbox, answer=False)
    await local_root.call("DELETE", "/Patient/p1")
    [deletion] = await sync_app.service.sync(["Patient"])
    assert deletion.error is None
    create.release()
    [referrer] = await observations
    assert referrer.error is None
    held = await resources(global_root, "Patient")
    assert KEY.resource_id("Patient", "p1") not in held
    assert KEY.resource_id("Observation", "o1") in await resources(global_root, "Observation")


async def test_a_target_created_on_a_referrers_behalf_then_created_again_is_not_deleted(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # As above, but the clinic creates p1 again, and the Patient stream writes it, after the
    # App saw p1 gone and before its read of headquarters' version: the If-Match of the
    # deletion must name the version read before the clinic was asked, or it deletes the
    # stream's own newer write, which nothing sends again (docs/push.md, "Refusals").
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    gid = KEY.resource_id("Patient", "p1")
    # p1 created if absent, o1 written; the answer waits
    observations, create = await _creating_on_o1s_behalf(sync_app, global_aidbox, answer=True)
    await local_root.call("DELETE", "/Patient/p1")
    look = global_aidbox.faults.hold_next_request("GET", f"/Patient/{gid}")
    create.release()
    await look.arrived()  # the App's read of headquarters' p1, held
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    [patients] = await sync_app.service.sync(["Patient"])
    assert patients.error is None
    look.release()
    [referrer] = await observations
    assert referrer.error is None
    assert all(run.error is None for run in await sync_app.service.sync())
    assert (await resources(global_root, "Patient"))[gid]["gender"] == "male"


async def test_a_target_created_on_a_referrers_behalf_is_never_taken_for_sent(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The Observation stream creates its missing Patient as the clinic has it now (male), if
    # absent, while the Patient stream's older write (female) is on its way and lands after;
    # the create's answer comes last. The Patient stream's next change (male) must still be
    # sent: only a stream's own writes say what headquarters holds (docs/push.md, "Refusals").
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="female"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    older = global_aidbox.faults.hold_next_request("POST", "/")
    patients = asyncio.create_task(sync_app.service.sync(["Patient"]))
    await older.arrived()
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    # p1 (male) and o1 written; the answer waits
    observations, create = await _creating_on_o1s_behalf(sync_app, global_aidbox, answer=True)
    older.release()
    [first] = await patients  # p1 female over it
    create.release()
    [referrer] = await observations
    assert first.error is None and referrer.error is None
    [second] = await sync_app.service.sync(["Patient"])
    assert second.error is None
    gid = KEY.resource_id("Patient", "p1")
    assert (await resources(global_root, "Patient"))[gid]["gender"] == "male"


async def test_a_target_deleted_again_on_a_referrers_behalf_is_sent_when_the_clinic_restores_it(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The Patient stream writes p1 while the Observation stream creates it on o1's behalf;
    # the clinic then deletes p1, so the App deletes it again at headquarters (docs/push.md,
    # "Refusals"). The clinic restores p1 as it was: the Patient stream must send it, though
    # the body is the one it remembers sending (app/sync/sent.py).
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    gid = KEY.resource_id("Patient", "p1")
    read_for_create = local_aidbox.faults.hold_next_request("GET", "/Patient")
    observations = asyncio.create_task(sync_app.service.sync(["Observation"]))
    await read_for_create.arrived()
    [first] = await sync_app.service.sync(["Patient"])
    assert first.error is None and gid in await resources(global_root, "Patient")
    look = local_aidbox.faults.hold_next_request("GET", "/Patient")  # is p1 still there?
    read_for_create.release()
    await look.arrived()
    await local_root.call("DELETE", "/Patient/p1")
    look.release()
    [referrer] = await observations
    assert referrer.error is None
    assert gid not in await resources(global_root, "Patient")  # as the clinic was
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    [restored] = await sync_app.service.sync(["Patient"])
    assert restored.error is None
    assert gid in await resources(global_root, "Patient")


async def test_the_targets_own_write_racing_a_create_on_a_referrers_behalf_is_sent_again(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The mirror of the race above: the create of p1 on o1's behalf runs first, and the
    # Patient stream's write of p1 waits for it, then fails with 409 at read-committed
    # (docs/push.md, "Isolation"). Sent again, it finds p1 there: the run does not fail.
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
    hold = global_aidbox.faults.hold_next_write("Patient")  # the create of p1, before COMMIT
    observations = asyncio.create_task(sync_app.service.sync(["Observation"]))
    await hold.txid_taken()
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="female"))
    patients = asyncio.create_task(sync_app.service.sync(["Patient"]))
    await _a_transaction_waits_on_a_lock(global_root)  # the Patient stream's write of p1
    hold.release()
    [referrer] = await observations
    [own] = await patients
    assert referrer.error is None and own.error is None
    gid = KEY.resource_id("Patient", "p1")
    assert (await resources(global_root, "Patient"))[gid]["gender"] == "female"


async def test_a_refused_replacement_that_was_replaced_too_is_not_quarantined(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # o1 is refused because its Patient is gone; the clinic's newer o1, sent instead, is
    # refused for the same reason, while the clinic replaced it again. Only a refusal of the
    # current state is quarantined (docs/push.md, "Refusals"): the newest o1 must arrive.
    for pid in ("a", "p", "q"):
        await local_root.call("PUT", f"/Patient/{pid}", json=patient(pid))
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p"))
    first = global_aidbox.faults.hold_next_request("POST", "/")  # o1 -> p on its way
    observations = asyncio.create_task(sync_app.service.sync(["Observation"]))
    await first.arrived()
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "q"))
    await local_root.call("DELETE", "/Patient/p")
    second = global_aidbox.faults.hold_next_request("POST", "/")  # o1 -> q, sent instead
    first.release()
    await second.arrived()
    await local_root.call("PUT", "/Observation/o1", json=observation("o1", "a"))
    await local_root.call("DELETE", "/Patient/q")
    second.release()
    [run] = await observations
    assert run.error is None and run.counters.quarantined == 0
    assert await resources(local_root, "SyncQuarantine") == {}
    held = (await resources(global_root, "Observation"))[KEY.resource_id("Observation", "o1")]
    assert held["subject"]["id"] == KEY.resource_id("Patient", "a")


async def test_a_referrer_in_a_later_batch_than_its_targets_create_is_not_quarantined(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A batch whose target is created on its behalf goes as batches when it outgrows one, the
    # create first; the target's own stream may delete it at headquarters before the next
    # (an older change on its way): the referrers, the clinic's current state, are sent with
    # the target created again, not quarantined (docs/push.md, "Refusals"; helper-34's e2e).
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "2"}
    async with headquarters.clinic_app(local_aidbox.url, **env) as app:
        gid = KEY.resource_id("Patient", "p1")
        # The clinic creates p1 and deletes it; the Patient stream sends the deletion (of a
        # Patient headquarters never had), held on its way.
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        await local_root.call("DELETE", "/Patient/p1")
        deletion = global_aidbox.faults.hold_next_request("POST", "/")
        patients = asyncio.create_task(app.service.sync(["Patient"]))
        await deletion.arrived()
        # The clinic creates p1 again, and two Observations of it: one batch (2 entries),
        # refused (p1 missing), then sent with p1's create first, as batches: [p1], [o1, o2].
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        await local_root.call("PUT", "/Observation/o1", json=observation("o1", "p1"))
        await local_root.call("PUT", "/Observation/o2", json=observation("o2", "p1"))
        look = global_aidbox.faults.hold_next_request("GET", f"/Patient/{gid}")
        observations = asyncio.create_task(app.service.sync(["Observation"]))
        await look.arrived()  # [p1] landed; the App looks at p1 before it sends [o1, o2]
        deletion.release()  # the Patient stream's deletion lands now, after the create
        assert await deletion.answered() == 200
        look.release()
        [referrers] = await observations
        [first] = await patients
        assert first.error is None
        [again] = await app.service.sync(["Patient"])  # p1 as the clinic holds it now
        assert again.error is None
        assert referrers.counters.quarantined == 0, await resources(local_root, "SyncQuarantine")
        held = await resources(global_root, "Observation")
        assert {KEY.resource_id("Observation", o) for o in ("o1", "o2")} <= set(held)
