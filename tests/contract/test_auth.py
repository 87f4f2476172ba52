"""Basic auth with Client resources and AccessPolicy
(access-control/authorization/access-policies.md)."""

from __future__ import annotations

import asyncpg
import pytest

# One emulator for the module, as a shared real Aidbox would be: every test touches only what
# its `uid` names (tests/contract/conftest.py `shared_box`).
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def box(shared_box):
    """The module's Aidbox."""
    return shared_box


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
    await box.put(f"/Client/other-{uid}", {"secret": "s3cret", "grant_types": ["basic"]})
    linked = await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"other-{uid}"}]},
    )
    assert linked.status == 201, linked.body
    assert (await box.get("/Patient", auth=(f"other-{uid}", "s3cret"))).status == 200
    answer = await box.get("/Patient", auth=(f"c-{uid}", "s3cret"))
    assert answer.status == 403


async def test_client_needs_basic_grant_type(box, uid):
    # basic-http-authentication.md: the Client "must include `basic` in its grant_types".
    await box.put(f"/Client/c-{uid}", {"secret": "s3cret", "grant_types": ["client_credentials"]})
    await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"c-{uid}"}]},
    )
    assert (await box.get("/Patient", auth=(f"c-{uid}", "s3cret"))).status == 401


async def test_inactive_client_cannot_authenticate(box, uid):
    # core-module-resources.md §Client: `active` — "whether this client is active and can be
    # used for authentication". Deactivation takes effect on the next request.
    client = await box.client_with_policies(f"c-{uid}", {"engine": "allow"})
    assert (await box.get("/Patient", auth=client)).status == 200
    off = {"secret": client[1], "grant_types": ["basic"], "active": False}
    assert (await box.put(f"/Client/c-{uid}", off)).status == 200
    refused = await box.get("/Patient", auth=client)
    assert refused.status == 401
    assert refused.body["resourceType"] == "OperationOutcome"
    assert (await box.put(f"/Client/c-{uid}", {**off, "active": True})).status == 200
    assert (await box.get("/Patient", auth=client)).status == 200


async def test_secret_is_not_answered_in_clear_and_still_authenticates(box, uid):
    # core-module-resources.md §Client: `secret` is the "Hashed client secret";
    # tutorials/security-access-control-tutorials/overview.md: hashed in the database.
    secret = f"clear-{uid}"
    created = await box.put(f"/Client/c-{uid}", {"secret": secret, "grant_types": ["basic"]})
    assert created.body.get("secret") != secret
    await box.put(f"/Client/c-{uid}", {"secret": secret, "grant_types": ["basic"], "active": True})
    read = await box.get(f"/Client/c-{uid}")
    assert read.status == 200
    assert read.body.get("secret") != secret
    found = await box.get("/Client", params={"_id": f"c-{uid}"})
    assert [e["resource"].get("secret") for e in found.body["entry"]] != [secret]
    history = await box.get(f"/Client/c-{uid}/_history")
    assert len(history.body["entry"]) == 2
    assert all(e["resource"].get("secret") != secret for e in history.body["entry"])
    await box.put(
        f"/AccessPolicy/ap-{uid}",
        {"engine": "allow", "link": [{"resourceType": "Client", "id": f"c-{uid}"}]},
    )
    assert (await box.get("/Patient", auth=(f"c-{uid}", secret))).status == 200


@pytest.mark.emulator_only
async def test_secret_is_stored_hashed_and_never_answered(box, uid):
    # The docs do not say what a read answers for `secret`: the emulator leaves it out of
    # every answer, and keeps only a salted hash in the database (docs/aidbox-contract-notes.md).
    secret = f"clear-{uid}"
    created = await box.put(f"/Client/c-{uid}", {"secret": secret, "grant_types": ["basic"]})
    assert "secret" not in created.body
    await box.put(f"/Client/c-{uid}", {"secret": secret, "grant_types": ["basic"]})
    assert "secret" not in (await box.get(f"/Client/c-{uid}")).body
    changes = await box.get("/Client/$changes", params={"version": "0"})
    assert all("secret" not in c["resource"] for c in changes.body["changes"])
    conn = await asyncpg.connect(box.emulator.dsn)
    try:
        rows = await conn.fetch(
            "SELECT resource->>'secret' AS s FROM client WHERE id = $1"
            " UNION ALL SELECT resource->>'secret' FROM client_history WHERE id = $1",
            f"c-{uid}",
        )
    finally:
        await conn.close()
    assert rows and all(r["s"].startswith("pbkdf2_sha256$") for r in rows)
    assert all(secret not in r["s"] for r in rows)


async def test_rotated_secret_takes_effect_on_the_next_request(box, uid):
    client = await box.client_with_policies(f"c-{uid}", {"engine": "allow"}, secret="old")
    assert (await box.get("/Patient", auth=client)).status == 200
    assert (await box.get("/Patient", auth=client)).status == 200  # a verified, cached secret
    rotated = {"secret": "new", "grant_types": ["basic"]}
    assert (await box.put(f"/Client/c-{uid}", rotated)).status == 200
    assert (await box.get("/Patient", auth=client)).status == 401
    assert (await box.get("/Patient", auth=(f"c-{uid}", "new"))).status == 200


async def test_credentials_that_are_not_basic_are_401(box, uid):
    # Wrong credentials are 401 and never fall back to anonymous, even where anonymous
    # requests are allowed (only Basic is emulated; a token Aidbox does not know is wrong too).
    for header in ("Bearer not-a-token", "Basic !!!", "Basic " + "eA=="):
        answer = await box.get("/Patient", headers={"Authorization": header}, auth=None)
        assert answer.status == 401, header
