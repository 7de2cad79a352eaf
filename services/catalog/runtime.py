"""What the catalog service builds in its lifespan, handed to its routes by ``CatalogRuntimeDep``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from services.catalog.access.settings import AccessSettings
from services.catalog.audit.refusals import RefusalRecorder
from services.catalog.audit.service import AuditCheckpointer
from services.catalog.events import CatalogEvents
from services.catalog.needs.settings import NeedsSettings
from services.catalog.needs.webhooks import NeedWebhookPusher
from services.common.app import ServiceRuntime
from services.common.outbox import OutboxRelay
from services.common.public_reads import PublicRateLimit
from services.common.webhooks import WebhookTargets


@dataclass(kw_only=True)
class CatalogRuntime(ServiceRuntime):
    events: CatalogEvents
    """Where the catalog's changes go: its outbox, relayed to ``platform.catalog``."""
    outbox: OutboxRelay
    audit_checkpoints: AuditCheckpointer
    audit_refusals: RefusalRecorder
    reads: ThreadPoolExecutor
    """The threads the busiest reads (get a dataset, search) run their unit of work on."""
    access_settings: AccessSettings = field(default_factory=AccessSettings)
    public_reads: PublicRateLimit = field(default_factory=PublicRateLimit)
    """How often a client address may read the public catalog without a key."""
    needs_settings: NeedsSettings = field(default_factory=NeedsSettings)
    need_webhook_targets: WebhookTargets = field(default_factory=WebhookTargets)
    """Where a need's follower may point its webhook (the needs settings' address policy)."""
    need_webhooks: NeedWebhookPusher | None = None
    """The pusher of need notices to followers' webhooks, when webhooks are on."""
