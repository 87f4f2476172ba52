"""Helpers for the anonymize unit tests: small inline profiles, one key, a fixed date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.anonymize import PseudonymKey, compile_profile
from app.anonymize.plan import Plan
from app.anonymize.profile import Profile

TODAY = date(2025, 6, 1)


def plan_of(resources: list[dict[str, Any]], **profile: Any) -> Plan:
    """Compile an inline profile (default-deny unless ``default`` is given)."""
    body = {"id": "test", "name": "test", "resources": resources, **profile}
    return compile_profile(Profile.model_validate(body), today=TODAY)


@pytest.fixture
def key() -> PseudonymKey:
    return PseudonymKey(secret=b"unit-test-secret-0123456789-padd", namespace="clinic-a")
