"""Fenced writes: every transaction of a stream creates one of the stream's tokens at the target.

A token is a `SyncFence` resource in the clinic's namespace whose id is derived from the stream
and a sequence number. A transaction begins with `POST /SyncFence` of its token, the id in the
body; a create of an id that exists fails with 409 and takes the whole transaction with it
(tests/contract/test_bundles.py, "a create of an existing id"). So:

- of two attempts of one transaction (a retry after a timeout, while the first attempt is
  still on its way), exactly one can commit, and a late one fails instead of landing over the
  writes that followed it;
- a runner that lost its stream commits nothing once the new owner has written: its tokens
  are taken. Tokens carry the run's epoch (the checkpoint version its run claimed the stream
  at, which grows with every claim): a token of a newer run means this run lost the stream.

Up to `depth` transactions of a run may be in flight at once (their writes never share a
resource: pipeline.py), so tokens may land out of order. `TokenWindow` keeps the rule that
makes this safe: token n is only taken once every token up to n - depth has landed, so a run
that stops leaves at most `MAX_IN_FLIGHT` tokens that may still land later, all within
`MAX_IN_FLIGHT` of the last token that exists. The next run's first transaction creates those
numbers too (its reserve), so none of them can land after it (docs/push.md, "Fenced writes").

After an ambiguous outcome (the transaction's answer lost), a 409 is resolved by reading the
token: this run's token with this transaction's digest means the earlier attempt landed.
Only documented behaviour is relied on: not `ifMatch` in transaction entries, which the Aidbox
documentation does not mention (docs/aidbox-contract-notes.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.aidbox.client import AidboxClient
from app.anonymize import PseudonymKey
from app.errors import SyncError
from app.sync.bundle import Outgoing

log = logging.getLogger("aidbox_sync.fence")

FENCE_TYPE = "SyncFence"
# Tokens kept per stream: token n's transaction deletes token n - KEEP. A write of a stream
# executed after more than this many later transactions of the same stream could not be told.
KEEP = 10_000
# The most transactions of one stream any run may have in flight: the reserve of a new run,
# and the run of missing numbers after which no token of the stream can exist.
MAX_IN_FLIGHT = 4
# The most entries the fence opens one transaction with: a run's first token and its reserve
# (the numbers missing up to MAX_IN_FLIGHT past the last present, at most 2 * MAX_IN_FLIGHT),
# each with the deletion of the token KEEP below it. Headquarters' policy for clinics allows
# bundles of SYNC_BATCH_MAX_ENTRIES' largest value and these (docs/access-control.md).
MAX_FENCE_ENTRIES = 4 * MAX_IN_FLIGHT


class FenceLost(SyncError):
    """A newer run writes this stream at the target: this one must stop."""


def token_id(key: PseudonymKey, stream_id: str, seq: int) -> str:
    """The target id of a stream's token `seq`: inside the clinic's namespace, unguessable."""
    return key.resource_id(FENCE_TYPE, f"{stream_id}#{seq}")


def batch_digest(entries: Iterable[bytes]) -> str:
    """What a transaction writes, as a hash of its entries (to recognise it later)."""
    hashed = hashlib.sha256()
    for entry in entries:
        hashed.update(entry)
        hashed.update(b"\n")
    return hashed.hexdigest()


@dataclass(frozen=True)
class Token:
    """The token numbers one transaction creates: its own, and for a run's first, its reserve."""

    seq: int
    reserve: tuple[int, ...] = ()

    @property
    def seqs(self) -> tuple[int, ...]:
        """Every number the transaction creates."""
        return (self.seq, *self.reserve)


