"""Fenced writes (docs/push.md, "Fenced writes"): a transaction the global executes late, or a
runner that lost its stream, can never land over a later write."""

from __future__ import annotations

import asyncio

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp
from tests.support.clinic import KEY, patient, resources
from tests.support.headquarters import Headquarters

# Short enough that the App gives up on a held transaction and retries within the test.
QUICK = {"SYNC_RUNNER_ENABLED": "false", "SYNC_HTTP_TIMEOUT": "0.5"}
GID = KEY.resource_id("Patient", "p1")


async def _gender_at_global(global_root: AidboxClient) -> str | None:
    # gender is kept by the Safe Harbor profile: it tells the states of p1 apart at the global.
    current = (await resources(global_root, "Patient")).get(GID)
    return None if current is None else current["gender"]


async def _lapse_lease(local_root: AidboxClient) -> None:
    """The stalled runner's lease lapses: another runner of the clinic may take the stream."""
    info = (await local_root.call("GET", "/ChangesInfo/push-Patient")).body
    info["lease"]["until"] = "2000-01-01T00:00:00+00:00"
    await local_root.call("PUT", "/ChangesInfo/push-Patient", json=info)


async def test_a_transaction_executed_after_the_app_gave_up_cannot_undo_a_later_delete(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    async with headquarters.clinic_app(local_aidbox.url, **QUICK) as app:
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        late = global_aidbox.faults.hold_next_request("POST", "/")
        [created] = await app.service.sync(["Patient"])  # the retry lands; the first waits
        assert created.error is None and created.counters.written == 1
        await late.arrived()  # the first attempt is still on its way
        await local_root.call("DELETE", "/Patient/p1")
        [deleted] = await app.service.sync(["Patient"])
        assert deleted.error is None and deleted.counters.deleted == 1
    late.release()
    assert await late.answered() == 409  # its fence token was taken by its own retry
    assert (await global_root.call("GET", f"/Patient/{GID}", accept=(410,))).status == 410


async def test_an_attempt_that_landed_while_its_retry_waited_is_recognised_not_repeated(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    async with headquarters.clinic_app(local_aidbox.url, **QUICK) as app:
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        first = global_aidbox.faults.hold_next_request("POST", "/")
        retry = global_aidbox.faults.hold_next_request("POST", "/")
        run = asyncio.create_task(app.service.sync(["Patient"]))
        await first.arrived()
        await retry.arrived()  # the App gave up on the first attempt and sent it again
        first.release()
        assert await first.answered() == 200  # the first attempt committed, unanswered
        retry.release()
        assert await retry.answered() == 409
        [summary] = await run
        assert summary.error is None and summary.counters.written == 1
        history = await global_root.call("GET", f"/Patient/{GID}/_history")
        assert len(history.body["entry"]) == 1  # written once
        await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
        [after] = await app.service.sync(["Patient"])  # the stream goes on from the token
        assert after.error is None and after.counters.written == 1
    assert await _gender_at_global(global_root) == "male"


async def test_a_paused_runner_that_lost_its_stream_cannot_land_its_write(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="female"))
    paused = global_aidbox.faults.hold_next_request("POST", "/")
    stale = asyncio.create_task(sync_app.service.sync(["Patient"]))
    await paused.arrived()  # its write is on the way, and then the runner stalls
    # Meanwhile its lease lapses and another runner of the clinic takes the stream.
    await _lapse_lease(local_root)
    await local_root.call("PUT", "/Patient/p1", json=patient("p1", gender="male"))
    async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as owner:
        [taken] = await owner.service.sync(["Patient"])
    assert taken.error is None and taken.counters.written == 1
    paused.release()
    assert await paused.answered() == 409
    [refused] = await stale
    assert refused.error and "newer run" in refused.error
    assert await _gender_at_global(global_root) == "male"


async def test_a_checkpoint_save_whose_answer_was_lost_is_not_a_conflict(
    local_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    async with headquarters.clinic_app(local_aidbox.url, **QUICK) as app:
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        [first] = await app.service.sync(["Patient"])  # the checkpoint exists
        await local_root.call("PUT", "/Patient/p2", json=patient("p2"))
        path = "/ChangesInfo/push-Patient"
        saves = [local_aidbox.faults.hold_next_request("PUT", path) for _ in range(2)]
        run = asyncio.create_task(app.service.sync(["Patient"]))
        await saves[0].arrived()  # the lease's claim, then
        saves[0].release()
        assert await saves[0].answered() == 200
        await saves[1].arrived()  # the checkpoint's advance, held until the App gave up
        retry = local_aidbox.faults.hold_next_request("PUT", path)
        await retry.arrived()
        saves[1].release()
        assert await saves[1].answered() == 200  # it landed; its answer is lost
        retry.release()
        assert await retry.answered() == 409  # its If-Match is one version behind now
        [second] = await run
    assert first.error is None
    assert second.error is None and second.counters.written == 1
    assert KEY.resource_id("Patient", "p2") in await resources(global_root, "Patient")


async def test_two_transactions_of_a_stopped_run_cannot_land_after_the_next_run_wrote(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # One Patient per transaction: p1 and p2 go side by side, after p0's transaction, the
    # run's first, has landed (docs/push.md, "Transactions in flight").
    one_each = {"SYNC_RUNNER_ENABLED": "false", "SYNC_BATCH_MAX_ENTRIES": "1"}
    for pid in ("p0", "p1", "p2"):
        await local_root.call("PUT", f"/Patient/{pid}", json=patient(pid, gender="female"))
    first, *paused = [global_aidbox.faults.hold_next_request("POST", "/") for _ in range(3)]
    async with headquarters.clinic_app(local_aidbox.url, **one_each) as stalled:
        stale = asyncio.create_task(stalled.service.sync(["Patient"]))
        await first.arrived()
        first.release()
        for hold in paused:
            await hold.arrived()  # both on their way at once; then the runner stalls
        await _lapse_lease(local_root)
        for pid in ("p1", "p2"):
            await local_root.call("PUT", f"/Patient/{pid}", json=patient(pid, gender="male"))
        # The new owner writes both in one transaction: its token numbers alone would not
        # cover the second of the stalled run's.
        async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as owner:
            [taken] = await owner.service.sync(["Patient"])
        assert taken.error is None and taken.counters.written >= 2
        for hold in paused:
            hold.release()
            assert await hold.answered() == 409  # the new run's first transaction took it
        [refused] = await stale
    assert refused.error and "newer run" in refused.error
    stored = await resources(global_root, "Patient")
    for pid in ("p1", "p2"):
        assert stored[KEY.resource_id("Patient", pid)]["gender"] == "male"


async def test_a_first_transaction_that_fails_for_good_fails_the_one_waiting_for_a_token(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A run's first transaction travels alone: p1's waits for its token until p0's has landed
    # (docs/push.md, "Transactions in flight"). When p0's fails for good, p1's fails with it
    # instead of waiting for ever, and the next run sends both.
    settings = {
        "SYNC_RUNNER_ENABLED": "false",
        "SYNC_BATCH_MAX_ENTRIES": "1",
        "SYNC_RETRY_ATTEMPTS": "2",
        "SYNC_RETRY_BASE_DELAY": "0.01",
    }
    for pid in ("p0", "p1"):
        await local_root.call("PUT", f"/Patient/{pid}", json=patient(pid))
    async with headquarters.clinic_app(local_aidbox.url, **settings) as app:
        global_aidbox.faults.set_random(error_rate=1.0, methods=["POST"])
        [failed] = await asyncio.wait_for(app.service.sync(["Patient"]), 30)
        assert failed.error is not None and failed.counters.written == 0
        global_aidbox.faults.clear()
        [done] = await app.service.sync(["Patient"])
    assert done.error is None and done.counters.written == 2
    expected = {KEY.resource_id("Patient", pid) for pid in ("p0", "p1")}
    assert set(await resources(global_root, "Patient")) == expected
