"""Search used by the App and the SDK; `$resource-types`."""

from __future__ import annotations

import pytest

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


async def _seed(box, uid, n=5):
    for i in range(n):
        await box.put(
            f"/Patient/s{i}-{uid}",
            {
                "gender": "male" if i % 2 else "female",
                "identifier": [{"system": "urn:s", "value": f"{uid}-{i}"}],
            },
        )


async def test_search_by_id_list_count_page_sort(box, uid):
    await _seed(box, uid)
    ids = ",".join(f"s{i}-{uid}" for i in range(5))
    page1 = await box.get("/Patient", params={"_id": ids, "_count": "2", "_sort": "-id"})
    assert page1.status == 200
    assert page1.body["resourceType"] == "Bundle" and page1.body["type"] == "searchset"
    assert page1.body["total"] == 5
    assert [e["resource"]["id"] for e in page1.body["entry"]] == [f"s4-{uid}", f"s3-{uid}"]
    page3 = await box.get(
        "/Patient", params={"_id": ids, "_count": "2", "_sort": "-id", "_page": "3"}
    )
    assert [e["resource"]["id"] for e in page3.body["entry"]] == [f"s0-{uid}"]


async def test_search_identifier_elements_and_equality(box, uid):
    await _seed(box, uid)
    found = await box.get("/Patient", params={"identifier": f"urn:s|{uid}-3", "_elements": "id"})
    assert [e["resource"]["id"] for e in found.body["entry"]] == [f"s3-{uid}"]
    assert "gender" not in found.body["entry"][0]["resource"]
    males = await box.get(
        "/Patient", params={"_id": ",".join(f"s{i}-{uid}" for i in range(5)), "gender": "male"}
    )
    assert males.body["total"] == 2


async def test_sort_by_last_updated(box, uid):
    await _seed(box, uid, 3)
    await box.put(f"/Patient/s0-{uid}", {"gender": "other"})
    answer = await box.get(
        "/Patient",
        params={"_id": ",".join(f"s{i}-{uid}" for i in range(3)), "_sort": "-_lastUpdated"},
    )
    assert answer.body["entry"][0]["resource"]["id"] == f"s0-{uid}"


async def test_resource_types_lists_fhir_aidbox_types(box):
    answer = await box.get("/$resource-types")
    assert answer.status == 200
    for t in ("Patient", "Observation", "App", "Client", "AccessPolicy", "FHIRSchema"):
        assert t in answer.body
