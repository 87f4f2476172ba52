"""`$reconcile` (docs/push.md, "Reconciliation"): headquarters compared with the anonymized
clinic, in this clinic's namespace only, and repaired through the push's own writes."""

from __future__ import annotations

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.registry.instances import default_types
from app.sync import reconcile
from tests.integration.test_access_control import refused
from tests.integration.test_push import sync
from tests.support.clinic import (
    KEY,
    clinic_key,
    expected_global,
    global_state,
    observation,
    patient,
    resources,
)
from tests.support.headquarters import CLINIC, Headquarters

TYPES = ["Patient", "Observation"]
QUIET = {"SYNC_RUNNER_ENABLED": "false"}


async def _seed(local_root: AidboxClient) -> None:
    for n in range(3):
        await local_root.call("PUT", f"/Patient/p{n}", json=patient(f"p{n}"))
    for n in range(6):
        body = observation(f"o{n}", f"p{n % 3}", value=float(60 + n))
        await local_root.call("PUT", f"/Observation/o{n}", json=body)


async def _reconcile(local_root: AidboxClient, **params: object) -> dict:
    resp = await local_root.call("POST", "/$reconcile", json=params)
    assert resp.status == 200, resp.body
    return resp.body


@pytest.mark.parametrize("partition_size", [20_000, 2])  # one partition, or several
async def test_tampering_at_headquarters_is_reported_exactly_and_repaired(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    monkeypatch: pytest.MonkeyPatch,
    partition_size: int,
) -> None:
    monkeypatch.setattr(reconcile, "PARTITION_SIZE", partition_size)
    await _seed(local_root)
    # Another clinic's resource at headquarters is none of this clinic's business.
    await headquarters.register("clinic-b", name="Clinic B", country="DE")
    other = clinic_key("clinic-b").resource_id("Patient", "p0")
    await global_root.call("PUT", f"/Patient/{other}", json={"gender": "male"})
    async with headquarters.clinic_app(local_aidbox.url, **QUIET):
        await sync(local_root)
        before = await _reconcile(local_root)
        assert before["clean"] is True
        assert {r["type"]: r["compared"] for r in before["types"]}["Observation"] == 6

        gone, altered = KEY.resource_id("Observation", "o1"), KEY.resource_id("Observation", "o2")
        ghost = KEY.resource_id("Observation", "never-in-the-clinic")
        held = await resources(global_root, "Observation")
        await global_root.call("DELETE", f"/Observation/{gone}")
        tampered = held[altered] | {"status": "cancelled"}
        await global_root.call("PUT", f"/Observation/{altered}", json=tampered)
        await global_root.call("PUT", f"/Observation/{ghost}", json=held[altered] | {"id": ghost})

        found = await _reconcile(local_root, resourceType="Observation")
        [report] = found["types"]
        assert found["clean"] is False
        assert (report["missing"], report["stale"], report["extra"]) == (1, 1, 1)
        assert report["ids"]["missing"] == [{"global": gone, "local": "o1"}]
        assert report["ids"]["stale"] == [{"global": altered, "local": "o2"}]
        assert report["ids"]["extra"] == [{"global": ghost}]

        repaired = await _reconcile(local_root, resourceType="Observation", repair=True)
        [fixed] = repaired["types"]
        assert fixed["repaired"]["written"] == 2 and fixed["repaired"]["deleted"] == 1
        after = await _reconcile(local_root)
    assert after["clean"] is True
    mine = await global_state(global_root, TYPES, namespace=CLINIC)
    assert mine == await expected_global(local_root, TYPES)
    assert other in await resources(global_root, "Patient")  # the other clinic's stays


async def test_the_inventory_answers_active_clinics_only(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    global_root: AidboxClient,
) -> None:
    params = {"type": "Patient"}
    async with AidboxClient(global_aidbox.url, CLINIC, headquarters.secrets[CLINIC]) as clinic:
        assert (await clinic.request("GET", "/$sync-inventory", params=params)).status == 200
        root = await global_root.request("GET", "/$sync-inventory", params=params)
        assert root.status == 403  # headquarters' root is no clinic: it has no namespace
        await headquarters.register(CLINIC, status="suspended")
        refused = await clinic.request("GET", "/$sync-inventory", params=params)
    assert refused.status == 403 and refused.body["resourceType"] == "OperationOutcome"


async def test_the_inventory_answers_a_type_whose_table_name_is_a_sql_keyword(
    global_aidbox: Emulator, headquarters: Headquarters
) -> None:
    # Group is registrable (app/registry/types.py) and its table is "group"
    # (database/database-schema.md), a reserved word in PostgreSQL.
    await headquarters.register(CLINIC, types=["Patient", "Group"])
    gid = KEY.resource_id("Group", "g1")
    group = {"resourceType": "Group", "id": gid, "type": "person", "actual": True}
    async with AidboxClient(global_aidbox.url, CLINIC, headquarters.secrets[CLINIC]) as clinic:
        assert (await clinic.request("PUT", f"/Group/{gid}", json=group)).status == 201
        resp = await clinic.request("GET", "/$sync-inventory", params={"type": "Group"})
    assert resp.status == 200, resp.body
    assert [item["id"] for item in resp.body["items"]] == [gid]


async def test_a_type_whose_table_name_is_a_sql_keyword_is_reconciled(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # The clinic reads its own "group" table as headquarters reads its own.
    await headquarters.register(CLINIC, types=[*default_types(), "Group"])
    group = {"resourceType": "Group", "id": "g1", "type": "person", "actual": True}
    await local_root.call("PUT", "/Group/g1", json=group)
    async with headquarters.clinic_app(local_aidbox.url, **QUIET):
        config = (await local_root.call("GET", "/SyncConfig/default")).body
        config["streams"].append({"type": "Group", "direction": "push", "order": 99})
        await local_root.call("PUT", "/SyncConfig/default", json=config)
        await sync(local_root)
        await global_root.call("DELETE", f"/Group/{KEY.resource_id('Group', 'g1')}")
        found = await _reconcile(local_root, resourceType="Group")
    [report] = found["types"]
    assert (report["compared"], report["missing"], report["stale"], report["extra"]) == (1, 1, 0, 0)


@pytest.mark.parametrize("rtype", ["Nonexistent", "AccessPolicy", "Client", "Device"])
async def test_the_inventory_refuses_a_type_the_clinic_does_not_push(
    global_aidbox: Emulator, headquarters: Headquarters, global_root: AidboxClient, rtype: str
) -> None:
    # The caller's mistake, a 4xx OperationOutcome: not 502 (a name that is no table), nor an
    # answer read from Aidbox's own tables. An instance edited by hand to list a type that is
    # no clinical data pushes none of it either (the clinics' policy refuses its writes).
    instance = (await global_root.call("GET", f"/AidboxInstance/{CLINIC}")).body
    edited = {**instance, "types": [*instance["types"], "AccessPolicy", "Client"]}
    await global_root.call("PUT", f"/AidboxInstance/{CLINIC}", json=edited)
    async with AidboxClient(global_aidbox.url, CLINIC, headquarters.secrets[CLINIC]) as clinic:
        resp = await clinic.request("GET", "/$sync-inventory", params={"type": rtype})
    assert refused(resp), (resp.status, resp.body)
