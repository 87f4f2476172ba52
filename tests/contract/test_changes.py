"""Changes API (api/other/changes-api.md) and the documented late-commit race."""

from __future__ import annotations

import asyncio

import pytest


async def test_version_and_changes_since(box, uid):
    start = await box.version("Patient")
    a = await box.put(f"/Patient/a-{uid}", {"active": True})
    b = await box.put(f"/Patient/b-{uid}", {"active": True})
    head = await box.version("Patient")
    assert head >= int(b.body["meta"]["versionId"]) > int(a.body["meta"]["versionId"]) > start
    answer = await box.get("/Patient/$changes", params={"version": str(start)})
    assert answer.status == 200
    mine = [c for c in answer.body["changes"] if c["resource"]["id"].endswith(uid)]
    assert [(c["event"], c["resource"]["id"]) for c in mine] == [
        ("created", f"a-{uid}"),
        ("created", f"b-{uid}"),
    ]
    assert answer.body["version"] == head


async def test_304_when_nothing_changed(box, uid):
    await box.put(f"/Patient/a-{uid}", {"active": True})
    head = await box.version("Patient")
    answer = await box.get("/Patient/$changes", params={"version": str(head)})
    assert answer.status == 304 and answer.body is None


async def test_window_lo_exclusive_hi_inclusive(box, uid):
    start = await box.version("Patient")
    v = []
    for name in "abc":
        v.append(int((await box.put(f"/Patient/{name}-{uid}", {})).body["meta"]["versionId"]))
    answer = await box.get("/Patient/$changes", params={"version": f"{v[0]},{v[1]}"})
    assert [c["resource"]["id"] for c in answer.body["changes"]] == [f"b-{uid}"]
    assert answer.body["version"] == v[1]
    full = await box.get("/Patient/$changes", params={"version": f"{start},{v[2]}"})
    assert [c["resource"]["id"] for c in full.body["changes"]][-3:] == [
        f"a-{uid}",
        f"b-{uid}",
        f"c-{uid}",
    ]


async def test_update_and_delete_events_and_omit_resources(box, uid):
    start = await box.version("Patient")
    await box.put(f"/Patient/a-{uid}", {"active": True})
    await box.put(f"/Patient/a-{uid}", {"active": False})
    await box.delete(f"/Patient/a-{uid}")
    answer = await box.get(
        f"/Patient/a-{uid}/$changes", params={"version": str(start), "omit-resources": "true"}
    )
    assert [c["event"] for c in answer.body["changes"]] == ["created", "updated", "deleted"]
    for change in answer.body["changes"]:
        assert change["resource"] == {"id": f"a-{uid}", "resourceType": "Patient"}


async def test_count_and_page(box, uid):
    start = await box.version("Patient")
    for i in range(5):
        await box.put(f"/Patient/p{i}-{uid}", {})
    seen, page = [], 1
    while True:
        answer = await box.get(
            "/Patient/$changes", params={"version": str(start), "_count": "2", "_page": str(page)}
        )
        if answer.status == 304 or not answer.body.get("changes"):
            break
        seen += [c["resource"]["id"] for c in answer.body["changes"]]
        page += 1
    assert seen == [f"p{i}-{uid}" for i in range(5)]


async def test_fhir_true_converts_resources(box, uid):
    await box.put(f"/Patient/p-{uid}", {})
    start = await box.version("Observation")
    await box.put(
        f"/Observation/o-{uid}",
        {
            "status": "final",
            "code": {"text": "x"},
            "value": {"string": "v"},
            "subject": {"resourceType": "Patient", "id": f"p-{uid}"},
        },
    )
    plain = await box.get(f"/Observation/o-{uid}/$changes", params={"version": str(start)})
    assert plain.body["changes"][0]["resource"]["value"] == {"string": "v"}
    fhir = await box.get(
        f"/Observation/o-{uid}/$changes", params={"version": str(start), "fhir": "true"}
    )
    resource = fhir.body["changes"][0]["resource"]
    assert resource["valueString"] == "v"
    assert resource["subject"] == {"reference": f"Patient/p-{uid}"}


async def test_instance_level_version(box, uid):
    created = await box.put(f"/Patient/a-{uid}", {})
    await box.put(f"/Patient/b-{uid}", {})
    answer = await box.get(f"/Patient/a-{uid}/$changes")
    assert answer.body == {"version": int(created.body["meta"]["versionId"])}


@pytest.mark.parametrize("bad", ["abc", "1,2,3", "1,x"])
async def test_bad_version_is_an_outcome(box, bad):
    answer = await box.get("/Patient/$changes", params={"version": bad})
    assert answer.status in (400, 422)
    assert answer.body["resourceType"] == "OperationOutcome"


@pytest.mark.emulator_only
async def test_late_commit_race_is_real(box, uid):
    """changes-api.md, "Possible Race Condition": txid T commits after T+1 was read."""
    # Both writers at read-committed (x-max-isolation-level, api/batch-transaction.md): under
    # SERIALIZABLE, PostgreSQL may abort T when the two writes' index reads share a page, and
    # the race, not a conflict, is under test.
    rc = {"x-max-isolation-level": "read-committed"}
    hold = box.emulator.faults.hold_next_write("Patient")
    slow = asyncio.create_task(box.put(f"/Patient/slow-{uid}", {"active": True}, headers=rc))
    t = await hold.txid_taken()
    fast = await box.put(f"/Patient/fast-{uid}", {"active": True}, headers=rc)
    assert int(fast.body["meta"]["versionId"]) == t + 1

    seen = await box.get("/Patient/$changes", params={"version": str(t - 1)})
    assert seen.body["version"] >= t + 1
    assert [c["resource"]["id"] for c in seen.body["changes"]] == [f"fast-{uid}"]

    hold.release()
    assert await hold.committed()
    assert (await slow).status == 201
    # A reader continuing strictly after T+1 never sees T ...
    after = await box.get("/Patient/$changes", params={"version": str(t + 1)})
    assert after.status == 304
    # ... while re-reading the window (T-1, T+1] does.
    window = await box.get("/Patient/$changes", params={"version": f"{t - 1},{t + 1}"})
    assert [c["resource"]["id"] for c in window.body["changes"]] == [f"slow-{uid}", f"fast-{uid}"]


@pytest.mark.emulator_only
async def test_serializable_conflict_between_concurrent_transactions(box, uid):
    """Two conditional creates on one identifier: write skew under SERIALIZABLE → 412."""
    hold = box.emulator.faults.hold_next_write("Patient")
    ident = {"system": "urn:race", "value": uid}
    first = asyncio.create_task(
        box.post(f"/Patient?identifier=urn:race|{uid}", {"id": f"one-{uid}", "identifier": [ident]})
    )
    await hold.txid_taken()
    second = await box.post(
        f"/Patient?identifier=urn:race|{uid}", {"id": f"two-{uid}", "identifier": [ident]}
    )
    assert second.status == 201
    hold.release()
    assert await hold.committed() is False
    failed = await first
    # api/rest-api/crud/update.md, "Isolation levels": concurrent modification → 412
    assert failed.status == 412
    assert failed.body["issue"][0]["code"] == "conflict"
    found = await box.get("/Patient", params={"identifier": f"urn:race|{uid}"})
    assert [e["resource"]["id"] for e in found.body["entry"]] == [f"two-{uid}"]
