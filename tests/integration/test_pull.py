"""Pull over real HTTP: headquarters' administrative data reaches each clinic that should have
it, and only there (docs/pull.md). One emulated global with the App in global role, two
emulated clinics in different countries, each with its App in local role."""

from __future__ import annotations

import asyncio
from typing import Any

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.aidbox.psql import rows
from app.model import Direction
from tests.support.apps import RunningApp
from tests.support.clinic import NEXT_TXID, encounter, patient, pull, resources, store_rows
from tests.support.headquarters import CLINIC, Headquarters, area, location, organization

PULLED = ["AdministrativeArea", "Organization", "Location"]


async def put(client: AidboxClient, body: dict[str, Any]) -> None:
    await client.call("PUT", f"/{body['resourceType']}/{body['id']}", json=body)


async def held(client: AidboxClient) -> dict[str, set[str]]:
    return {t: set(await resources(client, t)) for t in PULLED}


async def seed_headquarters(global_root: AidboxClient) -> None:
    for body in (
        area("US", "United States"),
        area("DE", "Germany"),
        area("US-CA", "California", "US"),
        area("DE-BY", "Bavaria", "DE"),
        organization("org-us", "US", "Boston Group"),
        organization("org-de", "DE", "Berlin Group"),
        organization("org-all", None, "Group Headquarters"),
        location("loc-us", "org-us", "US"),
        location("loc-de", "org-de", "DE"),
    ):
        await put(global_root, body)


