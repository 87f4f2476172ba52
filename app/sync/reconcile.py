"""`$reconcile`: prove that headquarters holds exactly the anonymized clinic, for one resource
type of this clinic's namespace (docs/push.md, "Reconciliation").

The clinic's current resources are read from its own database (`$psql`, keyset pages by id),
anonymized as the push would, and compared by content digest with what headquarters answers
to `$sync-inventory`. Neither side is held whole: the type is split into partitions of the
global id space (app/registry/inventory.py), each compared on its own. The comparison sees
current states only, so it also catches what bypassed the history (`$load`, `$purge`) and any
other drift, but it is a snapshot: a change made while it runs may show as stale until pushed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from app.aidbox.client import AidboxClient
from app.aidbox.psql import rows, table
from app.anonymize import Plan, PseudonymKey, anonymize
from app.registry.inventory import partition_of
from app.sync.bundle import content_digest
from app.sync.feed import Change

log = logging.getLogger("aidbox_sync.reconcile")

# Clinic resources compared at a time: a type larger than this is split into partitions.
PARTITION_SIZE = 20_000
_LOCAL_PAGE = 500
# Ids listed per kind of difference in a report (the counts are always exact).
LISTED = 100


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings: only ' needs doubling)."""
    return "'" + text.replace("'", "''") + "'"


async def _clinic_pages(local: AidboxClient, resource_type: str) -> AsyncIterator[list[Change]]:
    """The clinic's current resources of a type, by id, a page at a time (storage model:
    database/overview.md; the `resource` column lacks id, resourceType, versionId)."""
    after = ""
    while True:
        found = await rows(
            local,
            f"SELECT id, txid, resource FROM {table(resource_type)} WHERE id > {_literal(after)} "
            f"ORDER BY id LIMIT {_LOCAL_PAGE}",
        )
        page = []
        for row in found:
            body = row["resource"] if isinstance(row["resource"], dict) else {}
            meta = {**(body.get("meta") or {}), "versionId": str(row["txid"])}
            resource = {**body, "resourceType": resource_type, "id": row["id"], "meta": meta}
            page.append(Change("updated", resource_type, row["id"], int(row["txid"]), resource))
        if page:
            yield page
        if len(found) < _LOCAL_PAGE:
            return
        after = found[-1]["id"]


@dataclass
class Drift:
    """How headquarters differs from the clinic for one type."""

    type: str
    compared: int = 0  # clinic resources looked at
    missing: int = 0  # in the clinic, not at headquarters
    stale: int = 0  # at headquarters with other content
    extra: int = 0  # at headquarters, in this clinic's namespace, not in the clinic
    listed: dict[str, list[dict[str, str]]] = field(
        default_factory=lambda: {"missing": [], "stale": [], "extra": []}
    )

    def note(self, kind: str, global_id: str, local_id: str | None = None) -> None:
        """Count one difference; list its ids while the list is short."""
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.listed[kind]) < LISTED:
            entry = {"global": global_id}
            if local_id is not None:
                entry["local"] = local_id  # shown in the clinic's own Aidbox only, never logged
            self.listed[kind].append(entry)

    @property
    def clean(self) -> bool:
        """Headquarters holds exactly the anonymized clinic."""
        return not (self.missing or self.stale or self.extra)

    def as_json(self) -> dict[str, Any]:
        """The report of this type in `$reconcile`'s answer."""
        return {
            "type": self.type,
            "compared": self.compared,
            "missing": self.missing,
            "stale": self.stale,
            "extra": self.extra,
            "ids": self.listed,
        }


@dataclass(frozen=True)
class Partition:
    """What one partition needs to be repaired: local ids to send again (missing or stale),
    global ids to delete (extra)."""

    resend: list[str]
    delete: list[str]


class Reconciler:
    """Compares one type of the clinic with what headquarters holds of it."""

    def __init__(
        self, local: AidboxClient, global_: AidboxClient, plan: Plan, key: PseudonymKey
    ) -> None:
        self._local = local
        self._global = global_
        self._plan = plan
        self._key = key

    async def partitions(self, resource_type: str) -> int:
        """How many partitions keep each comparison within PARTITION_SIZE resources."""
        [row] = await rows(self._local, f"SELECT count(*) AS n FROM {table(resource_type)}")
        return max(1, math.ceil(int(row["n"]) / PARTITION_SIZE))

    async def _expected(
        self, resource_type: str, partition: int, partitions: int, drift: Drift
    ) -> dict[str, tuple[str, str | None]]:
        """Global id -> (local id, content digest) of the clinic's anonymized resources in the
        partition; digest None when a resource cannot be anonymized (its stream quarantines
        it: headquarters should not hold it either way)."""
        key, namespace = self._key, self._key.namespace
        expected: dict[str, tuple[str, str | None]] = {}
        async for page in _clinic_pages(self._local, resource_type):
            for change in page:
                global_id = key.resource_id(resource_type, change.id)
                if partition_of(global_id, namespace, partitions) != partition:
                    continue
                drift.compared += 1
                try:
                    body: dict[str, Any] | None = anonymize(change.resource, self._plan, key)
                except Exception as exc:  # quarantined by its stream; not a drift of ours
                    log.warning(
                        "reconcile %s: %s/%s cannot be anonymized: %s",
                        resource_type,
                        resource_type,
                        global_id,
                        type(exc).__name__,
                    )
                    body = None
                expected[global_id] = (change.id, content_digest(body) if body else None)
        return expected

    async def _held(
        self, resource_type: str, partition: int, partitions: int
    ) -> AsyncIterator[dict[str, str]]:
        """What headquarters holds of the partition, page by page ($sync-inventory)."""
        after = ""
        while True:
            params = {
                "type": resource_type,
                "partition": str(partition),
                "partitions": str(partitions),
                "after": after,
            }
            resp = await self._global.call("GET", "/$sync-inventory", params=params)
            body = resp.body if isinstance(resp.body, dict) else {}
            for item in body.get("items") or []:
                yield item
            after = body.get("next") or ""
            if not after:
                return

    async def compare(
        self, resource_type: str, partition: int, partitions: int, drift: Drift
    ) -> Partition:
        """Compare one partition; count its differences into `drift`."""
        expected = await self._expected(resource_type, partition, partitions, drift)
        resend: list[str] = []
        delete: list[str] = []
        async for item in self._held(resource_type, partition, partitions):
            global_id = str(item.get("id"))
            mine = expected.pop(global_id, None)
            if mine is None:
                drift.note("extra", global_id)
                delete.append(global_id)
            elif mine[1] != item.get("digest"):
                drift.note("stale", global_id, mine[0])
                resend.append(mine[0])
        for global_id, (local_id, digest) in expected.items():
            if digest is not None:  # one that cannot be anonymized is rightly absent
                drift.note("missing", global_id, local_id)
                resend.append(local_id)
        return Partition(resend, delete)
