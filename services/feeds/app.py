"""The feeds service's app: ``create_app(settings)`` builds it; its lifespan owns the read model of
``platform.catalog``, the outbox relay, the long-poll reader pool, the webhook pusher and the lag
gauges."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
import sqlalchemy as sa
from fastapi import FastAPI

from services.common import topics
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
from services.feeds.api import router
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import Subscription, outbox
from services.feeds.projection import FeedsCatalog
from services.feeds.readers import ReaderPool
from services.feeds.runtime import FeedsRuntime
from services.feeds.service import Feeds
from services.feeds.settings import FeedsSettings
from services.feeds.webhook_targets import Resolver, WebhookTargets, system_resolver
from services.feeds.webhooks import WebhookPusher

NAME = "feeds"
DESCRIPTION = (
    "Authorized, masked delivery out: scenario builders subscribe to granted datasets over long-poll, "
    "Server-Sent Events or webhooks; every batch checks the grant, applies its masking and is metered."
)

log = logging.getLogger(__name__)


class _Background:
    """Starts what needs the bus (the read model, the usage topic) once it answers, and refreshes
    the lag gauges; a service must come up while Kafka is still down and say so in /readyz."""

    def __init__(
        self, runtime: Runtime, read_model: ReadModel, feeds: Feeds, settings: FeedsSettings
    ) -> None:
        self._runtime = runtime
        self._read_model = read_model
        self._feeds = feeds
        self._settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeds-background", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._runtime.bus.admin().ensure_topic(topics.USAGE_SPEC)
                self._read_model.start()
                self.last_error = None
                break
            except BusError as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("cannot reach the bus yet: %s", error)
                self._stop.wait(1.0)
        while not self._stop.wait(self._settings.lag_interval_s):
            try:
                self.refresh_lag()
            except Exception:
                log.warning("lag refresh failed", exc_info=True)

    def refresh_lag(self) -> None:
        with self._runtime.sessions() as session:
            rows = session.execute(
                sa.select(Subscription.dataset_id, Subscription.group_id, Subscription.topic)
            ).all()
        totals: dict[str, int] = defaultdict(int)
        admin = self._runtime.bus.admin()
        for dataset_id, group_id, topic in rows:
            totals[dataset_id] += sum(admin.lag(group_id, topic).values())
        gauge = self._feeds.metrics.lag
        for dataset_id, total in totals.items():
            if self._feeds.catalog.dataset(dataset_id) is not None:
                gauge.labels(dataset_id).set(total)

    def readiness(self) -> str | None:
        if self.last_error:
            return f"cannot read {self._read_model.topic}: {self.last_error}"
        return self._read_model.readiness()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._read_model.stop(timeout_s)
        self._thread.join(timeout_s)


def _lifespan(configured: FeedsSettings, webhook_resolver: Resolver) -> ServiceLifespan:
    @asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[FeedsRuntime]:
        feeds_settings = configured.with_secret(runtime.settings)  # MissingSecret: feeds do not start
        metrics = FeedsMetrics.of(runtime.metrics)
        catalog = FeedsCatalog()
        read_model = ReadModel(runtime.bus, topics.CATALOG_SPEC, catalog, name=f"{NAME}-catalog")
        events = Outbox(outbox)
        relay = OutboxRelay(events, runtime.engine, runtime.bus, name=NAME)
        pool = ReaderPool(
            runtime.bus, max_readers=feeds_settings.max_readers, idle_s=feeds_settings.reader_idle_s
        )
        feeds = Feeds(
            catalog=catalog,
            bus=runtime.bus,
            sessions=runtime.sessions,
            outbox=events,
            pool=pool,
            metrics=metrics,
            settings=feeds_settings,
            webhook_targets=WebhookTargets.of(feeds_settings, webhook_resolver),
        )
        metrics.readers.labels("poll").set_function(lambda: len(pool))
        background = _Background(runtime, read_model, feeds, feeds_settings)
        pusher = WebhookPusher(feeds) if feeds_settings.webhook_enabled else None
        service = FeedsRuntime(
            keyring=catalog.keyring,
            catalog=catalog,
            read_model=read_model,
            feeds=feeds,
            outbox=relay,
            pool=pool,
        )
        runtime.add_readiness_check("catalog", background.readiness)
        runtime.add_readiness_check("outbox", lambda: relay.last_error)
        background.start()
        relay.start()
        pool.start()
        if pusher is not None:
            service.webhooks = pusher
            pusher.start()
        try:
            yield service
        finally:
            if pusher is not None:
                await anyio.to_thread.run_sync(pusher.stop)
            await anyio.to_thread.run_sync(pool.stop)
            relay.stop()
            await anyio.to_thread.run_sync(background.stop)

    return lifespan


def create_app(
    settings: Settings,
    *,
    infrastructure: InfrastructureProvider | None = None,
    feeds_settings: FeedsSettings | None = None,
    webhook_resolver: Resolver = system_resolver,
) -> FastAPI:
    """The feeds app. ``webhook_resolver`` resolves webhook hosts (the system's DNS; tests hand
    their own, so that the address checks are tested without a packet leaving the machine)."""
    spec = ServiceSpec(
        name=NAME,
        title="citybase feeds",
        description=DESCRIPTION,
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        lifespan=_lifespan(feeds_settings or FeedsSettings(), webhook_resolver),
        openapi_tags=[
            {"name": "subscriptions", "description": "Subscribe to granted datasets and receive them."}
        ],
    )
    return build_service_app(spec, settings, infrastructure=infrastructure)
