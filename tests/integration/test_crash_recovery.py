"""A runner killed at any step replays from its checkpoint: no gap, no duplicate (README,
"How push works")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.integration.test_push import TYPES, seed_clinic, sync
from tests.support.apps import RunningApp, free_port
from tests.support.clinic import expected_global, global_state
from tests.support.headquarters import CLINIC, Headquarters
from tests.support.processes import app_process


async def _assert_converged(local_root: AidboxClient, global_root: AidboxClient) -> None:
    await sync(local_root)
    assert await global_state(global_root, TYPES) == await expected_global(local_root, TYPES)


# Where the runner dies: the write held open at that moment.
STEPS = {
    # Creating the first checkpoint, before anything reached the global.
    "before-send": ("local", "ChangesInfo", False),
    # Inside the transaction to the global.
    "mid-transaction": ("global", None, True),
    # After the global acknowledged, while the checkpoint advances.
    "after-send": ("local", "ChangesInfo", True),
}


async def _hold_at(
    step: str,
    local: Emulator,
    global_: Emulator,
    local_root: AidboxClient,
    start: Callable[[], Awaitable[object]],
) -> Any:
    """Seed the clinic and arm the hold of `step`; returns the emulator's hold handle."""
    side, held_type, checkpoints_exist = STEPS[step]
    if checkpoints_exist:
        await start()  # an empty clinic: every stream creates its checkpoint
    await seed_clinic(local_root)
    return (global_ if side == "global" else local).faults.hold_next_write(held_type)


@pytest.mark.parametrize("step", list(STEPS))
async def test_cancelled_runner_replays_without_gap_or_duplicate(
    sync_app: RunningApp,
    local_root: AidboxClient,
    global_root: AidboxClient,
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    step: str,
) -> None:
    hold = await _hold_at(step, local_aidbox, global_aidbox, local_root, sync_app.service.sync)
    run = asyncio.create_task(sync_app.service.sync())
    await hold.txid_taken()
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    hold.release()
    await hold.committed()
    await _assert_converged(local_root, global_root)


@pytest.mark.parametrize("step", list(STEPS))
async def test_sigkilled_process_replays_without_gap_or_duplicate(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
    step: str,
) -> None:
    # The restarted service keeps its address, as a restarted deployment does: it is then the
    # same runner and resumes its streams without waiting for its lease to expire.
    port = free_port()
    secret = headquarters.secrets[CLINIC]
    async with app_process(local_aidbox.url, global_aidbox.url, port, secret) as proc:
        hold = await _hold_at(
            step, local_aidbox, global_aidbox, local_root, lambda: sync(local_root)
        )
        call = asyncio.create_task(local_root.request("POST", "/$sync"))
        await hold.txid_taken()
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        hold.release()
        await hold.committed()
        await call  # Aidbox answers the caller with an error: the App is gone
    async with app_process(local_aidbox.url, global_aidbox.url, port, secret):
        await _assert_converged(local_root, global_root)
