"""The configuration in force: `SyncConfig/default` and its `AnonymizationProfile`.

Both live in the local Aidbox and are edited in the console. They are re-read every cycle; a
version that fails validation is refused (the error is kept for `$sync-status`) and the last
valid one stays in force (README, "What the App registers").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from dataclasses import dataclass, replace

from pydantic import ValidationError

from app.aidbox.client import AidboxClient
from app.anonymize import (
    Plan,
    ProfileError,
    Shared,
    compile_profile,
    parse_profile,
    shadowed_questions,
)
from app.errors import SyncError, validation_problems
from app.model import Direction, SyncConfig

log = logging.getLogger("aidbox_sync.config")


@dataclass(frozen=True)
class InForce:
    """A validated configuration and its compiled anonymization plan."""

    config: SyncConfig
    plan: Plan
    profile_id: str


def validation_message(exc: ValidationError) -> str:
    """`path: message` for each problem (values are not echoed)."""
    return "; ".join(f"{where}: {message}" for where, message in validation_problems(exc, "(root)"))


class ConfigSource:
    """Loads and validates the configuration; keeps the last good one."""

    def __init__(
        self, local: AidboxClient, headquarters_ids: Mapping[str, Set[str]] | None = None
    ) -> None:
        self._local = local
        # Headquarters' own resources of the pulled types, as learned (shared_ids.py).
        self._headquarters_ids: Mapping[str, Set[str]] = (
            {} if headquarters_ids is None else headquarters_ids
        )
        self._current: InForce | None = None
        self._plans: dict[tuple[str, str | None], Plan] = {}
        self.error: str | None = None

    @property
    def current(self) -> InForce:
        """The configuration loaded last (load() must have succeeded once)."""
        if self._current is None:
            raise ConfigError("configuration not loaded yet")
        return self._current

    async def load(self) -> InForce:
        """The configuration in force now (raises ConfigError if none was ever valid)."""
        try:
            self._current = await self._read()
            self.error = None
        except ConfigError as exc:
            self.error = str(exc)
            if self._current is None:
                raise
            log.error("configuration refused, previous one stays in force: %s", exc)
        return self._current

    async def _read(self) -> InForce:
        resp = await self._local.call("GET", "/SyncConfig/default", accept=(404, 410))
        if resp.status != 200:
            raise ConfigError("SyncConfig/default does not exist")
        try:
            config = SyncConfig.model_validate(resp.body)
        except ValidationError as exc:
            raise ConfigError(f"SyncConfig/default: {validation_message(exc)}") from None
        plan = await self._plan(config.profile)
        # References to headquarters' own resources of the pulled types keep their ids
        # (transform.py), also while a pull stream is disabled: they stay headquarters' own.
        pulled = frozenset(s.type for s in config.streams if s.direction is Direction.PULL)
        shared = Shared(pulled, self._headquarters_ids)
        return InForce(config, replace(plan, shared=shared), config.profile)

    async def _plan(self, profile_id: str) -> Plan:
        resp = await self._local.call(
            "GET", f"/AnonymizationProfile/{profile_id}", accept=(404, 410)
        )
        if resp.status != 200:
            raise ConfigError(f"AnonymizationProfile/{profile_id} does not exist")
        version = (resp.body.get("meta") or {}).get("versionId")
        cached = self._plans.get((profile_id, version))
        if cached is not None:
            return cached
        try:
            profile = parse_profile(resp.body)
            plan = compile_profile(profile)
        except ProfileError as exc:
            raise ConfigError(f"AnonymizationProfile/{profile_id}: {exc}") from None
        if profile.default == "keep":  # once per version of the profile: it is cached
            log.warning(
                "AnonymizationProfile/%s sends every element that no rule names (default: "
                "keep): it is no Safe Harbor profile (docs/anonymization.md)",
                profile_id,
            )
        for shadowed in shadowed_questions(profile.questionnaire.questions):
            log.warning("AnonymizationProfile/%s: %s", profile_id, shadowed)
        self._plans = {(profile_id, version): plan}
        return plan


class ConfigError(SyncError):
    """No valid configuration could be loaded."""
