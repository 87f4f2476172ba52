"""Pull under real faults (docs/pull.md): the App as its own process, SIGKILLed at random while
headquarters keeps changing its administrative data and both Aidboxes fail or drop requests at
random; and a headquarters transaction that commits late. In the end the clinic holds exactly
the part of headquarters' data that is its own, nothing is quarantined."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient, AidboxError, AidboxUnavailable
from tests.support.apps import RunningApp, free_port
from tests.support.clinic import pull, resources
from tests.support.headquarters import CLINIC, Headquarters, organization
from tests.support.processes import app_process, kill_at_random, random_life, seeded

KILLS = 5
COUNTRIES = ["US", "DE", None]  # clinic-a is in the US; None: every clinic's


def for_clinic_a(org: dict[str, Any]) -> bool:
    """The scope rule for clinic-a (docs/pull.md, "Pull scope"), as the test states it."""
    countries = {a.get("country") for a in org.get("address") or []} - {None}
    return not countries or "US" in countries


async def _headquarters_writer(
    global_root: AidboxClient, rng: random.Random, stop: asyncio.Event
) -> int:
    """Creates, renames, moves between countries and deletes Organizations until told to."""
    done = 0
    rc = {"x-max-isolation-level": "read-committed"}
    while not stop.is_set():
        n = rng.randrange(14)
        body = organization(f"org{n}", rng.choice(COUNTRIES), f"Group {rng.randrange(99)}")
        write = ("PUT", body) if rng.random() < 0.8 else ("DELETE", None)
        try:  # headquarters fails some requests of its own users too: whatever landed counts
            await global_root.call(write[0], f"/Organization/org{n}", json=write[1], headers=rc)
        except (AidboxError, AidboxUnavailable):
            continue
        done += 1
        await asyncio.sleep(rng.uniform(0, 0.02))
    return done


async def test_random_sigkills_faults_and_a_writer_at_headquarters_end_exactly_equal(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    rng = seeded(20261203)
    global_aidbox.faults.set_random(
        error_rate=0.1, drop_rate=0.05, lost_rate=0.05, seed=rng.randrange(1000)
    )
    secret = headquarters.secrets[CLINIC]
    port = free_port()
    stop = asyncio.Event()
    writer = asyncio.create_task(_headquarters_writer(global_root, rng, stop))
    await kill_at_random(
        local_aidbox.url,
        global_aidbox.url,
        port,
        secret,
        rng=rng,
        kills=KILLS,
        lifetime=(1.5, 3.5),  # a first pull takes 0.8 to 3.2 s under these faults: most die in one
        # Registered: from now on the clinic fails, drops or loses the answer of some pull writes.
        while_alive=lambda: local_aidbox.faults.set_random(
            error_rate=0.1,
            drop_rate=0.05,
            lost_rate=0.05,
            seed=rng.randrange(1000),
            methods=["POST"],
        ),
        after_death=local_aidbox.faults.clear,
        settings=lambda: random_life(rng),
    )
    stop.set()
    assert await writer > 50
    global_aidbox.faults.clear()
    # The killed runners pulled part of it under the faults (the rest comes now).
    assert (await resources(local_root, "ChangesInfo"))["pull-Organization"]["version"] > 0
    async with app_process(local_aidbox.url, global_aidbox.url, port, secret):
        await pull(local_root)
    at_hq = await resources(global_root, "Organization")
    expected = {oid: body for oid, body in at_hq.items() if for_clinic_a(body)}
    assert await resources(local_root, "Organization") == expected
    assert await resources(local_root, "SyncQuarantine") == {}


async def test_a_late_commit_at_headquarters_is_not_missed(
    sync_app: RunningApp,
    global_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A txid is taken when a transaction starts (api/other/changes-api.md, "Possible Race
    # Condition"): the clinic must not read past one that headquarters has not committed.
    rc = {"x-max-isolation-level": "read-committed"}
    hold = global_aidbox.faults.hold_next_write("Organization")
    late = asyncio.create_task(
        global_root.call("PUT", "/Organization/late", json=organization("late", "US"), headers=rc)
    )
    late_txid = await hold.txid_taken()
    await global_root.call(
        "PUT", "/Organization/early", json=organization("early", "US"), headers=rc
    )
    summary = await pull(local_root)
    assert summary["pull-Organization"]["version"] < late_txid
    hold.release()
    await late
    await pull(local_root)
    assert set(await resources(local_root, "Organization")) == {"late", "early"}
