"""Fenced writes: every transaction of a stream creates the stream's next token at the global.

A token is a `SyncFence` resource in the clinic's namespace whose id is derived from the stream
and a sequence number. Transaction n of a stream begins with `POST /SyncFence` of token n, the
id in the body; a create of an id that exists fails with 409 and takes the whole transaction
with it (tests/contract/test_bundles.py, "a create of an existing id"). So:

- of two attempts of one transaction (a retry after a timeout, while the first attempt is
  still on its way), exactly one can commit, and a late one fails instead of landing over the
  writes that followed it;
- a runner that lost its stream commits nothing once the new owner has written: its tokens
  are taken. Tokens carry the run's epoch (the checkpoint version its run claimed the stream
  at, which grows with every claim): a token of a newer run means this run lost the stream.

After an ambiguous outcome (the transaction's answer lost), a 409 is resolved by reading the
token: this run's token with this transaction's digest means the earlier attempt landed.
Only documented behaviour is relied on: not `ifMatch` in transaction entries, which the Aidbox
documentation does not mention (docs/aidbox-contract-notes.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.aidbox.client import AidboxClient
from app.anonymize import PseudonymKey
from app.errors import SyncError
from app.sync.bundle import Outgoing

log = logging.getLogger("aidbox_sync.fence")

FENCE_TYPE = "SyncFence"
# Tokens kept per stream: transaction n deletes token n - KEEP. A write of a stream executed
# after more than this many later transactions of the same stream could no longer be told.
KEEP = 10_000


class FenceLost(SyncError):
    """A newer run writes this stream at headquarters: this one must stop."""


def token_id(key: PseudonymKey, stream_id: str, seq: int) -> str:
    """The global id of a stream's token `seq`: inside the clinic's namespace, unguessable."""
    return key.resource_id(FENCE_TYPE, f"{stream_id}#{seq}")


def batch_digest(entries: Iterable[bytes]) -> str:
    """What a transaction writes, as a hash of its entries (to recognise it later)."""
    hashed = hashlib.sha256()
    for entry in entries:
        hashed.update(entry)
        hashed.update(b"\n")
    return hashed.hexdigest()


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
        witness: Callable[[Sequence[Outgoing]], list[str]] | None = None,
    ) -> None:
        self._client = client
        # Pull: each token also lists what its transaction writes, so that the clinic can
        # tell the pull's writes from its own edits later (local_edits.py).
        self._witness = witness
        self._key = key
        self.stream_id = stream_id
        self.epoch = epoch
        self.last = known  # the last token known to exist

    async def _read(self, seq: int) -> dict[str, Any] | None:
        path = f"/{FENCE_TYPE}/{token_id(self._key, self.stream_id, seq)}"
        resp = await self._client.call("GET", path, accept=(404, 410))
        return resp.body if resp.status == 200 and isinstance(resp.body, dict) else None

    async def open(self) -> None:
        """Find the stream's last token (from the one the checkpoint knows, upwards)."""
        while (token := await self._read(self.last + 1)) is not None:
            self._refuse_newer(token)
            self.last += 1

    def _refuse_newer(self, token: dict[str, Any]) -> None:
        if int(token.get("epoch", 0)) > self.epoch:
            raise FenceLost(
                f"stream {self.stream_id}: a newer run (epoch {token.get('epoch')}) writes it "
                f"at headquarters; this run (epoch {self.epoch}) stops"
            )

    def entries(self, digest: str, items: Sequence[Outgoing] = ()) -> list[dict[str, Any]]:
        """The entries that open the next transaction, which writes `items`: the next token,
        and the deletion of the token that falls out of the kept ones."""
        seq = self.last + 1
        token = {
            "resourceType": FENCE_TYPE,
            "id": token_id(self._key, self.stream_id, seq),
            "stream": self.stream_id,
            "seq": seq,
            "epoch": self.epoch,
            "digest": digest,
            "at": datetime.now(UTC).isoformat(),
        }
        if self._witness is not None:
            token["writes"] = self._witness(items)
        out: list[dict[str, Any]] = [
            {"request": {"method": "POST", "url": f"/{FENCE_TYPE}"}, "resource": token}
        ]
        if seq > KEEP:
            old = token_id(self._key, self.stream_id, seq - KEEP)
            out.append({"request": {"method": "DELETE", "url": f"/{FENCE_TYPE}/{old}"}})
        return out

    def landed(self) -> None:
        """The transaction with the next token committed."""
        self.last += 1

    async def settle(self, digest: str) -> bool | None:
        """After a 409 on a transaction: was it our token?

        True: this run's earlier attempt of the same transaction committed (its answer was
        lost); the token counts as ours. None: an older run's token took the place (it ended
        late); the fence moved on and the transaction may be sent again. False: the token is
        not there: the 409 was about something else. FenceLost: a newer run owns the stream.
        """
        token = await self._read(self.last + 1)
        if token is None:
            return False
        self._refuse_newer(token)
        if int(token.get("epoch", 0)) == self.epoch and token.get("digest") == digest:
            self.last += 1
            return True
        if int(token.get("epoch", 0)) == self.epoch:
            raise FenceLost(
                f"stream {self.stream_id}: token {self.last + 1} of this run holds another "
                "transaction"
            )
        log.info(
            "stream %s: token %s was taken by an older run (epoch %s); moving on",
            self.stream_id,
            self.last + 1,
            token.get("epoch"),
        )
        await self.open()
        return None
