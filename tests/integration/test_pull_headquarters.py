"""Headquarters' side of pull (docs/pull.md): `$pull-changes` and `$pull-read` of the global
App, called with the clinics' own credentials, answer settled windows and current states as
each clinic's scope allows (clinic-a is in the US, clinic-b in Germany and the EU region)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aidbox_emulator import Emulator
from app.aidbox.client import AidboxClient, Response
from app.sync.feed import ChangeFeed
from app.sync.source import HeadquartersSource
from tests.support.clinic import bulk_load, clinic_key, last_txid
from tests.support.headquarters import CLINIC, Headquarters

B = "clinic-b"


@pytest.fixture
async def as_a(global_aidbox: Emulator, headquarters: Headquarters) -> AsyncIterator[AidboxClient]:
    async with AidboxClient(global_aidbox.url, CLINIC, headquarters.secrets[CLINIC]) as client:
        yield client


@pytest.fixture
async def as_b(global_aidbox: Emulator, headquarters: Headquarters) -> AsyncIterator[AidboxClient]:
    await headquarters.register(B, name="Clinic B", country="DE", region="EU")
    async with AidboxClient(global_aidbox.url, B, headquarters.secrets[B]) as client:
        yield client


def organization(oid: str, *countries: str) -> dict[str, Any]:
    address = [{"city": "x", "country": c} for c in countries]
    return {"resourceType": "Organization", "id": oid, "name": oid, "address": address}


def area(code: str, kind: str = "country", **extra: str) -> dict[str, Any]:
    body = {"code": code, "name": code, "kind": kind, "status": "active", **extra}
    return {"resourceType": "AdministrativeArea", "id": code, **body}


async def put_all(root: AidboxClient, *resources: dict[str, Any]) -> None:
    for resource in resources:
        path = f"/{resource['resourceType']}/{resource['id']}"
        await root.call("PUT", path, json=resource)


async def pull(client: AidboxClient, op: str, **params: str) -> Response:
    return await client.request("GET", f"/${op}", params=params)


async def settled(client: AidboxClient, rtype: str) -> int:
    """The settled bound, waiting for transactions open now (as the clinic's $sync does)."""
    resp = await pull(client, "pull-changes", type=rtype, settle="true")
    assert resp.status == 200, resp.body
    return resp.body["version"]


async def window(client: AidboxClient, rtype: str, lo: int, hi: int, **params: str) -> list:
    resp = await pull(
        client, "pull-changes", type=rtype, version=f"{lo},{hi}", _count="100", **params
    )
    assert resp.status == 200, resp.body
    assert (resp.body["type"], resp.body["version"]) == (rtype, hi)
    return resp.body["changes"]


async def raw_window(root: AidboxClient, rtype: str, lo: int, hi: int, **params: str) -> list:
    """What Aidbox's own Changes API answers for the window (api/other/changes-api.md)."""
    resp = await root.call(
        "GET", f"/{rtype}/$changes", params={"version": f"{lo},{hi}", "_count": "100", **params}
    )
    return [] if resp.status == 304 else resp.body["changes"]


def stub(rtype: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The deletion a clinic receives in place of an entry it may not see."""
    version = entry["resource"]["meta"]["versionId"]
    return {
        "event": "deleted",
        "resource": {
            "resourceType": rtype,
            "id": entry["resource"]["id"],
            "meta": {"versionId": version},
        },
    }


def as_seen(raw: list, rtype: str, visible: set[str]) -> list:
    """The raw entries, each as it is when its id is visible, else its stub."""
    return [e if e["resource"]["id"] in visible else stub(rtype, e) for e in raw]


async def test_the_head_is_settled_past_a_write_made_before(
    headquarters: Headquarters, global_root: AidboxClient, as_a: AidboxClient
) -> None:
    await put_all(global_root, organization("org-us", "US"))
    written = await last_txid(global_root)
    head = await pull(as_a, "pull-changes", type="Organization")
    assert head.status == 200, head.body
    assert head.body["type"] == "Organization"
    assert head.body["version"] >= written
    assert head.body["pending"] is False
    assert await settled(as_a, "Organization") >= written


async def test_a_window_shows_each_clinic_its_countrys_organizations_entry_for_entry(
    headquarters: Headquarters,
    global_root: AidboxClient,
    as_a: AidboxClient,
    as_b: AidboxClient,
) -> None:
    lo = await last_txid(global_root)
    await put_all(
        global_root,
        organization("org-us", "US"),
        organization("org-de", "DE"),
        organization("org-both", "DE", " us"),
        organization("org-any"),
    )
    hi = await settled(as_a, "Organization")
    raw = await raw_window(global_root, "Organization", lo, hi)
    assert len(raw) == 4
    assert await window(as_a, "Organization", lo, hi) == as_seen(
        raw, "Organization", {"org-us", "org-both", "org-any"}
    )
    assert await window(as_b, "Organization", lo, hi) == as_seen(
        raw, "Organization", {"org-de", "org-both", "org-any"}
    )

    # an Organization that moves to Germany disappears from the US clinic
    await put_all(global_root, organization("org-us", "DE"))
    moved = await settled(as_a, "Organization")
    [entry] = await raw_window(global_root, "Organization", hi, moved)
    assert await window(as_a, "Organization", hi, moved) == [stub("Organization", entry)]
    assert await window(as_b, "Organization", hi, moved) == [entry]


async def test_counting_a_window_passes_every_entry_as_aidbox_answered_it(
    headquarters: Headquarters, global_root: AidboxClient, as_a: AidboxClient
) -> None:
    lo = await last_txid(global_root)
    await put_all(global_root, organization("org-us", "US"), organization("org-de", "DE"))
    hi = await settled(as_a, "Organization")
    raw = await raw_window(global_root, "Organization", lo, hi, **{"omit-resources": "true"})
    assert len(raw) == 2
    counted = await window(as_a, "Organization", lo, hi, **{"omit-resources": "true"})
    assert counted == raw
    # a page is cut at _count, as Aidbox cuts it: the clinic splits the window
    resp = await pull(as_a, "pull-changes", type="Organization", version=f"{lo},{hi}", _count="1")
    assert len(resp.body["changes"]) == 1
    # nothing in the window: 304 at Aidbox, no changes here
    assert await window(as_a, "Organization", hi, hi) == []


async def test_a_window_above_the_settled_bound_is_refused(
    headquarters: Headquarters, as_a: AidboxClient
) -> None:
    bound = await settled(as_a, "Organization")
    resp = await pull(as_a, "pull-changes", type="Organization", version=f"0,{bound + 1000}")
    assert resp.status == 422, resp.body
    assert resp.body["resourceType"] == "OperationOutcome"
    assert resp.body["issue"][0]["expression"] == ["version"]


@pytest.mark.parametrize(
    "params",
    [
        {"version": "5,3"},
        {"version": "3"},
        {"version": "a,b"},
        {"version": "-1,3"},
        {"version": "²,3"},  # a digit to str.isdigit, not to int()
        {"version": "0,3", "_count": "0"},
        {"version": "0,3", "_count": "10001"},
        {"version": "0,3", "_count": "200001", "omit-resources": "true"},
        {"since": "3"},
    ],
)
async def test_malformed_windows_are_refused(
    headquarters: Headquarters, as_a: AidboxClient, params: dict[str, str]
) -> None:
    resp = await pull(as_a, "pull-changes", type="Organization", **params)
    assert resp.status == 400, resp.body
    assert resp.body["resourceType"] == "OperationOutcome"


async def test_ids_alone_may_be_read_in_larger_counts_than_resources(
    headquarters: Headquarters, as_a: AidboxClient
) -> None:
    # A transaction larger than a page is counted by its ids (docs/pull.md): up to 200,000.
    params = {"version": "0,3", "_count": "200000", "omit-resources": "true"}
    resp = await pull(as_a, "pull-changes", type="Organization", **params)
    assert resp.status == 200, resp.body


async def test_a_read_lists_only_what_exists_in_the_callers_scope(
    headquarters: Headquarters, global_root: AidboxClient, as_a: AidboxClient
) -> None:
    await put_all(
        global_root,
        organization("org-us", "US"),
        organization("org-de", "DE"),
        organization("org-any"),
    )
    resp = await pull(as_a, "pull-read", type="Organization", _id="org-us,org-de,org-any,gone")
    assert resp.status == 200, resp.body
    assert resp.body["type"] == "Organization"
    held = {r["id"]: r for r in resp.body["resources"]}
    assert set(held) == {"org-us", "org-any"}
    assert held["org-us"] == (await global_root.call("GET", "/Organization/org-us")).body


@pytest.mark.parametrize(
    "ids", [",".join(f"o{n}" for n in range(101)), "org-1,bad id", "", "org_1"]
)
async def test_a_read_of_too_many_or_malformed_ids_is_refused(
    headquarters: Headquarters, as_a: AidboxClient, ids: str
) -> None:
    resp = await pull(as_a, "pull-read", type="Organization", _id=ids)
    assert resp.status == 400, resp.body


async def test_the_country_list_goes_to_every_clinic_a_state_to_its_countrys(
    headquarters: Headquarters,
    global_root: AidboxClient,
    as_a: AidboxClient,
    as_b: AidboxClient,
) -> None:
    lo = await last_txid(global_root)
    await put_all(
        global_root,
        area("US"),
        area("DE"),
        area("US-CA", "subdivision", country="US"),
        area("EU", region="EU"),  # a region's own area
    )
    hi = await settled(as_a, "AdministrativeArea")
    raw = await raw_window(global_root, "AdministrativeArea", lo, hi)
    assert await window(as_a, "AdministrativeArea", lo, hi) == as_seen(
        raw, "AdministrativeArea", {"US", "DE", "US-CA"}
    )
    assert await window(as_b, "AdministrativeArea", lo, hi) == as_seen(
        raw, "AdministrativeArea", {"US", "DE", "EU"}
    )
    everything = "US,DE,US-CA,EU"
    for client, expected in ((as_a, {"US", "DE", "US-CA"}), (as_b, {"US", "DE", "EU"})):
        read = await pull(client, "pull-read", type="AdministrativeArea", _id=everything)
        assert {r["id"] for r in read.body["resources"]} == expected


async def test_a_clinics_pushed_organization_never_reaches_another_clinic(
    headquarters: Headquarters,
    global_root: AidboxClient,
    as_a: AidboxClient,
    as_b: AidboxClient,
) -> None:
    # clinic-b pushes Organization; its pushed ids are clinic data, whatever they name
    await headquarters.register(B, types=["Patient", "Organization"])
    pushed = clinic_key(B).resource_id("Organization", "o1")
    lo = await last_txid(global_root)
    await put_all(global_root, organization(pushed), organization("org-any"))
    hi = await settled(as_a, "Organization")
    # ... not even its id: the entry that keeps the window's count names nothing
    hidden = {"event": "hidden"}
    for params in ({}, {"omit-resources": "true"}):
        raw = await raw_window(global_root, "Organization", lo, hi, **params)
        assert sorted(e["resource"]["id"] for e in raw) == sorted([pushed, "org-any"])
        expected = [hidden if e["resource"]["id"] == pushed else e for e in raw]
        assert await window(as_a, "Organization", lo, hi, **params) == expected
    read = await pull(as_a, "pull-read", type="Organization", _id=f"{pushed},org-any")
    assert [r["id"] for r in read.body["resources"]] == ["org-any"]


async def test_a_clinic_reads_past_other_clinics_resources_to_the_head_and_learns_none(
    headquarters: Headquarters, global_root: AidboxClient, as_a: AidboxClient
) -> None:
    # Other clinics' entries count toward a window as they are (the feed splits by them) but
    # name nothing: a window of them alone, larger than a page and of one txid, still ends.
    await headquarters.register(B, name="Clinic B", types=["Patient", "Organization"])
    pushed = [clinic_key(B).resource_id("Organization", f"o{i}") for i in range(5)]
    lo = await last_txid(global_root)
    await put_all(global_root, organization(pushed[0]), organization("org-any"))
    await bulk_load(global_root, "Organization", pushed[1:])  # one txid, as an import writes
    hi = await last_txid(global_root)  # the bulk's own: the last window is all hidden
    assert await settled(as_a, "Organization") >= hi
    feed = ChangeFeed(HeadquartersSource(as_a), "Organization", page_size=2)
    windows = [(upper, changes) async for upper, changes in feed.windows(lo, hi)]
    assert [c.id for _, changes in windows for c in changes] == ["org-any"]
    assert windows[-1][0] == hi
