"""What the feeds service builds in its lifespan, handed to its routes by ``FeedsRuntimeDep``."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.app import ServiceRuntime
from services.common.outbox import OutboxRelay
from services.common.readmodel import ReadModel
from services.feeds.projection import FeedsCatalog
from services.feeds.readers import ReaderPool
from services.feeds.service import Feeds
from services.feeds.webhooks import WebhookPusher


@dataclass(kw_only=True)
class FeedsRuntime(ServiceRuntime):
    catalog: FeedsCatalog
    """Datasets and grants, projected from ``platform.catalog``."""
    read_model: ReadModel
    """Keeps :attr:`catalog` (and the key ring) in step with ``platform.catalog``."""
    feeds: Feeds
    outbox: OutboxRelay
    """Publishes the metering of deliveries to ``platform.usage``."""
    pool: ReaderPool
    """The long-poll readers, one per subscription."""
    webhooks: WebhookPusher | None = None
    """The webhook pusher, when webhooks are on."""
