"""Ceiling benchmark: how fast the App drains a clinic's backlog when headquarters costs
nothing, and what the App itself spends per resource.

The clinic (an emulated Aidbox on its own PostgreSQL) runs on one CPU; the App and headquarters
on the other, headquarters being bench/zero_global.py: an HTTP server that answers the push's
requests at once and stores nothing. In production the App shares the clinic's host, but that
host has more than one core: here, on one core with the clinic, the App's own CPU would be
counted twice, once as its cost and once as the clinic's lost serving time.

Each round seeds the clinic with new Patients (one txid each, written straight into
Aidbox's storage tables: database/overview.md), then times the App's `$sync` of them and
samples its CPU time, the zero-cost global's, and the App's memory. The reference, measured
in the same round on the same backlog: the clinic serving those changes to a plain reader
(`$changes?version=<last>,<head>&_count=<n>`, following the versions), in pages of the App's
page size and of 1,000, and read the App's way alone (app/sync/feed.py).

Printed per round and as medians, with targets:
- drain: resources/s, and its ratio to the plain reader in pages of the App's size (>= 0.9);
- the App's CPU seconds per 1,000 resources (<= 0.095);
- the App's resident memory: at the start of the drain, its peak, and at the end.

Usage: python bench/ceiling.py [--resources 20000] [--rounds 3] [--batch 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.aidbox.client import AidboxClient
from app.sync.feed import ChangeFeed
from app.sync.source import AidboxSource
from bench.push import BATCH, DEPLOYED, Site, pg_site, split_cpus, start_emulator
from tests.support.apps import free_port
from tests.support.clinic import NEXT_TXID, last_txid, store_rows
from tests.support.processes import app_process, port_open

# A Patient as an EHR writes it, in Aidbox's storage format (no id, resourceType or meta).
_BODY = """jsonb_build_object(
  'name', jsonb_build_array(jsonb_build_object('family', 'Family' || g, 'given',
          jsonb_build_array('Alice', 'Mary'))),
  'telecom', jsonb_build_array(jsonb_build_object('system', 'phone', 'value', '+1-555-0100')),
  'gender', 'female', 'birthDate', '1980-04-12',
  'address', jsonb_build_array(jsonb_build_object('line', jsonb_build_array(g || ' Elm Street'),
             'city', 'Springfield', 'state', 'MA', 'postalCode', '02139')),
  'identifier', jsonb_build_array(jsonb_build_object('system', 'urn:mrn', 'value', 'MRN' || g)))"""


async def _seed(root: AidboxClient, first: int, n: int) -> None:
    """`n` new Patients, each its own transaction id, as n single writes would give."""
    rows = f"SELECT 'p' || g, {NEXT_TXID}, {_BODY} FROM generate_series({first}, {first + n - 1}) g"
    await store_rows(root, "Patient", rows)


async def _plain(root: AidboxClient, lo: int, hi: int, count: int) -> float:
    """Seconds a plain reader takes to read (lo, hi], following the versions it is given."""
    started = time.perf_counter()
    version = lo
    while version < hi:
        resp = await root.call(
            "GET", "/Patient/$changes", params={"version": f"{version},{hi}", "_count": str(count)}
        )
        changes = (resp.body or {}).get("changes") or []
        if not changes:
            break
        version = max(int(c["resource"]["meta"]["versionId"]) for c in changes)
    return time.perf_counter() - started


async def _the_apps_way(root: AidboxClient, lo: int, hi: int, batch: int) -> float:
    started = time.perf_counter()
    async for _ in ChangeFeed(AidboxSource(root), "Patient", page_size=batch).windows(lo, hi):
        pass
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def _zero_global(cpus: frozenset[int], delay_ms: float) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("zero_global.py")),
        str(port),
        str(delay_ms),
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    try:
        await port_open(port)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        await proc.wait()


@dataclass(frozen=True)
class Round:
    """One round's figures."""

    drain: float  # resources/s
    cpu_per_1000: float  # the App's CPU seconds per 1,000 resources
    hq_per_1000: float  # the zero-cost global's, for the same
    plain_page: float  # resources/s, plain reader, pages of the App's size
    plain_1000: float  # resources/s, plain reader, pages of 1,000
    apps_way: float  # resources/s, the App's feed alone
    rss: tuple[float, float, float]  # MB: start, peak, end


