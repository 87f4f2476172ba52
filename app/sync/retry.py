"""Bounded retries with exponential backoff and full jitter for transient failures."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from app.aidbox.client import AidboxError, AidboxUnavailable

T = TypeVar("T")
log = logging.getLogger("aidbox_sync.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (spreads retrying clinics)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def is_transient(exc: BaseException) -> bool:
    """Connection problems, timeouts, 5xx and serialization conflicts."""
    return isinstance(exc, AidboxUnavailable) or (isinstance(exc, AidboxError) and exc.transient)


async def retrying(what: str, fn: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run `fn`, retrying transient failures; the last failure propagates."""
    for attempt in range(policy.attempts):
        try:
            return await fn()
        except (AidboxError, AidboxUnavailable) as exc:
            if not is_transient(exc) or attempt == policy.attempts - 1:
                raise
            delay = policy.delay(attempt)
            log.warning(
                "%s: transient failure (%s), retry %d in %.2fs", what, exc, attempt + 1, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
