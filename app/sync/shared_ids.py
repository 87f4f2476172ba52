"""Which resources of the pulled types are headquarters' own: learned from headquarters.

A pushed reference to a pulled type keeps its id only when headquarters issued it and offers
it to this clinic (app/anonymize/shared.py). The App reads that list where the pull reads its
data, headquarters' `$pull-changes` (docs/pull.md, "The operations"), from the first change to
headquarters' settled bound, then only what changed since; a resource that left this clinic's
scope comes as a deletion there, and leaves the list. Only ids are kept, in memory: a restart
reads the list again.

The push asks before each run: a clinic can only reference a pulled resource after the pull
wrote it, which it read at or below headquarters' settled bound, so the list read up to the
bound now holds it. A type headquarters does not offer this clinic (its 403 with the issue
code NOT_OFFERED) has no resource of headquarters' own here. Any other refusal of one type
(a SyncScope row headquarters cannot use, a policy, a proxy) keeps what was learned of it
before, and is kept in `errors` for `$sync-status`: a reference to a resource not learned yet
is removed (the safe side; `$reconcile` finds it once the list is read again), and the other
types and the push go on. Headquarters unreachable raises: the push waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from app.aidbox.client import AidboxError
from app.aidbox.outcome import NOT_OFFERED
from app.sync.feed import ChangeFeed
from app.sync.source import HeadquartersBound, HeadquartersSource

log = logging.getLogger("aidbox_sync.pull")


def _not_offered(exc: AidboxError) -> bool:
    issues = exc.body.get("issue") if isinstance(exc.body, dict) else None
    return exc.status == 403 and any(
        isinstance(issue, dict) and issue.get("code") == NOT_OFFERED for issue in issues or []
    )


class HeadquartersIds:
    """Per pulled type, the ids of headquarters' resources offered to this clinic (`ids`, a
    live mapping the anonymizer reads), kept up to date by `learn`."""

    def __init__(self, source: HeadquartersSource, bound: HeadquartersBound) -> None:
        self._source = source
        self._bound = bound
        self.ids: dict[str, set[str]] = {}
        self.errors: dict[str, str] = {}  # per type, why its list could not be read last
        self._read: dict[str, int] = {}  # per type, the bound read up to
        self._learning = asyncio.Lock()  # one reader: two would apply windows out of order

    async def learn(self, types: Iterable[str]) -> None:
        """Read headquarters' changes of `types` up to its settled bound now (asked once: it
        covers every type, source.py). Raises only what a transient failure raises."""
        async with self._learning:
            bound: int | None = None
            for resource_type in sorted(set(types)):
                try:
                    if bound is None:
                        bound = await self._bound.ask(resource_type, settle=False)
                    await self._read_up_to(resource_type, bound)
                except AidboxError as exc:
                    if exc.transient:
                        raise
                    self._refused(resource_type, exc)
                else:
                    self.errors.pop(resource_type, None)

    def _refused(self, resource_type: str, exc: AidboxError) -> None:
        if _not_offered(exc):  # none of this type is headquarters' own here
            self.ids[resource_type] = set()
            self._read.pop(resource_type, None)
            self.errors.pop(resource_type, None)
            return
        if resource_type not in self.errors:
            log.warning(
                "push: headquarters' own %s resources not read (%s): references to those "
                "not learned yet are removed",
                resource_type,
                exc.status,
            )
        self.errors[resource_type] = f"{exc.status}: {exc}"[:300]

    async def _read_up_to(self, resource_type: str, bound: int) -> None:
        start = self._read.get(resource_type, 0)
        if bound <= start:
            return
        known = self.ids.setdefault(resource_type, set())
        async for _, changes in ChangeFeed(self._source, resource_type).windows(start, bound):
            for change in changes:
                if change.deleted:
                    known.discard(change.id)
                else:
                    known.add(change.id)
        self._read[resource_type] = bound
