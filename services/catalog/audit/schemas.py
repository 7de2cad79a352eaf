"""API shapes of the audit trail."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.catalog.schemas import Timestamp


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="Position in the chain, gap-free from 1.")
    at: Timestamp = Field(description="When, in UTC (RFC 3339).")
    actor_id: str | None = Field(description="The principal who acted; null when unauthenticated.")
    actor_kind: str | None
    action: str = Field(examples=["grant.revoke", "contract_version.register"])
    resource_type: str
    resource_id: str
    outcome: str = Field(description="success, denied (refused with a 4xx) or failed (5xx).")
    purpose: str | None
    dataset_id: str | None
    department_id: str | None
    scenario_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryRead]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null at the end."
    )


class ChainBreak(BaseModel):
    seq: int = Field(description="The first entry that does not match.")
    reason: str
    since_seq: int | None = Field(
        default=None,
        description=(
            "For a break found by a published checkpoint: the last checkpoint that still matches "
            "(0 for none). The change lies in the entries after it, up to ``seq``."
        ),
    )


class AuditVerification(BaseModel):
    ok: bool
    mode: Literal["full", "incremental"] = Field(
        default="full",
        description=(
            "full: every entry from the first; incremental: the entries after the published "
            "checkpoint the last verification reached (`from_seq`), which must still match."
        ),
    )
    from_seq: int = Field(default=0, description="The entry the walk started after (0: the beginning).")
    entries_checked: int
    head_seq: int | None = None
    head_hash: str | None = None
    checkpoints: int | None = Field(default=None, description="Checkpoints in the catalog's database.")
    published_checkpoints: int | None = Field(
        default=None,
        description="Checkpoints read from outside the database (the bus or a file) and compared.",
    )
    checkpoint_source: str | None = Field(
        default=None, description="Where the published checkpoints were read: platform.catalog or a file."
    )
    last_published_seq: int | None = Field(
        default=None,
        description=(
            "The last entry a published checkpoint vouches for; later entries rest on the database "
            "alone until the next checkpoint is published."
        ),
    )
    anchor_seq: int | None = Field(
        default=None,
        description="The last published checkpoint this run found matching: an incremental "
        "verification starts after it.",
    )
    first_break: ChainBreak | None = None


class AuditCheckpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="The entry the checkpoint vouches for, and every one before it.")
    hash: str
    at: Timestamp
