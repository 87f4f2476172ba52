"""Fleet benchmark: N clinics pushing into one headquarters at once, against headquarters'
own ingest of the same bundles posted by N concurrent clients, measured in the same round.

Headquarters (an emulated Aidbox with the clinics' access policy, every clinic registered,
on its own PostgreSQL) runs on one CPU; the N clinics' Aidboxes (one PostgreSQL) and their
Apps on the other. Each round seeds every clinic with new Patients, pushes them all at once
(each App's `$sync` of its backlog), then posts the same anonymized bundles straight to a
second, identical headquarters, each clinic's bundles by its own Client, all clinics at
once. Printed for 2 and 4 clinics: the aggregate resources/s of both, their ratio (target
>= 0.9), and the runs that failed and the serialization conflicts (412) retried (target 0).

Usage: python bench/fleet.py [--resources 2000] [--rounds 3] [--clinics 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.aidbox.client import AidboxClient
from app.sync.bundle import batches, order_by_references, transaction
from app.sync.feed import Change
from app.sync.sink import READ_COMMITTED
from app.sync.transform import Anonymize
from bench.push import BATCH, DEPLOYED, EmulatorProcess, Site, pg_site, split_cpus, start_emulator
from tests.support.apps import running_app
from tests.support.clinic import NEXT_TXID, clinic_key, patient, safe_harbor, store_rows


class _Conflicts(logging.Handler):
    """Counts the App's retries of serialization conflicts (its client logs each one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "-> 412" in record.getMessage():
            self.count += 1


def _bodies(clinic: str, n: int, no: int) -> list[dict]:
    return [patient(f"{clinic}-r{no}-p{i}", family=f"Family{i}") for i in range(n)]


async def _seed(root: AidboxClient, bodies: list[dict]) -> None:
    """The Patients, one txid each, straight into Aidbox's storage (database/overview.md)."""
    rows = [{k: v for k, v in b.items() if k not in ("id", "resourceType")} for b in bodies]
    ids = orjson.dumps([b["id"] for b in bodies]).decode().replace("'", "''")
    data = orjson.dumps(rows).decode().replace("'", "''")
    await store_rows(
        root,
        "Patient",
        f"SELECT i.id, {NEXT_TXID}, r.body "
        f"FROM jsonb_array_elements_text('{ids}'::jsonb) WITH ORDINALITY AS i(id, n) "
        f"JOIN jsonb_array_elements('{data}'::jsonb) WITH ORDINALITY AS r(body, n) USING (n)",
    )


def _bundles(clinic: str, bodies: list[dict]) -> list[dict]:
    anonymize = Anonymize(safe_harbor(), clinic_key(clinic))
    outgoing = [anonymize(Change("created", "Patient", b["id"], 1, b)) for b in bodies]
    return [transaction(b) for b in batches(order_by_references(outgoing), BATCH, 10**7)]


async def _post(url: str, who: tuple[str, str], bundles: list[dict]) -> None:
    async with AidboxClient(url, *who) as client:
        for bundle in bundles:
            await client.call("POST", "/", json=bundle, headers=READ_COMMITTED)


@dataclass(frozen=True)
class Round:
    """One round of N clinics."""

    push: float  # aggregate resources/s
    direct: float  # aggregate resources/s
    failed: int  # runs that ended with an error
    conflicts: int  # 412s the Apps retried


async def one_round(clinic_site: Site, hq_site: Site, clinics: list[str], n: int, no: int) -> Round:
    """One round: `clinics` push `n` Patients each at once, then the same bundles are posted
    straight to a second headquarters by as many clients at once."""
    hq = await start_emulator(hq_site, f"fg{no}", headquarters=True, clinics=clinics)
    direct = await start_emulator(hq_site, f"fd{no}", headquarters=True, clinics=clinics)
    locals_: list[EmulatorProcess] = []
    conflicts = _Conflicts()
    logging.getLogger("aidbox_sync.http").addHandler(conflicts)
    try:
        async with AsyncExitStack() as stack:
            apps = []
            bodies = {c: _bodies(c, n, no) for c in clinics}
            for clinic in clinics:
                local = await start_emulator(clinic_site, f"fl{no}{clinic}")
                locals_.append(local)
                app = await stack.enter_async_context(
                    running_app(
                        local.url,
                        global_url=hq.url,
                        instance_id=clinic,
                        SYNC_RUNNER_ENABLED="false",
                        SYNC_GLOBAL_CLIENT_SECRET=hq.secrets[clinic],
                        **DEPLOYED,
                    )
                )
                await app.service.sync(["Patient"])  # warm-up: checkpoints, tables
                async with AidboxClient(local.url, "root", "secret") as root:
                    await _seed(root, bodies[clinic])
                apps.append(app)
            conflicts.count = 0
            started = time.perf_counter()
            runs = await asyncio.gather(*(a.service.sync(["Patient"]) for a in apps))
            push_seconds = time.perf_counter() - started
            failed = sum(1 for run in runs for s in run if s.error is not None)
            written = sum(s.counters.written for run in runs for s in run)
            assert failed or written == n * len(clinics), runs
        bundles = {c: _bundles(c, bodies[c]) for c in clinics}
        started = time.perf_counter()
        await asyncio.gather(
            *(_post(direct.url, (c, direct.secrets[c]), bundles[c]) for c in clinics)
        )
        direct_seconds = time.perf_counter() - started
    finally:
        logging.getLogger("aidbox_sync.http").removeHandler(conflicts)
        for emu in (hq, direct, *locals_):
            await emu.stop()
    total = n * len(clinics)
    return Round(total / push_seconds, total / direct_seconds, failed, conflicts.count)


async def main() -> None:
    """Run the rounds for each fleet size and print its figures with their targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=2000, help="Patients per clinic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clinics", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    clinic_cpus, hq_cpus = split_cpus()
    os.sched_setaffinity(0, clinic_cpus)  # the Apps run here, beside their clinics
    with pg_site(clinic_cpus) as clinic_site, pg_site(hq_cpus) as hq_site:
        for count in args.clinics:
            clinics = [f"clinic-{chr(ord('a') + i)}" for i in range(count)]
            rounds = [
                await one_round(clinic_site, hq_site, clinics, args.resources, no)
                for no in range(args.rounds)
            ]
            ratios = [r.push / r.direct for r in rounds]
            print(
                f"{count} clinics at once: push {statistics.median(r.push for r in rounds):,.0f} "
                f"resources/s; headquarters' own ingest of the same bundles by {count} clients "
                f"{statistics.median(r.direct for r in rounds):,.0f}/s; ratio "
                f"{statistics.median(ratios):.2f} (median of {len(rounds)}; target >= 0.9); "
                f"failed runs {sum(r.failed for r in rounds)}, serialization conflicts retried "
                f"{sum(r.conflicts for r in rounds)} (target 0)",
                flush=True,
            )
            print(f"  rounds, in order: {' '.join(f'{r:.2f}' for r in ratios)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
