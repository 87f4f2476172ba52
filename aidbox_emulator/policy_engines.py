"""AccessPolicy evaluation engines: `allow`, `matcho`.

access-control/authorization/access-policies.md, "Evaluation engines". Each engine answers
True (the policy allows the request) or False; an engine that cannot evaluate its policy (bad
pattern) raises, and auth.py counts that as a denial. Engines not emulated yet deny.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from .matcho import InvalidPattern, matches


@dataclass(frozen=True)
class Evaluation:
    """One policy evaluated against one request object."""

    conn: asyncpg.Connection
    request: dict[str, Any]
    policy_id: str


Engine = Callable[[Evaluation, dict[str, Any]], Awaitable[bool]]


async def _allow(ev: Evaluation, body: dict[str, Any]) -> bool:
    return True


async def _matcho(ev: Evaluation, body: dict[str, Any]) -> bool:
    """reference/matcho-dsl-reference.md; the pattern is under `matcho` (access-policies.md)."""
    if "matcho" not in body:
        raise InvalidPattern("matcho policy without `matcho`")
    return matches(body["matcho"], ev.request, ev.request)


ENGINES: dict[str, Engine] = {
    "allow": _allow,
    "matcho": _matcho,
}


class UnknownEngine(LookupError):
    """An engine the emulator does not implement (the policy denies)."""


async def evaluate(ev: Evaluation, body: dict[str, Any]) -> bool:
    """Evaluate a policy (or a `complex` sub-policy) with its engine."""
    engine = ENGINES.get(str(body.get("engine")))
    if engine is None:
        raise UnknownEngine(str(body.get("engine")))
    return await engine(ev, body)
