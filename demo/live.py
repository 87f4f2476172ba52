"""The demo's live part: where everything is, and each change as it arrives at headquarters."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from app.registry.instances import default_types
from app.sync.feed import ChangeFeed
from app.sync.source import AidboxSource
from demo.fleet import ROOT
from demo.scenario import Demo


def new_patient(pid: str) -> dict[str, Any]:
    """The Patient the demo's curl line creates."""
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Doe"}],
        "birthDate": "1961-07-04",
        "gender": "male",
    }


def create_patient(demo: Demo, pid: str) -> str:
    """A curl command that creates a Patient in the US clinic (run by the demo's last check,
    printed for the user to run)."""
    user = ":".join(ROOT)
    url = demo.fleet.urls["clinic-us"]
    return (
        f"curl -sS --fail-with-body --max-time 10 -u {user} -X PUT {url}/Patient/{pid} "
        f"-H 'content-type: application/json' -d '{json.dumps(new_patient(pid))}'"
    )


def instructions(demo: Demo) -> list[str]:
    """What is running, and curl lines to try."""
    user = ":".join(ROOT)
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
        f"  {create_patient(demo, 'my-patient')}",
        f"  curl -u {user} {demo.fleet.urls['clinic-us']}/\\$sync-status",
        f"  curl -u {user} '{demo.fleet.urls['global']}/Patient?_count=5'",
        "",
        "Ctrl-C stops every process. Arrivals at headquarters:",
    ]
    return lines


async def follow_headquarters(demo: Demo, every: float = 0.2) -> None:
    """Print each change of a pushed type at headquarters as it commits (until cancelled)."""
    source = AidboxSource(demo.hq)
    pushed = default_types()  # the shipped SyncConfig's push types
    seen = {rtype: await source.head(rtype) for rtype in pushed}
    while True:
        for rtype in pushed:
            head = await source.head(rtype)
            if head <= seen[rtype]:
                continue
            async for _, changes in ChangeFeed(source, rtype).windows(seen[rtype], head):
                for change in changes:
                    stamp = time.strftime("%H:%M:%S")
                    print(f"  {stamp} {change.event:<8} {rtype}/{change.id}", flush=True)
            seen[rtype] = head
        await asyncio.sleep(every)
