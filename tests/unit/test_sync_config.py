"""SyncConfig validation (app/model.py): a type flows one way only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.model import Direction, SyncConfig


def _config(*streams: tuple[str, str]) -> SyncConfig:
    return SyncConfig.model_validate({"streams": [{"type": t, "direction": d} for t, d in streams]})


def test_a_type_configured_both_to_push_and_to_pull_is_refused() -> None:
    with pytest.raises(
        ValidationError, match="Organization is configured both to push and to pull"
    ):
        _config(("Patient", "push"), ("Organization", "pull"), ("Organization", "push"))


def test_a_stream_listed_twice_is_refused_and_distinct_types_pass() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        _config(("Location", "pull"), ("Location", "pull"))
    config = _config(("Patient", "push"), ("Organization", "pull"))
    assert [s.type for s in config.enabled_streams(Direction.PULL)] == ["Organization"]
