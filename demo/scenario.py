"""The scripted part of the demo: start the fleet, fill it, let the Apps sync, check it all.

Nothing here drives the sync itself: the Apps' background runners do, woken by Aidbox's
subscriptions (push) and their timers (pull), exactly as in production. The demo only writes
data as an EHR or headquarters' staff would, and watches `$sync-status` until every stream has
caught up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from app.aidbox.client import AidboxClient
from demo.data import (
    CLINICS,
    RENAMED_AREA,
    RETIRED_LOCATION,
    ClinicData,
    clinic_data,
    headquarters_data,
)
from demo.fleet import PSEUDONYM_KEYS, ROOT, Fleet
from demo.progress import Progress
from tests.support.clinic import put_all

SUSPENDED = "clinic-closed"  # registered, then suspended: its credentials must get nothing
CATCH_UP_TIMEOUT = float(os.environ.get("DEMO_CATCH_UP", "90"))


@dataclass
class Demo:
    """The running fleet, root clients of every Aidbox, and what the demo wrote."""

    fleet: Fleet
    hq: AidboxClient
    clinics: dict[str, AidboxClient]
    secrets: dict[str, str] = field(default_factory=dict)  # clinic → its global secret
    data: dict[str, ClinicData] = field(default_factory=dict)
    say: Callable[[str], None] = print


async def start(stack: AsyncExitStack, fleet: Fleet, say: Callable[[str], None]) -> Demo:
    """Headquarters (Aidbox + App in global role), the clinics registered through
    `$register-instance`, each clinic's Aidbox and App in local role."""
    say("Starting headquarters: an emulated Aidbox and aidbox-sync in global role")
    global_url = await fleet.start_aidbox("global", fleet.ports.global_aidbox)
    await fleet.start_app("global", {"SYNC_ROLE": "global"})
    hq = await stack.enter_async_context(AidboxClient(global_url, *ROOT))
    demo = Demo(fleet, hq, {}, say=say)

    say("Headquarters enters its administrative data (countries, states, organizations, sites)")
    await put_all(hq, headquarters_data())

    for clinic, fields in CLINICS.items():
        resp = await hq.call("POST", "/$register-instance", json={"id": clinic, **fields})
        demo.secrets[clinic] = resp.body["client"]["secret"]
        say(f"Registered {clinic} ({fields['country']}) with $register-instance")
    await _register_suspended(hq, demo)

    for clinic in CLINICS:
        say(f"Starting {clinic}: an emulated Aidbox and aidbox-sync in local role")
        url = await fleet.start_aidbox(clinic, fleet.ports.clinics[clinic])
        await fleet.start_app(
            clinic,
            {
                "SYNC_ROLE": "local",
                "SYNC_INSTANCE_ID": clinic,
                "SYNC_GLOBAL_URL": global_url,
                "SYNC_GLOBAL_CLIENT_ID": clinic,
                "SYNC_GLOBAL_CLIENT_SECRET": demo.secrets[clinic],
                "SYNC_PSEUDONYM_KEY": PSEUDONYM_KEYS[clinic],
                "SYNC_POLL_INTERVAL": "1",  # pull has no subscription: look every second
            },
        )
        demo.clinics[clinic] = await stack.enter_async_context(AidboxClient(url, *ROOT))
    return demo


async def _register_suspended(hq: AidboxClient, demo: Demo) -> None:
    resp = await hq.call(
        "POST", "/$register-instance", json={"id": SUSPENDED, "name": "Closed clinic"}
    )
    demo.secrets[SUSPENDED] = resp.body["client"]["secret"]
    await hq.call("POST", "/$register-instance", json={"id": SUSPENDED, "status": "suspended"})
    demo.say(f"Registered {SUSPENDED}, then suspended it")


async def pull_phase(demo: Demo, progress: Progress) -> None:
    """Headquarters' lists reach the clinics; then a site closes and a state is renamed, and
    those changes follow."""
    demo.say("\n1. Pull: headquarters' administrative data flows down to each clinic")
    await progress.until_caught_up("pull", CATCH_UP_TIMEOUT)
    await demo.hq.call("DELETE", f"/Location/{RETIRED_LOCATION}")
    area_id, new_name = RENAMED_AREA
    area = (await demo.hq.call("GET", f"/AdministrativeArea/{area_id}")).body
    area.pop("meta", None)
    await demo.hq.call("PUT", f"/AdministrativeArea/{area_id}", json={**area, "name": new_name})
    demo.say(f"   headquarters closes {RETIRED_LOCATION} and renames {area_id}")
    await progress.until_caught_up("pull", CATCH_UP_TIMEOUT)


async def push_phase(demo: Demo, progress: Progress) -> None:
    """Each clinic's EHR writes its patients; a few change and a few go; all of it reaches
    headquarters anonymized."""
    demo.say("\n2. Push: clinical data flows up, anonymized inside each clinic")
    for seed, (clinic, client) in enumerate(demo.clinics.items(), start=1):
        data = clinic_data(clinic, seed=seed)
        demo.data[clinic] = data
        await put_all(client, data.resources)
        await _later_edits(client, data)
        demo.say(f"   {clinic}: {len(data.resources)} resources written by its EHR")
    await progress.until_caught_up("push", CATCH_UP_TIMEOUT)


async def _later_edits(client: AidboxClient, data: ClinicData) -> None:
    """Two patients move house (an update, with new PHI), two appointments are cancelled and
    removed."""
    patients = [r for r in data.resources if r["resourceType"] == "Patient"][:2]
    for number, patient in enumerate(patients, start=1):
        line = data.plant(f"{number} Lindenstrasse", "geo", "Patient.address.line (update)")
        city = data.plant(f"Neustadt-{number}", "geo", "Patient.address.city (update)")
        moved = {**patient, "address": [{"line": [line], "city": city}]}
        await client.call("PUT", f"/Patient/{patient['id']}", json=moved)
    appointments = [r for r in data.resources if r["resourceType"] == "Appointment"][:2]
    for appointment in appointments:
        await client.call("DELETE", f"/Appointment/{appointment['id']}")
