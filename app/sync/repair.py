"""Writes outside a stream's runs: quarantined changes sent again (`$requeue`), and
headquarters brought back in line with the clinic (`$reconcile`). Both go through the stream's
own claimed, fenced writes (Stream.write_now); neither moves a checkpoint (docs/push.md,
"Quarantine and $requeue", "Reconciliation")."""

from __future__ import annotations

from app.aidbox.client import AidboxClient
from app.model import Counters, QuarantineRecord
from app.sync.quarantine import record_id, release
from app.sync.reconcile import Drift, Reconciler
from app.sync.stream import Ends, RunSummary, Stream


async def requeue(
    stream: Stream, records: list[QuarantineRecord], ends: Ends, local: AidboxClient
) -> RunSummary:
    """Send quarantined changes again, oldest first, each as the source's current state of its
    resource (or its deletion). A resource's records go once the target holds its current
    state; a refusal of it again leaves one record, of the current version."""
    by_resource: dict[str, list[QuarantineRecord]] = {}
    for record in sorted(records, key=lambda r: r.version):
        by_resource.setdefault(record.resourceId, []).append(record)
    changes = []
    for resource_id, kept in by_resource.items():
        source_id = resource_id.partition("/")[2]
        changes.append(await stream.current(source_id, kept[-1].version))
    summary, settled = await stream.write_now(changes, [], ends)
    if summary.error:
        return summary
    for item in settled:
        for record in by_resource.pop(item.source.reference, []):
            await release(local, record.id)
    # Refused again, or not transformable: only the current version's record stays.
    current = {record_id(stream.id, change.identity()) for change in changes}
    for left in by_resource.values():
        for record in left:
            if record.id not in current:
                await release(local, record.id)
    return summary


async def reconcile(
    stream: Stream, reconciler: Reconciler, ends: Ends, *, repair: bool
) -> tuple[Drift, RunSummary | None]:
    """Compare headquarters with the clinic for a push stream's type, partition by
    partition; with `repair`, write each partition's differences as they are found."""
    drift = Drift(stream.resource_type)
    partitions = await reconciler.partitions(stream.resource_type)
    repaired = RunSummary(stream.id, 0, Counters()) if repair else None
    for partition in range(partitions):
        found = await reconciler.compare(stream.resource_type, partition, partitions, drift)
        if repaired is None or not (found.resend or found.delete):
            continue
        changes = [await stream.current(local_id, 0) for local_id in found.resend]
        done, _ = await stream.write_now(changes, found.delete, ends)
        repaired.counters = repaired.counters.add(done.counters)
        repaired.version, repaired.error = done.version, done.error
        if done.error:
            break
    return drift, repaired
