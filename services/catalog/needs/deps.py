"""FastAPI dependencies of the needs board, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.catalog.deps import CatalogRuntimeDep
from services.catalog.needs.settings import NeedsSettings
from services.common.webhooks import WebhookTargets


def get_needs_settings(catalog: CatalogRuntimeDep) -> NeedsSettings:
    return catalog.needs_settings


NeedsSettingsDep = Annotated[NeedsSettings, Depends(get_needs_settings)]


def get_need_webhook_targets(catalog: CatalogRuntimeDep) -> WebhookTargets:
    return catalog.need_webhook_targets


NeedWebhookTargetsDep = Annotated[WebhookTargets, Depends(get_need_webhook_targets)]


def client_address(request: Request, settings: NeedsSettingsDep) -> str:
    """The address the resident form counts posts by: the peer, or the last address it forwards
    when the peer is a trusted proxy (the console's form posts on the resident's behalf)."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for", "")
    if peer in settings.trusted_proxies and forwarded.strip():
        return forwarded.split(",")[-1].strip()[:100]
    return peer


ClientAddressDep = Annotated[str, Depends(client_address)]
