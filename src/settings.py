"""The one settings object: every knob is a ``CLOSEDLOOP_*`` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("closedloop.db")


class Settings(BaseSettings):
    """Configuration read from ``CLOSEDLOOP_*`` variables (and a ``.env`` file, if present)."""

    model_config = SettingsConfigDict(
        env_prefix="CLOSEDLOOP_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str | None = Field(
        default=None,
        description=(
            "Unset: the embedded SQLite file ./closedloop.db. "
            "sqlite:///path/to/file.db: another SQLite file. "
            "postgresql://user[:password]@host[:port]/dbname: PostgreSQL via psycopg 3."
        ),
    )
    database_schema: str = Field(
        default="public", description="PostgreSQL schema holding closedloop's tables."
    )
    run_projections: bool = Field(
        default=True,
        description="Follow the event log in a thread of the API process. Turn off when "
        "`closedloop projections run` workers do it.",
    )
    projection_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Events per read-model transaction."
    )
    run_scheduler: bool = Field(
        default=True,
        description="Run the settlement and deadline jobs in the API process (one replica at a "
        "time runs each job). Turn off when `closedloop scheduler run` does it.",
    )
    time_zone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone of stage cut-offs (midnight after a stage's last day), "
        "deadlines and the scheduled jobs.",
    )
    settlement_grace_days: int = Field(
        default=0,
        ge=0,
        le=27,
        description="Days after a stage's cut-off before the scheduler settles it, for effects "
        "confirmed after the quarter ends (0: settle at the cut-off). Manual settlement is "
        "possible from the cut-off on.",
    )
    deadline_check_at: str = Field(
        default="00:15",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time (HH:MM, in time_zone) of the daily missed-deadline job.",
    )
    postgres_pool_size: int = Field(default=8, ge=1, le=200)
    postgres_max_overflow: int = Field(default=8, ge=0, le=200)
    postgres_lock_timeout_seconds: int = Field(
        default=5, ge=0, description="How long a write waits for the event table's lock."
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if value.startswith(("postgresql://", "postgres://", "sqlite:///")):
            return value
        raise ValueError(
            "CLOSEDLOOP_DATABASE_URL must start with postgresql://, postgres:// or sqlite:///"
        )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"CLOSEDLOOP_TIME_ZONE: unknown IANA time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def store_kind(self) -> Literal["sqlite", "postgres"]:
        if self.database_url is None or self.database_url.startswith("sqlite:///"):
            return "sqlite"
        return "postgres"

    @property
    def sqlite_path(self) -> Path:
        if self.database_url is None:
            return DEFAULT_SQLITE_PATH
        return Path(self.database_url.removeprefix("sqlite:///"))