class TokenWindow:
    """Which token numbers a run's transactions take, and when (pure: no I/O).

    The run starts from `known` (every token up to it exists) and the numbers found `present`
    above it. Its first token creates every number missing up to `MAX_IN_FLIGHT` past the
    last one present, so that no token an older run may still land can land after it. Token n
    is only given out once every token up to n - depth has landed (`last`); a token whose
    transaction committed nothing (refused) is given back and taken again, so a run leaves no
    number missing behind it.
    """

    def __init__(self, known: int, present: Iterable[int], depth: int) -> None:
        if not 1 <= depth <= MAX_IN_FLIGHT:
            raise ValueError(f"depth {depth} is not within 1..{MAX_IN_FLIGHT}")
        self.depth = depth
        self._landed = {n for n in present if n > known}
        top = max(self._landed, default=known)
        missing = [n for n in range(known + 1, top + MAX_IN_FLIGHT + 1) if n not in self._landed]
        self._free = [Token(missing[0], tuple(missing[1:]))]
        self._next = top + MAX_IN_FLIGHT + 1
        self.last = known  # a later run's scan may start after it (every token up to it exists)
        self._advance()

    def _advance(self) -> None:
        while self.last + 1 in self._landed:
            self.last += 1
            self._landed.discard(self.last)

    def ready(self) -> bool:
        """Whether a token may be taken now."""
        return bool(self._free) or self._next - self.depth <= self.last

    def take(self) -> Token:
        """The next token (call only when `ready`): one given back first, the lowest."""
        if self._free:
            self._free.sort(key=lambda t: t.seq)
            return self._free.pop(0)
        if not self.ready():
            raise RuntimeError("no token may be taken before earlier ones land")
        self._next += 1
        return Token(self._next - 1)

    def give_back(self, token: Token) -> None:
        """Its transaction committed nothing: the number is taken again by the next one."""
        self._free.append(token)

    def land(self, token: Token) -> None:
        """Its transaction committed."""
        self._landed.update(token.seqs)
        self._advance()


class Scan:
    """The search for a stream's last token (pure: the reads are the caller's): numbers are
    read upwards from `known` until `MAX_IN_FLIGHT` in a row are missing, since no run leaves
    a longer run of missing numbers below a token it created."""

    def __init__(self, known: int) -> None:
        self.present: set[int] = set()
        self._at = known
        self._missing = 0

    def wanted(self) -> range:
        """The numbers to read next (empty once the scan is over): as many as could end it."""
        if self._missing >= MAX_IN_FLIGHT:
            return range(0)
        return range(self._at + 1, self._at + 1 + MAX_IN_FLIGHT - self._missing)

    def record(self, seqs: range, found: Sequence[bool]) -> None:
        """What reading `seqs` found."""
        for seq, here in zip(seqs, found, strict=True):
            if here:
                self.present.add(seq)
                self._missing = 0
            else:
                self._missing += 1
        self._at = seqs[-1]


