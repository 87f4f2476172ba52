"""Bad input never crashes the server: Aidbox-shaped OperationOutcomes (api/rest-api/crud/*.md)."""

from __future__ import annotations

import pytest


async def test_malformed_json_is_400_outcome(box, uid):
    answer = await box.request(
        "PUT", f"/Patient/m-{uid}", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status in (400, 422)
    assert answer.body["resourceType"] == "OperationOutcome"
    assert (await box.get(f"/Patient/m-{uid}")).status == 404


@pytest.mark.parametrize("body", [[1, 2], "text", {"resourceType": "Observation"}])
async def test_wrong_body_for_a_resource_is_an_outcome(box, uid, body):
    answer = await box.put(f"/Patient/w-{uid}", body)
    assert answer.status in (400, 422)
    assert answer.body["resourceType"] == "OperationOutcome"


async def test_garbage_authorization_header_is_401(box):
    answer = await box.get("/Patient", auth=None, headers={"Authorization": "Basic %%%"})
    assert answer.status == 401


@pytest.mark.emulator_only
async def test_unexpected_exception_is_500_and_server_keeps_running(box, uid, monkeypatch):
    from aidbox_emulator import crud

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(crud, "read", broken)
    answer = await box.get(f"/Patient/x-{uid}")
    assert answer.status == 500
    assert answer.body["resourceType"] == "OperationOutcome"
    monkeypatch.undo()
    assert (await box.get(f"/Patient/x-{uid}")).status == 404
