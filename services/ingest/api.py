"""HTTP routes of ingest: read the request, hand it to :meth:`Ingestor.accept`, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import JSONResponse

from services.ingest.deps import IngestorDep, PublisherDep
from services.ingest.schemas import RecordBatchResult
from services.ingest.service import CONTRACT_VERSION_HEADER

router = APIRouter(prefix="/v1", tags=["records"])

_RECORD = {"type": "object", "description": "One record of the dataset's contract."}
RECORDS_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "A batch of records: a JSON array, NDJSON (one record per line) or CSV (a header row "
            "naming contract fields; cells are typed by the contract, an empty cell of an optional "
            "field is null). May be gzip-compressed (`Content-Encoding: gzip`). A record may carry "
            "`_event_id` (its CloudEvents id) and `_contract_version`; both are removed before "
            "validation."
        ),
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": _RECORD},
                "example": [{"arrival_id": "…", "stop_id": "S0042", "_event_id": "avl-2026-0001"}],
            },
            "application/x-ndjson": {"schema": {"type": "string"}, "example": '{"stop_id": "S0042"}\n'},
            "text/csv": {"schema": {"type": "string"}, "example": "arrival_id,stop_id\n…,S0042\n"},
        },
    }
}


@router.post(
    "/datasets/{dataset_id}/records",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecordBatchResult,
    openapi_extra=RECORDS_BODY,
    summary="Publish a batch of records to a dataset",
    description=(
        "Each record is checked against the dataset's current contract and written to "
        "`ds.<dataset>` (accepted) or `dlq.<dataset>` (rejected, with the reasons). The answer "
        "comes once the bus acknowledged every record; a batch may be partly accepted. Only the "
        "owning department (or an admin) may publish. With `Idempotency-Key`, a retry gets the "
        "first answer again and publishes nothing."
    ),
    responses={
        413: {"description": "Body, batch or decompressed body over its limit"},
        415: {"description": "Not JSON, NDJSON or CSV; or an encoding other than gzip"},
        429: {"description": "The publish buffer is full; retry after Retry-After"},
        503: {"description": "The bus did not acknowledge; nothing accepted; retry after Retry-After"},
    },
)
async def publish_records(
    dataset_id: str,
    request: Request,
    ingestor: IngestorDep,
    publisher: PublisherDep,
    content_type: Annotated[str | None, Header()] = None,
    content_encoding: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header(include_in_schema=False)] = None,
    idempotency_key: Annotated[
        str | None, Header(max_length=255, description="Makes retries of this batch safe (kept 24 h)")
    ] = None,
    contract_version: Annotated[
        str | None,
        Header(
            alias=CONTRACT_VERSION_HEADER,
            description="The contract version the records were written for; must be the current one",
        ),
    ] = None,
) -> JSONResponse:
    answer = await ingestor.accept(
        dataset_id=dataset_id,
        principal=publisher,
        content_type=content_type,
        content_encoding=content_encoding,
        content_length=content_length,
        contract_version=contract_version,
        idempotency_key=idempotency_key,
        body=request.stream(),
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)
