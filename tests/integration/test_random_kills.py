"""The push under real faults, all at once: the App as its own process, SIGKILLed at random
moments while a writer keeps changing the clinic and the global fails, drops, delays or loses
the answers of requests at random; each life has its own batch size and number of transactions
in flight. In the end the global holds exactly the anonymized clinic, nothing is quarantined,
and the App's logs, which may leave the clinic, carry no PHI."""

from __future__ import annotations

import asyncio
import random

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.integration.test_push import PHI
from tests.phi.scanner import find_planted
from tests.support.apps import free_port
from tests.support.clinic import expected_global, global_state, observation, patient, resources
from tests.support.headquarters import CLINIC, Headquarters
from tests.support.processes import app_process, kill_at_random, random_life, seeded

TYPES = ["Patient", "Observation"]
ANCHORS = [f"anchor{i}" for i in range(3)]  # Patients the Observations refer to: never deleted
KILLS = 6
LATE_BY = 1.0  # seconds a late request waits before it runs


async def _writer(local_root: AidboxClient, rng: random.Random, stop: asyncio.Event) -> int:
    """Creates, updates and deletes Patients and Observations until told to stop."""
    done = 0
    rc = {"x-max-isolation-level": "read-committed"}  # no conflicts with itself
    while not stop.is_set():
        kind, n = rng.random(), rng.randrange(12)
        if kind < 0.45:
            body = patient(f"p{n}", family=rng.choice(["Smith", "Jones"]), gender="other")
            await local_root.call("PUT", f"/Patient/p{n}", json=body, headers=rc)
        elif kind < 0.85:
            body = observation(f"o{n}", rng.choice(ANCHORS), value=float(rng.randrange(40, 140)))
            await local_root.call("PUT", f"/Observation/o{n}", json=body, headers=rc)
        else:
            rtype = rng.choice(["Patient", "Observation"])
            prefix = "p" if rtype == "Patient" else "o"
            await local_root.call("DELETE", f"/{rtype}/{prefix}{n}", headers=rc)
        done += 1
        await asyncio.sleep(rng.uniform(0, 0.02))  # a clinic's pace, not a benchmark's
    return done


async def test_random_sigkills_faults_and_a_concurrent_writer_end_exactly_equal(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    rng = seeded(20261202)
    for anchor in ANCHORS:
        await local_root.call("PUT", f"/Patient/{anchor}", json=patient(anchor))
    # Late requests run after the App gave up on them (its timeout is shorter), maybe after
    # its retry, maybe after it was killed and the next life wrote.
    global_aidbox.faults.set_random(
        error_rate=0.1,
        drop_rate=0.05,
        lost_rate=0.05,
        late_rate=0.03,
        late_by=LATE_BY,
        seed=rng.randrange(1000),
    )
    secret = headquarters.secrets[CLINIC]
    logs: list[bytes] = []
    port = free_port()
    stop = asyncio.Event()
    writer = asyncio.create_task(_writer(local_root, rng, stop))
    # the runner pushes on its own; it dies wherever it is at a random moment
    await kill_at_random(
        local_aidbox.url,
        global_aidbox.url,
        port,
        secret,
        rng=rng,
        kills=KILLS,
        lifetime=(0.2, 1.5),
        logs=logs,
        settings=lambda: {**random_life(rng), "SYNC_HTTP_TIMEOUT": str(LATE_BY / 2)},
    )
    stop.set()
    assert await writer > 50
    global_aidbox.faults.clear()
    async with app_process(local_aidbox.url, global_aidbox.url, port, secret, logs):
        resp = await local_root.call("POST", "/$sync")
        assert all(s.get("error") is None for s in resp.body["streams"]), resp.body
    assert await global_state(global_root, TYPES) == await expected_global(local_root, TYPES)
    assert await resources(local_root, "SyncQuarantine") == {}
    assert find_planted(PHI, b"".join(logs)) == []
