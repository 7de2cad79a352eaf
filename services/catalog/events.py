"""How the catalog announces its changes: every write adds its event to the outbox.

A change and its event on ``platform.catalog`` are committed in one transaction (the caller's
unit of work), so no event announces a row that was rolled back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from services.common import catalog_events
from services.common.outbox import Outbox


class CatalogEvents:
    """Announces catalog changes through the outbox, keyed by entity."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def publish(
        self, session: Session, event_type: str, entity_id: str, state: BaseModel | dict[str, Any]
    ) -> None:
        payload = state if isinstance(state, dict) else state.model_dump(mode="json")
        self._outbox.add(session, catalog_events.catalog_record(event_type, entity_id, payload))
