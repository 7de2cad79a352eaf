"""Settings of the needs board, read from the environment (prefix ``CITYBASE_NEEDS_``): the resident
form's and the applicant registration's flood limits, and the followers' webhooks."""

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
    applicant_limit: int = Field(
        default=10,
        ge=1,
        description="Applicants one client address may register per window without a key; 429 beyond.",
    )
    applicant_window_s: int = Field(default=3600, ge=1, description="The window of the registration's limit.")

    # A follower's webhook: the same settings, by the same names, as feeds' webhooks.
    webhook_enabled: bool = Field(
        default=True, description="Push need notices to webhooks from this process."
    )
    webhook_allow_http_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Hosts a follower's webhook may reach over plain http (development and tests); all "
        "others need https. Loopback hosts also need `webhook_allow_loopback`.",
    )
    webhook_allow_loopback: bool = Field(
        default=False,
        description="Let webhooks reach loopback addresses (127.0.0.0/8, ::1): for a receiver on the same "
        "machine in local testing only.",
    )
    webhook_allow_networks: list[str] = Field(
        default_factory=list,
        description="Private networks (CIDR) webhooks may reach; link-local addresses (cloud metadata) "
        "never, whatever is listed.",
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles per failure.")
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts of one notice before it is marked failed in the delivery log."
    )
    webhook_batch: int = Field(default=50, ge=1, description="Notices one round of the pusher takes.")
    webhook_scan_interval_s: float = Field(default=1.0, gt=0)
