"""The settled bound (app/sync/watermark.py) against a real database behind the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient
from app.sync import watermark
from app.sync.watermark import Watermark
from tests.support.apps import RunningApp
from tests.support.clinic import KEY, last_txid, patient, resources
from tests.support.headquarters import Headquarters
from tests.support.postgres import OwnCluster, own_cluster


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


async def test_a_transaction_holds_the_bound_back_from_its_first_txid_until_it_ends(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # What the bound relies on, in PostgreSQL itself: nextval's lock on the sequence is held
    # by its transaction through later statements and idle time, until it ends
    # (src/backend/commands/sequence.c, lock_and_open_sequence), whoever's session it is.
    watermark = Watermark(local_root)
    writer = await asyncpg.connect(local_aidbox.dsn)
    try:
        async with writer.transaction():
            txid = await writer.fetchval("SELECT nextval('transaction_id_seq')")
            await writer.fetchval("SELECT count(*) FROM pg_class")  # more work, then idle
            assert await watermark.advance() < txid
            assert watermark.pending and watermark.open_since is not None
        assert await watermark.advance() >= txid
        assert not watermark.pending and watermark.open_since is None
    finally:
        await writer.close()


async def test_a_transaction_that_only_reads_holds_nothing_back(
    sync_app: RunningApp,
    local_aidbox: Emulator,
    local_root: AidboxClient,
    global_root: AidboxClient,
) -> None:
    # A backup's snapshot (pg_dump: repeatable read, read only), a report, a session left
    # idle in a transaction: none takes a txid, none can hide a change, and none may stop the
    # push (helper-31's review: the bound waited for every open transaction).
    reader = await asyncpg.connect(local_aidbox.dsn)
    try:
        snapshot = reader.transaction(isolation="repeatable_read", readonly=True)
        await snapshot.start()
        await reader.fetchval("SELECT count(*) FROM pg_class")
        await local_root.call("PUT", "/Patient/p1", json=patient("p1"))
        [run] = await sync_app.service.sync(["Patient"])
        assert run.error is None and run.counters.written == 1
        assert KEY.resource_id("Patient", "p1") in await resources(global_root, "Patient")
        await snapshot.rollback()
    finally:
        await reader.close()


async def test_an_app_client_without_psql_is_told_by_sync_and_by_sync_status(
    local_aidbox: Emulator, headquarters: Headquarters, local_root: AidboxClient
) -> None:
    # The App registered with a Client that may do anything but $psql (README, "What the
    # local side needs from its Aidbox"): the push cannot prove a settled bound.
    await local_root.call(
        "PUT", "/Client/app-init", json={"secret": "app-init-secret", "grant_types": ["basic"]}
    )
    policy = {
        "engine": "sql",
        "sql": {"query": "SELECT {{uri}} <> '/$psql'"},
        "link": [{"resourceType": "Client", "id": "app-init"}],
    }
    await local_root.call("PUT", "/AccessPolicy/app-init-no-psql", json=policy)
    async with headquarters.clinic_app(
        local_aidbox.url,
        SYNC_RUNNER_ENABLED="false",
        APP_INIT_CLIENT_ID="app-init",
        APP_INIT_CLIENT_SECRET="app-init-secret",
    ):
        resp = await local_root.request("POST", "/$sync", json={"direction": "push"})
        assert resp.status == 502, resp.body  # a setting to fix, not a wait (503)
        assert "the App's client needs $psql" in resp.body["issue"][0]["diagnostics"]
        status = (await local_root.call("GET", "/$sync-status")).body
        assert "needs $psql" in status["watermark"]["error"]


async def test_a_cached_txid_sequence_stops_the_push_until_fixed_and_sync_status_says_why(
    sync_app: RunningApp, local_root: AidboxClient
) -> None:
    # With CACHE > 1 a later txid can commit below an earlier one's cached block: no bound is
    # safe (README, "What the local side needs from its Aidbox").
    async def alter(cache: int) -> None:
        sql = f"ALTER SEQUENCE transaction_id_seq CACHE {cache}"
        await local_root.call("POST", "/$psql", params={"execute": "true"}, json={"query": sql})

    await alter(2)
    resp = await local_root.request("POST", "/$sync", json={"direction": "push"})
    assert resp.status == 502, resp.body
    status = (await local_root.call("GET", "/$sync-status")).body
    assert "transaction_id_seq caches values" in status["watermark"]["error"]
    await alter(1)
    await local_root.call("POST", "/$sync", json={"direction": "push"})
    status = (await local_root.call("GET", "/$sync-status")).body
    assert status["watermark"]["error"] is None


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnCluster]:
    """A restartable PostgreSQL of the test's own, which the Watermark's `$psql` queries go
    to straight (the emulator cannot restart its server; Aidbox's pool reconnects)."""
    with own_cluster() as own:

        async def rows(client: Any, sql: str) -> list[dict[str, Any]]:
            conn = await own.connect()
            try:
                return [dict(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        monkeypatch.setattr(watermark, "rows", rows)
        yield own


async def test_a_prepared_transaction_holds_the_bound_back_across_a_server_restart(
    cluster: OwnCluster,
) -> None:
    # A prepared transaction (two-phase commit) holds its txid and the sequence's lock with
    # no session; after a restart it is still open, under another virtual id (helper-32's
    # review): it must hold the bound back until COMMIT PREPARED, restart or not.
    setup = await cluster.connect()
    await setup.execute("CREATE SEQUENCE transaction_id_seq")
    await setup.execute("BEGIN")
    txid = await setup.fetchval("SELECT nextval('transaction_id_seq')")
    await setup.execute("PREPARE TRANSACTION 'two-phase'")
    await setup.close()
    mark = Watermark(client=None)  # type: ignore[arg-type]
    assert await mark.advance() < txid
    assert mark.open_since is not None  # $sync-status tells since when it waits
    cluster.restart()
    assert await mark.advance() < txid
    assert mark.open_since is not None
    done = await cluster.connect()
    await done.execute("COMMIT PREPARED 'two-phase'")
    await done.close()
    assert await mark.advance() >= txid
    assert mark.open_since is None


async def test_a_txid_taken_in_a_savepoint_rolled_back_still_holds_the_bound_back(
    cluster: OwnCluster,
) -> None:
    # nextval's lock belongs to the top transaction (sequence.c, lock_and_open_sequence): a
    # rollback to a savepoint keeps it, and the transaction may still write with that txid.
    writer = await cluster.connect()
    await writer.execute("CREATE SEQUENCE transaction_id_seq")
    await writer.execute("BEGIN; SAVEPOINT s")
    txid = await writer.fetchval("SELECT nextval('transaction_id_seq')")
    await writer.execute("ROLLBACK TO SAVEPOINT s")
    mark = Watermark(client=None)  # type: ignore[arg-type]
    assert await mark.advance() < txid
    await writer.execute("COMMIT")
    assert await mark.advance() >= txid
    await writer.close()
