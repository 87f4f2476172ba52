"""Bad input never crashes the server: Aidbox-shaped OperationOutcomes (api/rest-api/crud/*.md)."""

from __future__ import annotations

import aiohttp
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


# reference/all-settings.md, web.max-body: "Maximum size of the request body in bytes",
# BOX_WEB_MAX_BODY, default 20971520. Against a real Aidbox these expect that default.
MAX_BODY = 20_971_520


def _binary_of(size: int) -> bytes:
    """A Binary's JSON of exactly `size` bytes (valid base64 data, trailing whitespace)."""
    head = b'{"resourceType":"Binary","contentType":"application/octet-stream","data":"'
    data = b"A" * ((size - len(head) - 2) // 4 * 4)
    raw = head + data + b'"}'
    return raw + b" " * (size - len(raw))


@pytest.mark.parametrize(("size", "taken"), [(MAX_BODY, True), (MAX_BODY + 1, False)])
async def test_a_body_of_the_default_max_body_size_is_taken_and_a_byte_more_refused(
    box, uid, size, taken
):
    path = f"{box.url}/Binary/max-{uid}"
    headers = {
        "Authorization": aiohttp.encode_basic_auth(*box.auth),
        "Content-Type": "application/json",
    }
    async with box.http.put(path, data=_binary_of(size), headers=headers) as resp:
        status = resp.status  # Aidbox's body for a refusal is not documented: not read
    if taken:
        assert status in (200, 201)
    else:
        assert 400 <= status < 500
    assert (await box.get(f"/Binary/max-{uid}")).status == (200 if taken else 404)
