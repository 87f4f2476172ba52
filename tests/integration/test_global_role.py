"""The App in global role: AidboxInstance defined, instances overview served."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp, running_app


@pytest.fixture
async def global_app(global_aidbox: Emulator) -> AsyncIterator[RunningApp]:
    async with running_app(global_aidbox.url, role="global") as running:
        yield running


async def test_instances_are_custom_resources_listed_by_the_overview(
    global_app: RunningApp, global_root: AidboxClient
) -> None:
    clinic = {
        "name": "Clinic A",
        "status": "active",
        "client": {"resourceType": "Client", "id": "clinic-a"},
        "country": "PT",
    }
    assert (await global_root.call("PUT", "/AidboxInstance/clinic-a", json=clinic)).status == 201
    overview = await global_root.call("GET", "/$instances")
    assert overview.body["total"] == 1
    [listed] = overview.body["instances"]
    assert listed["id"] == "clinic-a"
    assert listed["status"] == "active"
    assert listed["country"] == "PT"


async def test_invalid_instance_is_refused(
    global_app: RunningApp, global_root: AidboxClient
) -> None:
    resp = await global_root.request("PUT", "/AidboxInstance/x", json={"status": "active"})
    assert resp.status == 422  # name and client are required
    assert resp.body["resourceType"] == "OperationOutcome"


async def test_global_role_registers_no_clinic_operations(
    global_app: RunningApp, global_root: AidboxClient
) -> None:
    app = (await global_root.call("GET", "/App/aidbox-sync")).body
    paths = {tuple(str(p) for p in op["path"]) for op in app["operations"].values()}
    assert paths == {("$instances",)}
    assert "subscriptions" not in app
