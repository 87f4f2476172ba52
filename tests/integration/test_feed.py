"""Reading settled windows of $changes in pages (app/sync/feed.py) against the emulator."""

from __future__ import annotations

from typing import Any

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient, Response
from app.sync.feed import ChangeFeed
from app.sync.source import AidboxSource
from tests.support.clinic import FEMALE, NEXT_TXID, bulk_load, last_txid, patient, store_rows


async def test_windows_larger_than_a_page_yield_every_change_once_in_order(
    local_root: AidboxClient,
) -> None:
    start = await last_txid(local_root)
    for i in range(7):  # one transaction each
        await local_root.call("PUT", f"/Patient/single{i}", json=patient(f"single{i}"))
    # One transaction with more resources than a page: a txid that cannot be split.
    await bulk_load(local_root, "Patient", [f"bulk{i}" for i in range(5)])
    await local_root.call("DELETE", "/Patient/single3")
    end = await last_txid(local_root)

    feed = ChangeFeed(AidboxSource(local_root), "Patient", page_size=2)
    seen: list[tuple[str, str]] = []
    uppers: list[int] = []
    parts: list[int] = []
    async for upper, changes in feed.windows(start, end):
        assert len(changes) <= 2  # never more than a page in memory, the bulk included
        if upper is None:
            parts.append(len(changes))  # a part of the bulk: more of its window follows
        else:
            uppers.append(upper)
        seen += [(c.id, c.event) for c in changes]

    assert uppers == sorted(uppers) and uppers[-1] == end
    assert parts == [2, 2]  # the bulk's five came as 2 + 2, then its last 1 with its upper
    ids = [rid for rid, _ in seen]
    expected = {f"single{i}" for i in range(7)} | {f"bulk{i}" for i in range(5)}
    assert set(ids) == expected
    # single3 shows up in the window of its creation and again, deleted, in its last one.
    assert [e for rid, e in seen if rid == "single3"][-1] == "deleted"
    assert len(ids) - ids.count("single3") == len(expected) - 1


async def test_a_small_window_is_one_request_and_an_empty_one_none(
    local_root: AidboxClient,
) -> None:
    start = await last_txid(local_root)
    await local_root.call("PUT", "/Patient/x", json=patient("x"))
    end = await last_txid(local_root)
    feed = ChangeFeed(AidboxSource(local_root), "Patient")
    assert [[c.id for c in cs] async for _, cs in feed.windows(start, end)] == [["x"]]
    assert [cs async for _, cs in feed.windows(end, end)] == []
    assert await feed.head() == end


class _CountingClient(AidboxClient):
    """A client that counts the requests it sends."""

    sent = 0

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        self.sent += 1
        return await super().request(*args, **kwargs)


