"""Shared state of a running emulator, handed to every handler."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import asyncpg

from .credentials import VerifiedCredentials
from .faults import Faults
from .subscriptions import Deliveries
from .tables import Tables
from .transactions import WriteTx, isolation_level, write_transaction

if TYPE_CHECKING:
    from .auth import Caller


@dataclass
class Runtime:
    """Pool, faults, outgoing HTTP session and subscription deliveries of one emulator."""

    pool: asyncpg.Pool
    faults: Faults
    http: aiohttp.ClientSession
    deliveries: Deliveries
    tables: Tables
    base_url: str
    root_client_id: str
    root_client_secret: str
    verified_credentials: VerifiedCredentials = field(default_factory=VerifiedCredentials)

    def write(
        self, resource_types: Iterable[str], isolation_header: str | None = None
    ) -> AbstractAsyncContextManager[WriteTx]:
        """A write transaction whose committed events go to the subscription deliveries."""
        return write_transaction(
            self.pool,
            self.faults,
            resource_types=resource_types,
            isolation=isolation_level(isolation_header),
            on_commit=self.deliveries.publish,
        )


@dataclass
class Ctx:
    """What one interaction runs with: the runtime, a connection, and the write tx if any."""

    rt: Runtime
    conn: asyncpg.Connection
    tx: WriteTx | None
    caller: Caller | None = None  # who sent the request (auth.py)
    # (type, id) of a transaction's urn:uuid entries: references to them count as existing,
    # since the docs' example refers to an entry placed later (api/batch-transaction.md).
    bundle_targets: frozenset[tuple[str, str]] = frozenset()

    def write_tx(self) -> WriteTx:
        """The open write transaction; writes outside one are a programming error."""
        if self.tx is None:
            raise RuntimeError("write attempted outside a write transaction")
        return self.tx
