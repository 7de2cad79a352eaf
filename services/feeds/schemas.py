"""Request and response bodies of the feeds API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt

SubscriptionId = str


class StartOffsets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offsets: dict[NonNegativeInt, NonNegativeInt] = Field(
        min_length=1,
        description="Next offset to read per partition; partitions not named keep their position "
        "(or start at their earliest retained record).",
        examples=[{"0": 120, "1": 98, "2": 143}],
    )


class StartTimestamp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp: AwareDatetime = Field(
        description="Each partition from its first record at or after this time."
    )


Position = Literal["earliest", "latest"] | StartOffsets | StartTimestamp


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="https URL that receives the batches (POST).")


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=200, examples=["transport.bus-arrivals"])
    start: Position = Field(default="latest", description="Where delivery starts.")
    webhook: WebhookCreate | None = Field(
        default=None, description="Push batches to this URL instead of waiting to be pulled."
    )


class GrantRef(BaseModel):
    id: str
    version: int
    status: str
    expires_at: datetime


class PartitionPosition(BaseModel):
    partition: int
    committed: int | None = Field(description="Next offset the subscription will read (acknowledged up to).")
    end: int = Field(description="High watermark: the offset after the last record.")
    lag: int = Field(description="Records not acknowledged yet.")


SubscriptionStatus = Literal["active", "paused", "revoked", "suspended", "expired", "pending", "no_grant"]
"""``active`` delivers; ``paused`` by the scenario; otherwise the status of the grant that stops
delivery (``no_grant``: the scenario holds none for the dataset any more)."""


class SubscriptionRead(BaseModel):
    id: SubscriptionId
    dataset: str
    scenario_id: str
    grant_id: str
    status: SubscriptionStatus = Field(
        description="active (delivers), paused (by the scenario), or the status of the grant that "
        "stops delivery: revoked, suspended, expired, pending, no_grant."
    )
    paused: bool = Field(description="Paused by the scenario (resume to deliver again, grant permitting).")
    status_reason: str | None = Field(default=None, description="Why the scenario paused it.")
    delivering: bool = Field(description="Whether records are delivered to it now.")
    reason: str | None = Field(
        default=None, description="Why nothing is delivered now (None when it delivers)."
    )
    mode: Literal["pull", "webhook"]
    webhook_url: str | None = None
    start: dict[str, Any]
    replays: int = Field(description="How many times the subscription was replayed (its epoch).")
    created_at: datetime
    updated_at: datetime


class SubscriptionDetail(SubscriptionRead):
    grant: GrantRef | None = None
    positions: list[PartitionPosition] = []
    lag: int | None = None


class SubscriptionCreated(SubscriptionDetail):
    webhook_secret: str | None = Field(
        default=None, description="Key of the webhook's HMAC signatures: shown once, here."
    )


class SubscriptionPage(BaseModel):
    items: list[SubscriptionRead]


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: str = Field(min_length=1, max_length=8192)


class AckResult(BaseModel):
    committed: dict[int, int] = Field(description="partition -> next offset, as committed now.")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Position


class ReplayResult(BaseModel):
    subscription_id: SubscriptionId
    positions: dict[int, int]
    replays: int


class DeliveredRecord(BaseModel):
    id: str = Field(description="The record's CloudEvents id: drop a record whose id you have seen.")
    dataset: str
    partition: int
    offset: int
    time: str | None
    data: dict[str, Any] = Field(description="The record as the grant lets the scenario see it.")


class RecordBatch(BaseModel):
    subscription_id: SubscriptionId
    grant: dict[str, Any]
    records: list[DeliveredRecord]
    cursor: str = Field(description="Acknowledge it (POST .../ack) once the records are processed.")


class WebhookDeliveryRead(BaseModel):
    id: int
    attempted_at: datetime
    attempt: int
    outcome: Literal["delivered", "failed"]
    http_status: int | None
    error: str | None
    records: int
    cursor: str | None
    duration_ms: int


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryRead]
