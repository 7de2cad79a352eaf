"""The feeds service's app: ``create_app(settings)`` builds it; its lifespan owns the read model of
``platform.catalog``, the outbox relay, the long-poll reader pool, the webhook pusher and the lag
gauges."""

from __future__ import annotations

import gc
import logging
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
from services.common.background import Periodic, Runs, WhenBusAnswers
from services.common.outbox import Outbox, OutboxRelay
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.common.webhooks import Resolver, WebhookTargets, system_resolver
from services.feeds.api import router
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import Subscription, outbox
from services.feeds.projection import FeedsCatalog
from services.feeds.readers import ReaderPool
from services.feeds.runtime import FeedsRuntime
from services.feeds.service import Feeds
from services.feeds.settings import FeedsSettings
from services.feeds.webhooks import WebhookPusher

NAME = "feeds"
DESCRIPTION = (
    "Authorized, masked delivery out: scenario builders subscribe to granted datasets over long-poll, "
    "Server-Sent Events or webhooks; every batch checks the grant, applies its masking and is metered. "
    "Open datasets also give anyone a bounded snapshot of their latest records, without a key."
)

log = logging.getLogger(__name__)


def refresh_lag(runtime: Runtime, feeds: Feeds) -> None:
    """Set each dataset's lag gauge: the lag of its subscriptions, summed, counted by the function
    the subscription's API view counts it with (:meth:`~services.common.bus.Admin.lag` of its
    group, see :func:`services.feeds.subscriptions.subscription_detail`). A dataset whose last
    subscription went away shows 0, not the figure of its last refresh."""
    with runtime.sessions() as session:
        rows = session.execute(
            sa.select(Subscription.dataset_id, Subscription.group_id, Subscription.topic)
        ).all()
    totals: dict[str, int] = defaultdict(int)
    admin = runtime.bus.admin()
    for dataset_id, group_id, topic in rows:
        totals[dataset_id] += sum(admin.lag(group_id, topic).values())
    gauge = feeds.metrics.lag
    for dataset_id in feeds.metrics.lag_datasets - set(totals):
        gauge.labels(dataset_id).set(0)
    shown = {dataset_id for dataset_id in totals if feeds.catalog.dataset(dataset_id) is not None}
    for dataset_id in shown:
        gauge.labels(dataset_id).set(totals[dataset_id])
    feeds.metrics.lag_datasets |= shown


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

        def refresh_lag_quietly() -> None:
            try:
                refresh_lag(runtime, feeds)
            except Exception:
                log.warning("lag refresh failed", exc_info=True)

        lag = Periodic("feeds-lag", feeds_settings.lag_interval_s, refresh_lag_quietly)
        # A service must come up while Kafka is still down and say so in /readyz.
        on_bus = WhenBusAnswers(
            NAME, lambda: runtime.bus.admin().ensure_topic(topics.USAGE_SPEC), [read_model, lag]
        )
        pusher = WebhookPusher(feeds) if feeds_settings.webhook_enabled else None
        service = FeedsRuntime(
            keyring=catalog.keyring,
            catalog=catalog,
            read_model=read_model,
            feeds=feeds,
            outbox=relay,
            pool=pool,
        )

        def catalog_readiness() -> str | None:
            if on_bus.last_error:
                return f"cannot read {read_model.topic}: {on_bus.last_error}"
            return read_model.readiness()

        runtime.add_readiness_check("catalog", catalog_readiness)
        runtime.add_readiness_check("outbox", lambda: relay.last_error)
        if pusher is not None:
            service.webhooks = pusher
        # Stopped in reverse: the pusher, the streams' shared readers, the readers, the relay,
        # then the read model.
        runs = Runs(on_bus, relay, pool, feeds.fanout, *([pusher] if pusher is not None else []))
        runs.start()
        # What exists once the service is up (modules, classes, functions, the app: most of the
        # process's objects) lives as long as the process: frozen, the collector's full passes no
        # longer walk it. Delivery makes objects by the hundred thousand (every record read is a
        # few), and on the feeds bench full passes over the rest took a tenth of a long-poll.
        gc.freeze()
        try:
            yield service
        finally:
            gc.unfreeze()
            await anyio.to_thread.run_sync(runs.stop)

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
            {"name": "subscriptions", "description": "Subscribe to granted datasets and receive them."},
            {
                "name": "open data",
                "description": "Download the latest records of an open dataset, without a key.",
            },
        ],
    )
    return build_service_app(spec, settings, infrastructure=infrastructure)