async def test_each_clinic_gets_its_countrys_data_and_the_common_data_and_follows_changes(
    sync_app: RunningApp,
    b_app: RunningApp,
    local_root: AidboxClient,
    b_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    await seed_headquarters(global_root)
    first = await pull(local_root)
    assert first["pull-Organization"]["written"] == 2
    await pull(b_root)
    us = {
        "AdministrativeArea": {"US", "DE", "US-CA"},
        "Organization": {"org-us", "org-all"},
        "Location": {"loc-us"},
    }
    de = {
        "AdministrativeArea": {"US", "DE", "DE-BY"},
        "Organization": {"org-de", "org-all"},
        "Location": {"loc-de"},
    }
    assert await held(local_root) == us
    assert await held(b_root) == de
    at_hq = await resources(global_root, "Organization")
    assert (await resources(local_root, "Organization"))["org-us"] == at_hq["org-us"]

    # Headquarters renames one, moves one to the other country, deletes the common one.
    await put(global_root, organization("org-us", "US", "Boston Group East"))
    await put(global_root, organization("org-de", "US", "Berlin Group (moved)"))
    await global_root.call("DELETE", "/Organization/org-all")
    await put(global_root, location("loc-us", "org-us", "US") | {"name": "Boston East Site"})
    await global_root.call("DELETE", "/AdministrativeArea/DE-BY")
    await pull(local_root)
    await pull(b_root)
    assert (await resources(local_root, "Location"))["loc-us"]["name"] == "Boston East Site"
    assert set(await resources(b_root, "AdministrativeArea")) == {"US", "DE"}
    a_orgs = await resources(local_root, "Organization")
    assert set(a_orgs) == {"org-us", "org-de"}
    assert a_orgs["org-us"]["name"] == "Boston Group East"
    assert set(await resources(b_root, "Organization")) == set()
    # Nothing pulled went back up: headquarters holds only its own Organizations.
    assert set(await resources(global_root, "Organization")) == {"org-us", "org-de"}


async def test_a_local_edit_of_a_pulled_organization_is_overwritten_and_reported(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await pull(local_root)
    await put(local_root, organization("org-us", "US", "Renamed at the clinic"))
    await put(global_root, organization("org-us", "US", "Boston Group East"))
    await pull(local_root)
    assert (await resources(local_root, "Organization"))["org-us"]["name"] == "Boston Group East"
    status = (await local_root.call("GET", "/$sync-status")).body
    [stream] = [s for s in status["streams"] if s["stream"] == "pull-Organization"]
    assert stream["localEdits"]["count"] == 1
    assert [e["id"] for e in stream["localEdits"]["recent"]] == ["org-us"]
    # The pull's own writes are not edits: another pull reports nothing new.
    await put(global_root, organization("org-us", "US", "Boston Group West"))
    await pull(local_root)
    status = (await local_root.call("GET", "/$sync-status")).body
    [stream] = [s for s in status["streams"] if s["stream"] == "pull-Organization"]
    assert stream["localEdits"]["count"] == 1


async def test_headquarters_next_change_overwrites_a_local_edit_even_with_the_body_pulled_before(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # docs/pull.md, "Headquarters is authoritative": its next change overwrites the edit, even
    # when that change's body is the one pulled before (a rename undone, a re-save), which the
    # pull's memory of what it sent would skip as unchanged (helper-31's review).
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await put(global_root, organization("org-de", "US", "Berlin Group"))
    await pull(local_root)
    await put(local_root, organization("org-us", "US", "Renamed at the clinic"))
    await local_root.call("DELETE", "/Organization/org-de")
    await put(global_root, organization("org-us", "US", "Boston Group East"))
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await put(global_root, organization("org-de", "US", "Berlin Group"))
    await pull(local_root)
    held = await resources(local_root, "Organization")
    assert {k: v["name"] for k, v in held.items()} == {
        "org-us": "Boston Group",
        "org-de": "Berlin Group",
    }
    status = (await local_root.call("GET", "/$sync-status")).body
    [stream] = [s for s in status["streams"] if s["stream"] == "pull-Organization"]
    assert stream["localEdits"]["count"] == 2


async def test_a_local_deletion_after_the_pull_deleted_and_recreated_the_resource_is_reported(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # One pull run writes org-x's deletion, then, a window later, its re-creation; a clinic
    # user then deletes it. A deletion's mark says no more than "deleted": the user's must not
    # be taken for the pull's earlier one (app/sync/local_edits.py), or it goes unreported and
    # headquarters' next save of the same body is skipped as sent (helper-34's e2e run).
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "500"}
    async with headquarters.clinic_app(local_aidbox.url, **env):
        x = organization("org-x", "US", "Boston Group")
        await put(global_root, x)
        await pull(local_root)
        await global_root.call("DELETE", "/Organization/org-x")
        # more than a window of changes (app/sync/feed.py, pages of 1,000) between the two:
        # Organizations of another country, deletions for this clinic
        body = """'{"name": "Berlin Group", "address": [{"country": "DE"}]}'::jsonb"""
        await store_rows(
            global_root,
            "Organization",
            f"SELECT 'org-de-' || g, tx.txid, {body} "
            f"FROM (SELECT {NEXT_TXID} AS txid) AS tx, generate_series(1, 1001) AS g",
        )
        await put(global_root, x)
        await pull(local_root)
        assert "org-x" in await resources(local_root, "Organization")
        await local_root.call("DELETE", "/Organization/org-x")
        await put(global_root, x)  # saved again, as it was
        await pull(local_root)
        info = (await resources(local_root, "ChangesInfo"))["pull-Organization"]
        assert [e["id"] for e in info["localEdits"]["recent"]] == ["org-x"]
        assert "org-x" in await resources(local_root, "Organization")


async def test_a_country_list_imported_in_one_transaction_reaches_the_clinic(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # ISO 3166-2 lists about 5,000 subdivisions, which an import writes in one transaction
    # (one txid). Larger than a page, it is counted by ids, in reads growing fourfold: past
    # 10,000 entries (3,216 * 4) they were refused, and the stream failed at that window on
    # every run (helper-31's review); ids alone may be read up to 200,000 (docs/pull.md).
    await put(global_root, area("US", "United States"))
    n = 3300
    subdivisions = (
        "SELECT 'US-' || g::text, tx.txid, jsonb_build_object('code', 'US-' || g::text, "
        "'name', 'Area ' || g::text, 'kind', 'subdivision', 'country', 'US', "
        "'status', 'active') "
        f"FROM (SELECT nextval('transaction_id_seq') AS txid) AS tx, generate_series(1, {n}) g"
    )
    await store_rows(global_root, "AdministrativeArea", subdivisions)
    env = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "200"}
    async with headquarters.clinic_app(local_aidbox.url, **env):
        await pull(local_root)
    [held] = await rows(local_root, "SELECT count(*) AS n FROM administrativearea")
    assert int(held["n"]) == n + 1


async def test_a_type_configured_both_ways_is_refused_and_the_previous_configuration_stays(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    await pull(local_root)  # the shipped configuration is in force
    both = {
        **config,
        "streams": [*config["streams"], {"type": "Organization", "direction": "push"}],
    }
    await local_root.call("PUT", "/SyncConfig/default", json=both)
    await put(global_root, organization("org-us", "US"))
    resp = await local_root.request("POST", "/$sync", json={"direction": "pull"})
    assert resp.status == 207
    outcome = resp.body["configuration"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert (
        "Organization is configured both to push and to pull" in outcome["issue"][0]["diagnostics"]
    )
    # The previous configuration ran: Organization was pulled, not pushed.
    assert set(await resources(local_root, "Organization")) == {"org-us"}
    status = (await local_root.call("GET", "/$sync-status")).body
    assert "both to push and to pull" in status["configuration"]["error"]


async def test_a_pushed_encounter_keeps_the_global_id_of_the_pulled_organization_it_names(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await pull(local_root)
    await put(local_root, patient("p1"))
    await put(
        local_root,
        encounter("e1", "p1")
        | {"serviceProvider": {"resourceType": "Organization", "id": "org-us", "display": "B"}},
    )
    resp = await local_root.call("POST", "/$sync", json={"direction": "push"})
    assert all(not s.get("error") for s in resp.body["streams"]), resp.body
    [arrived] = (await resources(global_root, "Encounter")).values()
    assert arrived["serviceProvider"] == {"resourceType": "Organization", "id": "org-us"}
    assert arrived["subject"]["id"].startswith(f"{CLINIC}-")


async def test_a_pushed_reference_to_an_organization_of_the_clinics_own_sends_no_id(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # The clinic may hold Organizations of its own beside the pulled ones, whose ids are its
    # words: only headquarters' own ids leave (docs/pull.md, "References across the two
    # directions"); a reference to any other is removed, and the Encounter still goes.
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await pull(local_root)
    mine = "employer-Jane-Doe-555-12-3456"
    await put(local_root, {"resourceType": "Organization", "id": mine, "name": "Acme"})
    await put(local_root, patient("p1"))
    for eid, org in (("e1", "org-us"), ("e2", mine)):
        provider = {"serviceProvider": {"resourceType": "Organization", "id": org}}
        await put(local_root, encounter(eid, "p1") | provider)
    resp = await local_root.call("POST", "/$sync", json={"direction": "push"})
    assert all(not s.get("error") for s in resp.body["streams"]), resp.body
    arrived = await resources(global_root, "Encounter")
    providers = [e.get("serviceProvider") for e in arrived.values()]
    assert len(providers) == 2 and None in providers
    assert {"resourceType": "Organization", "id": "org-us"} in providers
    assert "Jane-Doe" not in str(arrived)
    assert await resources(local_root, "SyncQuarantine") == {}


async def test_an_organization_that_left_the_clinics_scope_is_no_longer_named_by_its_id(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # Headquarters moves its Organization to another country: it leaves this clinic's scope
    # (docs/pull.md), and the App's list of headquarters' own resources with it; a change of
    # the Encounter that still names it sends no id of it.
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await pull(local_root)
    await put(local_root, patient("p1"))
    provider = {"serviceProvider": {"resourceType": "Organization", "id": "org-us"}}
    await put(local_root, encounter("e1", "p1") | provider)
    resp = await local_root.call("POST", "/$sync", json={"direction": "push"})
    assert all(not s.get("error") for s in resp.body["streams"]), resp.body
    [sent] = (await resources(global_root, "Encounter")).values()
    assert sent["serviceProvider"]["id"] == "org-us"
    await put(global_root, organization("org-us", "DE", "Boston Group"))
    await put(local_root, encounter("e1", "p1") | provider | {"status": "cancelled"})
    resp = await local_root.call("POST", "/$sync", json={"direction": "push"})
    assert all(not s.get("error") for s in resp.body["streams"]), resp.body
    [sent] = (await resources(global_root, "Encounter")).values()
    assert "serviceProvider" not in sent and sent["status"] == "cancelled"


async def test_a_resource_the_clinic_refuses_is_quarantined_then_requeued(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    await put(global_root, organization("org-ok", "US"))
    await put(global_root, organization("org-odd", "US", "Refused here"))
    local_aidbox.faults.reject("Organization", "org-odd", "a rule of the clinic refuses it")
    summary = await pull(local_root)
    assert summary["pull-Organization"]["quarantined"] == 1
    assert set(await resources(local_root, "Organization")) == {"org-ok"}
    [record] = (await resources(local_root, "SyncQuarantine")).values()
    assert (record["stream"], record["resourceId"]) == ("pull-Organization", "Organization/org-odd")
    status = (await local_root.call("GET", "/$sync-status")).body
    [stream] = [s for s in status["streams"] if s["stream"] == "pull-Organization"]
    assert stream["inQuarantine"] == 1

    local_aidbox.faults.clear()
    resp = await local_root.call("POST", "/ChangesInfo/pull-Organization/$requeue")
    assert resp.body["remaining"] == 0, resp.body
    assert set(await resources(local_root, "Organization")) == {"org-ok", "org-odd"}


async def test_a_reset_pull_stream_replays_and_restores_what_the_clinic_deleted(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    await put(global_root, organization("org-us", "US"))
    await pull(local_root)
    await local_root.call("DELETE", "/Organization/org-us")
    resp = await local_root.call(
        "POST", "/ChangesInfo/pull-Organization/$reset", json={"version": 0}
    )
    assert resp.body["version"] == 0
    replay = await pull(local_root)
    assert replay["pull-Organization"]["written"] == 1
    assert set(await resources(local_root, "Organization")) == {"org-us"}


async def test_a_stream_with_nothing_new_past_its_checkpoint_shows_no_lag(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # Headquarters' settled bound moves with every write there; a pull stream that finds only
    # empty windows past its checkpoint keeps that in memory (no write, so no wake-up) and
    # $sync-status must count its lag from there, not from the saved checkpoint.
    await seed_headquarters(global_root)
    await pull(local_root)
    saved = (await local_root.call("GET", "/ChangesInfo/pull-Organization")).body["version"]
    await put(global_root, area("US-NY", "New York", "US"))  # another type moves the bound
    await pull(local_root)
    status = (await local_root.call("GET", "/$sync-status")).body
    org = next(s for s in status["streams"] if s["stream"] == "pull-Organization")
    assert org["checkpoint"] == saved < org["head"]
    assert org["lag"] == {"versions": 0, "seconds": 0}


async def test_a_pull_type_headquarters_refuses_does_not_hold_back_the_other_pull_streams(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # Headquarters' bound is asked through a pull stream's type (one bound covers every type);
    # a type it does not offer, run first, must fail alone.
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    config["streams"].append({"type": "Medication", "direction": "pull", "order": 0})
    await local_root.call("PUT", "/SyncConfig/default", json=config)
    await put(global_root, organization("org-us", "US"))
    resp = await local_root.call("POST", "/$sync", json={"direction": "pull"}, accept=(207,))
    streams = {s["stream"]: s for s in resp.body["streams"]}
    assert resp.status == 207
    assert "Medication is not offered for pull" in streams["pull-Medication"]["error"]
    assert streams["pull-Organization"].get("error") is None
    assert set(await resources(local_root, "Organization")) == {"org-us"}


async def test_an_invalid_scope_row_of_one_pulled_type_does_not_stop_the_push(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # An operator's typo in SyncScope/Location at headquarters: $pull-changes answers 409 for
    # Location (docs/pull.md). The pull of Location waits and the other pull streams go on;
    # so does the push: one pulled type's list of headquarters' own resources, unread, holds
    # back no push stream (app/sync/shared_ids.py; helper-38's review).
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await pull(local_root)
    bad = {"resourceType": "SyncScope", "id": "Location", "type": "Location", "country": ["a b"]}
    await global_root.call("PUT", "/SyncScope/Location", json=bad)
    pulled = await local_root.call("POST", "/$sync", json={"direction": "pull"})
    by_type = {s["stream"]: s for s in pulled.body["streams"]}
    assert by_type["pull-Location"].get("error")  # refused, as expected
    assert not by_type["pull-Organization"].get("error")  # the other pulls go on
    await put(local_root, patient("p1"))
    resp = await local_root.call("POST", "/$sync", json={"direction": "push"})
    errors = [s for s in resp.body["streams"] if s.get("error")]
    assert not errors, errors
    assert len(await resources(global_root, "Patient")) == 1


async def test_anonymize_dry_run_answers_while_headquarters_does_not(
    sync_app: RunningApp, global_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # $anonymize is the clinic's dry run (README, Troubleshooting): while headquarters is
    # unreachable it answers from what was learned of headquarters' own resources before.
    body = {"resourceType": "Patient", "id": "pt-1", "gender": "female"}
    global_aidbox.faults.set_random(error_rate=1.0, path_prefix="/$pull-changes")
    try:
        preview = await local_root.call("POST", "/$anonymize", json=body, accept=(502, 503, 504))
    finally:
        global_aidbox.faults.clear()
    assert preview.status == 200, preview.body
    assert preview.body["resource"]["gender"] == "female"


async def test_a_push_held_back_by_headquarters_says_so_until_headquarters_answers_again(
    sync_app: RunningApp, global_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # Headquarters unreachable for $pull-changes: the push waits for its own resources' list
    # (app/sync/shared_ids.py), $sync-status says why, and no longer once it answers.
    await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
    global_aidbox.faults.set_random(error_rate=1.0, path_prefix="/$pull-changes")
    try:
        await sync_app.service._cycle(Direction.PUSH)
    finally:
        global_aidbox.faults.clear()
    status = (await local_root.call("GET", "/$sync-status")).body
    assert "own resources unknown" in status["watermark"]["headquartersError"]
    await sync_app.service._cycle(Direction.PUSH)
    status = (await local_root.call("GET", "/$sync-status")).body
    assert status["watermark"]["headquartersError"] is None


async def test_a_pull_type_enabled_while_a_push_runs_keeps_the_references_to_it(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A push runs with the configuration whose pulled types it learned headquarters' ids of,
    # not with one loaded meanwhile ($sync-status loads it too): a pull stream enabled during
    # the run, whose ids nobody learned yet, must not make its references vanish.
    await put(global_root, organization("org-us", "US", "Boston Group"))
    await put(global_root, location("loc-us", "org-us", "US"))
    config = (await local_root.call("GET", "/SyncConfig/default")).body
    without = [
        s for s in config["streams"] if not (s["type"] == "Location" and s["direction"] == "pull")
    ]
    assert len(without) == len(config["streams"]) - 1
    await local_root.call("PUT", "/SyncConfig/default", json={**config, "streams": without})
    await put(local_root, organization("org-us", "US", "Boston Group"))
    await put(local_root, location("loc-us", "org-us", "US"))  # the clinic holds it
    await put(local_root, patient("p1"))
    visit = encounter("e1", "p1") | {
        "location": [{"location": {"resourceType": "Location", "id": "loc-us"}}]
    }
    await put(local_root, visit)
    service = sync_app.service
    # The Patient stream (order 10) goes first; its transaction is held at headquarters
    # while the operator enables the Location pull and someone looks at $sync-status.
    held = global_aidbox.faults.hold_next_request("POST", "/")
    push = asyncio.create_task(service.sync(direction=Direction.PUSH))
    await held.arrived()
    await local_root.call("PUT", "/SyncConfig/default", json=config)
    status = await local_root.call("GET", "/$sync-status")
    assert status.status == 200
    held.release()
    summaries = await push
    assert all(s.error is None for s in summaries), summaries
    arrived = await resources(global_root, "Encounter")
    # Before the pull was enabled the reference is pseudonymized; once Location's ids are
    # learned it is kept as loc-us. In between it is removed, and the Encounter goes without.
    assert all("location" in e for e in arrived.values()), arrived


async def test_after_a_restart_the_pulls_earlier_write_is_no_local_edit(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # The clinic's feed gives a resource once per window, and a look at local edits may cover
    # several pull runs (after a restart: its progress is saved only when it finds
    # something, app/sync/local_edits.py), so an earlier pull write of a resource is judged
    # at its own version, not against a later one. A restart is modelled by clearing what it
    # loses (the look's progress and the memory of what was sent, both in-process).
    service = sync_app.service

    def restart() -> None:
        service._edits._checked.clear()
        service._sent[Direction.PULL] = type(service._sent[Direction.PULL])()

    async def the_clinic_works_on() -> None:  # other transactions take txids (an EHR)
        query = "SELECT setval('transaction_id_seq', nextval('transaction_id_seq') + 5000)"
        await local_root.call("POST", "/$psql", params={"execute": "true"}, json={"query": query})

    await put(global_root, organization("org-x", "US", "Boston Group"))
    await pull(local_root)  # the first look: edits are counted from here; org-x written
    await pull(local_root)
    restart()
    await the_clinic_works_on()
    await put(global_root, organization("org-x", "US", "Boston Group renamed"))
    await pull(local_root)  # the pull writes the rename
    restart()
    await the_clinic_works_on()
    await put(global_root, organization("org-x", "US", "Boston Group renamed again"))
    await pull(local_root)
    info = (await resources(local_root, "ChangesInfo"))["pull-Organization"]
    # nobody but the pull ever wrote org-x at the clinic
    assert (info.get("localEdits") or {}).get("count", 0) == 0, info["localEdits"]


async def test_a_pulled_type_headquarters_cannot_list_holds_no_push_back_and_says_so(
    sync_app: RunningApp, local_root: AidboxClient, global_root: AidboxClient
) -> None:
    # An operator's typo in SyncScope/Location at headquarters: its list of headquarters'
    # own resources cannot be read (409). The push goes on, references to Locations not
    # learned yet removed (app/sync/shared_ids.py), and $sync-status says why.
    bad = {"resourceType": "SyncScope", "id": "Location", "type": "Location", "country": ["a b"]}
    await global_root.call("PUT", "/SyncScope/Location", json=bad)
    await put(local_root, patient("p1"))
    await sync_app.service._cycle(Direction.PUSH)  # what the timer and the wake-ups run
    assert len(await resources(global_root, "Patient")) == 1
    status = (await local_root.call("GET", "/$sync-status")).body
    assert "409" in status["watermark"]["headquartersIdsError"]["Location"]
    await global_root.call("DELETE", "/SyncScope/Location")  # not offered: no error left
    await sync_app.service._cycle(Direction.PUSH)
    status = (await local_root.call("GET", "/$sync-status")).body
    assert status["watermark"]["headquartersIdsError"] is None
