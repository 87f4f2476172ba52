"""Settings from environment variables only (12-factor); nothing secret lives in the repo.

The aidbox-python-sdk variables (`APP_*`, `AIO_*`) keep the SDK's names; our own carry the
`SYNC_` prefix. `load_settings()` turns any missing or invalid value into one `SettingsError`
whose message names every offending variable, so start-up fails with one clear line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from aidbox_python_sdk.settings import Settings as SdkSettings
from pydantic import (
    AliasChoices,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.anonymize.pseudonym import MIN_SECRET_BYTES
from app.errors import SyncError, validation_problems
from app.model import INSTANCE_ID_PATTERN


class Role(StrEnum):
    """Which side of the sync this service runs on."""

    LOCAL = "local"
    GLOBAL = "global"


def _env(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name))


class AppSettings(BaseSettings):
    """All configuration of one aidbox-sync service."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    # aidbox-python-sdk (sdk settings.py): how the App registers with its own Aidbox.
    app_init_url: HttpUrl = _env("APP_INIT_URL")
    app_init_client_id: str = _env("APP_INIT_CLIENT_ID")
    app_init_client_secret: SecretStr = _env("APP_INIT_CLIENT_SECRET")
    app_id: str = Field("aidbox-sync", validation_alias=AliasChoices("APP_ID"))
    app_url: HttpUrl = _env("APP_URL")
    app_port: int = Field(8090, validation_alias=AliasChoices("APP_PORT"))
    app_secret: SecretStr = _env("APP_SECRET")
    aio_host: str = Field("0.0.0.0", validation_alias=AliasChoices("AIO_HOST"))
    aio_port: int = Field(8090, validation_alias=AliasChoices("AIO_PORT"))

    # Our own.
    role: Role = Field(Role.LOCAL, validation_alias=AliasChoices("SYNC_ROLE"))
    instance_id: Annotated[str, Field(pattern=INSTANCE_ID_PATTERN)] | None = Field(
        None, validation_alias=AliasChoices("SYNC_INSTANCE_ID")
    )
    global_url: HttpUrl | None = Field(None, validation_alias=AliasChoices("SYNC_GLOBAL_URL"))
    global_client_id: str | None = Field(
        None, validation_alias=AliasChoices("SYNC_GLOBAL_CLIENT_ID")
    )
    global_client_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SYNC_GLOBAL_CLIENT_SECRET")
    )
    # HMAC key for pseudonyms; long enough that pseudonyms cannot be brute-forced (bytes of
    # UTF-8 are at least its characters: app/anonymize/pseudonym.py checks the bytes too).
    pseudonym_key: SecretStr | None = Field(
        None, min_length=MIN_SECRET_BYTES, validation_alias=AliasChoices("SYNC_PSEUDONYM_KEY")
    )
    poll_interval: float = Field(5.0, gt=0, validation_alias=AliasChoices("SYNC_POLL_INTERVAL"))
    batch_max_entries: int = Field(
        200, ge=1, le=1_000, validation_alias=AliasChoices("SYNC_BATCH_MAX_ENTRIES")
    )
    # Headquarters' policy for clinics refuses a request body over twice the largest
    # transaction this allows with its fence entries (docs/access-control.md, "Size limits
    # and cost").
    batch_max_bytes: int = Field(
        1_000_000, ge=10_000, le=1_000_000, validation_alias=AliasChoices("SYNC_BATCH_MAX_BYTES")
    )
    # Transactions of one stream in flight at once, when their writes touch different
    # resources (docs/push.md, "Transactions in flight"); the fence allows up to 4.
    in_flight: int = Field(2, ge=1, le=4, validation_alias=AliasChoices("SYNC_IN_FLIGHT"))
    # The breaker (docs/push.md): a stream stops when more than this share of at least
    # SYNC_BREAKER_MIN_ENTRIES recent entries is refused by headquarters (1 turns it off).
    breaker_ratio: float = Field(
        0.5, gt=0, le=1, validation_alias=AliasChoices("SYNC_BREAKER_RATIO")
    )
    breaker_min_entries: int = Field(
        20, ge=1, validation_alias=AliasChoices("SYNC_BREAKER_MIN_ENTRIES")
    )
    concurrency: int = Field(4, ge=1, le=64, validation_alias=AliasChoices("SYNC_CONCURRENCY"))
    retry_attempts: int = Field(
        6, ge=1, le=20, validation_alias=AliasChoices("SYNC_RETRY_ATTEMPTS")
    )
    retry_base_delay: float = Field(
        0.2, gt=0, validation_alias=AliasChoices("SYNC_RETRY_BASE_DELAY")
    )
    retry_max_delay: float = Field(
        10.0, gt=0, validation_alias=AliasChoices("SYNC_RETRY_MAX_DELAY")
    )
    # How long an on-demand sync waits for transactions open at its start to finish.
    settle_timeout: float = Field(2.0, ge=0, validation_alias=AliasChoices("SYNC_SETTLE_TIMEOUT"))
    # Off only in tests that drive every run through the operations.
    runner_enabled: bool = Field(True, validation_alias=AliasChoices("SYNC_RUNNER_ENABLED"))
    # Logs leave the clinic (central log systems): local ids stay out of them unless this is
    # set; SyncQuarantine in the clinic's own Aidbox always holds them.
    log_local_ids: bool = Field(False, validation_alias=AliasChoices("SYNC_LOG_LOCAL_IDS"))
    http_timeout: float = Field(30.0, gt=0, validation_alias=AliasChoices("SYNC_HTTP_TIMEOUT"))
    # Off only where one process starts the App many times (the test suite): each start
    # would freeze that process's objects of the moment too, its fixtures included.
    gc_freeze: bool = Field(True, validation_alias=AliasChoices("SYNC_GC_FREEZE"))

    @model_validator(mode="after")
    def _local_role_needs_a_global(self) -> AppSettings:
        if self.role is Role.LOCAL:
            missing = [
                env
                for env, value in (
                    ("SYNC_INSTANCE_ID", self.instance_id),
                    ("SYNC_GLOBAL_URL", self.global_url),
                    ("SYNC_GLOBAL_CLIENT_ID", self.global_client_id),
                    ("SYNC_GLOBAL_CLIENT_SECRET", self.global_client_secret),
                    ("SYNC_PSEUDONYM_KEY", self.pseudonym_key),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"required when SYNC_ROLE=local: {', '.join(missing)}")
        return self

    def sdk_settings(self) -> SdkSettings:
        """The aidbox-python-sdk Settings object, built from these values (never from env twice)."""
        return SdkSettings(
            APP_INIT_URL=str(self.app_init_url).rstrip("/"),
            APP_INIT_CLIENT_ID=self.app_init_client_id,
            APP_INIT_CLIENT_SECRET=self.app_init_client_secret.get_secret_value(),
            APP_ID=self.app_id,
            APP_URL=str(self.app_url).rstrip("/"),
            APP_PORT=self.app_port,
            APP_SECRET=self.app_secret.get_secret_value(),
            AIO_HOST=self.aio_host,
            AIO_PORT=str(self.aio_port),
        )


class SettingsError(SyncError):
    """Configuration is missing or invalid; the message names each variable."""


def load_settings(**overrides: Any) -> AppSettings:
    """Read settings from the environment (overrides take precedence, by env-var name)."""
    try:
        return AppSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for where, message in validation_problems(exc, ""):
            field = where.split(".", 1)[0]
            name = _ENV_NAMES.get(field, field)
            problems.append(f"{name}: {message}" if name else message)
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


_ENV_NAMES = {
    name: field.validation_alias.choices[0]  # type: ignore[union-attr]
    for name, field in AppSettings.model_fields.items()
}
