"""Settings of the needs board, read from the environment (prefix ``CITYBASE_NEEDS_``)."""

from __future__ import annotations

import secrets

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NeedsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_NEEDS_", env_file=None, extra="ignore")

    form_limit: int = Field(
        default=5, ge=1, description="Residents' needs one client address may post per window; 429 beyond."
    )
    form_window_s: int = Field(default=3600, ge=1, description="The window of the resident form's limit.")
    form_address_key: str = Field(
        default_factory=lambda: secrets.token_hex(32),
        description="Key of the hash under which a form's client address is kept for its limit; set "
        "the same on every replica so they share one limit (a random key per process otherwise).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peers whose X-Forwarded-For names the resident's address (the console in front of "
        "the catalog, on this machine by default); from any other peer the header is ignored.",
    )
    similar_limit: int = Field(default=5, ge=1, le=50, description="Similar open needs suggested on filing.")
