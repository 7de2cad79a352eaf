"""HTTP routes of datasets: search, register, read, change. Each parses the request, calls one
service function and answers."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel
from sqlalchemy.orm import Session

from services.catalog.datasets import service
from services.catalog.deps import (
    AuditDep,
    CatalogRuntimeDep,
    EventsDep,
    PublicReaderDep,
    PublisherDep,
    SessionDep,
)
from services.catalog.runtime import CatalogRuntime
from services.catalog.schemas import (
    Classification,
    DatasetCreate,
    DatasetDetail,
    DatasetPage,
    DatasetRead,
    DatasetStatus,
    DatasetUpdate,
    QualityBand,
)
from services.catalog.search import service as search
from services.common import db
from services.common.app import Runtime
from services.common.deps import RuntimeDep

router = APIRouter(prefix="/v1")
T = TypeVar("T")


async def _read(runtime: Runtime, catalog: CatalogRuntime, work: Callable[[Session], T]) -> T:
    """Run a read in its own autocommit unit of work on one of the catalog's read threads.

    The busiest reads (get a dataset, search) take this path rather than ``SessionDep`` and a
    sync route, which would cross to a worker thread three times (open the session, the route,
    commit) where one is enough; and they cross through the event loop's executor call, which
    costs less per read than Starlette's ``run_in_threadpool`` (anyio's capacity limiter, cancel
    scope and worker hand-off on every call).
    """

    def unit_of_work() -> T:
        with db.unit_of_work(runtime.sessions) as session:
            # Autocommit: a read needs no transaction of its own, and BEGIN and COMMIT would be
            # two more round trips to the database than the query itself.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return work(session)

    # The request's context (its answer's language) goes with the read, as run_in_threadpool's does.
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(catalog.reads, context.run, unit_of_work)


def _json(model: BaseModel) -> Response:
    """A response model serialised once; FastAPI would validate it again against ``response_model``."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.get("/datasets", response_model=DatasetPage, tags=["datasets"])
async def search_datasets(
    runtime: RuntimeDep,
    catalog: CatalogRuntimeDep,
    reader: PublicReaderDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Full text over title, description, tags, fields")
    ] = None,
    domain: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    classification: Classification | None = None,
    status_: Annotated[DatasetStatus | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    quality_band: QualityBand | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    facets: Annotated[
        bool,
        Query(
            description="Also count the query's datasets per domain, department, classification, "
            "status, quality band and tag"
        ),
    ] = False,
) -> Response:
    """Without a key, the published datasets whose record is public; with one, every dataset."""
    filters = search.DatasetFilter(
        q=q,
        domain=domain,
        department=department,
        classification=classification.value if classification else None,
        status=status_.value if status_ else None,
        tag=tag,
        quality_band=quality_band.value if quality_band else None,
        public_only=reader is None,
    )
    return _json(
        await _read(
            runtime,
            catalog,
            lambda session: search.search_page(
                session, filters=filters, limit=limit, cursor=cursor, facets=facets
            ),
        )
    )


@router.post("/datasets", response_model=DatasetRead, status_code=status.HTTP_201_CREATED, tags=["datasets"])
def create_dataset(
    payload: DatasetCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, principal: PublisherDep
) -> DatasetRead:
    return service.create_dataset(session, events=events, audit=auditor, actor=principal, payload=payload)


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, tags=["datasets"])
async def get_dataset(
    dataset_id: str, runtime: RuntimeDep, catalog: CatalogRuntimeDep, reader: PublicReaderDep
) -> Response:
    """Without a key, only a published dataset whose record is public (any other id is a 401)."""
    read = await _read(
        runtime,
        catalog,
        lambda session: service.dataset_detail(session, dataset_id, public_only=reader is None),
    )
    return _json(read)


@router.patch("/datasets/{dataset_id}", response_model=DatasetRead, tags=["datasets"])
def update_dataset(
    dataset_id: str,
    payload: DatasetUpdate,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    principal: PublisherDep,
) -> DatasetRead:
    return service.update_dataset(
        session, events=events, audit=auditor, actor=principal, dataset_id=dataset_id, payload=payload
    )
