"""CRUD in Aidbox format at `/` and FHIR format at `/fhir` (api/rest-api/crud/*.md)."""

from __future__ import annotations

import pytest

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


async def test_post_assigns_id_and_meta_from_txid(box, uid):
    created = await box.post("/Patient", {"name": [{"family": uid}]})
    assert created.status == 201
    body = created.body
    assert body["resourceType"] == "Patient" and body["id"]
    assert body["meta"]["versionId"].isdigit() and body["meta"]["lastUpdated"]
    read = await box.get(f"/Patient/{body['id']}")
    assert read.status == 200 and read.body == body


async def test_post_with_existing_id_is_409(box, uid):
    assert (await box.post("/Patient", {"id": f"p-{uid}"})).status == 201
    again = await box.post("/Patient", {"id": f"p-{uid}"})
    assert again.status == 409
    assert again.body["resourceType"] == "OperationOutcome"


async def test_put_creates_then_updates_with_new_version(box, uid):
    first = await box.put(f"/Patient/p-{uid}", {"gender": "male"})
    assert first.status == 201
    second = await box.put(f"/Patient/p-{uid}", {"gender": "female"})
    assert second.status == 200
    assert int(second.body["meta"]["versionId"]) > int(first.body["meta"]["versionId"])
    assert second.body["gender"] == "female"


async def test_put_if_match_mismatch_is_409_version_id_mismatch(box, uid):
    # api/rest-api/crud/update.md, "Versioned Update"
    created = await box.put(f"/Patient/p-{uid}", {"active": True})
    version = created.body["meta"]["versionId"]
    ok = await box.put(f"/Patient/p-{uid}", {"active": False}, headers={"If-Match": version})
    assert ok.status == 200
    stale = await box.put(f"/Patient/p-{uid}", {"active": True}, headers={"If-Match": version})
    assert stale.status == 409
    assert stale.body["id"] == "conflict"
    assert stale.body["issue"][0]["code"] == "conflict"
    assert stale.body["issue"][0]["diagnostics"] == "Version Id mismatch"


async def test_put_if_match_star_on_missing_is_412(box, uid):
    # api/rest-api/crud/update.md, "Update Only (Prevent Create on PUT)"
    answer = await box.put(f"/Patient/none-{uid}", {"active": True}, headers={"If-Match": "*"})
    assert answer.status == 412
    assert (await box.get(f"/Patient/none-{uid}")).status == 404


async def test_delete_200_with_body_then_204_and_read_410(box, uid):
    # api/rest-api/crud/delete.md
    await box.put(f"/Patient/p-{uid}", {"active": True})
    deleted = await box.delete(f"/Patient/p-{uid}")
    assert deleted.status == 200 and deleted.body["id"] == f"p-{uid}"
    again = await box.delete(f"/Patient/p-{uid}")
    assert again.status == 204 and again.body is None
    gone = await box.get(f"/Patient/p-{uid}")
    assert gone.status == 410
    assert gone.body["resourceType"] == "OperationOutcome"


async def test_delete_missing_is_204(box, uid):
    answer = await box.delete(f"/Patient/never-{uid}")
    assert answer.status == 204 and answer.body is None


async def test_delete_if_match_mismatch_is_412(box, uid):
    created = await box.put(f"/Patient/p-{uid}", {"active": True})
    stale = str(int(created.body["meta"]["versionId"]) - 1)
    answer = await box.delete(f"/Patient/p-{uid}", headers={"If-Match": stale})
    assert answer.status == 412
    assert (await box.get(f"/Patient/p-{uid}")).status == 200


async def test_read_unknown_id_404_outcome(box, uid):
    answer = await box.get(f"/Patient/missing-{uid}")
    assert answer.status == 404
    assert answer.body["issue"][0]["diagnostics"] == f"Resource Patient/missing-{uid} not found"


@pytest.mark.parametrize("path", ["/NoSuchType/1", "/NoSuchType", "/fhir/NoSuchType/1"])
async def test_unknown_resource_type_is_404(box, path):
    answer = await box.get(path)
    assert answer.status == 404
    assert answer.body["resourceType"] == "OperationOutcome"


async def test_conditional_create_by_id_returns_existing(box, uid):
    # The SDK's seeds: POST /<Type>?_id=<id> (sdk.py create_seed_resources)
    first = await box.post(f"/Patient?_id=s-{uid}", {"id": f"s-{uid}", "gender": "male"})
    assert first.status == 201
    second = await box.post(f"/Patient?_id=s-{uid}", {"id": f"s-{uid}", "gender": "female"})
    assert second.status == 200
    assert second.body["gender"] == "male"


async def test_conditional_create_and_update_by_identifier(box, uid):
    ident = {"system": "urn:test", "value": uid}
    created = await box.post(
        f"/Patient?identifier=urn:test|{uid}", {"identifier": [ident], "active": True}
    )
    assert created.status == 201
    same = await box.post(f"/Patient?identifier=urn:test|{uid}", {"identifier": [ident]})
    assert same.status == 200 and same.body["id"] == created.body["id"]
    updated = await box.put(
        f"/Patient?identifier=urn:test|{uid}", {"identifier": [ident], "active": False}
    )
    assert updated.status == 200
    assert updated.body["id"] == created.body["id"] and updated.body["active"] is False


async def test_history_lists_versions_newest_first(box, uid):
    await box.put(f"/Patient/h-{uid}", {"birthDate": "2000-01-01"})
    await box.put(f"/Patient/h-{uid}", {"birthDate": "2000-01-02"})
    history = await box.get(f"/Patient/h-{uid}/_history")
    assert history.status == 200
    dates = [e["resource"]["birthDate"] for e in history.body["entry"]]
    assert dates == ["2000-01-02", "2000-01-01"]


async def test_fhir_format_references_and_choice_types(box, uid):
    # api/rest-api/other/aidbox-and-fhir-formats.md
    await box.put(f"/Patient/f-{uid}", {"active": True})
    fhir_obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "t"},
        "subject": {"reference": f"Patient/f-{uid}"},
        "valueString": "hello",
        "performer": [{"reference": "http://elsewhere.example/Practitioner/1"}],
    }
    created = await box.put(f"/fhir/Observation/o-{uid}", fhir_obs)
    assert created.status == 201
    assert created.body["subject"] == {"reference": f"Patient/f-{uid}"}
    assert created.body["valueString"] == "hello"
    aidbox = (await box.get(f"/Observation/o-{uid}")).body
    assert aidbox["subject"] == {"resourceType": "Patient", "id": f"f-{uid}"}
    assert aidbox["value"] == {"string": "hello"}
    assert aidbox["performer"] == [{"uri": "http://elsewhere.example/Practitioner/1"}]
    back = (await box.get(f"/fhir/Observation/o-{uid}")).body
    assert back["performer"] == fhir_obs["performer"]
    assert back["valueString"] == "hello" and "value" not in back


async def test_aidbox_format_choice_written_at_root_reads_as_fhir(box, uid):
    await box.put(f"/Patient/d-{uid}", {"deceased": {"boolean": True}})
    fhir = (await box.get(f"/fhir/Patient/d-{uid}")).body
    assert fhir["deceasedBoolean"] is True
