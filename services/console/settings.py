"""Settings of the console only, read from the environment (prefix ``CITYBASE_CONSOLE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_CONSOLE_", env_file=None, extra="ignore")

    api_url: str | None = Field(
        default=None,
        description="Root URL under which /catalog, /ingest, /feeds and /quality answer (a gateway); "
        "default: the platform the console is mounted in, called in process.",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure: set it when the console is served over HTTPS.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="How long one call to a service may take.")
    page_size: int = Field(default=50, ge=1, le=200, description="Rows per page of lists.")
