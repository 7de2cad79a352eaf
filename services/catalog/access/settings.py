"""Settings of authorized operation, read from the environment (prefix ``CITYBASE_ACCESS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_ACCESS_", env_file=None, extra="ignore")

    max_duration_days: int = Field(
        default=365,
        ge=1,
        le=3650,
        description="Longest duration a scenario may request and an approver may grant; 422 beyond.",
    )
