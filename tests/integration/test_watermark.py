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
