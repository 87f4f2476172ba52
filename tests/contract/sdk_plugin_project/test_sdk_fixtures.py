"""Runs under the SDK's own pytest plugin against the emulator (see test_sdk_plugin.py)."""

from __future__ import annotations


async def test_aidbox_client_safe_db_and_subscription(aidbox_client, safe_db, sdk):
    triggered = sdk.was_subscription_triggered("Patient")
    await aidbox_client.resource("Patient", id="sdk-p1", name=[{"family": "Plugin"}]).save()
    assert await triggered
    found = await aidbox_client.resources("Patient").search(_id="sdk-p1").fetch_all()
    assert [p.id for p in found] == ["sdk-p1"]
    seed = await aidbox_client.resources("Organization").search(_id="sdk-seed-org").fetch_all()
    assert len(seed) == 1


async def test_safe_db_dropped_the_previous_tests_rows(aidbox_client, safe_db):
    assert await aidbox_client.resources("Patient").search(_id="sdk-p1").fetch_all() == []


async def test_public_operation_through_the_box(aidbox_client):
    assert await aidbox_client.execute("$sdk-ping", method="get") == {"pong": {}}
