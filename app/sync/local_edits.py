"""Local edits of pulled resources: found, reported, and left for headquarters to overwrite.

Headquarters is authoritative for what the clinic pulls (docs/pull.md, "Headquarters is
authoritative"): its next change of a resource overwrites a clinic's edit. So that an edit is
not lost unseen, each pull stream looks, before it runs, at the clinic's own changes of its
type since it last looked, and tells the pull's writes from anyone else's by what they wrote:
every pull transaction creates its fence token in the same transaction (fence.py), and the
token lists each resource the transaction writes with the digest of its content (`writes`). A
change that is not what the window's tokens last list for its resource (type, id and content)
was written by someone else: a local edit. Nothing here depends on how a server numbers the
versions of one transaction. A window is only read once settled (watermark.py), and a settled
bound never falls inside a transaction, so a write and its token are always read together.

Edits are kept in the pull stream's `ChangesInfo.localEdits` in the clinic (ids stay in the
clinic's own Aidbox; the log line gives the stream and a count only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from app.model import ChangesInfo, Direction, LocalEdit, LocalEdits
from app.sync.bundle import Outgoing, content_digest
from app.sync.checkpoint import CheckpointStore
from app.sync.feed import Change, ChangeFeed, ChangeSource
from app.sync.fence import FENCE_TYPE

log = logging.getLogger("aidbox_sync.pull")

RECENT = 50  # edits listed in the report (the count has them all)


def recorded(info: ChangesInfo, found: list[Change], checked: int, now: datetime) -> ChangesInfo:
    """`info` with the edits `found` added (each (id, version) once: a scan repeated after a
    restart counts nothing twice) and the scan moved to `checked`."""
    before = info.localEdits or LocalEdits(checked=checked)
    known = {(e.id, e.version) for e in before.recent}
    fresh = [c for c in found if (c.id, c.version) not in known]
    listed = [LocalEdit(id=c.id, version=c.version, event=c.event, at=now) for c in fresh]
    report = LocalEdits(
        checked=max(checked, before.checked),
        count=before.count + len(fresh),
        recent=(listed[::-1] + before.recent)[:RECENT],
    )
    return info.model_copy(update={"localEdits": report})


def _mark(resource_type: str, resource_id: str, body: dict | None) -> str:
    return f"{resource_type}/{resource_id} {content_digest(body)[:32] if body else 'deleted'}"


def _resource_of(mark: str) -> str:
    """The `Type/id` a mark is of."""
    return mark.rpartition(" ")[0]


def _pulled(change: Change, written: dict[str, list[tuple[int, str]]]) -> bool:
    """Whether `change` is what the pull last wrote of its resource at or before its version
    (`written`: per resource, the pull's marks by their tokens' versions, oldest first)."""
    mark = change_mark(change)
    last = None
    for version, pulled in written.get(_resource_of(mark), ()):
        if version > change.version:
            break
        last = pulled
    return last == mark


def witness(items: Sequence[Outgoing]) -> list[str]:
    """What a pull transaction writes, for its token: type, id and content digest of each."""
    marks = []
    for item in items:
        body = orjson.loads(item.encoded).get("resource") if item.method == "PUT" else None
        marks.append(_mark(item.target_type, item.target_id, body))
    return marks


def change_mark(change: Change) -> str:
    """The same mark for a change read back from the clinic."""
    return _mark(change.resource_type, change.id, None if change.deleted else change.resource)


class LocalEditScan:
    """Finds local edits of each pulled type since the last look."""

    def __init__(self, clinic: ChangeSource, checkpoints: CheckpointStore) -> None:
        self._clinic = clinic
        self._checkpoints = checkpoints
        # Scanned up to, per type, in this process: a scan that finds nothing saves nothing
        # (a write per look would itself move the clinic's head, forever).
        self._checked: dict[str, int] = {}

    async def scan(self, resource_type: str, upto: int) -> list[Change]:
        """Look at the clinic's changes of `resource_type` up to its settled bound `upto`;
        returns the local edits found (what the pull's memory of what it sent must forget:
        the clinic no longer holds what it was sent)."""
        info = await self._checkpoints.load(Direction.PULL, resource_type)
        if info.localEdits is None:  # the first look: edits are counted from now on
            await self._checkpoints.save(
                info.model_copy(update={"localEdits": LocalEdits(checked=upto)})
            )
            self._checked[resource_type] = upto
            return []
        lo = max(info.localEdits.checked, self._checked.get(resource_type, 0))
        if upto <= lo:
            return []
        # Per resource, the pull's writes of it in the range, by their tokens' versions: a
        # change is the pull's own only when it is what the pull wrote of it last at or before
        # the change's own version. A deletion's mark carries no content, so a clinic's
        # deletion after the pull deleted and then re-created the resource would match the
        # earlier deletion; and the feed gives a resource once per window, so an earlier pull
        # write of it in the range is judged at its own version, not by a later one. A token
        # is the first entry of its transaction (fence.py): its version is at most those of
        # the writes it lists; and the pull's writes of one resource never travel together
        # (pipeline.py), so their versions follow the order they landed in.
        tokens: list[Change] = []
        async for _, window in ChangeFeed(self._clinic, FENCE_TYPE).windows(lo, upto):
            tokens += [t for t in window if not t.deleted]
        written: dict[str, list[tuple[int, str]]] = {}
        for token in sorted(tokens, key=lambda t: t.version):
            for mark in token.resource.get("writes") or []:
                written.setdefault(_resource_of(mark), []).append((token.version, mark))
        found: list[Change] = []
        async for _, changes in ChangeFeed(self._clinic, resource_type).windows(lo, upto):
            found += [c for c in changes if not _pulled(c, written)]
        self._checked[resource_type] = upto
        if not found:
            return []
        await self._checkpoints.save(recorded(info, found, upto, datetime.now(UTC)))
        log.warning(
            "stream %s: %d local edit(s) of pulled resources; headquarters' next change "
            "overwrites them (listed in $sync-status)",
            info.id,
            len(found),
        )
        return found
