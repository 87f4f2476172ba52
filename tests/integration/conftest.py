"""Integration fixtures: emulated local and global Aidboxes on real PostgreSQL, and the App.

The global runs the App in global role, which installs the access policy of clinics, and the
clinic is registered through the product's own operation; the clinic's App then holds the
secret that registration answered, as an operator would hand it over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from tests.conftest import fresh_emulator
from tests.support.apps import RunningApp, running_app
from tests.support.headquarters import CLINIC, Headquarters


@pytest.fixture
async def local_aidbox(pg_server_dsn: str) -> AsyncIterator[Emulator]:
    """The clinic's Aidbox."""
    async with fresh_emulator(pg_server_dsn, prefix="local") as emu:
        yield emu


@pytest.fixture
async def global_aidbox(pg_server_dsn: str) -> AsyncIterator[Emulator]:
    """Headquarters' Aidbox."""
    async with fresh_emulator(pg_server_dsn, prefix="global") as emu:
        yield emu


@pytest.fixture
async def headquarters(global_aidbox: Emulator) -> AsyncIterator[Headquarters]:
    """The App in global role on the global Aidbox, with clinic-a registered and active."""
    async with (
        running_app(global_aidbox.url, role="global") as app,
        AidboxClient(global_aidbox.url, "root", "secret") as root,
    ):
        hq = Headquarters(app, root, {})
        await hq.register(CLINIC, name="Clinic A", country="US")
        yield hq


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
async def sync_app(
    local_aidbox: Emulator, global_aidbox: Emulator, headquarters: Headquarters
) -> AsyncIterator[RunningApp]:
    """The App in local role, runs driven by the operations only (no background loop)."""
    async with headquarters.clinic_app(local_aidbox.url, SYNC_RUNNER_ENABLED="false") as running:
        yield running


@pytest.fixture
async def clinic_b(pg_server_dsn: str) -> AsyncIterator[Emulator]:
    """A second clinic's Aidbox (clinic-b, in another country than clinic-a)."""
    async with fresh_emulator(pg_server_dsn, prefix="clinic_b") as emu:
        yield emu


@pytest.fixture
async def b_root(clinic_b: Emulator) -> AsyncIterator[AidboxClient]:
    """Root client of clinic-b's Aidbox."""
    async with AidboxClient(clinic_b.url, "root", "secret") as client:
        yield client


@pytest.fixture
async def b_app(clinic_b: Emulator, headquarters: Headquarters) -> AsyncIterator[RunningApp]:
    """clinic-b registered (country DE) and its App in local role, driven by operations."""
    await headquarters.register("clinic-b", name="Clinic B", country="DE")
    async with headquarters.clinic_app(
        clinic_b.url, "clinic-b", SYNC_RUNNER_ENABLED="false"
    ) as app:
        yield app
