"""Pull under real faults (docs/pull.md): the App as its own process, SIGKILLed at random while
headquarters keeps changing its administrative data and the clinic edits what it pulled; both
Aidboxes fail, drop, lose the answer of, or carry out late, requests at random (at the clinic:
the pull's transactions and its checkpoints); and a headquarters transaction that commits late.

After each life the clinic holds every pulled resource as headquarters had it at the pull's
checkpoint or later, unless its last write of it was the clinic's own edit. In the end, after
more edits and a last change at headquarters of every resource, the clinic holds exactly the
part of headquarters' data that is its own (its edits seen, reported and overwritten), and
nothing is quarantined."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient, AidboxError, AidboxUnavailable, RetryPolicy
from tests.support.apps import RunningApp, free_port
from tests.support.clinic import pull, resources, versions
from tests.support.headquarters import CLINIC, Headquarters, organization
from tests.support.processes import app_process, fork, kill_at_random, random_life, seeded

KILLS = 5
COUNTRIES = ["US", "DE", None]  # clinic-a is in the US; None: every clinic's
ORGS = [f"org{n}" for n in range(14)]
LATE_BY = 1.0  # seconds a late request waits before it runs
RC = {"x-max-isolation-level": "read-committed"}
# Every body the clinic's own edits write carries it, headquarters' never do: so the clinic's
# data tells whose write of a resource was the last (a local deletion deletes an edited body).
EDITED = "edited at the clinic"
# The test's own reads of headquarters while its faults are on: retried, as reads may be
READS = RetryPolicy(attempts=30, base_delay=0.01, max_delay=0.05)


def for_clinic_a(org: dict[str, Any]) -> bool:
    """The scope rule for clinic-a (docs/pull.md, "Pull scope"), as the test states it."""
    countries = {a.get("country") for a in org.get("address") or []} - {None}
    return not countries or "US" in countries


@dataclass
class _Writers:
    """Headquarters' writer and the clinic's editor."""

    global_root: AidboxClient
    local_root: AidboxClient
    # one random source each: the two run at once, each at its own pace
    headquarters_rng: random.Random
    clinic_rng: random.Random
    done: Counter[str] = field(default_factory=Counter)
    writing: asyncio.Event = field(default_factory=asyncio.Event)  # headquarters' writer goes

    def __post_init__(self) -> None:
        self.writing.set()

    async def headquarters(self, stop: asyncio.Event) -> None:
        """Creates, renames, moves between countries and deletes Organizations (while
        `writing` is set)."""
        rng = self.headquarters_rng
        while not stop.is_set():
            await self.writing.wait()
            n = rng.randrange(len(ORGS))
            body = organization(ORGS[n], rng.choice(COUNTRIES), f"Group {rng.randrange(99)}")
            write = ("PUT", body) if rng.random() < 0.8 else ("DELETE", None)
            try:  # headquarters fails some requests of its own users too: what landed counts
                await self.global_root.call(
                    write[0], f"/Organization/{ORGS[n]}", json=write[1], headers=RC
                )
                self.done["headquarters wrote"] += 1
            except (AidboxError, AidboxUnavailable):
                pass
            await asyncio.sleep(rng.uniform(0, 0.02))

    async def clinic(self, stop: asyncio.Event) -> None:
        """Renames or deletes, in the clinic, Organizations it pulled: a user's edits, which
        headquarters' next change of each overwrites (docs/pull.md, "Headquarters is
        authoritative")."""
        rng = self.clinic_rng
        while not stop.is_set():
            held = await resources(self.local_root, "Organization")
            if held:
                oid = rng.choice(sorted(held))
                # the clinic's faults hit its users' writes too
                with contextlib.suppress(AidboxError, AidboxUnavailable):
                    await self.edit(held[oid], delete=rng.random() < 0.25)
            await asyncio.sleep(rng.uniform(0.1, 0.3))  # a user's pace, slower than the pull

    async def edit(self, held: dict[str, Any], *, delete: bool) -> None:
        """Rename one Organization the clinic holds, with the mark; or delete it, in one
        transaction with a marked version first, so that its deletion carries the mark."""
        url = f"/Organization/{held['id']}"
        edit = {**held, "name": f"Local {self.clinic_rng.randrange(99)}", "alias": [EDITED]}
        entries: list[dict[str, Any]] = [
            {"request": {"method": "PUT", "url": url}, "resource": edit}
        ]
        if delete:
            entries.append({"request": {"method": "DELETE", "url": url}})
        bundle = {"type": "transaction", "entry": entries}
        await self.local_root.call("POST", "/", json=bundle, headers=RC)
        self.done["clinic deleted" if delete else "clinic edited"] += 1


