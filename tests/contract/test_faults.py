"""The emulator's fault injection (emulator only)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

pytestmark = pytest.mark.emulator_only


async def test_random_errors_are_503_outcomes_and_deterministic(box, uid):
    box.emulator.faults.set_random(error_rate=0.5, seed=7, methods=["GET"])
    statuses = [(await box.get(f"/Patient/x-{uid}")).status for _ in range(20)]
    assert set(statuses) == {503, 404}
    box.emulator.faults.set_random(error_rate=0.5, seed=7, methods=["GET"])
    assert [(await box.get(f"/Patient/x-{uid}")).status for _ in range(20)] == statuses
    assert (await box.put(f"/Patient/x-{uid}", {})).status == 201  # PUT not matched


async def test_random_errors_happen_before_any_work(box, uid):
    box.emulator.faults.set_random(error_rate=1.0, path_prefix="/Patient")
    answer = await box.put(f"/Patient/x-{uid}", {})
    assert answer.status == 503 and answer.body["resourceType"] == "OperationOutcome"
    box.emulator.faults.clear()
    assert (await box.get(f"/Patient/x-{uid}")).status == 404


async def test_dropped_connection_gets_no_response(box, uid):
    box.emulator.faults.set_random(error_rate=0.0, drop_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        await box.get(f"/Patient/x-{uid}")
    box.emulator.faults.clear()
    assert (await box.get(f"/Patient/x-{uid}")).status == 404


async def test_a_lost_answer_is_carried_out_and_never_heard(box, uid):
    box.emulator.faults.set_random(error_rate=0.0, lost_rate=1.0, methods=["PUT"])
    with pytest.raises(aiohttp.ClientError):
        await box.put(f"/Patient/x-{uid}", {"gender": "male"})
    assert (await box.get(f"/Patient/x-{uid}")).body["gender"] == "male"  # GET not matched


async def test_serialization_failures_then_success(box, uid):
    box.emulator.faults.serialization_failures(2)
    first = await box.put(f"/Patient/x-{uid}", {})
    second = await box.post(
        "/",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "PUT", "url": f"/Patient/x-{uid}"}, "resource": {}}],
        },
    )
    assert (first.status, second.status) == (412, 412)
    assert first.body["issue"][0]["code"] == "conflict"
    assert (await box.put(f"/Patient/x-{uid}", {})).status == 201


async def test_reject_makes_writes_of_a_resource_422(box, uid):
    box.emulator.faults.reject("Patient", id=f"bad-{uid}", diagnostics="global says no")
    bad = await box.put(f"/Patient/bad-{uid}", {})
    assert bad.status == 422 and bad.body["issue"][0]["diagnostics"] == "global says no"
    assert (await box.put(f"/Patient/good-{uid}", {})).status == 201
    batch = await box.post(
        "/",
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "PUT", "url": f"/Patient/bad-{uid}"}, "resource": {}},
                {"request": {"method": "PUT", "url": f"/Patient/ok-{uid}"}, "resource": {}},
            ],
        },
    )
    assert [e["response"]["status"] for e in batch.body["entry"]] == ["422", "201"]


async def test_rejection_by_content_refuses_only_matching_bodies(box, uid):
    box.emulator.faults.reject("Patient", where={"gender": "other"}, diagnostics="no")
    assert (await box.put(f"/Patient/m-{uid}", {"gender": "male"})).status == 201
    refused = await box.put(f"/Patient/m-{uid}", {"gender": "other"})
    assert refused.status == 422 and "no" in refused.body["issue"][0]["diagnostics"]


async def test_hold_releases_on_clear(box, uid):
    hold = box.emulator.faults.hold_next_write()
    pending = asyncio.create_task(box.put(f"/Patient/h-{uid}", {}))
    await hold.txid_taken()
    box.emulator.faults.clear()
    assert await hold.committed() is True
    assert (await pending).status == 201


async def test_a_held_request_runs_after_its_caller_gave_up(box, uid):
    hold = box.emulator.faults.hold_next_request("PUT", f"/Patient/late-{uid}")
    caller = asyncio.create_task(box.put(f"/Patient/late-{uid}", {"gender": "male"}))
    await hold.arrived()
    assert (await box.get(f"/Patient/late-{uid}")).status == 404  # nothing done yet
    caller.cancel()  # the caller times out and goes away
    hold.release()
    assert await hold.answered() == 201
    assert (await box.get(f"/Patient/late-{uid}")).body["gender"] == "male"


async def test_a_held_answer_leaves_after_the_work_is_done(box, uid):
    hold = box.emulator.faults.hold_next_request("PUT", f"/Patient/slow-{uid}", answer=True)
    caller = asyncio.create_task(box.put(f"/Patient/slow-{uid}", {"gender": "male"}))
    await hold.arrived()
    assert await hold.answered() == 201
    assert (await box.get(f"/Patient/slow-{uid}")).body["gender"] == "male"  # done already
    assert not caller.done()  # the answer has not left
    hold.release()
    assert (await caller).status == 201


async def test_a_late_request_runs_and_answers_only_after_its_delay(box, uid):
    box.emulator.faults.set_random(error_rate=0.0, late_rate=1.0, late_by=0.3, methods=["PUT"])
    started = time.monotonic()
    assert (await box.put(f"/Patient/late-{uid}", {"gender": "male"})).status == 201
    assert time.monotonic() - started >= 0.3  # a caller with a shorter timeout gave up first
    assert (await box.get(f"/Patient/late-{uid}")).body["gender"] == "male"  # GET not matched
