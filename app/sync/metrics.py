"""Prometheus metrics of the sync, served at `/metrics` (one registry per App instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.model import Counters


class SyncMetrics:
    """Counters and gauges per stream."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.changes = Counter(
            "aidbox_sync_changes",
            "Changes handled, by stream and outcome",
            ["stream", "outcome"],
            registry=self.registry,
        )
        self.checkpoint = Gauge(
            "aidbox_sync_checkpoint_version",
            "Version a stream has fully applied",
            ["stream"],
            registry=self.registry,
        )
        self.failures = Counter(
            "aidbox_sync_run_failures",
            "Runs that ended in an error",
            ["stream"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "aidbox_sync_last_success_timestamp_seconds",
            "End of the last successful run",
            ["stream"],
            registry=self.registry,
        )

    def observe_run(
        self, stream: str, version: int, counters: Counters, ok: bool, now: float
    ) -> None:
        """Record one run's outcome."""
        for outcome, value in counters.model_dump().items():
            if value:
                self.changes.labels(stream, outcome).inc(value)
        self.checkpoint.labels(stream).set(version)
        if ok:
            self.last_success.labels(stream).set(now)
        else:
            self.failures.labels(stream).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
