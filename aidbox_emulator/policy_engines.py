"""AccessPolicy evaluation engines: `allow` (others deny until emulated).

access-control/authorization/access-policies.md, "Evaluation engines". Each engine answers
True (the policy allows the request) or False; an engine that cannot evaluate its policy
raises, and auth.py counts that as a denial. Engines not emulated yet deny.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Evaluation:
    """One policy evaluated against one request object."""

    conn: asyncpg.Connection
    request: dict[str, Any]
    policy_id: str


Engine = Callable[[Evaluation, dict[str, Any]], Awaitable[bool]]


async def _allow(ev: Evaluation, body: dict[str, Any]) -> bool:
    return True


ENGINES: dict[str, Engine] = {
    "allow": _allow,
}


class UnknownEngine(LookupError):
    """An engine the emulator does not implement (the policy denies)."""


async def evaluate(ev: Evaluation, body: dict[str, Any]) -> bool:
    """Evaluate a policy (or a `complex` sub-policy) with its engine."""
    engine = ENGINES.get(str(body.get("engine")))
    if engine is None:
        raise UnknownEngine(str(body.get("engine")))
    return await engine(ev, body)
