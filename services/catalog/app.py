"""The catalog service's app: ``create_app(settings)`` builds it, its lifespan owns its workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI

from services.catalog.access.api import router as access_router
from services.catalog.access.grants import issue_missing_hash_keys
from services.catalog.access.settings import AccessSettings
from services.catalog.api import router
from services.catalog.audit.api import router as audit_router
from services.catalog.audit.deliveries import delivery_audit_worker
from services.catalog.audit.refusals import RefusalRecorder, RefusalWindows
from services.catalog.audit.service import AuditCheckpointer, append
from services.catalog.evaluation.api import router as evaluation_router
from services.catalog.events import CatalogEvents
from services.catalog.models import outbox
from services.catalog.needs.api import router as needs_router
from services.catalog.needs.settings import NeedsSettings
from services.catalog.needs.webhooks import NeedWebhookPusher
from services.catalog.programme.api import router as programme_router
from services.catalog.runtime import CatalogRuntime
from services.catalog.scores.service import quality_scores_worker
from services.common import db, topics
from services.common.app import (
    InfrastructureProvider,
    Runtime,
    ServiceLifespan,
    ServiceSpec,
    build_service_app,
)
from services.common.auth import KeyRing
from services.common.background import Runs, WhenBusAnswers
from services.common.outbox import Outbox, OutboxRelay
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.common.webhooks import WebhookTargets

NAME = "catalog"
log = logging.getLogger(__name__)

READ_THREADS = 40
"""Reads of datasets at once, as many as the worker threads they shared before (anyio's 40);
the database pool still bounds how many query at a time."""


def _lifespan(configured: NeedsSettings | None) -> ServiceLifespan:
    """The catalog's lifespan, with the needs board's settings read when the app was built (or,
    without, when it starts)."""

    @asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[CatalogRuntime]:
        async with _catalog(runtime, configured or NeedsSettings()) as service:
            yield service

    return lifespan


@asynccontextmanager
async def _catalog(runtime: Runtime, needs_settings: NeedsSettings) -> AsyncIterator[CatalogRuntime]:
    box = Outbox(outbox)
    relay = OutboxRelay(box, runtime.engine, runtime.bus, name=NAME)
    keyring = KeyRing()
    # The catalog authenticates like every other service: from its read model of platform.catalog.
    keys = ReadModel(runtime.bus, topics.CATALOG_SPEC, keyring, name=f"{NAME}-keys")
    checkpoints = AuditCheckpointer(
        runtime.engine, box, interval_s=runtime.settings.audit_checkpoint_interval_s
    )
    refusals = RefusalRecorder(
        runtime.engine, RefusalWindows(runtime.settings.audit_refusal_window_s), append
    )
    # Threads start as reads need them: nothing runs until the first request.
    reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix=f"{NAME}-reads")
    service = CatalogRuntime(
        keyring=keyring,
        events=CatalogEvents(box),
        outbox=relay,
        audit_checkpoints=checkpoints,
        audit_refusals=refusals,
        reads=reads,
        access_settings=AccessSettings(),
        needs_settings=needs_settings,
        need_webhook_targets=WebhookTargets.of(needs_settings),
    )

    def ensure_topics() -> None:
        admin = runtime.bus.admin()
        for topic in topics.PLATFORM_SPECS:
            admin.ensure_topic(topic, timeout_s=5.0)

    # The platform topics first (platform.catalog as its spec says, compacted): the relay
    # publishes to them as soon as it starts.
    on_bus = WhenBusAnswers(NAME, ensure_topics, [relay])
    runtime.add_readiness_check("outbox", lambda: on_bus.readiness() or relay.last_error)
    runtime.add_readiness_check("keys", keys.readiness)
    deliveries = delivery_audit_worker(runtime.bus, runtime.sessions)
    runtime.add_readiness_check("audit-deliveries", deliveries.readiness)
    scores = quality_scores_worker(runtime.bus, runtime.sessions)
    runtime.add_readiness_check("quality-scores", scores.readiness)
    try:
        with db.unit_of_work(runtime.sessions) as session:
            keyed = issue_missing_hash_keys(session, events=CatalogEvents(box))
        if keyed:
            log.info("gave %d grants a hash key of their own and announced them", len(keyed))
    except Exception as error:  # the database may be down at start: readiness says so; next start keys them
        log.warning("could not give grants made before hash keys theirs yet: %s", error)
    if needs_settings.webhook_enabled:
        service.need_webhooks = NeedWebhookPusher(
            runtime.sessions, needs_settings, targets=service.need_webhook_targets
        )
        runtime.add_readiness_check("need-webhooks", service.need_webhooks.readiness)
    # Stopped in reverse: the pusher, the workers, the audit timers, the key read model, the relay last.
    runs = Runs(
        on_bus,
        keys,
        checkpoints,
        refusals,
        deliveries,
        scores,
        *([service.need_webhooks] if service.need_webhooks is not None else []),
    )
    runs.start()
    try:
        yield service
    finally:
        runs.stop()
        reads.shutdown(wait=True, cancel_futures=True)


SPEC = ServiceSpec(
    name=NAME,
    title="citybase catalog",
    description=(
        "The system of record of the city's data: datasets, ODCS contracts and their versions, "
        "principals and API keys, scenarios, grants and the audit trail. "
        "Every change is published on `platform.catalog`."
    ),
    routers=[router, access_router, needs_router, programme_router, evaluation_router, audit_router],
    migrations=Path(__file__).parent / "migrations",
    lifespan=_lifespan(None),
    openapi_tags=[
        {"name": "datasets", "description": "Register, describe, search the city's datasets."},
        {"name": "contracts", "description": "ODCS v3 contract versions and compatibility checks."},
        {"name": "departments", "description": "Publishers: commissions, bureaus, districts."},
        {"name": "domains", "description": "The city's fields of data."},
        {"name": "principals", "description": "Who calls the platform, and their API keys."},
        {
            "name": "scenarios",
            "description": "The applications that consume data, each a principal with keys.",
        },
        {
            "name": "access-requests",
            "description": "A scenario asks for fields of a dataset for a purpose; the owning department decides.",
        },
        {
            "name": "grants",
            "description": "What a scenario may receive: fields, masking, row filter, expiry, quota.",
        },
        {
            "name": "needs",
            "description": "What scenario builders, departments and residents want of the city's data, "
            "and the owning departments' answers: offer, commit to publish, decline.",
        },
        {
            "name": "programme",
            "description": "The scenario programme: opportunity lists (机会清单), applicants, proposals, selection.",
        },
        {
            "name": "evaluation",
            "description": "Scenario evaluation: objectives, reported outcomes, evaluators' verdicts, "
            "and the verification of a saved evaluation report against the audit trail.",
        },
        {
            "name": "audit",
            "description": "The append-only, hash-chained record of every request, decision and change.",
        },
    ],
)


def create_app(
    settings: Settings,
    *,
    infrastructure: InfrastructureProvider | None = None,
    needs_settings: NeedsSettings | None = None,
) -> FastAPI:
    """The catalog app; the needs board's settings are read from the environment now, unless given."""
    spec = replace(SPEC, lifespan=_lifespan(needs_settings or NeedsSettings()))
    return build_service_app(spec, settings, infrastructure=infrastructure)
