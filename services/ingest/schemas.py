"""Response shapes of the ingest API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RecordError(BaseModel):
    """Why one record of a batch was rejected (it went to ``dlq.<dataset>``)."""

    index: int = Field(description="Position of the record in the batch, from 0 (CSV: data rows only).")
    path: str = Field(
        description="JSON Pointer (RFC 6901) inside the record; empty for the record itself.",
        examples=["/delay_s"],
    )
    rule: str = Field(
        description=(
            "The rule broken: a JSON Schema keyword (required, type, enum, maximum, pattern, format, "
            "additionalProperties, ...) or one of ingest's own (maxRecordBytes, maxDepth, "
            "contractVersion, eventId, csvColumns, encoding, numberRange)."
        ),
        examples=["maximum"],
    )
    message: str = Field(examples=["delay_s must be at most 7200"])


class RecordBatchResult(BaseModel):
    """What happened to a batch: every record was either accepted, rejected or a duplicate."""

    dataset: str
    contract_version: str = Field(description="The contract version the records were checked against.")
    accepted: int = Field(description="Records written to ds.<dataset>.")
    rejected: int = Field(description="Records written to dlq.<dataset>, each with its errors below.")
    duplicates: int = Field(
        default=0, description="Records whose _event_id repeated an earlier one of the batch: not published."
    )
    event_ids: list[str] = Field(
        description="CloudEvents ids (ce_id) of the accepted records, in batch order."
    )
    errors: list[RecordError]
    errors_truncated: bool = Field(
        default=False, description="True when more errors exist than the answer lists."
    )
