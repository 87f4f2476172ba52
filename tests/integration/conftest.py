"""Integration fixtures: emulated local and global Aidboxes on real PostgreSQL, and the App."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.support.apps import RunningApp, running_app
from tests.support.postgres import create_database

CLINIC = "clinic-a"


async def _emulator(pg_server_dsn: str, prefix: str) -> Emulator:
    emu = Emulator(await create_database(pg_server_dsn, prefix))
    await emu.start()
    return emu


@pytest.fixture
async def local_aidbox(pg_server_dsn: str) -> AsyncIterator[Emulator]:
    """The clinic's Aidbox."""
    emu = await _emulator(pg_server_dsn, "local")
    yield emu
    await emu.stop()


@pytest.fixture
async def global_aidbox(pg_server_dsn: str) -> AsyncIterator[Emulator]:
    """Headquarters' Aidbox, with a Client for the clinic allowed to write."""
    emu = await _emulator(pg_server_dsn, "global")
    async with AidboxClient(emu.url, "root", "secret") as root:
        await root.call(
            "PUT",
            f"/Client/{CLINIC}",
            json={"secret": f"{CLINIC}-secret", "grant_types": ["basic"]},
        )
        # Until the access-control issue lands, the clinic's Client may write anything.
        await root.call(
            "PUT",
            f"/AccessPolicy/{CLINIC}-writes",
            json={"engine": "allow", "link": [{"resourceType": "Client", "id": CLINIC}]},
        )
    yield emu
    await emu.stop()


@pytest.fixture
async def local_root(local_aidbox: Emulator) -> AsyncIterator[AidboxClient]:
    """Root client of the local Aidbox (what an administrator or a clinic app uses)."""
    async with AidboxClient(local_aidbox.url, "root", "secret") as client:
        yield client


@pytest.fixture
async def global_root(global_aidbox: Emulator) -> AsyncIterator[AidboxClient]:
    """Root client of the global Aidbox (to inspect what arrived)."""
    async with AidboxClient(global_aidbox.url, "root", "secret") as client:
        yield client


@pytest.fixture
async def sync_app(local_aidbox: Emulator, global_aidbox: Emulator) -> AsyncIterator[RunningApp]:
    """The App in local role, runs driven by the operations only (no background loop)."""
    async with running_app(
        local_aidbox.url, global_url=global_aidbox.url, SYNC_RUNNER_ENABLED="false"
    ) as running:
        yield running
