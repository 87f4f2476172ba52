"""The demo's report: what each stream did, one record as the clinic and as headquarters hold
it, and the checks that make `make demo-once` pass or fail.

Every check looks at the result the way an auditor would, from outside the Apps: headquarters'
database read whole (current rows and history) for planted PHI, the Apps' logs likewise, the
clinics' pulled lists against what headquarters should have sent each one, the clinics' own
`$reconcile` proof, and writes tried with clinics' credentials against headquarters.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.aidbox.client import AidboxClient
from app.aidbox.psql import rows
from demo.data import CLINICS, ORGANIZATION_OF, expected_pulled
from demo.live import create_patient, new_patient
from demo.progress import HEADER, statuses, stream_rows, table
from demo.scenario import SUSPENDED, Demo
from tests.phi.scanner import find_planted
from tests.phi.structure import age_violations
from tests.support.clinic import resources

PULLED = ("AdministrativeArea", "Organization", "Location")


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str


async def written_by_clinics(client: AidboxClient) -> list[str]:
    """Every version headquarters stores, current and history, of every type a clinic may
    write there (the registered types and the fence tokens), as text: where a leak would be.
    Headquarters' own configuration is left out: its prose ("a clinic may …") would match
    planted words such as the surname May, and no clinic can write it (see the refusals)."""
    body = (await client.call("GET", "/$instances")).body
    types = {t for instance in body["instances"] for t in instance.get("types", [])}
    found: list[str] = []
    for rtype in sorted({*types, "SyncFence"}):
        table = rtype.lower()
        query = (
            f"SELECT resource::text AS r FROM {table} "
            f"UNION ALL SELECT resource::text FROM {table}_history"
        )
        found.extend(r["r"] for r in await rows(client, query))
    return found


def side_by_side(left: dict[str, Any], right: dict[str, Any], width: int = 58) -> list[str]:
    """Two resources as indented JSON in two columns (long lines wrapped)."""

    def column(resource: dict[str, Any]) -> list[str]:
        shown = {k: v for k, v in resource.items() if k != "meta"}
        lines = json.dumps(shown, indent=1, ensure_ascii=False).splitlines()
        return [part for line in lines for part in textwrap.wrap(line, width) or [""]]

    a, b = column(left), column(right)
    rows = max(len(a), len(b))
    a += [""] * (rows - len(a))
    b += [""] * (rows - len(b))
    return [f"{x.ljust(width)} | {y}" for x, y in zip(a, b, strict=True)]


async def _as_sent(demo: Demo, clinic: str, resource: dict[str, Any]) -> dict[str, Any]:
    """Headquarters' copy of a clinic's resource (its id from the clinic's `$anonymize`)."""
    client = demo.clinics[clinic]
    params = {"resourceType": resource["resourceType"], "id": resource["id"]}
    preview = await client.call("POST", "/$anonymize", params=params)
    global_id = preview.body["resource"]["id"]
    return (await demo.hq.call("GET", f"/{resource['resourceType']}/{global_id}")).body


async def show_records(demo: Demo, clinic: str) -> list[str]:
    """One Patient and one QuestionnaireResponse: in the clinic (left), at headquarters."""
    out: list[str] = []
    client = demo.clinics[clinic]
    for rtype in ("Patient", "QuestionnaireResponse"):
        first = next(r for r in demo.data[clinic].resources if r["resourceType"] == rtype)
        local = (await client.call("GET", f"/{rtype}/{first['id']}")).body
        sent = await _as_sent(demo, clinic, local)
        out += ["", f"{rtype}: in {clinic} (left) and at headquarters (right)"]
        out += side_by_side(local, sent)
    return out


async def check_phi(demo: Demo) -> Check:
    """No planted token anywhere at headquarters, in any App's log, or in `$sync-status`."""
    planted = [token for data in demo.data.values() for token in data.planted]
    stored = await written_by_clinics(demo.hq)
    # What leaves the clinics: the Apps' logs (central log systems) and headquarters' own.
    logs = [
        path.read_text(errors="replace")
        for path in demo.fleet.log_files()
        if path.name.startswith("app-") or path.name == "aidbox-global.log"
    ]
    status = [(await c.call("GET", "/$sync-status")).body for c in demo.clinics.values()]
    found = find_planted(planted, "\n".join([*stored, *logs, json.dumps(status)]))
    tokens = len({t.value for t in planted})
    kinds = len({t.kind for t in planted})
    aged = [
        resource["id"]
        for text in stored
        if (resource := json.loads(text)).get("id", "").startswith(tuple(CLINICS))
        and age_violations(resource, date.today())
    ]
    detail = (
        f"{len(found)} of {tokens} planted PHI tokens ({kinds} kinds) found in "
        f"{len(stored)} resource versions clinics wrote at headquarters and {len(logs)} logs; "
        f"{len(aged)} ages over 89 told"
    )
    if found:
        detail += "; e.g. " + ", ".join(f"{t.kind} at {t.where}" for t in found[:3])
    return Check("no PHI at headquarters", not found and not aged, detail)


async def check_reconciled(demo: Demo) -> Check:
    """Each clinic's own `$reconcile`: headquarters holds exactly its anonymized data."""
    details, ok = [], True
    for clinic, client in demo.clinics.items():
        body = (await client.call("POST", "/$reconcile")).body
        compared = sum(t["compared"] for t in body["types"])
        ok &= body["clean"] and compared > 0
        details.append(f"{clinic}: {compared} compared, clean={body['clean']}")
    return Check("headquarters holds exactly each clinic (anonymized)", ok, "; ".join(details))


async def check_pulled(demo: Demo) -> tuple[Check, list[str]]:
    """Each clinic holds exactly its part of headquarters' lists."""
    lines, ok = [], True
    for clinic, client in demo.clinics.items():
        want = expected_pulled(clinic)
        for rtype in PULLED:
            held = await resources(client, rtype)
            ok &= set(held) == want.get(rtype, set())
            names = ", ".join(f"{i} ({held[i].get('name')})" for i in sorted(held))
            lines.append(f"  {clinic} {rtype}: {names}")
    return Check("each clinic holds exactly its part of headquarters' lists", ok, ""), lines


async def check_references(demo: Demo) -> Check:
    """Pushed Encounters keep headquarters' own Organization id."""
    encounters = (await resources(demo.hq, "Encounter")).values()
    details, ok = [], True
    for clinic in CLINICS:
        org = ORGANIZATION_OF[clinic]
        local = (await resources(demo.clinics[clinic], "Encounter")).values()
        naming = sum("serviceProvider" in e for e in local)
        mine = [e for e in encounters if e["id"].startswith(f"{clinic}-")]
        kept = sum((e.get("serviceProvider") or {}).get("id") == org for e in mine)
        ok &= naming > 0 and kept == naming
        details.append(f"{kept} of {naming} {clinic} Encounters naming it → Organization/{org}")
    return Check("pushed references to pulled data keep their id", ok, "; ".join(details))


async def _attempt(
    url: str, who: tuple[str, str], method: str, path: str, body: Any
) -> tuple[int, str]:
    async with AidboxClient(url, *who) as client:
        resp = await client.call(method, path, json=body, accept=(401, 403, 404, 409, 422))
    issue = ((resp.body or {}).get("issue") or [{}])[0]
    return resp.status, str(issue.get("diagnostics") or issue.get("code") or "")[:70]


async def check_refusals(demo: Demo) -> Check:
    """Headquarters refuses what clinics' credentials must not do."""
    url = demo.hq.base_url
    us = ("clinic-us", demo.secrets["clinic-us"])
    pid = "0" * 26
    tries = [
        (
            f"suspended {SUSPENDED} writes a Patient in its own namespace",
            (SUSPENDED, demo.secrets[SUSPENDED]),
            "PUT",
            f"/Patient/{SUSPENDED}-{pid}",
            {"resourceType": "Patient", "id": f"{SUSPENDED}-{pid}"},
        ),
        (
            "clinic-us writes into clinic-de's namespace",
            us,
            "PUT",
            f"/Patient/clinic-de-{pid}",
            {"resourceType": "Patient", "id": f"clinic-de-{pid}"},
        ),
        (
            "clinic-us writes an AccessPolicy",
            us,
            "PUT",
            "/AccessPolicy/clinic-us-open",
            {"resourceType": "AccessPolicy", "id": "clinic-us-open", "engine": "allow"},
        ),
        ("clinic-us reads headquarters' database", us, "POST", "/$psql", {"query": "SELECT 1"}),
        (
            # a conditional create that matches answers what it found: any clinic's token
            "clinic-us searches every clinic's fence tokens with a conditional create",
            us,
            "POST",
            "/SyncFence?stream=push-Patient",
            {"resourceType": "SyncFence", "id": f"clinic-us-{pid}"},
        ),
    ]
    details, ok = [], True
    for label, who, method, path, body in tries:
        status, why = await _attempt(url, who, method, path, body)
        ok &= status == 403
        details.append(f"\n    {label}: {status} {why}")
    return Check(
        "headquarters refuses clinics' credentials beyond their rights", ok, "".join(details)
    )


async def check_arrival(demo: Demo, within: float = 10.0) -> Check:
    """The curl command the demo prints creates a Patient in a clinic: it reaches
    headquarters (anonymized) on its own, woken by the clinic's subscription."""
    pid = "demo-check"
    if shutil.which("curl") and shutil.which("bash"):
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", create_patient(demo, pid), stdout=asyncio.subprocess.DEVNULL
        )
        if await shell.wait() != 0:
            return Check("a patient created with curl reaches headquarters", False, "curl failed")
        how = ""
    else:  # a machine without curl: the same request, sent by the demo itself
        await demo.clinics["clinic-us"].call("PUT", f"/Patient/{pid}", json=new_patient(pid))
        how = " (curl is not installed: the demo sent the same request)"
    written = time.monotonic()
    params = {"resourceType": "Patient", "id": pid}
    preview = await demo.clinics["clinic-us"].call("POST", "/$anonymize", params=params)
    global_id = preview.body["resource"]["id"]
    while time.monotonic() - written < within:
        found = await demo.hq.call("GET", f"/Patient/{global_id}", accept=(404, 410))
        if found.status == 200:
            seconds = time.monotonic() - written
            detail = f"Patient/{pid} arrived as Patient/{global_id} in {seconds:.2f} s{how}"
            return Check("a patient created with curl reaches headquarters", True, detail)
        await asyncio.sleep(0.02)
    return Check("a patient created with curl reaches headquarters", False, f"not in {within} s")


