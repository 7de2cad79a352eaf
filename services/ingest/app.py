"""The ingest service's app: ``create_app(settings)`` builds it; its lifespan owns the read model
of ``platform.catalog``, the raw-topic worker and the idempotency-key cleanup."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI

from services.common import topics
from services.common.app import (
    InfrastructureProvider,
    Runtime,
    ServiceLifespan,
    ServiceSpec,
    build_service_app,
)
from services.common.background import Periodic, Runs
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.ingest.api import router
from services.ingest.metrics import IngestMetrics
from services.ingest.projection import CatalogProjection
from services.ingest.raw import RawIngestSupervisor
from services.ingest.runtime import IngestRuntime
from services.ingest.service import Ingestor
from services.ingest.settings import IngestSettings
from services.ingest.topic_registry import TopicRegistry

NAME = "ingest"
DESCRIPTION = (
    "Contract-checked streams in: records over HTTP or from `raw.<dataset>`, validated against the "
    "dataset's active contract and written to `ds.<dataset>` as CloudEvents, or to `dlq.<dataset>` "
    "with the reason."
)

log = logging.getLogger(__name__)


def _purge_idempotency_keys(ingestor: Ingestor) -> None:
    """Delete idempotency keys past their time (now, then every cleanup interval)."""
    try:
        purged = ingestor.purge_idempotency_keys()
        if purged:
            log.info("purged %d expired idempotency keys", purged)
    except Exception:
        log.exception("purging idempotency keys failed; trying again later")


def _lifespan(ingest_settings: IngestSettings) -> ServiceLifespan:
    @asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[IngestRuntime]:
        metrics = IngestMetrics.of(runtime.metrics)
        catalog = CatalogProjection()
        read_model = ReadModel(runtime.bus, topics.CATALOG_SPEC, catalog, name=f"{NAME}-catalog")
        # A contract version arriving live is compiled at once, not by the first batch that needs it.
        read_model.on_change(lambda message: catalog.warm(message) if read_model.caught_up else None)
        producer = runtime.bus.producer(client_id=f"citybase-{NAME}")
        metrics.watch_buffer(producer.buffer_fill)
        ingestor = Ingestor(
            catalog=catalog,
            producer=producer,
            topics=TopicRegistry(runtime.bus, ingest_settings),
            sessions=runtime.sessions,
            metrics=metrics,
            settings=ingest_settings,
        )
        service = IngestRuntime(
            keyring=catalog.keyring, catalog=catalog, read_model=read_model, ingestor=ingestor
        )
        # ReadModel.start returns at once and keeps trying while the bus is down; readiness says so.
        runtime.add_readiness_check("catalog", read_model.readiness)
        supervisor: RawIngestSupervisor | None = None
        if ingest_settings.raw_enabled:
            supervisor = RawIngestSupervisor(
                runtime.bus, ingestor, catalog, ingest_settings, caught_up=lambda: read_model.caught_up
            )
            service.raw = supervisor
            runtime.add_readiness_check("raw", supervisor.readiness)
        cleanup = Periodic(
            "ingest-idempotency-cleanup",
            ingest_settings.idempotency_cleanup_interval_s,
            lambda: _purge_idempotency_keys(ingestor),
            immediately=True,
        )
        # Stopped in reverse: the cleanup, the raw worker, then the read model.
        runs = Runs(read_model, *([supervisor] if supervisor is not None else []), cleanup)
        runs.start()
        try:
            yield service
        finally:
            await anyio.to_thread.run_sync(runs.stop)

    return lifespan


def create_app(
    settings: Settings,
    *,
    infrastructure: InfrastructureProvider | None = None,
    ingest_settings: IngestSettings | None = None,
) -> FastAPI:
    spec = ServiceSpec(
        name=NAME,
        title="citybase ingest",
        description=DESCRIPTION,
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        lifespan=_lifespan(ingest_settings or IngestSettings()),
        openapi_tags=[{"name": "records", "description": "Publish records to a dataset."}],
        scan_json_bodies=False,
    )
    return build_service_app(spec, settings, infrastructure=infrastructure)