async def _clinic_holds_headquarters_at_its_checkpoint(
    local_root: AidboxClient, global_root: AidboxClient, seen: Counter[str]
) -> None:
    """With the App dead: every Organization the clinic holds or lacks is as headquarters had
    it at a version no older than its last one at or below the pull's checkpoint
    (`ChangesInfo/pull-Organization.version`, a version of headquarters), in the clinic's
    scope (out of scope: absent), unless the clinic's own last write of it is its own edit.

    Why this is exact, and no more:
    - The pull's checkpoint is saved only after every transaction it covers committed in the
      clinic, in order (docs/pull.md: "the guarantees of docs/push.md hold for pull"), so
      headquarters' last change at or below it was written (or skipped as the body the
      clinic was last sent, which it then holds, unless it edited it since: below).
    - Nothing writes an older state after it: transactions that write one resource never
      travel together, every other attempt of a committed one carries its fence token and
      fails, and a dead life's transaction still on its way (late) lands before the next
      life's first commit or fails, carrying only changes above its own checkpoint.
    - Changes above the checkpoint may have been applied or not (the App was killed in
      between), and may still land: any of them may be what the clinic holds.
    - A clinic's edit is overwritten by headquarters' next change of the resource, but only
      one seen after a look that found the edit (docs/pull.md, "Limits"): an edit may
      outlive changes at or below the checkpoint. Its mark (`EDITED`) tells it: such a
      resource is not judged here; the end of the test checks that a later change
      overwrites it.
    Neither writer needs to pause. The checkpoint is read first; headquarters' history after
    it holds every change at or below it (a settled bound: all committed), and a change
    written meanwhile only adds a newer state to those allowed. The clinic is read in one
    statement: its versions of every Organization at one moment, so what it holds and whose
    write was the last agree; the App's late writes, and the editor's, may land before or
    after that moment, and the statement holds at either."""
    infos = await resources(local_root, "ChangesInfo")  # read first: it only moves on later
    checkpoint = infos.get("pull-Organization", {}).get("version", 0)
    written = await versions(local_root, "Organization")
    history = await versions(global_root, "Organization")
    for oid in sorted(set(history) | set(written)):
        last = written[oid][-1] if oid in written else None
        if last is not None and EDITED in (last.resource.get("alias") or []):
            seen["edit kept"] += 1
            continue
        held = None if last is None or last.deleted else last.resource
        states = [
            None if v.deleted or not for_clinic_a(v.resource) else v.resource
            for v in history.get(oid, [])
        ]
        at = [i for i, v in enumerate(history.get(oid, [])) if v.txid <= checkpoint]
        allowed = states[at[-1] :] if at else [None, *states]
        assert held in allowed, (
            f"Organization/{oid}: the clinic holds {held}, the checkpoint {checkpoint} allows "
            f"only {allowed} (headquarters' versions {[v.txid for v in history.get(oid, [])]})"
        )
        seen["exact at a checkpoint" if len(allowed) == 1 else "judged"] += 1


async def _edits_then_a_last_change_of_each(writers: _Writers, rng: random.Random) -> list[str]:
    """Edits of the clinic, now, of what it holds (the first a deletion), none made while a
    pull runs; then headquarters' last change of every resource: each overwrites what the
    clinic holds, its edits too (docs/pull.md, "Headquarters is authoritative"). Returns the
    ids edited."""
    # headquarters' changes are drawn first: what the clinic holds depends on timing
    final = [(oid, rng.choice(COUNTRIES), rng.random() < 0.3) for oid in ORGS]
    held = await resources(writers.local_root, "Organization")
    edited = rng.sample(sorted(held), min(3, len(held)))
    for i, oid in enumerate(edited):
        await writers.edit(held[oid], delete=i == 0)
    for n, (oid, country, delete) in enumerate(final):
        body = organization(oid, country, f"Final {n}")
        await writers.global_root.call("PUT", f"/Organization/{oid}", json=body, headers=RC)
        if delete:
            await writers.global_root.call("DELETE", f"/Organization/{oid}", headers=RC)
    return edited


