"""Writes batches to a stream's target Aidbox as transactions, isolating what it refuses, and
counts what it did. The target is headquarters for push, the clinic for pull.

- Transient failures are retried by the client (its RetryPolicy); if they persist the run
  fails and the checkpoint stays where it was, so nothing is lost.
- A transaction refused because a referenced resource is missing (422, "Referenced resource
  Patient/<id> does not exist", api/batch-transaction.md) gets that resource pushed first, in
  the same transaction, when the source still has it and carries its type.
- A refusal of content (400, 413, 422) is bisected until the refused entry stands
  alone. If the source has replaced or deleted that version since, its current state (or
  its deletion) is sent instead: an old version is not a poison resource (docs/push.md,
  "Refusals"). A refusal of the current state is quarantined; the rest is written.
- Any other refusal (401, 403, 404 on the bundle endpoint...) says nothing about the resources:
  the run fails and nothing is quarantined, so wrong credentials or a wrong URL never turn
  into lost data.
- An entry larger than headquarters takes (push: bundle.py MAX_ENTRY_BYTES) is never sent:
  its policy would refuse the whole transaction (403, docs/access-control.md, "Size limits
  and cost"), run after run. It is treated as a refusal of that entry alone, and quarantined
  unless the source has replaced it since.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from app.aidbox.client import AidboxClient, AidboxError, Response, outcome_codes, outcome_summary
from app.errors import SyncError
from app.model import Counters
from app.sync.breaker import Breaker
from app.sync.bundle import Outgoing, Ref, batches, order_by_references, transaction
from app.sync.feed import ChangeId
from app.sync.fence import Fence, FenceLost, Token, batch_digest
from app.sync.sent import SentCache

# Statuses by which Aidbox refuses what a bundle contains (api/batch-transaction.md,
# api/rest-api/crud/*.md), as opposed to who sent it or where. 409 and 412 are not among them:
# the App sends PUT/DELETE without If-Match, so on the target they can only come from
# concurrent writes (api/rest-api/crud/update.md) or the fence (fence.py), never from content.
CONTENT_REFUSALS = frozenset({400, 413, 422})

# Every transaction the sink writes touches only resources no other writer shares (a clinic's
# namespace, or pulled resources in a clinic): SERIALIZABLE would only abort clinics writing
# the same tables at once (docs/push.md, "Isolation"; api/batch-transaction.md).
READ_COMMITTED = {"x-max-isolation-level": "read-committed"}

log = logging.getLogger("aidbox_sync.sink")

_MISSING_REF = re.compile(r"Referenced resource ([A-Za-z][A-Za-z0-9]*)/([A-Za-z0-9\-.]+) does not")


class SourceState(Protocol):
    """What the sink asks the source when the target refuses something (source_state.py)."""

    async def target(self, ref: Ref, source_id: str) -> Outgoing | None:
        """A missing reference target as a create-if-absent from the source's copy (None if
        the source no longer has it, or its type is not carried this way)."""

    async def current(self, item: Outgoing) -> list[Outgoing] | None:
        """None if `item` is the source's current state; otherwise what replaces it: the
        current state's write, or its deletion ([] when nothing is to be sent)."""

    async def holds(self, resource_type: str, source_id: str) -> bool:
        """Whether the source has the resource now."""


class Refusal(NamedTuple):
    """Why a change is quarantined: in full for the clinic's record (SyncQuarantine), and as
    a log line may carry it (logs may leave the clinic: no values the target quotes)."""

    recorded: str
    logged: str


@dataclass
class SinkResult:
    """What a write achieved."""

    written: list[Outgoing] = field(default_factory=list)
    quarantined: list[tuple[Outgoing, Refusal]] = field(default_factory=list)


def too_large(size: int, limit: int) -> str:
    """Why an entry is not sent: its size, never its content."""
    return (
        f"too large: the entry is {size:,} bytes, over the {limit:,} headquarters takes in one "
        'entry (docs/access-control.md, "Size limits and cost")'
    )


def missing_reference(body: object) -> Ref | None:
    """The first missing reference named by a 422 OperationOutcome, if any."""
    if not isinstance(body, dict):
        return None
    for issue in body.get("issue") or []:
        match = _MISSING_REF.search(issue.get("diagnostics") or "")
        if match:
            return (match.group(1), match.group(2))
    return None


# Times a transaction is sent again after an older run's late token took its place.
_FENCE_RETRIES = 3

