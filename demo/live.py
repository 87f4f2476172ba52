"""The demo's live part: where everything is, and each change as it arrives at headquarters."""

from __future__ import annotations

import asyncio
import time

from app.sync.source import AidboxSource
from demo.scenario import Demo

PUSHED = (
    "Practitioner",
    "Patient",
    "Encounter",
    "Appointment",
    "Condition",
    "Observation",
    "QuestionnaireResponse",
)


def instructions(demo: Demo, app_secret: str, root: tuple[str, str]) -> list[str]:
    """What is running and a curl line to try."""
    user = ":".join(root)
    us = demo.fleet.urls["clinic-us"]
    lines = ["", "Running (every Aidbox's root client is " + user + "):"]
    for name, url in demo.fleet.urls.items():
        app = demo.fleet.ports.apps[name]
        lines.append(f"  {name:<10} Aidbox {url}   aidbox-sync http://127.0.0.1:{app}")
    credentials = ", ".join(f"{c}:{s}" for c, s in demo.secrets.items())
    lines += [
        f"  clinics' credentials at headquarters: {credentials}",
        f"  logs: {demo.fleet.logs}",
        "",
        "Create a patient in the US clinic and watch it arrive at headquarters:",
        f"  curl -u {user} -X PUT {us}/Patient/my-patient -H 'content-type: application/json' \\",
        '    -d \'{"resourceType": "Patient", "id": "my-patient", "name": [{"family": "Doe"}],'
        ' "birthDate": "1961-07-04", "gender": "male"}\'',
        f"  curl -u {user} {us}/\\$sync-status",
        f"  curl -u {user} '{demo.fleet.urls['global']}/Patient?_count=5'",
        "",
        "Ctrl-C stops every process. Arrivals at headquarters:",
    ]
    return lines


async def follow_headquarters(demo: Demo, every: float = 0.2) -> None:
    """Print each change of a pushed type at headquarters as it commits (until cancelled)."""
    source = AidboxSource(demo.hq)
    seen = {rtype: await source.head(rtype) for rtype in PUSHED}
    while True:
        for rtype in PUSHED:
            head = await source.head(rtype)
            if head <= seen[rtype]:
                continue
            changes = await source.changes(rtype, seen[rtype], head, 1000, probe=False)
            for change in changes:
                resource = change.get("resource") or {}
                stamp = time.strftime("%H:%M:%S")
                print(
                    f"  {stamp} {change.get('event', '?'):<8} {rtype}/{resource.get('id')}",
                    flush=True,
                )
            seen[rtype] = head
        await asyncio.sleep(every)