async def test_a_long_quiet_stretch_before_the_changes_takes_few_requests(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    start = await last_txid(local_root)
    # Writes of other types take txids too: move the sequence as 100,000 of them would.
    jump = f"SELECT setval('transaction_id_seq', {start + 100_000})"
    await local_root.call("POST", "/$psql", json={"query": jump})
    for i in range(12):
        await local_root.call("PUT", f"/Patient/late{i}", json=patient(f"late{i}"))
    end = await last_txid(local_root)

    seen: list[str] = []
    async with _CountingClient(local_aidbox.url, "root", "secret") as client:
        feed = ChangeFeed(AidboxSource(client), "Patient", page_size=5)
        async for _, changes in feed.windows(start, end):
            seen += [c.id for c in changes]
            # Halving crosses the quiet stretch in a few dozen requests; small steps would take
            # tens of thousands of requests.
            assert client.sent <= 60
    assert sorted(seen) == sorted(f"late{i}" for i in range(12))


async def test_a_backlog_is_read_in_about_one_request_per_page(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # 600 single writes, one txid each, then 150 written three to a txid (Aidbox's storage
    # tables, database/overview.md): the feed learns the density from each page it reads and
    # cuts the next window from it; the denser stretch overflows a page once, which is split.
    start = await last_txid(local_root)
    singles = f"SELECT 'p' || g, {NEXT_TXID}, {FEMALE} FROM generate_series(1, 600) AS g"
    await store_rows(local_root, "Patient", singles)
    dense = (
        f"SELECT 'd' || g, {start} + 1000 + (g - 1) / 3, {FEMALE} FROM generate_series(1, 150) g"
    )
    await store_rows(local_root, "Patient", dense)
    await local_root.call(
        "POST", "/$psql", json={"query": f"SELECT setval('transaction_id_seq', {start} + 1049)"}
    )
    end = await last_txid(local_root)
    seen: list[str] = []
    async with _CountingClient(local_aidbox.url, "root", "secret") as client:
        feed = ChangeFeed(AidboxSource(client), "Patient", page_size=50)
        async for _, changes in feed.windows(start, end):
            assert len(changes) <= 50
            seen += [c.id for c in changes]
    expected = [f"p{g}" for g in range(1, 601)] + [f"d{g}" for g in range(1, 151)]
    assert sorted(seen) == sorted(expected)
    # 750 / (0.9 x 50) = 17 pages; probes at the start, across the quiet stretch between the
    # two and where the density changes (31 here); a probe before every page took 62.
    assert client.sent <= 34, client.sent


class _WindowRecorder(AidboxClient):
    """A client that records how many txids each $changes request covers."""

    widths: list[int]
    reads: list[tuple[int, int]]  # the windows read with bodies (not id-only probes)

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        params = kwargs.get("params") or {}
        version = params.get("version", "")
        if "," in version:
            lo, hi = map(int, version.split(","))
            self.widths.append(hi - lo)
            if "omit-resources" not in params:
                self.reads.append((lo, hi))
        return await super().request(*args, **kwargs)


async def _read_recorded(
    aidbox: Emulator, start: int, end: int
) -> tuple[list[str], _WindowRecorder]:
    """The Patient ids of (start, end] read by the feed in pages of 50, and what it asked."""
    async with _WindowRecorder(aidbox.url, "root", "secret") as client:
        client.widths, client.reads = [], []
        feed = ChangeFeed(AidboxSource(client), "Patient", page_size=50)
        return [c.id async for _, cs in feed.windows(start, end) for c in cs], client


async def test_no_request_covers_more_of_a_backlog_than_a_few_pages(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # The source's work for a request grows with the txids it covers (it sorts the window's
    # rows): a probe of the whole backlog would cost as much as reading it, once per run, and
    # a probe of all that remains after each page would make a backfill quadratic.
    start = await last_txid(local_root)
    rows = f"SELECT 'p' || g, {NEXT_TXID}, {FEMALE} FROM generate_series(1, 2000) AS g"
    await store_rows(local_root, "Patient", rows)
    end = await last_txid(local_root)
    seen, client = await _read_recorded(local_aidbox, start, end)
    assert len(seen) == 2000
    assert max(client.widths) <= 100, max(client.widths)  # a page's worth, never the backlog


async def test_a_bulk_load_after_a_sparse_stretch_is_not_read_in_one_sweep(
    local_aidbox: Emulator, local_root: AidboxClient
) -> None:
    # 3,000 txids of other types, one Patient, 7,000 more, then 2,000 Patients one per txid: the
    # density seen on the sparse stretch promises one change in thousands of txids, but no
    # read of bodies may cover much more than a few pages' rows (probes, ids only, gallop).
    start = await last_txid(local_root)
    jump = f"SELECT setval('transaction_id_seq', {start} + 3000)"  # other types' txids
    await local_root.call("POST", "/$psql", json={"query": jump})
    await local_root.call("PUT", "/Patient/first", json=patient("first"))
    base = start + 10001
    rows = f"SELECT 'p' || g, {base} + g, {FEMALE} FROM generate_series(1, 2000) AS g"
    await store_rows(local_root, "Patient", rows)
    jump = f"SELECT setval('transaction_id_seq', {base} + 2000)"
    await local_root.call("POST", "/$psql", json={"query": jump})
    end = await last_txid(local_root)
    seen, client = await _read_recorded(local_aidbox, start, end)
    assert len(seen) == 2001
    rows = [max(0, min(hi, base + 2000) - max(lo, base)) for lo, hi in client.reads]
    # A read is at most twice as wide as the last one: where the bulk begins, it may overflow
    # by a few pages' rows (and is then split), never by the whole bulk.
    assert max(rows) <= 10 * 50, max(rows)
