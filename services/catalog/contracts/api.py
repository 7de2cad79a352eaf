"""HTTP routes of contract versions: register, check, list, read. Each parses the request, calls
one service function and answers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from services.catalog.access.deps import AccessDep
from services.catalog.contracts import service
from services.catalog.contracts.odcs import MAX_CONTRACT_BYTES
from services.catalog.deps import PublicReaderDep, PublisherDep, ReaderDep, SessionDep
from services.catalog.schemas import CompatibilityReport, ContractVersionRead, ContractVersionSummary

router = APIRouter(prefix="/v1")

CONTRACT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {
                "schema": {"type": "string"},
                "example": "apiVersion: v3.1.0\nkind: DataContract\n...",
            },
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def _contract_body(request: Request) -> bytes:
    """The request body, read no further than one byte past the limit (the service refuses it)."""
    body = bytearray()
    async for chunk in request.stream():
        # Kept no further than the limit's first byte past: an oversized body is never held whole.
        body.extend(memoryview(chunk)[: MAX_CONTRACT_BYTES + 1 - len(body)])
        if len(body) > MAX_CONTRACT_BYTES:
            break
    return bytes(body)


@router.post(
    "/datasets/{dataset_id}/contract-versions",
    response_model=ContractVersionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Register a new ODCS v3 contract version (YAML or JSON body)",
)
async def register_version(
    dataset_id: str, request: Request, access: AccessDep, principal: PublisherDep
) -> ContractVersionRead:
    document = await _contract_body(request)
    return service.register_version(access, actor=principal, dataset_id=dataset_id, document=document)


@router.post(
    "/contracts",
    response_model=ContractVersionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Register an ODCS contract: creates the dataset it describes if new, else adds the version",
)
async def register_contract(
    request: Request, access: AccessDep, principal: PublisherDep
) -> ContractVersionRead:
    document = await _contract_body(request)
    return service.register_contract(access, actor=principal, document=document)


@router.post(
    "/datasets/{dataset_id}/contract-versions/check",
    response_model=CompatibilityReport,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Dry run: would this version be accepted, and why not",
)
async def check_version(
    dataset_id: str, request: Request, session: SessionDep, _: ReaderDep
) -> CompatibilityReport:
    document = await _contract_body(request)
    return service.check_contract(session, dataset_id=dataset_id, document=document)


@router.get(
    "/datasets/{dataset_id}/contract-versions",
    response_model=list[ContractVersionSummary],
    tags=["contracts"],
)
def list_versions(
    dataset_id: str, session: SessionDep, reader: PublicReaderDep
) -> list[ContractVersionSummary]:
    return [
        ContractVersionSummary.model_validate(v)
        for v in service.list_versions(session, dataset_id=dataset_id, public_only=reader is None)
    ]


@router.get(
    "/datasets/{dataset_id}/contract-versions/{version}",
    response_model=ContractVersionRead,
    tags=["contracts"],
)
def get_version(
    dataset_id: str, version: str, session: SessionDep, reader: PublicReaderDep
) -> ContractVersionRead:
    return ContractVersionRead.model_validate(
        service.get_version(session, dataset_id=dataset_id, version=version, public_only=reader is None)
    )


@router.get(
    "/datasets/{dataset_id}/contract",
    tags=["contracts"],
    summary="The current ODCS document, exactly as stored",
    responses={200: {"content": {"application/yaml": {}, "application/json": {}}}},
)
def get_contract_document(
    dataset_id: str, session: SessionDep, reader: PublicReaderDep, version: str | None = None
) -> Response:
    stored = service.get_version(session, dataset_id=dataset_id, version=version, public_only=reader is None)
    media_type = "application/json" if stored.document_format == "json" else "application/yaml"
    return Response(stored.document, media_type=media_type)
