"""Pull benchmark: the App's throughput against the clinic's own direct ingest.

On loopback: an embedded PostgreSQL per side, an emulated global Aidbox with the App in global
role (which serves `$pull-changes`), an emulated clinic Aidbox with the App in local role. Each
round seeds headquarters with new Organizations of the clinic's country, then times:

- the pull: the clinic's App brings them all (headquarters' bound, `$pull-changes` windows cut
  to the clinic's scope, copy, fenced transactions into the clinic, checkpoints);
- the baseline: another fresh clinic Aidbox, with the App registered as at any clinic (its
  runner off), ingesting the same bodies in transactions of the same size, posted directly
  by root.

The ratio pull / direct is printed per round and as the median (target >= 0.9).

Usage: python bench/pull.py [--resources 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.aidbox.client import AidboxClient
from app.model import Direction
from app.registry.instances import Registration, register
from app.sync.feed import ChangeFeed
from app.sync.source import HeadquartersSource
from bench.push import (
    BATCH,
    DEPLOYED,
    EmulatorProcess,
    Site,
    pg_site,
    split_cpus,
    start_emulator,
)
from tests.support.apps import free_port, running_app
from tests.support.clinic import CLINIC
from tests.support.processes import app_process


def _organizations(n: int, round_no: int) -> list[dict]:
    return [
        {
            "resourceType": "Organization",
            "id": f"org-{round_no}-{i}",
            "name": f"Group {i}",
            "address": [{"city": "Boston", "country": "US"}],
        }
        for i in range(n)
    ]


def _bundles(bodies: list[dict]) -> list[dict]:
    return [
        {
            "type": "transaction",
            "entry": [
                {"request": {"method": "PUT", "url": f"/Organization/{b['id']}"}, "resource": b}
                for b in bodies[start : start + BATCH]
            ],
        }
        for start in range(0, len(bodies), BATCH)
    ]


async def _direct(clinic: EmulatorProcess, hq: EmulatorProcess, bundles: list[dict]) -> float:
    """Seconds a clinic Aidbox takes to ingest `bundles` posted to it directly."""
    async with running_app(clinic.url, global_url=hq.url, SYNC_RUNNER_ENABLED="false", **DEPLOYED):
        return await _post_all(clinic.url, bundles)


async def _post_all(url: str, bundles: list[dict]) -> float:
    async with AidboxClient(url, "root", "secret") as root:
        started = time.perf_counter()
        for bundle in bundles:
            await root.call("POST", "/", json=bundle)
        return time.perf_counter() - started


async def _pull(
    local: EmulatorProcess,
    hq: EmulatorProcess,
    hq_cpus: frozenset[int],
    bundles: list[dict],
    n: int,
) -> tuple[float, float]:
    """Seconds the clinic's App takes to pull `n` Organizations new at headquarters, and
    headquarters to serve their changes to the clinic (`$pull-changes` read alone)."""
    port = free_port()
    # The global App runs at headquarters, on its CPU, as in production.
    async with app_process(hq.url, "", port, "", role="global", cpus=hq_cpus):
        async with AidboxClient(hq.url, "root", "secret") as hq_root:
            done = await register(hq_root, Registration(id=CLINIC, name="Clinic A", country="US"))
        assert done.secret is not None
        async with (
            running_app(
                local.url,
                global_url=hq.url,
                SYNC_RUNNER_ENABLED="false",
                SYNC_GLOBAL_CLIENT_SECRET=done.secret,
                **DEPLOYED,
            ) as app,
            AidboxClient(hq.url, CLINIC, done.secret) as as_clinic,
        ):
            source = HeadquartersSource(as_clinic)
            # Warm-up: checkpoints created, the first look for local edits taken.
            await app.service.sync(direction=Direction.PULL)
            before = await source.head("Organization")
            await _post_all(hq.url, bundles)
            started = time.perf_counter()
            summaries = await app.service.sync(["Organization"], direction=Direction.PULL)
            seconds = time.perf_counter() - started
            after = await source.head("Organization")
            started = time.perf_counter()
            async for _ in ChangeFeed(source, "Organization", page_size=BATCH).windows(
                before, after
            ):
                pass
            serving = time.perf_counter() - started
        [summary] = summaries
        assert summary.error is None and summary.counters.written == n, summary
        return seconds, serving


async def round_(
    clinic: Site, hq_site: Site, n: int, no: int, direct_first: bool
) -> tuple[float, float]:
    """Resources/s of the pull, of the clinic's direct ingest, and of headquarters serving
    the changes, in one round."""
    bundles = _bundles(_organizations(n, no))
    local = await start_emulator(clinic, f"pl{no}")
    direct = await start_emulator(clinic, f"pd{no}")
    hq = await start_emulator(hq_site, f"pg{no}")
    try:
        if direct_first:
            direct_seconds = await _direct(direct, hq, bundles)
            pull_seconds, serving = await _pull(local, hq, hq_site.cpus, bundles, n)
        else:
            pull_seconds, serving = await _pull(local, hq, hq_site.cpus, bundles, n)
            direct_seconds = await _direct(direct, hq, bundles)
        return n / pull_seconds, n / direct_seconds, n / serving
    finally:
        for emu in (local, direct, hq):
            await emu.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clinic_cpus, hq_cpus = split_cpus()
    os.sched_setaffinity(0, clinic_cpus)  # this process runs the Apps and the direct poster
    with pg_site(clinic_cpus) as clinic, pg_site(hq_cpus) as hq:
        rounds = [
            await round_(clinic, hq, args.resources, i, direct_first=i % 2 == 1)
            for i in range(args.rounds)
        ]
    ratios = [p / d for p, d, _ in rounds]
    pulled = statistics.median(p for p, _, _ in rounds)
    direct = statistics.median(d for _, d, _ in rounds)
    served = statistics.median(s for _, _, s in rounds)
    print(
        f"pull throughput: {pulled:,.0f} resources/s; the clinic's direct ingest of the same "
        f"bundles: {direct:,.0f} resources/s; ratio {statistics.median(ratios):.2f} (median of "
        f"{len(rounds)} rounds; target >= 0.9)"
    )
    print(f"  rounds, in order: {' '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"  (headquarters alone serves the same changes to the clinic at {served:,.0f} "
        "resources/s: the pull cannot outrun the slower of the two sides)"
    )


if __name__ == "__main__":
    asyncio.run(main())
