"""Settings of the ingest service only, read from the environment (prefix ``CITYBASE_INGEST_``).

The platform-wide settings (database, bus, ...) stay in :class:`services.common.settings.Settings`;
these are the limits and timings that only ingest has. ``create_app`` builds them once, unless a
test or the composing process hands its own.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
DAY_S = 24 * 3600.0


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_INGEST_", env_file=None, extra="ignore")

    max_body_bytes: int = Field(
        default=16 * MIB,
        ge=1024,
        description="Largest request body after decompression (and before it): 413 beyond.",
    )
    max_records_per_batch: int = Field(default=10_000, ge=1, description="413 beyond.")
    max_record_bytes: int = Field(
        default=512 * 1024,
        ge=64,
        description=(
            "Largest record, as the JSON ingest publishes; a larger record is rejected alone. "
            "Kept under Kafka's default max.message.bytes (1 MiB) with room for the envelope."
        ),
    )
    max_depth: int = Field(
        default=32,
        ge=1,
        le=500,
        description="Deepest nesting of objects and arrays in a record (the record is 1).",
    )
    max_errors_reported: int = Field(
        default=1000, ge=1, description="Record errors listed in one answer; the counts stay exact."
    )
    max_dead_letter_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="A dead letter keeps the original bytes up to this size (header dlq_truncated beyond).",
    )
    ack_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a batch waits for the bus's acknowledgements: 503 beyond."
    )
    buffer_high_watermark: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Producer buffer fill at which a batch is refused with 429 before anything is sent.",
    )
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of ds.<id> and dlq.<id>.")
    raw_enabled: bool = Field(default=True, description="Consume raw.<dataset> topics in this process.")
    raw_group_id: str = Field(default="citybase-ingest-raw", min_length=1)
    raw_topic_partitions: int = Field(
        default=3, ge=1, description="Partitions of raw.<id> when ingest creates it."
    )
    raw_restart_debounce_s: float = Field(
        default=0.2, ge=0, description="Wait this long for more dataset changes before re-subscribing."
    )
    idempotency_ttl_s: float = Field(
        default=DAY_S, ge=DAY_S, description="How long an Idempotency-Key is kept (at least a day)."
    )
    idempotency_cleanup_interval_s: float = Field(default=3600.0, gt=0)
    idempotency_stale_s: float = Field(
        default=120.0,
        gt=0,
        description="A batch that claimed a key and never finished (its process died) frees it after this.",
    )
