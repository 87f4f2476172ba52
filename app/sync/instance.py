"""The clinic's own registration at headquarters, checked before every cycle.

Headquarters decides whether a clinic may sync (its AidboxInstance, enforced by the global's
access policy whatever the clinic does). The clinic reads its AidboxInstance first, so that a
suspended or unregistered clinic reads and writes nothing, says why in ``$sync-status``, and
logs one line when that state changes, not one per cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.aidbox.client import AidboxClient
from app.errors import SyncError

log = logging.getLogger("aidbox_sync.instance")

State = Literal["active", "suspended", "unregistered", "refused"]


@dataclass(frozen=True)
class Standing:
    """What headquarters said about this clinic, and when."""

    state: State
    reason: str
    checked_at: datetime

    @property
    def active(self) -> bool:
        """True when the clinic may sync."""
        return self.state == "active"

    def as_json(self) -> dict[str, str]:
        """For ``$sync-status``."""
        return {
            "state": self.state,
            "reason": self.reason,
            "checkedAt": self.checked_at.isoformat(),
        }


class InstanceInactive(SyncError):
    """Headquarters does not let this clinic sync now; nothing was read or written."""


class InstanceCheck:
    """Reads ``AidboxInstance/<instance id>`` from the global."""

    def __init__(self, global_: AidboxClient, instance_id: str) -> None:
        self._global = global_
        self.instance_id = instance_id
        self.last: Standing | None = None

    async def check(self) -> Standing:
        """Ask headquarters now; log when the answer differs from the last one."""
        path = f"/AidboxInstance/{self.instance_id}"
        resp = await self._global.call("GET", path, accept=(401, 403, 404, 410))
        now = datetime.now(UTC)
        status = resp.body.get("status") if isinstance(resp.body, dict) else None
        if resp.status == 200 and status == "active":
            found = Standing("active", "registered and active at headquarters", now)
        elif resp.status == 200:
            found = Standing("suspended", f"suspended at headquarters ({status})", now)
        elif resp.status in (404, 410):
            found = Standing("unregistered", "no AidboxInstance at headquarters", now)
        elif resp.status == 401:
            found = Standing("refused", "headquarters refused this clinic's credentials", now)
        else:
            found = Standing(
                "unregistered", "headquarters refused to show this clinic's registration", now
            )
        if self.last is None or self.last.state != found.state:
            level = logging.INFO if found.active else logging.WARNING
            log.log(level, "clinic %s: %s", self.instance_id, found.reason)
        self.last = found
        return found

    async def require_active(self) -> Standing:
        """``check``, raising InstanceInactive unless the clinic may sync."""
        found = await self.check()
        if not found.active:
            raise InstanceInactive(f"{found.reason}: nothing synced")
        return found
