"""Basic auth with Client resources and AccessPolicy (AIDBOX_CONTRACT §7,
access-control/authorization/access-policies.md)."""

from __future__ import annotations


async def test_missing_or_wrong_credentials_401(box):
    missing = await box.get("/Patient", auth=None)
    assert missing.status == 401
    assert missing.body["resourceType"] == "OperationOutcome"
    wrong = await box.get("/Patient", auth=(box.client_id, "wrong"))
    assert wrong.status == 401


async def test_client_without_policy_is_403(box, uid):
    await box.put(f"/Client/c-{uid}", {"secret": "s3cret", "grant_types": ["basic"]})
    answer = await box.get("/Patient", auth=(f"c-{uid}", "s3cret"))
    assert answer.status == 403
    assert answer.body["resourceType"] == "OperationOutcome"


async def test_allow_policy_linked_to_client(box, uid):
    client = (f"c-{uid}", "s3cret")
    await box.put(f"/Client/c-{uid}", {"secret": "s3cret", "grant_types": ["basic"]})
    await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"c-{uid}"}]},
    )
    assert (await box.get("/Patient", auth=client)).status == 200
    assert (await box.get("/Patient", auth=(f"c-{uid}", "bad"))).status == 401
    await box.delete(f"/AccessPolicy/ap-{uid}")
    assert (await box.get("/Patient", auth=client)).status == 403


async def test_policy_linked_to_another_client_does_not_apply(box, uid):
    await box.put(f"/Client/c-{uid}", {"secret": "s3cret", "grant_types": ["basic"]})
    await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"other-{uid}"}]},
    )
    answer = await box.get("/Patient", auth=(f"c-{uid}", "s3cret"))
    assert answer.status == 403