class Fence:
    """The tokens of one run of one stream."""

    def __init__(
        self,
        client: AidboxClient,
        key: PseudonymKey,
        stream_id: str,
        *,
        epoch: int,
        known: int,
        depth: int = 1,
        witness: Callable[[Sequence[Outgoing]], list[str]] | None = None,
    ) -> None:
        self._client = client
        # Pull: each token also lists what its transaction writes, so that the clinic can
        # tell the pull's writes from its own edits later (local_edits.py).
        self._witness = witness
        self._key = key
        self.stream_id = stream_id
        self.epoch = epoch
        self._known = known
        self._depth = depth
        self._window = TokenWindow(known, (), depth)
        # Set (and replaced) whenever the window moves: takers waiting for it look again.
        self._moved = asyncio.Event()
        self._broken: BaseException | None = None

    @property
    def last(self) -> int:
        """Every token up to this one exists: a later run scans from here (the checkpoint)."""
        return self._window.last

    async def _read(self, seq: int) -> dict[str, Any] | None:
        path = f"/{FENCE_TYPE}/{token_id(self._key, self.stream_id, seq)}"
        resp = await self._client.call("GET", path, accept=(404, 410))
        return resp.body if resp.status == 200 and isinstance(resp.body, dict) else None

    async def open(self) -> None:
        """Find the stream's tokens from the one the checkpoint knows upwards, and start the
        run's window after the last one."""
        scan = Scan(self._known)
        while seqs := scan.wanted():
            tokens = await asyncio.gather(*(self._read(seq) for seq in seqs))
            for token in tokens:
                if token is not None:
                    self._refuse_newer(token)
            scan.record(seqs, [token is not None for token in tokens])
        self._window = TokenWindow(self._known, scan.present, self._depth)

    def _refuse_newer(self, token: dict[str, Any]) -> None:
        if int(token.get("epoch", 0)) > self.epoch:
            raise FenceLost(
                f"stream {self.stream_id}: a newer run (epoch {token.get('epoch')}) writes it "
                f"at the target; this run (epoch {self.epoch}) stops"
            )

    async def take(self) -> Token:
        """A token for the next transaction, once the window allows one. If a transaction of
        this run failed meanwhile (`abandon`), its failure is raised here too."""
        while self._broken is None and not self._window.ready():
            await self._moved.wait()
        if self._broken is not None:
            raise self._broken
        return self._window.take()

    def _notify(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    def landed(self, token: Token) -> None:
        """The transaction of `token` committed."""
        self._window.land(token)
        self._notify()

    def give_back(self, token: Token) -> None:
        """The transaction of `token` was refused whole: nothing of it committed."""
        self._window.give_back(token)
        self._notify()

    def abandon(self, cause: BaseException) -> None:
        """A transaction failed with its outcome unknown: its token may still land, so no
        later one may be taken; transactions waiting for one fail with the same cause."""
        if not isinstance(cause, Exception):  # cancelled: the others fail, not cancel
            cause = SyncError(f"stream {self.stream_id}: a transaction of this run was stopped")
        self._broken = cause
        self._notify()

    def entries(
        self, token: Token, digest: str, items: Sequence[Outgoing] = ()
    ) -> list[dict[str, Any]]:
        """The entries that open the transaction of `token`, which writes `items`: its
        token(s), and the deletion of those that fall out of the kept ones."""
        now = datetime.now(UTC).isoformat()
        out: list[dict[str, Any]] = []
        for seq in token.seqs:
            created = {
                "resourceType": FENCE_TYPE,
                "id": token_id(self._key, self.stream_id, seq),
                "stream": self.stream_id,
                "seq": seq,
                "epoch": self.epoch,
                "digest": digest,
                "at": now,
            }
            if self._witness is not None and seq == token.seq:
                created["writes"] = self._witness(items)
            request = {"method": "POST", "url": f"/{FENCE_TYPE}"}
            out.append({"request": request, "resource": created})
            if seq > KEEP:
                old = token_id(self._key, self.stream_id, seq - KEEP)
                out.append({"request": {"method": "DELETE", "url": f"/{FENCE_TYPE}/{old}"}})
        return out

    async def settle(self, token: Token, digest: str) -> Token | bool:
        """After a 409 on the transaction of `token`: was it our token?

        True: this run's earlier attempt of the same transaction committed (its answer was
        lost); it counts as landed. False: none of its numbers is taken: the 409 was about
        something else. A new token: a run's first transaction found an older run's late
        token among its numbers; the window starts again after it, and the transaction is sent
        again with the token returned. FenceLost: a newer run owns the stream, or a token
        beyond the reserve was taken.
        """
        tokens = await asyncio.gather(*(self._read(seq) for seq in token.seqs))
        taken = [t for t in tokens if t is not None]
        for found in taken:
            self._refuse_newer(found)
        own = tokens[0]
        if own is not None and int(own.get("epoch", 0)) == self.epoch:
            if own.get("digest") != digest:
                raise FenceLost(
                    f"stream {self.stream_id}: token {token.seq} of this run holds another "
                    "transaction"
                )
            self.landed(token)
            return True
        if not taken:
            return False
        if not token.reserve:
            # The reserve of this run's first transaction covered every token an older run
            # could still land: this one cannot be theirs.
            raise FenceLost(f"stream {self.stream_id}: token {token.seq} was taken by another run")
        log.info(
            "stream %s: an older run's late token took a number of this run's first "
            "transaction; looking for the last token again",
            self.stream_id,
        )
        await self.open()
        return await self.take()
