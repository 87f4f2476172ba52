"""The settled bound (app/sync/watermark.py) against a real database behind the emulator."""

from __future__ import annotations

import asyncio

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.sync.watermark import Watermark
from tests.support.clinic import last_txid, patient


async def test_bound_stops_below_an_open_transaction_and_moves_after_it(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    watermark = Watermark(local_root)
    await local_root.call("PUT", "/Patient/a", json=patient("a"))
    settled = await watermark.advance()
    assert settled == await last_txid(local_root)  # nothing open: everything is settled

    hold = local_aidbox.faults.hold_next_write("Patient")
    held = asyncio.create_task(local_root.call("PUT", "/Patient/b", json=patient("b")))
    txid = await hold.txid_taken()
    assert await watermark.advance() < txid  # the open transaction holds the bound back
    assert watermark.pending

    hold.release()
    await held
    assert await watermark.advance() >= txid
    assert not watermark.pending


async def test_older_observations_settle_while_newer_ones_wait(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    """Under overlapping writers the newest observation is always blocked; older ones must
    still settle, or the bound never moves under load."""
    watermark = Watermark(local_root)
    writes = []

    async def hold_a_write(pid: str) -> tuple[object, int]:
        hold = local_aidbox.faults.hold_next_write("Patient")
        writes.append(
            asyncio.create_task(local_root.call("PUT", f"/Patient/{pid}", json=patient(pid)))
        )
        return hold, await hold.txid_taken()

    first, first_txid = await hold_a_write("a")
    await watermark.advance()  # observes a head >= first_txid, blocked by the first writer
    second, second_txid = await hold_a_write("b")
    await watermark.advance()  # blocked by both
    first.release()
    await writes[0]
    settled = await watermark.advance()
    assert first_txid <= settled < second_txid  # the first observation settled; not the rest
    second.release()
    await writes[1]
    assert await watermark.advance() >= second_txid
