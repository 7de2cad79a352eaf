"""The ingest service's app: ``create_app(settings)`` builds it; its lifespan owns the read model
of ``platform.catalog``, the raw-topic worker and the idempotency-key cleanup."""

from __future__ import annotations

import asyncio
import contextlib
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


async def _purge_idempotency_keys(ingestor: Ingestor) -> None:
    """Delete idempotency keys past their time, now and then every cleanup interval."""
    while True:
        try:
            purged = await anyio.to_thread.run_sync(ingestor.purge_idempotency_keys)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.exception("purging idempotency keys failed; trying again later")
        await asyncio.sleep(ingestor.settings.idempotency_cleanup_interval_s)


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
        read_model.start()
        if supervisor is not None:
            supervisor.start()
        cleanup = asyncio.create_task(_purge_idempotency_keys(ingestor), name="ingest-idempotency-cleanup")
        try:
            yield service
        finally:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup
            if supervisor is not None:
                await anyio.to_thread.run_sync(supervisor.stop)
            await anyio.to_thread.run_sync(read_model.stop)

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