async def test_random_sigkills_faults_and_a_writer_at_headquarters_end_exactly_equal(
    local_aidbox: Emulator,
    global_aidbox: Emulator,
    headquarters: Headquarters,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    rng = seeded(20261203)
    # Late requests run after the App gave up on them (its timeout is shorter), maybe after
    # its retry, maybe after it was killed and the next life wrote.
    global_aidbox.faults.set_random(
        error_rate=0.1,
        drop_rate=0.05,
        lost_rate=0.05,
        late_rate=0.01,
        late_by=LATE_BY,
        seed=rng.randrange(1000),
    )
    secret = headquarters.secrets[CLINIC]
    port = free_port()
    stop = asyncio.Event()
    reader = AidboxClient(global_aidbox.url, "root", "secret", retry=READS)
    writers = _Writers(global_root, local_root, fork(rng), fork(rng))
    writing = [
        asyncio.create_task(writers.headquarters(stop)),
        asyncio.create_task(writers.clinic(stop)),
    ]
    seen: Counter[str] = Counter()
    quiet: list[asyncio.TimerHandle] = []

    def while_alive() -> None:
        # Registered: from now on the clinic fails, drops, loses the answer of, or carries
        # out late, some of the pull's transactions (POST /) and checkpoints (PUT
        # /ChangesInfo/...), and of its users' writes.
        local_aidbox.faults.set_random(
            error_rate=0.1,
            drop_rate=0.05,
            lost_rate=0.05,
            late_rate=0.03,
            late_by=LATE_BY,
            seed=rng.randrange(1000),
            methods=["POST", "PUT"],
        )
        if rng.random() < 0.5:  # headquarters' writer stops for the rest of this life: the
            # pull may catch up, and the check after it find most resources at its checkpoint
            delay = rng.uniform(0.5, 1.5)
            quiet.append(asyncio.get_running_loop().call_later(delay, writers.writing.clear))

    async def after_death() -> None:
        local_aidbox.faults.clear()
        await _clinic_holds_headquarters_at_its_checkpoint(local_root, reader, seen)
        while quiet:
            quiet.pop().cancel()
        writers.writing.set()

    try:
        await kill_at_random(
            local_aidbox.url,
            global_aidbox.url,
            port,
            secret,
            rng=rng,
            kills=KILLS,
            lifetime=(1.5, 3.5),  # a first pull takes 0.8 to 3.2 s under these faults
            while_alive=while_alive,
            after_death=after_death,
            settings=lambda: {**random_life(rng), "SYNC_HTTP_TIMEOUT": str(LATE_BY / 2)},
        )
    finally:
        stop.set()
        writers.writing.set()
        await asyncio.gather(*writing)
        await reader.close()
    assert writers.done["headquarters wrote"] > 50, writers.done
    global_aidbox.faults.clear()
    # The killed runners pulled part of it under the faults, as far as the machine's load let
    # them (not asserted: on a loaded machine every life may end before its first
    # checkpoint); the rest comes now.
    async with app_process(local_aidbox.url, global_aidbox.url, port, secret):
        await pull(local_root)
        # Everything is pulled: the clinic is headquarters, but for the edits it kept.
        await _clinic_holds_headquarters_at_its_checkpoint(local_root, global_root, seen)
        edited = await _edits_then_a_last_change_of_each(writers, rng)
        await pull(local_root)
    at_hq = await resources(global_root, "Organization")
    expected = {oid: body for oid, body in at_hq.items() if for_clinic_a(body)}
    assert await resources(local_root, "Organization") == expected
    assert await resources(local_root, "SyncQuarantine") == {}
    # Each of those edits was seen before it was overwritten, and reported (`$sync-status`;
    # a deletion may be missed: tests/integration/test_zz_found_local_deletion.py)
    report = (await resources(local_root, "ChangesInfo"))["pull-Organization"]["localEdits"]
    assert set(edited) <= {e["id"] for e in report["recent"]}, (edited, report)
    assert seen["exact at a checkpoint"], seen


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
