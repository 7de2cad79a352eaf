"""Settings of the quality service only, read from the environment (prefix ``CITYBASE_QUALITY_``).

Windows, weights and thresholds can be set per dataset: ``CITYBASE_QUALITY_WINDOWS``,
``CITYBASE_QUALITY_WEIGHTS`` and ``CITYBASE_QUALITY_SCORE_THRESHOLDS`` are JSON objects keyed by
dataset id, e.g. ``{"health.outpatient-visits": {"records": 5000, "seconds": 30}}``,
``{"transport.bus-arrivals": {"timeliness": 0.4}}`` (the dimensions left out keep their default)
and ``{"market.inspections": 90}``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 24 * 3600.0

DIMENSIONS = ("validity", "completeness", "uniqueness", "conformity", "timeliness")

DEFAULT_WEIGHTS: dict[str, float] = {
    "validity": 0.25,
    "completeness": 0.20,
    "uniqueness": 0.15,
    "conformity": 0.25,
    "timeliness": 0.15,
}
"""Validity and conformity weigh most (a record that breaks the contract is wrong for every
consumer), completeness next, uniqueness and timeliness least (consumers can drop duplicates and
some scenarios tolerate delay)."""


class WindowSize(BaseModel):
    """A tumbling window closes after ``records`` records or ``seconds`` seconds, whichever first."""

    records: int = Field(default=10_000, ge=1)
    seconds: float = Field(default=60.0, gt=0)


class QualitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_QUALITY_", env_file=None, extra="ignore")

    group_id: str = Field(default="quality", min_length=1, description="Consumer group on ds.* and dlq.*.")
    usage_group_id: str = Field(default="quality-usage", min_length=1, description="Group on platform.usage.")
    window: WindowSize = Field(default_factory=WindowSize, description="Default window of every dataset.")
    windows: dict[str, WindowSize] = Field(default_factory=dict, description="Windows per dataset id.")
    weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Dimension weights per dataset id (defaults: DEFAULT_WEIGHTS)."
    )
    rolling_s: float = Field(default=DAY_S, gt=0, description="The rolling view (24 h).")
    rolling_max_keys: int = Field(
        default=2_000_000,
        ge=1000,
        description="Primary keys a dataset's rolling uniqueness view remembers; the oldest go first.",
    )
    default_frequency_s: float = Field(
        default=3600.0, gt=0, description="Freshness target of a contract without SLA frequency."
    )
    default_latency_s: float = Field(
        default=3600.0, gt=0, description="Lateness target of a contract without SLA latency."
    )
    late_share_breach: float = Field(
        default=0.10, gt=0, le=1, description="A window with more late records than this breaches latency."
    )
    score_threshold: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="Overall score under which a dataset's quality alerts (citybase_dataset_quality_threshold).",
    )
    score_thresholds: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=dict, description="Score thresholds per dataset id (default: score_threshold)."
    )
    score_change_threshold: float = Field(
        default=5.0,
        ge=0,
        description="Points the overall score must move for its score event to be significant.",
    )
    example_values: int = Field(default=5, ge=0, le=50, description="Failing values kept per rule.")
    evidence_key: SecretStr | None = Field(
        default=None,
        description=(
            "Keys the HMAC tokens that stand for sensitive values in evidence; unset, each process "
            "draws a random key (tokens then compare within one process only). Never shown to readers."
        ),
    )
    resubscribe_interval_s: float = Field(
        default=2.0, gt=0, description="How often the worker looks for new ds./dlq. topics."
    )
    sla_check_interval_s: float = Field(
        default=10.0, gt=0, description="How often freshness is checked without records arriving."
    )
    utilization_refresh_s: float = Field(default=60.0, gt=0, description="Utilization gauges refresh.")
    idle_days: float = Field(default=14.0, gt=0, description="Days without use that make a grant idle.")
    active_days: float = Field(default=7.0, gt=0, description="A subscriber is active if it used data since.")
    target_subscribers: int = Field(
        default=3, ge=1, description="Active subscribers at which a dataset's reach counts as full."
    )
    history_max_points: int = Field(default=500, ge=10, le=10_000, description="History points at most.")
    max_poll_records: int = Field(default=2000, ge=1)
    dataset_prefix: str = Field(
        default="",
        description="Score only the datasets whose id starts with this (shards of a large city; benchmarks).",
    )

    def follows(self, dataset_id: str) -> bool:
        return dataset_id.startswith(self.dataset_prefix)

    def window_of(self, dataset_id: str) -> WindowSize:
        return self.windows.get(dataset_id, self.window)

    def threshold_of(self, dataset_id: str) -> float:
        return self.score_thresholds.get(dataset_id, self.score_threshold)

    def weights_of(self, dataset_id: str) -> dict[str, float]:
        return {**DEFAULT_WEIGHTS, **self.weights.get(dataset_id, {})}
