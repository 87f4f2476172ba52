"""Fault injection for tests: off by default, driven by events (no timers).

`emu.faults` is an instance of `Faults`; the server and the write path consult it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class Hold:
    """A write transaction paused after it took its txid and did its writes, before COMMIT."""

    def __init__(self, resource_type: str | None) -> None:
        self.resource_type = resource_type
        loop = asyncio.get_running_loop()
        self._txid: asyncio.Future[int] = loop.create_future()
        self._done: asyncio.Future[bool] = loop.create_future()
        self._released = asyncio.Event()

    def matches(self, resource_types: Iterable[str]) -> bool:
        """True if this hold applies to a transaction touching `resource_types`."""
        return self.resource_type is None or self.resource_type in set(resource_types)

    async def txid_taken(self) -> int:
        """Wait until the held transaction has taken its txid; return it."""
        return await asyncio.shield(self._txid)

    def release(self) -> None:
        """Let the held transaction go on to COMMIT."""
        self._released.set()

    async def committed(self) -> bool:
        """Wait until the held transaction ended: True if it committed, False if it failed."""
        return await asyncio.shield(self._done)

    # -- used by the write path --
    def _took(self, txid: int) -> None:
        if not self._txid.done():
            self._txid.set_result(txid)

    async def _wait_release(self) -> None:
        await self._released.wait()

    def _finish(self, ok: bool) -> None:
        if not self._done.done():
            self._done.set_result(ok)


class RequestHold:
    """A request paused on arrival, before anything of it is done: a slow network or a busy
    server, so that the caller gives up (times out) while the request is still to run. With
    ``answer``, paused once done instead, before its answer leaves: a slow way back, so that
    the caller hears of it only after what was done later."""

    def __init__(self, method: str, path: str, *, answer: bool = False) -> None:
        self.method = method.upper()
        self.path = path
        self.answer = answer
        loop = asyncio.get_running_loop()
        self._arrived: asyncio.Future[None] = loop.create_future()
        self._released = asyncio.Event()
        self._done: asyncio.Future[int] = loop.create_future()

    async def arrived(self) -> None:
        """Wait until the held request has arrived (with ``answer``: has been carried out)."""
        await asyncio.shield(self._arrived)

    def release(self) -> None:
        """Let the held request run (whether its caller still waits or not)."""
        self._released.set()

    async def answered(self) -> int:
        """Wait until the held request ran; return the status it answered."""
        return await asyncio.shield(self._done)

    # -- used by the server --
    async def _hold(self) -> None:
        if not self._arrived.done():
            self._arrived.set_result(None)
        await self._released.wait()

    def _answer(self, status: int) -> None:
        if not self._done.done():
            self._done.set_result(status)


@dataclass
class _Random:
    error_rate: float
    drop_rate: float
    lost_rate: float
    late_rate: float
    late_by: float
    rng: random.Random
    methods: frozenset[str] | None
    path_prefix: str | None


@dataclass(frozen=True)
class _Rejection:
    resource_type: str
    resource_id: str | None
    diagnostics: str
    where: Mapping[str, Any]  # top-level elements the body must hold, to be rejected


class Faults:
    """Registry of armed faults. All methods are synchronous and take effect at once."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Disarm everything (pending holds are released so nothing stays stuck)."""
        for hold in getattr(self, "_all_holds", []):
            hold.release()
        for request_hold in getattr(self, "_all_request_holds", []):
            request_hold.release()
        self._holds: list[Hold] = []  # armed, not yet claimed by a transaction
        self._all_holds: list[Hold] = []  # every hold handed out, so clear() frees them all
        self._request_holds: list[RequestHold] = []
        self._all_request_holds: list[RequestHold] = []
        self._random: _Random | None = None
        self._serialization_failures = 0
        self._rejections: list[_Rejection] = []

    def hold_next_write(self, resource_type: str | None = None) -> Hold:
        """Pause the next write transaction (touching `resource_type`, if given) before COMMIT."""
        hold = Hold(resource_type)
        self._holds.append(hold)
        self._all_holds.append(hold)
        return hold

    def hold_next_request(self, method: str, path: str, *, answer: bool = False) -> RequestHold:
        """Pause the next `method` request to `path` on arrival, before it runs; with `answer`,
        after it ran, before its answer is sent."""
        hold = RequestHold(method, path, answer=answer)
        self._request_holds.append(hold)
        self._all_request_holds.append(hold)
        return hold

    def set_random(
        self,
        error_rate: float = 0.2,
        drop_rate: float = 0.0,
        seed: int = 1,
        methods: Iterable[str] | None = None,
        path_prefix: str | None = None,
        lost_rate: float = 0.0,
        late_rate: float = 0.0,
        late_by: float = 1.0,
    ) -> None:
        """Answer a fraction of matching requests with 503, or drop their connection before
        any work (``drop_rate``), or carry them out and then drop the connection, so that the
        caller never learns the outcome of what was done (``lost_rate``), or carry them out
        only after ``late_by`` seconds, when the caller may have given up and tried again
        (``late_rate``: the first attempt may then run after the second)."""
        self._random = _Random(
            error_rate,
            drop_rate,
            lost_rate,
            late_rate,
            late_by,
            random.Random(seed),
            frozenset(m.upper() for m in methods) if methods else None,
            path_prefix,
        )

    def serialization_failures(self, n: int) -> None:
        """Make the next `n` write transactions fail as a SERIALIZABLE conflict."""
        self._serialization_failures = n

    def reject(
        self,
        resource_type: str,
        id: str | None = None,
        diagnostics: str = "Rejected",
        where: Mapping[str, Any] | None = None,
    ) -> None:
        """Make writes of `resource_type` (or of one id; or only bodies holding the elements
        `where`, e.g. a content rule of a profile) fail with a 422 validation outcome."""
        self._rejections.append(_Rejection(resource_type, id, diagnostics, dict(where or {})))

    # -- hooks consulted by the server and the write path --
    def claim_hold(self, resource_types: Iterable[str]) -> Hold | None:
        """Take the first armed hold that applies to a transaction touching `resource_types`."""
        types = set(resource_types)
        for hold in self._holds:
            if hold.matches(types):
                self._holds.remove(hold)
                return hold
        return None

    def claim_request_hold(self, method: str, path: str) -> RequestHold | None:
        """Take the first armed request hold for this request."""
        for hold in self._request_holds:
            if hold.method == method.upper() and hold.path == path:
                self._request_holds.remove(hold)
                return hold
        return None

    def random_fault(self, method: str, path: str) -> str | None:
        """'error', 'drop', 'lose', 'late' or None for an incoming request."""
        cfg = self._random
        if cfg is None:
            return None
        if cfg.methods is not None and method.upper() not in cfg.methods:
            return None
        if cfg.path_prefix is not None and not path.startswith(cfg.path_prefix):
            return None
        draw = cfg.rng.random()
        bound = 0.0
        for fault, rate in (
            ("drop", cfg.drop_rate),
            ("error", cfg.error_rate),
            ("lose", cfg.lost_rate),
            ("late", cfg.late_rate),
        ):
            bound += rate  # each fault takes the next slice of [0, 1)
            if draw < bound:
                return fault
        return None

    @property
    def late_by(self) -> float:
        """How long a late request waits before it runs (``set_random``)."""
        return self._random.late_by if self._random is not None else 0.0

    def take_serialization_failure(self) -> bool:
        """Consume one armed serialization failure, if any."""
        if self._serialization_failures > 0:
            self._serialization_failures -= 1
            return True
        return False

    def rejection(self, resource: Mapping[str, Any]) -> str | None:
        """The diagnostics of an armed rejection matching this resource, or None."""
        for r in self._rejections:
            if (
                r.resource_type == resource.get("resourceType")
                and r.resource_id in (None, resource.get("id"))
                and all(resource.get(k) == v for k, v in r.where.items())
            ):
                return r.diagnostics
        return None