async def _sample_rss(proc: psutil.Process, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def one_round(
    clinic: Site,
    hq_cpus: frozenset[int],
    n: int,
    no: int,
    batch: int = BATCH,
    *,
    delay_ms: float = 0.0,
    in_flight: int | None = None,
    references: bool = True,
) -> Round:
    """One round: a fresh clinic seeded with `n` Patients, drained by the App into a
    zero-cost global (answering each transaction `delay_ms` late); the drain, the App's costs
    and, with `references`, the clinic's own serving rates."""
    local = await start_emulator(clinic, f"cl{no}")
    env = {**DEPLOYED, "SYNC_BATCH_MAX_ENTRIES": str(batch)}
    if in_flight is not None:
        env["SYNC_IN_FLIGHT"] = str(in_flight)
    try:
        async with (
            _zero_global(hq_cpus, delay_ms) as (global_url, global_pid),
            AidboxClient(local.url, "root", "secret") as root,
            app_process(
                local.url,
                global_url,
                free_port(),
                "unused",
                cpus=hq_cpus,
                **env,
            ) as app,
        ):
            await root.call("POST", "/ChangesInfo/push-Patient/$sync")  # warm-up, checkpoint
            before = await last_txid(root)
            await _seed(root, 0, n)
            after = await last_txid(root)
            proc, hq = psutil.Process(app.pid), psutil.Process(global_pid)
            start_rss, peak = proc.memory_info().rss, [0.0]
            stop = asyncio.Event()
            sampler = asyncio.create_task(_sample_rss(proc, peak, stop))
            cpu, hq_cpu = proc.cpu_times(), hq.cpu_times()
            started = time.perf_counter()
            resp = await root.call("POST", "/ChangesInfo/push-Patient/$sync")
            seconds = time.perf_counter() - started
            spent = sum(proc.cpu_times()[:2]) - sum(cpu[:2])
            hq_spent = sum(hq.cpu_times()[:2]) - sum(hq_cpu[:2])
            stop.set()
            await sampler
            end_rss = proc.memory_info().rss
            [summary] = resp.body["streams"]
            assert summary.get("error") is None and summary["written"] == n, summary
            if references:
                plain_page = await _plain(root, before, after, batch)
                plain_1000 = await _plain(root, before, after, 1000)
                apps_way = await _the_apps_way(root, before, after, batch)
            else:
                plain_page = plain_1000 = apps_way = float("nan")
    finally:
        await local.stop()
    mb = 1024 * 1024
    return Round(
        n / seconds,
        spent / n * 1000,
        hq_spent / n * 1000,
        n / plain_page,
        n / plain_1000,
        n / apps_way,
        (start_rss / mb, max(peak[0], end_rss) / mb, end_rss / mb),
    )


async def main() -> None:
    """Run the rounds and print every figure with its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help="entries per transaction (and per page read)"
    )
    parser.add_argument(
        "--wan-ms", type=float, default=30.0, help="headquarters' answer delay, wide-area part"
    )
    parser.add_argument("--wan-resources", type=int, default=10000)
    parser.add_argument("--wan-rounds", type=int, default=2)
    args = parser.parse_args()
    clinic_cpus, hq_cpus = split_cpus()
    os.sched_setaffinity(0, clinic_cpus)  # the bench's own reader is a clinic-side client
    with pg_site(clinic_cpus) as clinic:
        rounds = []
        for no in range(args.rounds):
            r = await one_round(clinic, hq_cpus, args.resources, no, args.batch)
            rounds.append(r)
            print(
                f"  round {no + 1}: drain {r.drain:,.0f}/s, App CPU {r.cpu_per_1000:.3f} s per "
                f"1,000 (the zero-cost global {r.hq_per_1000:.3f}), plain pages of {args.batch} "
                f"{r.plain_page:,.0f}/s, of 1,000 {r.plain_1000:,.0f}/s, the App's feed alone "
                f"{r.apps_way:,.0f}/s, RSS {r.rss[0]:.0f}/{r.rss[1]:.0f}/{r.rss[2]:.0f} MB",
                flush=True,
            )

    def med(values: list[float]) -> float:
        return statistics.median(values)

    drain = med([r.drain for r in rounds])
    ratio = med([r.drain / r.plain_page for r in rounds])
    print(
        f"drain into a near-zero-cost global: {drain:,.0f} resources/s of a {args.resources:,} "
        f"backlog; the clinic serves plain pages of {args.batch} at "
        f"{med([r.plain_page for r in rounds]):,.0f}/s: ratio {ratio:.2f} (median of "
        f"{len(rounds)} rounds; target >= 0.9)"
    )
    print(
        f"  the App's CPU: {med([r.cpu_per_1000 for r in rounds]):.3f} s per 1,000 resources "
        f"(target <= 0.095); the zero-cost global on the same CPU: "
        f"{med([r.hq_per_1000 for r in rounds]):.3f}"
    )
    print(
        f"  the clinic's $changes: plain pages of 1,000 {med([r.plain_1000 for r in rounds]):,.0f}"
        f"/s; read the App's way, alone, {med([r.apps_way for r in rounds]):,.0f}/s"
    )
    print(
        "  the App's resident memory (MB): start "
        f"{med([r.rss[0] for r in rounds]):.0f}, peak {med([r.rss[1] for r in rounds]):.0f}, "
        f"end {med([r.rss[2] for r in rounds]):.0f}"
    )
    await wide_area(clinic_cpus, hq_cpus, args.wan_ms, args.wan_resources, args.wan_rounds)


async def wide_area(
    clinic_cpus: frozenset[int], hq_cpus: frozenset[int], delay_ms: float, n: int, rounds: int
) -> None:
    """The same drain with headquarters `delay_ms` away, one transaction in flight per stream
    against two (SYNC_IN_FLIGHT), alternating which goes first."""
    rates: dict[int, list[float]] = {1: [], 2: []}
    with pg_site(clinic_cpus) as clinic:
        for no in range(rounds):
            for depth in (1, 2) if no % 2 == 0 else (2, 1):
                r = await one_round(
                    clinic,
                    hq_cpus,
                    n,
                    100 + 2 * no + depth,
                    delay_ms=delay_ms,
                    in_flight=depth,
                    references=False,
                )
                rates[depth].append(r.drain)
            print(
                f"  wide-area round {no + 1}: one in flight {rates[1][-1]:,.0f}/s, two "
                f"{rates[2][-1]:,.0f}/s",
                flush=True,
            )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"headquarters {delay_ms:.0f} ms away: {two:,.0f} resources/s with two transactions in "
        f"flight, {one:,.0f}/s with one: ratio {two / one:.2f} (median of {rounds} rounds; "
        "target >= 1.5)"
    )


if __name__ == "__main__":
    asyncio.run(main())
