"""Session-wide fixtures: one PostgreSQL cluster per test session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from hypothesis import settings

from tests.support.postgres import database, postgres_server, with_database

# Property tests explore new examples on a developer's machine; in CI (CI=true) they replay a
# fixed sequence, so a red build always means a change, never a dice roll. Any counterexample
# found locally is kept in .hypothesis/ and replayed first.
settings.register_profile("ci", derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of the session's PostgreSQL server (embedded unless AIDBOX_SYNC_TEST_PG_DSN is set)."""
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def emulator_template_db(pg_server_dsn: str) -> str:
    """Name of a template database holding the Aidbox emulator's schema (built once)."""
    return asyncio.run(_build_emulator_template(pg_server_dsn))


async def _build_emulator_template(server_dsn: str) -> str:
    from aidbox_emulator.schema import prepare_database

    name = f"emulator_template_{os.getpid()}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await prepare_database(with_database(server_dsn, name))
    return name


@asynccontextmanager
async def fresh_emulator(
    server_dsn: str, template: str | None = None, prefix: str = "emu", **kwargs: Any
) -> AsyncIterator[Any]:
    """A started Aidbox emulator on a new database (cloned from ``template`` when given, else
    given its schema by the emulator as it starts); dropped after."""
    from aidbox_emulator import Emulator

    async with database(server_dsn, prefix, template=template) as dsn:
        emulator = Emulator(dsn, **kwargs)
        try:
            await emulator.start(host="127.0.0.1", port=0)
            yield emulator
        finally:
            await emulator.stop()


@pytest.fixture
async def emulator(pg_server_dsn: str, emulator_template_db: str) -> AsyncIterator[Any]:
    """A running `aidbox_emulator.Emulator` (root client root/secret) on a fresh database."""
    async with fresh_emulator(pg_server_dsn, emulator_template_db) as emu:
        yield emu
