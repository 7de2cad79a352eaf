"""Every batch feeds delivers goes into the audit trail, from its usage event on ``platform.usage``.

Feeds cannot write the catalog's tables; it announces each delivered batch on ``platform.usage``.
The catalog consumes that topic in its own consumer group and appends one ``feed.deliver`` entry
per batch, one ``feed.replay`` entry per replay and one ``open.snapshot`` entry per open-data
snapshot served without a grant. Offsets are committed only after the entries are committed, and each entry remembers
the event it came from, so a redelivered event is skipped rather than entered twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.catalog.audit.models import AuditEntry
from services.catalog.audit.service import DENIED, SUCCESS, AuditEvent, append
from services.catalog.models import Dataset
from services.common import db, usage_events
from services.common.bus import Bus
from services.common.envelope import CloudEvent
from services.common.worker import ConsumerWorker, EventBatchHandler, PoisonMessage

log = logging.getLogger(__name__)

GROUP = "catalog.audit-deliveries"


def replay_event(event: CloudEvent) -> AuditEvent:
    """The audit entry of a subscription's replay (reset to offsets or a time)."""
    data = event.data
    if not isinstance(data, dict) or not data.get("subscription_id") or not data.get("scenario_id"):
        raise PoisonMessage("a replay event names its subscription and scenario", code="missing-fields")
    actor = data.get("principal_id") or data["scenario_id"]
    return AuditEvent(
        action="feed.replay",
        resource_type="subscription",
        resource_id=str(data["subscription_id"]),
        actor_id=str(actor),
        actor_kind="scenario" if actor == data["scenario_id"] else None,
        dataset_id=data.get("dataset_id"),
        scenario_id=str(data["scenario_id"]),
        details={key: data[key] for key in ("target", "positions", "epoch", "replayed_at") if key in data},
        source_event_id=event.id,
    )


def open_snapshot_event(event: CloudEvent) -> AuditEvent:
    """The audit entry of an open-data snapshot: which dataset, how much, and who by the salted
    hash of its address (feeds never announces the address), or by the principal of its key."""
    data = event.data
    if not isinstance(data, dict) or not data.get("dataset_id") or not data.get("client"):
        raise PoisonMessage("an open-snapshot event names its dataset and client", code="missing-fields")
    principal = data.get("principal_id")
    return AuditEvent(
        action="open.snapshot",
        resource_type="dataset",
        resource_id=str(data["dataset_id"]),
        actor_id=str(principal) if principal else None,  # null: a reader without a key
        dataset_id=str(data["dataset_id"]),
        details={
            key: data[key]
            for key in ("records", "bytes", "format", "limit", "withheld_fields", "client", "served_at")
            if key in data
        },
        source_event_id=event.id,
    )


def delivery_event(event: CloudEvent) -> AuditEvent:
    """The audit entry of one usage event; PoisonMessage if the event is not a delivery record."""
    data = event.data
    if not isinstance(data, dict):
        raise PoisonMessage("a usage event carries a JSON object", code="not-an-object")
    missing = [name for name in ("scenario_id", "dataset_id", "subscription_id") if not data.get(name)]
    if missing:
        raise PoisonMessage(f"the usage event lacks {', '.join(missing)}", code="missing-fields")
    denied = data.get("outcome") == "denied"
    details: dict[str, Any] = {
        key: data[key]
        for key in (
            "grant_id",
            "grant_version",
            "records",
            "bytes",
            "mode",
            "offsets",
            "partitions",
            "delivered_at",
            "reason",
        )
        if key in data
    }
    return AuditEvent(
        action="feed.deliver",
        resource_type="subscription",
        resource_id=str(data["subscription_id"]),
        outcome=DENIED if denied else SUCCESS,
        actor_id=str(data["scenario_id"]),
        actor_kind="scenario",
        purpose=data.get("purpose"),
        dataset_id=str(data["dataset_id"]),
        scenario_id=str(data["scenario_id"]),
        details=details,
        source_event_id=event.id,
    )


class DeliveryAudit(EventBatchHandler[AuditEvent]):
    """Consumer handler: appends a batch of usage events to the audit trail in one transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__()
        self._sessions = sessions

    def read(self, event: CloudEvent) -> AuditEvent | None:
        if event.type == usage_events.USAGE:
            return delivery_event(event)
        if event.type == usage_events.REPLAY:
            return replay_event(event)
        if event.type == usage_events.OPEN_SNAPSHOT:
            return open_snapshot_event(event)
        return None  # a later kind of usage event: not for the audit trail (yet)

    def apply(self, items: list[AuditEvent]) -> None:
        with db.unit_of_work(self._sessions) as session:
            ids = [event.source_event_id for event in items if event.source_event_id]
            seen = set(
                session.scalars(
                    sa.select(AuditEntry.source_event_id).where(AuditEntry.source_event_id.in_(ids))
                )
            )
            datasets = {event.dataset_id for event in items}
            owners = {
                row.id: row.owner_department_id
                for row in session.execute(
                    sa.select(Dataset.id, Dataset.owner_department_id).where(Dataset.id.in_(datasets))
                )
            }
            for event in items:
                if event.source_event_id in seen:
                    continue
                seen.add(event.source_event_id)
                # Visible to the dataset's department, like every other entry about its datasets.
                append(session, replace(event, department_id=owners.get(event.dataset_id or "")))


def delivery_audit_worker(bus: Bus, sessions: sessionmaker[Session]) -> ConsumerWorker:
    """The catalog's worker turning ``platform.usage`` into ``feed.deliver``, ``feed.replay`` and
    ``open.snapshot`` audit entries."""
    return ConsumerWorker(
        bus,
        name="catalog-audit-deliveries",
        group_id=GROUP,
        topics=[usage_events.TOPIC],
        handler=DeliveryAudit(sessions),
    )