# Times one resource is read again at the source in one write, as the replacement of a refused
# state or as a missing reference target: the state read may be replaced before it is refused,
# and a target created in one transaction may be deleted by its own stream before its
# referrers' next one (a batch split for size), while only a refusal of the current state is
# quarantined (docs/push.md, "Refusals"). Past that, the last state read is quarantined.
_REREADS = 3


# Records a refused change (ids, version, reason) and tells whether the refusal is new (1) or
# a replay's (0): stream.py keeps the quarantine.
Quarantine = Callable[[ChangeId, str, Refusal], Awaitable[int]]


@dataclass
class Delivery:
    """What sending a list of writes did: its counts, and the writes the target now holds
    (written, or unchanged since they were sent)."""

    counters: Counters
    settled: list[Outgoing]


class TransactionSink:
    """Transactions to a stream's target, each fenced once the stream is claimed (fence.py)."""

    def __init__(
        self,
        client: AidboxClient,
        source: SourceState,
        *,
        sent: SentCache,
        quarantine: Quarantine,
        max_entries: int,
        max_bytes: int,
        max_entry_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._source = source
        self._sent = sent
        self._quarantine = quarantine
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_entry_bytes
        self.fence: Fence | None = None

    async def deliver(self, outgoing: list[Outgoing], breaker: Breaker) -> Delivery:
        """Send what the target does not hold yet; record what it wrote or refused, unless
        the breaker opens (BreakerOpen: the refusals are then not quarantined)."""
        settled: list[Outgoing] = []
        fresh: list[Outgoing] = []
        for item in outgoing:  # one look at the memory per item: this is the hot path
            (settled if self._sent.unchanged(item) else fresh).append(item)
        counters = Counters(skipped=len(settled))
        ordered = order_by_references(fresh)
        for batch in batches(ordered, self._max_entries, self._max_bytes):
            mark = self._sent.mark()
            result = await self.write(batch)
            # A target written on a referrer's behalf belongs to its own stream, which records
            # and counts it; here only this stream's changes are. Nor is it remembered as
            # sent, even when created: its own stream may write an older state over it, and
            # the order of the two answers says nothing of the order they landed in.
            own = [i for i in result.written if not i.if_absent]
            for item in own:
                self._sent.remember(item, mark)
            refusals = [(i, reason) for i, reason in result.quarantined if not i.if_absent]
            sent = sum(1 for i in batch if not i.if_absent)
            example = refusals[0][1] if refusals else Refusal("", "")
            breaker.judge(sent, len(refusals), example.recorded, example.logged)
            rejected = 0
            for item, reason in refusals:
                rejected += await self._quarantine(item.source, item.target_id, reason)
            settled += own
            counters = counters.add(
                Counters(
                    written=sum(1 for i in own if i.method == "PUT"),
                    deleted=sum(1 for i in own if i.method == "DELETE"),
                    quarantined=rejected,
                )
            )
        return Delivery(counters, settled)

    async def _send(self, items: list[Outgoing]) -> None:
        """Send one transaction."""
        fence = self.fence
        if fence is None:
            await self._post(transaction(items, []))
            return
        digest = batch_digest(i.encoded for i in items)
        token: Token | None = await fence.take()
        conflict: AidboxError | None = None
        try:
            for _ in range(_FENCE_RETRIES):
                first = fence.entries(token, digest, items)
                try:
                    await self._post(transaction(items, first))
                except AidboxError as err:
                    if err.status != 409:
                        if not err.transient and err.status in CONTENT_REFUSALS:
                            fence.give_back(token)  # refused whole: nothing of it committed
                            token = None
                        raise
                    settled = await fence.settle(token, digest)
                    if isinstance(settled, Token):
                        token = settled  # an older run's late token took the place
                        conflict = None
                        continue
                    if settled:
                        # An earlier attempt landed: only its answer is lost.
                        token = None
                        return
                    # Not the token: another transaction created a resource of this one
                    # first, a create on a referrer's behalf and the resource's own stream
                    # racing each other (read-committed: docs/push.md, "Isolation"). Sent
                    # again, the write finds the resource there.
                    conflict = err
                    continue
                fence.landed(token)
                token = None
                return
            if conflict is not None:
                raise conflict
            raise FenceLost(f"stream {fence.stream_id}: its tokens kept being taken")
        except BaseException as exc:
            if token is not None:
                fence.abandon(exc)  # its outcome is unknown: no later token may be taken
            raise

    async def _post(self, bundle: dict[str, Any]) -> Response:
        return await self._client.call("POST", "/", json=bundle, headers=READ_COMMITTED)

    async def _with_dependency(
        self, items: list[Outgoing], err: AidboxError, tried: Counter[Ref]
    ) -> list[Outgoing] | None:
        """`items` with the missing target prepended, or None if it cannot be resolved.

        Each target is tried a few times per write (`_REREADS`): if it was refused itself, its
        referrers are then refused too (and quarantined) instead of bringing it back forever.
        """
        ref = missing_reference(err.body) if err.status == 422 else None
        if ref is None or tried[ref] >= _REREADS:
            return None
        tried[ref] += 1
        local_id = next((i.depends_on[ref] for i in items if ref in i.depends_on), None)
        if local_id is None:
            return None
        target = await self._source.target(ref, local_id)
        return None if target is None else order_by_references([target, *items])

    async def write(self, items: list[Outgoing]) -> SinkResult:
        """Write `items` (already ordered); every item ends written, replaced by the source's
        current state, or quarantined."""
        result = SinkResult()
        tried: Counter[Ref] = Counter()  # creations of each missing target in this write
        refreshed: Counter[Ref] = Counter()  # re-reads of each resource in this write
        stack = [items]
        while stack:
            part = stack.pop()
            limit = self._max_entry_bytes
            if limit is not None and any(item.size() > limit for item in part):
                for item in [item for item in part if item.size() > limit]:
                    why = too_large(item.size(), limit)
                    await self._refused_alone(item, Refusal(why, why), result, refreshed, stack)
                part = [item for item in part if item.size() <= limit]
                if not part:
                    continue
            try:
                await self._send(part)
            except AidboxError as err:
                if err.transient or err.status not in CONTENT_REFUSALS:
                    raise
                expanded = await self._with_dependency(part, err, tried)
                if expanded is not None:
                    # A part that outgrew a batch goes as batches, the target in the first:
                    # headquarters refuses a clinic's bundle above the largest batch and its
                    # fence entries (docs/access-control.md).
                    parts = list(batches(expanded, self._max_entries, self._max_bytes))
                    stack += reversed(parts)
                elif len(part) > 1:
                    half = len(part) // 2
                    stack += [part[half:], part[:half]]
                else:
                    [item] = part
                    refusal = Refusal(
                        f"{err.status} {outcome_summary(err.body)}",
                        f"{err.status} {outcome_codes(err.body)}",
                    )
                    await self._refused_alone(item, refusal, result, refreshed, stack)
                continue
            result.written.extend(part)
            await self._undo_vanished([item for item in part if item.if_absent])
        return result

    async def _refused_alone(
        self,
        item: Outgoing,
        refusal: Refusal,
        result: SinkResult,
        refreshed: Counter[Ref],
        stack: list[list[Outgoing]],
    ) -> None:
        """One entry refused on its own: quarantined if it is the source's current state,
        otherwise what replaces it goes on the stack (docs/push.md, "Refusals")."""
        replaced = None
        if not item.if_absent and refreshed[item.key] < _REREADS:
            refreshed[item.key] += 1
            replaced = await self._source.current(item)
        if replaced is None:
            result.quarantined.append((item, refusal))
        elif replaced:
            stack.append(replaced)

    async def _undo_vanished(self, created: list[Outgoing]) -> None:
        """Delete again each target just written on a referrer's behalf that the source no
        longer has: the source deleted it after it was read for the create, and its own
        stream's deletion may have landed before the create did (docs/push.md, "Refusals").
        Only the version the target held before the source was asked is deleted (If-Match,
        api/rest-api/crud/delete.md): a write since, by the target's own stream, is the
        source's newer state (created again), and stays. Read in the other order, a
        re-creation and its stream's write between the two reads would be deleted, and never
        sent again. The target is doubted meanwhile (SentCache.doubting): its own stream,
        which may have sent the body it held, then sends the next change of it whatever that
        body is. Best effort: what is left behind, `$reconcile` finds."""
        for item in created:
            try:
                with self._sent.doubting(item.key):
                    await self._delete_if_vanished(item)
            except SyncError as exc:
                log.warning(
                    "%s/%s, written on a referrer's behalf and since deleted at the source, may "
                    "remain at the target: %s",
                    item.target_type,
                    item.target_id,
                    type(exc).__name__,
                )

    async def _delete_if_vanished(self, item: Outgoing) -> None:
        path = f"/{item.target_type}/{item.target_id}"
        held = await self._client.call("GET", path, accept=(404, 410))
        version = (held.body or {}).get("meta", {}).get("versionId") if held.ok else None
        if version is None or await self._source.holds(item.source.resource_type, item.source.id):
            return
        await self._client.call(
            "DELETE", path, headers={"if-match": str(version)}, accept=(404, 410, 412)
        )
