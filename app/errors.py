"""The App's own errors, under one base.

An error of the App's own says what failed in statuses, ids, versions and OperationOutcome
diagnostics, never with a resource's body, so its message may go to logs and `$sync-status`
(`app/sync/stream.py` `failure_reason`). Anything else may quote a resource and is reported by
its type only.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the App raises on purpose."""
