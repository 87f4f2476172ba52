"""`$sync-status`: where each stream stands (checkpoint, head, lag, counters, errors)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from app.aidbox.client import AidboxError, AidboxUnavailable, outcome_summary
from app.model import ChangesInfo, Direction
from app.sync.config import ConfigError
from app.sync.quarantine import records as quarantine_records
from app.sync.runner import SyncService


async def sync_status(service: SyncService) -> dict[str, Any]:
    """Status of every configured stream, plus the configuration's own health."""
    try:
        in_force = await service.config.load()
    except ConfigError as exc:
        return {"configuration": {"error": str(exc)}, "streams": []}
    now = datetime.now(UTC)
    held = Counter(r.stream for r in await quarantine_records(service.local))
    streams = []
    for cfg in sorted(in_force.config.streams, key=lambda s: (s.order, s.type)):
        sid = ChangesInfo.stream_id(cfg.direction, cfg.type)
        info = await service.checkpoints.get(sid) or ChangesInfo(
            id=sid, direction=cfg.direction, type=cfg.type
        )
        entry: dict[str, Any] = {
            "stream": sid,
            "direction": cfg.direction.value,
            "type": cfg.type,
            "enabled": cfg.enabled,
            "status": info.status,
            "checkpoint": info.version,
            "counters": info.counters.model_dump(),
            "quarantined": info.counters.quarantined,
            "inQuarantine": held[sid],  # records now: what $requeue would send
            "wakeups": service.wakeups.get(cfg.type, 0),
            "lastStartedAt": info.lastStartedAt,
            "lastFinishedAt": info.lastFinishedAt,
            "lastSuccessAt": info.lastSuccessAt,
            "lastError": info.lastError.model_dump(mode="json") if info.lastError else None,
            # Another service running this stream (one runner per stream, docs/push.md).
            "heldElsewhere": service.held_elsewhere(info),
        }
        if info.localEdits is not None:
            entry["localEdits"] = info.localEdits.model_dump(mode="json", exclude={"checked"})
        # Push reads the clinic's head; pull, headquarters' settled bound.
        source = service.clinic if cfg.direction is Direction.PUSH else service.headquarters
        try:
            head = await source.head(cfg.type)
        except AidboxError as exc:  # e.g. a type the source does not know: this stream only
            entry["error"] = f"head unknown: {exc.status} {outcome_summary(exc.body)}"
        except AidboxUnavailable as exc:
            entry["error"] = f"head unknown: {exc}"
        else:
            # From what the stream knows is sent, which may be past the saved checkpoint.
            behind = max(0, head - service.stream(cfg.type, cfg.direction).position(info))
            since = info.lastSuccessAt or info.lastStartedAt
            entry["head"] = head
            entry["lag"] = {
                "versions": behind,
                "seconds": round((now - since).total_seconds(), 3) if behind and since else 0,
            }
        streams.append(entry)
    try:
        standing = (await service.instance.check()).as_json()
    except (AidboxUnavailable, AidboxError) as exc:
        standing = {"state": "unknown", "reason": f"headquarters did not answer: {exc}"}
    return {
        "instance": standing,
        "configuration": {"profile": in_force.profile_id, "error": service.config.error},
        "watermark": service.watermark_status(),
        "streams": streams,
    }
