"""The quality service's app: ``create_app(settings)`` builds it; its lifespan owns the read model
of ``platform.catalog``, the stream worker on ``ds.*`` / ``dlq.*``, the freshness timer, the
metering worker on ``platform.usage`` and the outbox relay to ``platform.quality``."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI

from services.common import db, topics, usage_events
from services.common.app import (
    InfrastructureProvider,
    Runtime,
    ServiceLifespan,
    ServiceSpec,
    build_service_app,
)
from services.common.bus import BusError
from services.common.outbox import Outbox, OutboxRelay
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.common.worker import ConsumerWorker
from services.quality import utilization
from services.quality.api import router
from services.quality.consumer import StreamWorker, Timer, UsageHandler
from services.quality.expectations import GreatExpectations
from services.quality.metrics import QualityMetrics
from services.quality.models import outbox
from services.quality.projection import QualityCatalog
from services.quality.runtime import QualityRuntime
from services.quality.scorer import Scorer
from services.quality.settings import QualitySettings
from services.quality.store import QualityService

NAME = "quality"
DESCRIPTION = (
    "Quality and utilization scores per dataset, department and scenario, from windows of the live "
    "stream (`ds.*`, `dlq.*`, scored with the contract's Great Expectations suite) and from delivery "
    "metering (`platform.usage`). Score changes and SLA breaches go to `platform.quality`."
)

log = logging.getLogger(__name__)


class _WhenBusAnswers:
    """Runs ``start`` as soon as the bus answers, without holding up the app's start."""

    def __init__(self, name: str, start: Callable[[], None]) -> None:
        self._start = start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-start", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._start()
                self.last_error = None
                return
            except BusError as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("cannot reach the bus yet: %s", error)
                self._stop.wait(1.0)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)


def refresh_utilization_gauges(runtime: Runtime, catalog: QualityCatalog, settings: QualitySettings) -> None:
    metrics = QualityMetrics.of(runtime.metrics)
    now = datetime.now(UTC)
    with db.unit_of_work(runtime.sessions) as session:
        summary = utilization.overview(session, catalog, settings, now)
        findings = utilization.idle(session, catalog, now, settings.idle_days)
    for entry in summary["datasets"]:
        dataset = entry["dataset_id"]
        metrics.utilization.labels(dataset).set(entry["score"])
        metrics.active_grants.labels(dataset).set(entry["active_grants"])
        metrics.active_subscribers.labels(dataset).set(entry["active_subscribers"])
        metrics.delivered_records.labels(dataset).set(entry["records_last_day"])
    if summary["penetration_rate"] is not None:
        metrics.penetration.set(summary["penetration_rate"])
    for kind in ("idle_scenarios", "never_delivered_datasets", "unused_grants"):
        metrics.idle.labels(kind).set(len(findings[kind]))


def _lifespan(quality_settings: QualitySettings) -> ServiceLifespan:
    @asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[QualityRuntime]:
        metrics = QualityMetrics.of(runtime.metrics)
        box = Outbox(outbox)
        relay = OutboxRelay(box, runtime.engine, runtime.bus, name=NAME)
        catalog = QualityCatalog()
        read_model = ReadModel(runtime.bus, topics.CATALOG_SPEC, catalog, name=f"{NAME}-catalog")
        scorer = Scorer(catalog, GreatExpectations(), quality_settings)
        quality = QualityService(
            catalog=catalog,
            scorer=scorer,
            sessions=runtime.sessions,
            outbox=box,
            settings=quality_settings,
            metrics=metrics,
        )
        stream = StreamWorker(
            runtime.bus, quality, catalog, quality_settings, metrics, caught_up=lambda: read_model.caught_up
        )
        usage = ConsumerWorker(
            runtime.bus,
            name="quality-usage",
            group_id=quality_settings.usage_group_id,
            topics=[usage_events.TOPIC],
            handler=UsageHandler(runtime.sessions),
        )

        def freshness_tick() -> None:
            if read_model.caught_up:
                quality.check_freshness()

        def gauges_tick() -> None:
            if read_model.caught_up:
                refresh_utilization_gauges(runtime, catalog, quality_settings)

        freshness = Timer("quality-freshness", quality_settings.sla_check_interval_s, freshness_tick)
        gauges = Timer("quality-utilization", quality_settings.utilization_refresh_s, gauges_tick)

        def start_on_bus() -> None:
            admin = runtime.bus.admin()
            admin.ensure_topic(topics.QUALITY_SPEC)
            admin.ensure_topic(topics.USAGE_SPEC)
            read_model.start()
            stream.start()
            usage.start()

        starter = _WhenBusAnswers(NAME, start_on_bus)
        service = QualityRuntime(
            keyring=catalog.keyring,
            catalog=catalog,
            read_model=read_model,
            quality=quality,
            stream=stream,
            outbox=relay,
            settings=quality_settings,
        )

        def catalog_readiness() -> str | None:
            if starter.last_error:
                return f"cannot reach the bus: {starter.last_error}"
            return read_model.readiness()

        runtime.add_readiness_check("outbox", lambda: relay.last_error)
        runtime.add_readiness_check("catalog", catalog_readiness)
        runtime.add_readiness_check("stream", stream.readiness)
        relay.start()
        starter.start()
        freshness.start()
        gauges.start()
        try:
            yield service
        finally:
            for stoppable in (gauges, freshness, starter, usage, stream, read_model, relay):
                await anyio.to_thread.run_sync(stoppable.stop)

    return lifespan


def create_app(
    settings: Settings,
    *,
    infrastructure: InfrastructureProvider | None = None,
    quality_settings: QualitySettings | None = None,
) -> FastAPI:
    spec = ServiceSpec(
        name=NAME,
        title="citybase quality",
        description=DESCRIPTION,
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        lifespan=_lifespan(quality_settings or QualitySettings()),
        openapi_tags=[
            {"name": "quality", "description": "Scores per dataset and dimension, history, rankings."},
            {"name": "utilization", "description": "Use of the data: grants, subscribers, deliveries."},
            {"name": "scorecards", "description": "Per department and scenario, as JSON, CSV or HTML."},
        ],
    )
    return build_service_app(spec, settings, infrastructure=infrastructure)
