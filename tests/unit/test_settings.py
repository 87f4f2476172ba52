"""Start-up configuration: one clear message naming each bad variable."""

from __future__ import annotations

import pytest

from app.aidbox.manifest import load_manifest
from app.settings import Role, SettingsError, load_settings

BASE = {
    "APP_INIT_URL": "http://127.0.0.1:8080",
    "APP_INIT_CLIENT_ID": "root",
    "APP_INIT_CLIENT_SECRET": "secret",
    "APP_URL": "http://127.0.0.1:8090",
    "APP_SECRET": "s",
}
LOCAL = {
    **BASE,
    "SYNC_INSTANCE_ID": "clinic-a",
    "SYNC_GLOBAL_URL": "http://127.0.0.1:9080",
    "SYNC_GLOBAL_CLIENT_ID": "clinic-a",
    "SYNC_GLOBAL_CLIENT_SECRET": "pw",
    "SYNC_PSEUDONYM_KEY": "k" * 32,
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*LOCAL, "SYNC_ROLE"]:
        monkeypatch.delenv(name, raising=False)


def test_missing_variables_are_named() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings()
    for name in ("APP_INIT_URL", "APP_INIT_CLIENT_ID", "APP_SECRET", "APP_URL"):
        assert name in str(err.value)


def test_local_role_needs_the_global_and_a_key() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**BASE)
    for name in ("SYNC_INSTANCE_ID", "SYNC_GLOBAL_URL", "SYNC_PSEUDONYM_KEY"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNC_PSEUDONYM_KEY", "too-short"),
        ("SYNC_POLL_INTERVAL", "-1"),
        ("SYNC_ROLE", "hq"),
        ("SYNC_INSTANCE_ID", "has space"),
        ("SYNC_BATCH_MAX_ENTRIES", "0"),
        ("SYNC_BATCH_MAX_ENTRIES", "1001"),  # headquarters refuses larger bundles
        ("SYNC_BATCH_MAX_BYTES", "1000001"),  # and, twice this, heavier ones
    ],
)
def test_invalid_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**{**LOCAL, name: value})
    assert name in str(err.value)
    assert value not in str(err.value) or value == "0"  # secrets are never echoed


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOCAL.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.role is Role.LOCAL
    assert settings.sdk_settings().APP_INIT_URL == "http://127.0.0.1:8080"
    assert "k" * 32 not in repr(settings)


def test_global_role_needs_no_clinic_settings() -> None:
    assert load_settings(**BASE, SYNC_ROLE="global").role is Role.GLOBAL


@pytest.mark.parametrize("role", list(Role))
def test_manifest_of_each_role_loads(role: Role) -> None:
    manifest = load_manifest(role)
    assert manifest.schemas
    for schema in manifest.schemas:
        assert schema["resourceType"] == "FHIRSchema"
        assert schema["name"] == schema["type"] == schema["id"]


def test_a_short_pseudonym_key_is_measured_in_characters() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(**{**LOCAL, "SYNC_PSEUDONYM_KEY": "too-short"})
    assert str(err.value) == (
        "invalid configuration: SYNC_PSEUDONYM_KEY: should have at least 32 characters"
    )
