"""Stream checkpoints (`ChangesInfo` in the local Aidbox), advanced with optimistic locking.

Every save sends `If-Match: <versionId>` (api/rest-api/crud/update.md, "Versioned Update"), so
when two runners race only one advances the checkpoint; the other gets 409 and stops its run.
A 409 to a retry whose first attempt landed is told apart by reading the stored checkpoint.
"""

from __future__ import annotations

from typing import Any

from app.aidbox.client import AidboxClient, AidboxError
from app.errors import SyncError
from app.model import ChangesInfo, Direction


class CheckpointConflict(SyncError):
    """Another runner changed the checkpoint since it was read."""


def _body(info: ChangesInfo) -> dict[str, Any]:
    return info.model_dump(mode="json", exclude_none=True)


class CheckpointStore:
    """Reads and writes ChangesInfo resources."""

    def __init__(self, local: AidboxClient) -> None:
        self._local = local

    async def load(self, direction: Direction, resource_type: str) -> ChangesInfo:
        """The stream's checkpoint, created at version 0 on first use."""
        sid = ChangesInfo.stream_id(direction, resource_type)
        resp = await self._local.call("GET", f"/ChangesInfo/{sid}", accept=(404, 410))
        if resp.status == 200:
            return ChangesInfo.model_validate(resp.body)
        fresh = ChangesInfo(id=sid, direction=direction, type=resource_type)
        created = await self._local.call("POST", "/ChangesInfo", json=_body(fresh), accept=(409,))
        if created.status == 409:  # created meanwhile by another runner
            return await self.load(direction, resource_type)
        return ChangesInfo.model_validate(created.body)

    async def get(self, stream_id: str) -> ChangesInfo | None:
        """A checkpoint by id, or None."""
        resp = await self._local.call("GET", f"/ChangesInfo/{stream_id}", accept=(404, 410))
        return ChangesInfo.model_validate(resp.body) if resp.status == 200 else None

    async def save(self, info: ChangesInfo) -> ChangesInfo:
        """Write `info` if nobody changed it since it was read; returns the stored version."""
        headers = {"If-Match": info.version_id} if info.version_id else {}
        try:
            resp = await self._local.call(
                "PUT", f"/ChangesInfo/{info.id}", json=_body(info), headers=headers
            )
        except AidboxError as err:
            if err.status not in (409, 412):
                raise
            # A retry whose first attempt landed (its answer lost) finds its own write there:
            # the body holds this runner's lease and timestamps, no other runner's.
            stored = await self.get(info.id)
            if stored is None or _body(stored) != _body(info):  # meta is not part of it
                raise CheckpointConflict(info.id) from None
            return stored
        return ChangesInfo.model_validate(resp.body)
