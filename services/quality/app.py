"""The quality service's app: ``create_app(settings)`` builds it; its lifespan owns the read model
of ``platform.catalog``, the stream worker on ``ds.*`` / ``dlq.*``, the freshness timer, the
metering worker on ``platform.usage`` and the outbox relay to ``platform.quality``."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from services.common.background import Periodic, Runs, WhenBusAnswers
from services.common.outbox import Outbox, OutboxRelay
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.common.worker import ConsumerWorker
from services.quality import indicators, utilization
from services.quality.api import router
from services.quality.consumer import StreamWorker, UsageHandler
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


def refresh_utilization_gauges(
    runtime: Runtime,
    catalog: QualityCatalog,
    settings: QualitySettings,
    announcer: utilization.UtilizationAnnouncer | None = None,
) -> None:
    """The utilization gauges, and (with ``announcer``) the changed scores on ``platform.quality``:
    one computation for the metrics and for what the catalog shows."""
    metrics = QualityMetrics.of(runtime.metrics)
    now = datetime.now(UTC)
    with db.unit_of_work(runtime.sessions) as session:
        summary = utilization.overview(session, catalog, settings, now)
        findings = utilization.idle(session, catalog, now, settings.idle_days)
        figures = indicators.current_city_indicators(session, catalog, now)
        if announcer is not None:
            announcer.announce(session, summary["datasets"], now)
    metrics.show_indicators(figures)
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

        announcer = utilization.UtilizationAnnouncer(box)

        def gauges_tick() -> None:
            if read_model.caught_up:
                refresh_utilization_gauges(runtime, catalog, quality_settings, announcer)

        freshness = Periodic("quality-freshness", quality_settings.sla_check_interval_s, freshness_tick)
        gauges = Periodic("quality-utilization", quality_settings.utilization_refresh_s, gauges_tick)

        def ensure_topics() -> None:
            admin = runtime.bus.admin()
            admin.ensure_topic(topics.QUALITY_SPEC)
            admin.ensure_topic(topics.USAGE_SPEC)

        on_bus = WhenBusAnswers(NAME, ensure_topics, [read_model, stream, usage])
        service = QualityRuntime(
            keyring=catalog.keyring,
            catalog=catalog,
            read_model=read_model,
            quality=quality,
            stream=stream,
            outbox=relay,
            settings=quality_settings,
        )

        runtime.add_readiness_check("outbox", lambda: relay.last_error)
        runtime.add_readiness_check("catalog", lambda: on_bus.readiness() or read_model.readiness())
        runtime.add_readiness_check("stream", stream.readiness)
        # Stopped in reverse: the timers, then the consumers, the read model, last the relay.
        runs = Runs(relay, on_bus, freshness, gauges)
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
            {
                "name": "evaluation",
                "description": "A scenario's objectives: target against actual, with evidence.",
            },
            {"name": "indicators", "description": "Penetration, quality and value conversion, over time."},
        ],
    )
    return build_service_app(spec, settings, infrastructure=infrastructure)
