"""Writes batches to the global Aidbox as transactions, isolating what it refuses.

- Transient failures are retried by the client (its RetryPolicy); if they persist the run
  fails and the checkpoint stays where it was, so nothing is lost.
- A transaction refused because a referenced resource is missing (422, "Referenced resource
  Patient/<id> does not exist", api/batch-transaction.md) gets that resource pushed first, in
  the same transaction, when the clinic still has it and pushes its type.
- A refusal of content (400, 413, 422) is bisected until the refused entry stands
  alone. If the clinic has replaced or deleted that version since, its current state (or
  its deletion) is sent instead: an old version is not a poison resource (docs/push.md,
  "Refusals"). A refusal of the current state is quarantined; the rest is written.
- Any other refusal (401, 403, 404 on the bundle endpoint...) says nothing about the resources:
  the run fails and nothing is quarantined, so wrong credentials or a wrong URL never turn
  into lost data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from app.aidbox.client import AidboxClient, AidboxError, outcome_summary
from app.sync.bundle import Outgoing, Ref, order_by_references, transaction
from app.sync.fence import Fence, FenceLost, batch_digest

# Statuses by which Aidbox refuses what a bundle contains (api/batch-transaction.md,
# api/rest-api/crud/*.md), as opposed to who sent it or where. 409 and 412 are not among them:
# the App sends PUT/DELETE without If-Match, so on the global they can only come from
# concurrent writes (api/rest-api/crud/update.md) or the fence (fence.py), never from content.
CONTENT_REFUSALS = frozenset({400, 413, 422})

_MISSING_REF = re.compile(r"Referenced resource ([A-Za-z][A-Za-z0-9]*)/([A-Za-z0-9\-.]+) does not")


class ClinicState(Protocol):
    """What the sink asks the clinic when the global refuses something."""

    async def target(self, ref: Ref, local_id: str) -> Outgoing | None:
        """A missing reference target as a create-if-absent from the clinic's copy (None if
        the clinic no longer has it, or it is not pushed)."""

    async def current(self, item: Outgoing) -> list[Outgoing] | None:
        """None if `item` is the clinic's current state; otherwise what replaces it: the
        current state's write, or its deletion ([] when nothing is to be sent)."""


@dataclass
class SinkResult:
    """What a write achieved."""

    written: list[Outgoing] = field(default_factory=list)
    quarantined: list[tuple[Outgoing, str]] = field(default_factory=list)
    # Conditional creates (if_absent) that did create: the global now holds exactly their body.
    created: set[Ref] = field(default_factory=set)


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


class GlobalSink:
    """Transactions to the global Aidbox, each fenced once the stream is claimed (fence.py)."""

    def __init__(self, client: AidboxClient, clinic: ClinicState) -> None:
        self._client = client
        self._clinic = clinic
        self.fence: Fence | None = None

    async def _send(self, items: list[Outgoing]) -> set[Ref]:
        """Send one transaction; returns the conditional creates that created their resource."""
        fence = self.fence
        digest = batch_digest(i.encoded for i in items) if fence is not None else ""
        for _ in range(_FENCE_RETRIES):
            first = fence.entries(digest) if fence is not None else []
            try:
                resp = await self._client.call("POST", "/", json=transaction(items, first))
            except AidboxError as err:
                if fence is None or err.status != 409:
                    raise
                settled = await fence.settle(digest)
                if settled is None:
                    continue  # an older run's late token took the place: send it again
                if settled:
                    # An earlier attempt landed: its answer, and what it created, is lost.
                    return set()
                raise
            if fence is not None:
                fence.landed()
            body = resp.body if isinstance(resp.body, dict) else {}
            answers = (body.get("entry") or [])[len(first) :]
            return {
                item.key
                for item, answer in zip(items, answers, strict=False)
                if item.if_absent
                and str((answer.get("response") or {}).get("status", "")).startswith("201")
            }
        raise FenceLost(f"stream {fence.stream_id if fence else ''}: its tokens kept being taken")

    async def _with_dependency(
        self, items: list[Outgoing], err: AidboxError, tried: set[Ref]
    ) -> list[Outgoing] | None:
        """`items` with the missing target prepended, or None if it cannot be resolved.

        Each target is tried once per write: if it was refused itself, its referrers are then
        refused too (and quarantined) instead of bringing it back forever.
        """
        ref = missing_reference(err.body) if err.status == 422 else None
        if ref is None or ref in tried:
            return None
        tried.add(ref)
        local_id = next((i.depends_on[ref] for i in items if ref in i.depends_on), None)
        if local_id is None:
            return None
        target = await self._clinic.target(ref, local_id)
        return None if target is None else order_by_references([target, *items])

    async def write(self, items: list[Outgoing]) -> SinkResult:
        """Write `items` (already ordered); every item ends written, replaced by the clinic's
        current state, or quarantined."""
        result = SinkResult()
        tried: set[Ref] = set()
        refreshed: set[Ref] = set()  # each resource is re-read once per write
        stack = [items]
        while stack:
            part = stack.pop()
            try:
                result.created |= await self._send(part)
            except AidboxError as err:
                if err.transient or err.status not in CONTENT_REFUSALS:
                    raise
                expanded = await self._with_dependency(part, err, tried)
                if expanded is not None:
                    stack.append(expanded)
                elif len(part) > 1:
                    half = len(part) // 2
                    stack += [part[half:], part[:half]]
                else:
                    [item] = part
                    replaced = None
                    if not item.if_absent and item.key not in refreshed:
                        refreshed.add(item.key)
                        replaced = await self._clinic.current(item)
                    if replaced is None:
                        result.quarantined.append(
                            (item, f"{err.status} {outcome_summary(err.body)}")
                        )
                    elif replaced:
                        stack.append(replaced)
                continue
            result.written.extend(part)
        return result
