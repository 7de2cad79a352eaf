"""Settings of the feeds service only, read from the environment (prefix ``CITYBASE_FEEDS_``).

The platform-wide settings (database, bus, ...) stay in :class:`services.common.settings.Settings`;
these are the limits and timings of delivery. ``create_app`` builds them once, unless a test or the
composing process hands its own.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.secret_file import MissingSecret, check_secret, data_dir_secret
from services.common.settings import Settings

SECRET_NAME = "feeds"
"""The file of feeds' secret in a data directory's ``secrets/``."""


class FeedsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_FEEDS_", env_file=None, extra="ignore")

    secret: SecretStr | None = Field(
        default=None,
        description=(
            "Secret of feeds: signs the cursors it hands out, so that an acknowledgement names only "
            "positions feeds delivered. No default: on one machine (SQLite and the embedded bus) it is "
            "made once per data directory (secrets/feeds, mode 0600); a deployment on Kafka or "
            "PostgreSQL must set it (at least 32 random characters, the same on every replica) and "
            "feeds refuse to start without it."
        ),
    )
    default_batch: int = Field(default=100, ge=1, description="Records per batch when `max` is not given.")
    max_batch: int = Field(default=5000, ge=1, description="Largest `max` a client may ask for.")
    max_wait_s: float = Field(default=30.0, ge=0, description="Longest `wait` of a long-poll.")
    check_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=1.0,
        description=(
            "A waiting long-poll or an open stream checks its grant this often, so that a revocation "
            "or expiry stops delivery within a second."
        ),
    )
    subscription_recheck_s: float = Field(
        default=1.0,
        gt=0,
        description="An open stream re-reads its subscription (paused, replayed) this often.",
    )
    topic_partitions: int = Field(
        default=3, ge=1, description="Partitions of ds.<dataset> when feeds has to create it (as ingest)."
    )
    max_readers: int = Field(
        default=256, ge=1, description="Consumers held open for long-poll subscriptions in one process."
    )
    reader_idle_s: float = Field(
        default=60.0, gt=0, description="A long-poll consumer unused this long is closed."
    )
    join_timeout_s: float = Field(
        default=30.0, gt=0, description="How long positioning a subscription waits for its consumer group."
    )
    sse_heartbeat_s: float = Field(
        default=15.0, gt=0, description="A comment line keeps an idle stream open."
    )
    sse_batch: int = Field(default=500, ge=1, description="Records per Server-Sent Event.")
    max_streams: int = Field(
        default=256,
        ge=1,
        description=(
            "Server-Sent Event streams open at once in one process; each holds a consumer and, while it "
            "waits for records, a thread of its own (not one of the request handlers')."
        ),
    )
    max_streams_per_scenario: int = Field(
        default=16,
        ge=1,
        description=(
            "Server-Sent Event streams one scenario may hold open at once in one process (429 beyond), "
            "so that one scenario cannot take every stream of `max_streams` from the others."
        ),
    )
    webhook_enabled: bool = Field(default=True, description="Push webhook subscriptions from this process.")
    webhook_allow_http_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description=(
            "Hosts a webhook may reach over plain http (development and tests); all others need https. "
            "Loopback hosts also need `webhook_allow_loopback`."
        ),
    )
    webhook_allow_loopback: bool = Field(
        default=False,
        description=(
            "Let webhooks reach loopback addresses (127.0.0.0/8, ::1): for a receiver on the same machine "
            "in local testing only. Off, a webhook whose host is or resolves to loopback is refused."
        ),
    )
    webhook_allow_networks: list[str] = Field(
        default_factory=list,
        description=(
            "Private networks (CIDR, e.g. the city's intranet 10.20.0.0/16) webhooks may reach; every "
            "other private, shared, reserved, link-local and unspecified address stays refused."
        ),
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_batch: int = Field(default=500, ge=1)
    webhook_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles per failure.")
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    webhook_max_failures: int = Field(
        default=8, ge=1, description="Consecutive failed deliveries after which the subscription is paused."
    )
    webhook_scan_interval_s: float = Field(default=1.0, gt=0)
    lag_interval_s: float = Field(default=15.0, gt=0, description="How often the lag gauges are refreshed.")
    snapshot_default_records: int = Field(
        default=1000, ge=1, description="Records of an open-data snapshot when `limit` is not given."
    )
    snapshot_max_records: int = Field(
        default=10_000, ge=1, description="Largest `limit` of an open-data snapshot (its latest records)."
    )
    snapshot_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest an open-data snapshot may take to read its records (503, retry, beyond).",
    )
    snapshot_requests_per_minute: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Open-data snapshots one client address may download per minute without a key (each reads "
            "up to `snapshot_max_records` records per partition, so fewer than the catalog's reads)."
        ),
    )
    snapshot_burst: int = Field(
        default=5, ge=1, description="Open-data snapshots one client address may download at once."
    )

    @field_validator("secret")
    @classmethod
    def _a_real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret("CITYBASE_FEEDS_SECRET", value.get_secret_value())
        return value

    def with_secret(self, settings: Settings, *, one_process: bool = False) -> FeedsSettings:
        """These settings with the secret feeds run with: the one set, else the data directory's,
        on one machine (SQLite and the embedded bus) or when the whole platform is ``one_process``
        (``citybase up``, the only reader of its cursors, on any database and bus);
        :class:`MissingSecret` for a deployment that sets none."""
        if self.secret is not None:
            return self
        if not (settings.one_machine or one_process):
            raise MissingSecret(
                "CITYBASE_FEEDS_SECRET is not set: feeds on Kafka or PostgreSQL need a secret of their "
                "own, the same on every replica (e.g. `openssl rand -hex 32` from your secret store)"
            )
        secret = data_dir_secret(settings.data_dir, SECRET_NAME).decode()
        return self.model_copy(update={"secret": SecretStr(secret)})

    def signing_key(self) -> bytes:
        """The secret as bytes; :class:`MissingSecret` until :meth:`with_secret` resolved it."""
        if self.secret is None:
            raise MissingSecret("feeds have no secret: resolve it with FeedsSettings.with_secret")
        return self.secret.get_secret_value().encode()
