"""The App in global role: AidboxInstance defined, instances overview served."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp, running_app
from tests.support.headquarters import Headquarters


@pytest.fixture
async def global_app(global_aidbox: Emulator) -> AsyncIterator[RunningApp]:
    async with running_app(global_aidbox.url, role="global") as running:
        yield running


async def test_registered_instances_are_listed_by_the_overview(
    headquarters: Headquarters, global_root: AidboxClient
) -> None:
    await headquarters.register("clinic-b", name="Clinic B", country="PT", status="suspended")
    overview = await global_root.call("GET", "/$instances")
    assert overview.body["total"] == 2
    listed = {i["id"]: i for i in overview.body["instances"]}
    assert listed["clinic-a"]["status"] == "active"
    assert listed["clinic-b"]["status"] == "suspended"
    assert listed["clinic-b"]["country"] == "PT"
    assert "secret" not in str(overview.body)


async def test_invalid_instance_is_refused(
    global_app: RunningApp, global_root: AidboxClient
) -> None:
    resp = await global_root.request("PUT", "/AidboxInstance/x", json={"status": "active"})
    assert resp.status == 422  # name and client are required
    assert resp.body["resourceType"] == "OperationOutcome"


async def test_global_role_registers_only_headquarters_operations(
    global_app: RunningApp, global_root: AidboxClient
) -> None:
    app = (await global_root.call("GET", "/App/aidbox-sync")).body
    paths = {tuple(str(p) for p in op["path"]) for op in app["operations"].values()}
    assert paths == {
        ("$instances",),
        ("$register-instance",),
        ("$sync-inventory",),
        ("$pull-changes",),
        ("$pull-read",),
    }
    assert "subscriptions" not in app