async def report(demo: Demo) -> tuple[list[str], list[Check]]:
    """The report's lines and its checks."""
    status = await statuses(demo.clinics)
    lines = [
        "",
        "Streams (counters since each stream began; lag in versions). A pull change out of the",
        "clinic's scope arrives as a deletion (the resource may have moved out: docs/pull.md),",
        "so pull counts those under deleted.",
    ]
    for direction in ("push", "pull"):
        lines += ["", *table(HEADER, stream_rows(status, direction))]
    lines += await show_records(demo, "clinic-us")
    pulled, pulled_lines = await check_pulled(demo)
    lines += ["", "Headquarters' lists as each clinic holds them:", *pulled_lines]
    streams = [s for body in status.values() for s in body["streams"]]
    counted = {
        d: sum(
            s["counters"]["written"] + s["counters"]["deleted"]
            for s in streams
            if s["direction"] == d
        )
        for d in ("push", "pull")
    }
    quarantined = sum(s["counters"]["quarantined"] for s in streams)
    checks = [
        Check(
            "both directions moved data, nothing quarantined",
            counted["push"] > 0 and counted["pull"] > 0 and quarantined == 0,
            f"pushed {counted['push']}, pulled {counted['pull']}, quarantined {quarantined}",
        ),
        await check_reconciled(demo),
        pulled,
        await check_references(demo),
        await check_refusals(demo),
        await check_arrival(demo),
    ]
    checks.insert(1, await check_phi(demo))  # last, so it scans the logs of all the above
    lines += ["", "Checks:"]
    lines += [
        f"  {'PASS' if c.ok else 'FAIL'}  {c.name}{': ' if c.detail else ''}{c.detail}"
        for c in checks
    ]
    return lines, checks
