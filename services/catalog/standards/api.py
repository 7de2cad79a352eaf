"""HTTP routes of the standard interfaces: DCAT-AP 3 (Turtle, JSON-LD) and AsyncAPI 3.

Each parses the request, calls one service function and answers in the format the client asked
for (``?format=`` or ``Accept``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.catalog.deps import AuditDep, PublicReaderDep, ReaderDep, SessionDep, SettingsDep
from services.catalog.models import Department
from services.catalog.standards import dcat_serialization, service
from services.catalog.standards.model import PlatformLinks
from services.common.deps import RuntimeDep

router = APIRouter(prefix="/v1")

EVENT_SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "events"
TURTLE, JSONLD = "text/turtle", "application/ld+json"


class RdfFormat(StrEnum):
    turtle = "turtle"
    jsonld = "jsonld"


def _links(request: Request, settings: SettingsDep) -> PlatformLinks:
    return PlatformLinks(settings.public_url or f"{request.url.scheme}://{request.url.netloc}")


LinksDep = Annotated[PlatformLinks, Depends(_links)]


def _rdf_format(request: Request, format_: RdfFormat | None) -> RdfFormat:
    if format_ is not None:
        return format_
    return RdfFormat.turtle if TURTLE in request.headers.get("accept", "") else RdfFormat.jsonld


def _rdf_document(
    chosen: RdfFormat, turtle: Callable[[], str], jsonld: Callable[[], dict[str, Any]]
) -> Response:
    """One small RDF document in the chosen serialisation (only that one is built)."""
    if chosen is RdfFormat.turtle:
        return Response(turtle(), media_type=TURTLE)
    return Response(json.dumps(jsonld(), ensure_ascii=False), media_type=JSONLD)


def asks_for_rdf(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return TURTLE in accept or JSONLD in accept


def department_agent(request: Request, settings: SettingsDep, department: Department) -> Response:
    """A department as a DCAT-AP foaf:Agent, for the department route when RDF is asked for."""
    publisher, links = service.describe_department(department), _links(request, settings)
    return _rdf_document(
        _rdf_format(request, None),
        lambda: dcat_serialization.publisher_turtle(publisher, links),
        lambda: dcat_serialization.publisher_jsonld(publisher, links),
    )


def _kafka_bootstrap(settings: SettingsDep) -> str:
    if settings.kafka_public_bootstrap:
        return settings.kafka_public_bootstrap
    parts = urlsplit(settings.bus_url)
    return parts.netloc if parts.scheme == "kafka" else "127.0.0.1:9092"


RDF_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {JSONLD: {}, TURTLE: {}}}}


@router.get(
    "/catalog",
    tags=["standards"],
    summary="The catalog as DCAT-AP 3 (JSON-LD, or Turtle with ?format=turtle or Accept: text/turtle), "
    "streamed whole, or one page of `limit` datasets with Hydra paging (hydra:next) for harvesters",
    response_class=StreamingResponse,
    responses=RDF_RESPONSES,
)
def export_catalog(
    request: Request,
    runtime: RuntimeDep,
    links: LinksDep,
    reader: PublicReaderDep,
    format_: Annotated[RdfFormat | None, Query(alias="format")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="Datasets per page; whole if absent")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=400, description="From the previous page's hydra:next")
    ] = None,
) -> StreamingResponse:
    """Without a key, the public records only (published, not hidden by their department)."""
    turtle = _rdf_format(request, format_) is RdfFormat.turtle
    page = None
    if limit is not None or cursor is not None:
        page = service.CatalogPage(
            limit=limit or 100, cursor=cursor, query=f"&format={format_.value}" if format_ else ""
        )
    return StreamingResponse(
        service.catalog_export(
            runtime.sessions, links=links, turtle=turtle, public_only=reader is None, page=page
        ),
        media_type=TURTLE if turtle else JSONLD,
    )


@router.get(
    "/datasets/{dataset_id}/dcat",
    tags=["standards"],
    summary="One dataset as DCAT-AP 3 (JSON-LD or Turtle)",
    responses=RDF_RESPONSES,
)
def export_dataset(
    dataset_id: str,
    request: Request,
    session: SessionDep,
    links: LinksDep,
    reader: PublicReaderDep,
    format_: Annotated[RdfFormat | None, Query(alias="format")] = None,
) -> Response:
    description = service.describe_one(session, dataset_id=dataset_id, public_only=reader is None)
    return _rdf_document(
        _rdf_format(request, format_),
        lambda: dcat_serialization.dataset_turtle(description, links),
        lambda: dcat_serialization.dataset_jsonld(description, links),
    )


@router.get(
    "/datasets/{dataset_id}/asyncapi", tags=["standards"], summary="AsyncAPI 3 document of one dataset"
)
def dataset_asyncapi(
    dataset_id: str, session: SessionDep, settings: SettingsDep, links: LinksDep, reader: PublicReaderDep
) -> dict[str, Any]:
    return service.dataset_asyncapi(
        session,
        dataset_id=dataset_id,
        links=links,
        kafka_bootstrap=_kafka_bootstrap(settings),
        public_only=reader is None,
    )


@router.get("/asyncapi", tags=["standards"], summary="AsyncAPI 3 document of the whole platform")
def platform_asyncapi(
    session: SessionDep, settings: SettingsDep, links: LinksDep, reader: PublicReaderDep
) -> dict[str, Any]:
    return service.platform_asyncapi(
        session,
        links=links,
        kafka_bootstrap=_kafka_bootstrap(settings),
        event_schemas=EVENT_SCHEMAS,
        public_only=reader is None,
    )


@router.get(
    "/datasets/{dataset_id}/odrl",
    tags=["standards"],
    summary="The dataset's usage terms as an ODRL 2.2 offer (JSON-LD), linked from its DCAT odrl:hasPolicy",
    responses={200: {"content": {JSONLD: {}}}},
)
def dataset_odrl(dataset_id: str, session: SessionDep, links: LinksDep, _: ReaderDep) -> Response:
    offer = service.dataset_odrl_offer(session, dataset_id=dataset_id, links=links)
    return Response(json.dumps(offer, ensure_ascii=False), media_type=JSONLD)


@router.get(
    "/grants/{grant_id}/odrl",
    tags=["standards"],
    summary="One grant as an ODRL 2.2 agreement (JSON-LD), to whoever may read the grant",
    responses={200: {"content": {JSONLD: {}}}},
)
def grant_odrl(
    grant_id: str, session: SessionDep, audit: AuditDep, links: LinksDep, caller: ReaderDep
) -> Response:
    agreement = service.grant_odrl_agreement(
        session, actor=caller, grant_id=grant_id, links=links, audit=audit
    )
    return Response(json.dumps(agreement, ensure_ascii=False), media_type=JSONLD)
