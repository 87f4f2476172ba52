"""Write transactions: SERIALIZABLE by default, txid taken at the start, events after COMMIT.

api/batch-transaction.md ("Change transaction isolation level"): SERIALIZABLE by default,
`x-max-isolation-level` lowers it. api/other/changes-api.md ("Possible Race Condition"): the
txid comes from `transaction_id_seq` when the transaction starts, so a transaction may commit
after one with a higher txid.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from .faults import Faults
from .outcome import AidboxError, serialization_conflict

log = logging.getLogger("aidbox_emulator")

_ISOLATION = {
    "serializable": "serializable",
    "repeatable-read": "repeatable_read",
    "read-committed": "read_committed",
    "read-commited": "read_committed",  # the spelling in api/rest-api/crud/update.md
}


@dataclass(frozen=True)
class Event:
    """A committed change, as subscriptions see it."""

    action: str  # create | update | delete
    resource: dict[str, Any]
    previous: dict[str, Any] | None
    txid: int


@dataclass
class WriteTx:
    """An open write transaction: its connection, txids, and the events it will publish."""

    conn: asyncpg.Connection
    faults: Faults
    start_txid: int
    events: list[Event] = field(default_factory=list)
    _first_used: bool = False

    async def next_txid(self) -> int:
        """The txid for the next version written by this transaction.

        The first version uses the txid taken at the start; every further version (several
        entries for one id in a bundle each make a history version, api/batch-transaction.md)
        takes a new one, because history rows are keyed by (id, txid).
        """
        if not self._first_used:
            self._first_used = True
            return self.start_txid
        return await self.conn.fetchval("SELECT nextval('transaction_id_seq')")


def isolation_level(header: str | None) -> str:
    """asyncpg isolation for an `x-max-isolation-level` header value (default serializable)."""
    if not header:
        return "serializable"
    try:
        return _ISOLATION[header.strip().lower()]
    except KeyError:
        raise AidboxError.of(422, "invalid", f"Unknown x-max-isolation-level: {header}") from None


def map_db_error(exc: BaseException) -> BaseException:
    """Translate database errors clients can act on; leave everything else as is."""
    if isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError):
        return serialization_conflict(str(exc))
    if isinstance(exc, asyncpg.UniqueViolationError):
        return AidboxError.of(409, "conflict", "Resource already exists", outcome_id="conflict")
    return exc


@asynccontextmanager
async def write_transaction(
    pool: asyncpg.Pool,
    faults: Faults,
    *,
    resource_types: Iterable[str],
    isolation: str = "serializable",
    on_commit: Callable[[list[Event]], None] | None = None,
) -> AsyncIterator[WriteTx]:
    """Run the body in one database transaction; COMMIT on success, ROLLBACK on any error."""
    types = set(resource_types)
    async with pool.acquire() as conn:
        transaction = conn.transaction(isolation=isolation)
        await transaction.start()
        hold = None
        committed = False
        try:
            if faults.take_serialization_failure():
                raise asyncpg.SerializationError(
                    "could not serialize access due to read/write dependencies among transactions"
                )
            txid = await conn.fetchval("SELECT nextval('transaction_id_seq')")
            hold = faults.claim_hold(types)
            if hold is not None:
                hold._took(txid)
            tx = WriteTx(conn, faults, txid)
            yield tx
            if hold is not None:
                await hold._wait_release()
            await transaction.commit()
            committed = True
        except BaseException as exc:
            if not committed:
                with suppress(Exception):
                    await transaction.rollback()
            if hold is not None:
                hold._finish(False)
            mapped = map_db_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
    if hold is not None:
        hold._finish(True)
    if on_commit is not None and tx.events:
        on_commit(tx.events)
