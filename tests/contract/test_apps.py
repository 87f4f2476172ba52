"""App protocol: registration, operation routing/forwarding, policies, subscriptions
(developer-experience/apps.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web


@dataclass
class FakeApp:
    """A tiny App endpoint recording what Aidbox sends it."""

    url: str
    calls: asyncio.Queue = field(default_factory=asyncio.Queue)


@pytest.fixture
async def fake_app() -> AsyncIterator[FakeApp]:
    """An http-rpc endpoint answering operations with 200 and subscriptions with {}."""
    recorder = FakeApp(url="")

    async def endpoint(request: web.Request) -> web.Response:
        body = await request.json()
        await recorder.calls.put((dict(request.headers), body))
        if body["type"] == "operation":
            return web.Response(
                status=202, text='{"echo": true}', content_type="application/x-test+json"
            )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/aidbox", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}/aidbox"
    yield recorder
    await runner.cleanup()


def manifest(app_id: str, url: str, **parts: Any) -> dict[str, Any]:
    """An SDK-shaped App manifest (sdk.py build_manifest)."""
    return {
        "resourceType": "App",
        "apiVersion": 1,
        "type": "app",
        "id": app_id,
        "endpoint": {"url": url, "type": "http-rpc", "secret": "app-secret"},
        **parts,
    }


def sync_op(uid: str) -> dict[str, Any]:
    """`POST /ChangesInfo/<id>/$sync` and `POST /$sync-<uid>`."""
    return {
        f"POST.app.sync_one.{uid}": {
            "method": "POST",
            "path": [f"ChangesInfo{uid}", {"name": "id"}, "$sync"],
        },
        f"POST.app.sync_all.{uid}": {"method": "POST", "path": [f"$sync-{uid}"]},
    }


async def test_operation_forwarded_with_documented_body(box, fake_app, uid):
    reg = await box.put(
        f"/App/app-{uid}", manifest(f"app-{uid}", fake_app.url, operations=sync_op(uid))
    )
    assert reg.status in (200, 201), reg.body
    answer = await box.request(
        "POST",
        f"/ChangesInfo{uid}/abc/$sync",
        json={"resourceType": "Parameters"},
        params={"dry": "1"},
    )
    assert answer.status == 202
    assert answer.body == {"echo": True}
    assert answer.headers["Content-Type"].startswith("application/x-test+json")
    headers, body = await asyncio.wait_for(fake_app.calls.get(), 10)
    assert headers["Authorization"] == aiohttp.encode_basic_auth(f"app-{uid}", "app-secret")
    assert body["type"] == "operation"
    assert body["box"]["base-url"]
    assert body["operation"]["id"] == f"POST.app.sync_one.{uid}"
    assert body["operation"]["app"] == {"id": f"app-{uid}", "resourceType": "App"}
    request = body["request"]
    assert request["resource"] == {"resourceType": "Parameters"}
    assert request["params"] == {"dry": "1"}
    assert request["route-params"] == {"id": "abc"}
    assert request["headers"]["authorization"].startswith("Basic ")
    assert request["oauth/client"]["id"] == box.client_id


async def test_root_path_operation_and_reregistration_replaces_routes(box, fake_app, uid):
    await box.put(f"/App/app-{uid}", manifest(f"app-{uid}", fake_app.url, operations=sync_op(uid)))
    assert (await box.request("POST", f"/$sync-{uid}")).status == 202
    _, body = await asyncio.wait_for(fake_app.calls.get(), 10)
    assert body["request"]["resource"] is None
    ops = sync_op(uid)
    ops.pop(f"POST.app.sync_all.{uid}")
    await box.put(f"/App/app-{uid}", manifest(f"app-{uid}", fake_app.url, operations=ops))
    assert (await box.request("POST", f"/$sync-{uid}")).status == 404
    assert (await box.request("POST", f"/ChangesInfo{uid}/x/$sync")).status == 202


async def test_operation_policy_client_without_policy_403_public_allowed(box, fake_app, uid):
    ops = sync_op(uid)
    public_op = f"POST.app.sync_all.{uid}"
    policies = {
        "AccessPolicy": {
            f"app-{uid}-endpoint": {
                "engine": "allow",
                "link": [{"resourceType": "Operation", "id": public_op}],
            }
        }
    }
    reg = await box.put(
        f"/App/app-{uid}", manifest(f"app-{uid}", fake_app.url, operations=ops, resources=policies)
    )
    assert reg.status in (200, 201), reg.body
    await box.put(f"/Client/c-{uid}", {"secret": "pw", "grant_types": ["basic"]})
    client = (f"c-{uid}", "pw")
    denied = await box.request("POST", f"/ChangesInfo{uid}/abc/$sync", auth=client)
    assert denied.status == 403
    assert denied.body["resourceType"] == "OperationOutcome"
    assert fake_app.calls.empty()
    allowed = await box.request("POST", f"/$sync-{uid}", auth=client)
    assert allowed.status == 202
    _, body = await asyncio.wait_for(fake_app.calls.get(), 10)
    assert body["request"]["oauth/client"]["id"] == f"c-{uid}"
    assert body["request"]["oauth/client"].get("secret") != "pw"  # stored hashed


async def test_public_operation_is_callable_without_credentials(box, fake_app, uid):
    # tutorials/security-access-control-tutorials/overview.md "What is a public route?": an
    # unrestricted policy makes a route public; the SDK's `public=True`
    # is an `allow` policy `<app>-endpoint` linked to the Operation (sdk.py
    # _set_access_policy_for_public_op). Refused anonymous calls are 401; wrong credentials are
    # 401 even on a public operation (no fallback to anonymous).
    public_op = f"POST.app.sync_all.{uid}"
    policies = {
        "AccessPolicy": {
            f"app-{uid}-endpoint": {
                "engine": "allow",
                "link": [{"resourceType": "Operation", "id": public_op}],
            }
        }
    }
    reg = await box.put(
        f"/App/app-{uid}",
        manifest(f"app-{uid}", fake_app.url, operations=sync_op(uid), resources=policies),
    )
    assert reg.status in (200, 201), reg.body
    anonymous = await box.request("POST", f"/$sync-{uid}", auth=None)
    assert anonymous.status == 202
    _, body = await asyncio.wait_for(fake_app.calls.get(), 10)
    assert body["operation"]["id"] == public_op
    assert body["request"].get("oauth/client") is None
    private = await box.request("POST", f"/ChangesInfo{uid}/abc/$sync", auth=None)
    assert private.status == 401
    assert private.body["resourceType"] == "OperationOutcome"
    wrong = await box.request("POST", f"/$sync-{uid}", auth=(f"nobody-{uid}", "x"))
    assert wrong.status == 401
    assert fake_app.calls.empty()


@pytest.mark.emulator_only
async def test_unreachable_app_is_5xx_outcome(box, uid):
    await box.put(
        f"/App/app-{uid}",
        manifest(f"app-{uid}", "http://127.0.0.1:9/aidbox", operations=sync_op(uid)),
    )
    answer = await box.request("POST", f"/$sync-{uid}")
    assert 500 <= answer.status < 600
    assert answer.body["resourceType"] == "OperationOutcome"


async def test_subscription_delivered_after_commit(box, fake_app, uid):
    await box.put(
        f"/App/app-{uid}",
        manifest(f"app-{uid}", fake_app.url, subscriptions={"Patient": {"handler": "on_patient"}}),
    )
    created = await box.put(f"/Patient/p-{uid}", {"active": True})
    await box.put(f"/Patient/p-{uid}", {"active": False})
    events = []
    while len(events) < 2:
        headers, body = await asyncio.wait_for(fake_app.calls.get(), 10)
        if body["event"]["resource"]["id"] == f"p-{uid}":
            events.append((headers, body))
    events.sort(key=lambda e: int(e[1]["event"]["tx"]["id"]))
    (headers, first), (_, second) = events
    assert headers["Authorization"] == aiohttp.encode_basic_auth(f"app-{uid}", "app-secret")
    assert first["type"] == "subscription" and first["handler"] == "on_patient"
    assert first["event"]["action"] == "create"
    assert str(first["event"]["tx"]["id"]) == created.body["meta"]["versionId"]
    assert second["event"]["action"] == "update"
    assert second["event"]["resource"]["active"] is False


@pytest.mark.emulator_only
async def test_subscription_retried_until_app_accepts(box, uid):
    attempts: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        attempts.append(1)
        return web.json_response({}, status=503 if len(attempts) < 3 else 200)

    app = web.Application()
    app.router.add_post("/aidbox", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/aidbox"
    try:
        await box.put(
            f"/App/app-{uid}",
            manifest(f"app-{uid}", url, subscriptions={"Patient": {"handler": "h"}}),
        )
        await box.put(f"/Patient/p-{uid}", {})
        await box.emulator.deliveries_idle()
        assert len(attempts) == 3
    finally:
        await runner.cleanup()
