"""A subscription's rows and how the API shows them: the copy a delivery works on, the start
position it was asked for, whose it is, its read and detail views and its webhook delivery log.

Every function here works in the session of the :class:`~services.feeds.service.Feeds` method
that calls it (a unit of work that method opened and commits); none opens or commits one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common.auth import Principal, PrincipalKind
from services.common.bus import Bus, BusError
from services.common.clock import aware
from services.feeds.exceptions import NotYourSubscription, SubscriptionNotFound
from services.feeds.models import Subscription, WebhookDelivery
from services.feeds.projection import GrantState
from services.feeds.readers import StartPosition
from services.feeds.schemas import (
    GrantRef,
    PartitionPosition,
    Position,
    StartOffsets,
    StartTimestamp,
    SubscriptionDetail,
    SubscriptionRead,
    WebhookDeliveryRead,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as a delivery sees it (a detached copy of the row)."""

    id: str
    scenario_id: str
    dataset_id: str
    topic: str
    group_id: str
    grant_id: str
    status: str
    status_reason: str | None
    reset_epoch: int
    webhook_url: str | None
    webhook_secret: str | None
    webhook_failures: int

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionView:
        return cls(
            id=row.id,
            scenario_id=row.scenario_id,
            dataset_id=row.dataset_id,
            topic=row.topic,
            group_id=row.group_id,
            grant_id=row.grant_id,
            status=row.status,
            status_reason=row.status_reason,
            reset_epoch=row.reset_epoch,
            webhook_url=row.webhook_url,
            webhook_secret=row.webhook_secret,
            webhook_failures=row.webhook_failures,
        )


def start_position(value: Position) -> StartPosition:
    """Where a subscription starts, or a replay moves it, as the readers take it."""
    if isinstance(value, StartOffsets):
        return StartPosition("offsets", offsets=dict(value.offsets))
    if isinstance(value, StartTimestamp):
        return StartPosition("timestamp", timestamp_ms=int(value.timestamp.timestamp() * 1000))
    return StartPosition(value)


def own_subscription(session: Session, *, principal: Principal, subscription_id: str) -> Subscription:
    """The subscription, if the caller's: 404 when unknown, 403 when another scenario's."""
    row = session.get(Subscription, subscription_id)
    if row is None:
        raise SubscriptionNotFound(f"no subscription {subscription_id!r}")
    if row.scenario_id != principal.id and principal.kind is not PrincipalKind.admin:
        raise NotYourSubscription(f"subscription {subscription_id!r} is not one of yours")
    return row


def scenario_subscriptions(session: Session, *, scenario_id: str) -> list[SubscriptionRead]:
    """The scenario's subscriptions, oldest first."""
    rows = session.scalars(
        sa.select(Subscription)
        .where(Subscription.scenario_id == scenario_id)
        .order_by(Subscription.created_at, Subscription.id)
    ).all()
    return [subscription_read(row) for row in rows]


def subscription_read(row: Subscription) -> SubscriptionRead:
    return SubscriptionRead(
        id=row.id,
        dataset=row.dataset_id,
        scenario_id=row.scenario_id,
        grant_id=row.grant_id,
        status="paused" if row.status == "paused" else "active",
        status_reason=row.status_reason,
        mode="webhook" if row.webhook_url else "pull",
        webhook_url=row.webhook_url,
        start=row.start,
        replays=row.reset_epoch,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def subscription_detail(
    row: Subscription, *, bus: Bus, grant: GrantState | None, now: datetime, lag: bool = True
) -> SubscriptionDetail:
    """The subscription with its grant and, when the bus answers, its committed position and lag
    per partition (``lag`` False: a bus that does not answer is not worth a warning)."""
    read = subscription_read(row)
    grant_ref = (
        GrantRef(
            id=grant.id,
            version=grant.version,
            status=grant.effective_status(now),
            expires_at=grant.expires_at,
        )
        if grant is not None
        else None
    )
    positions: list[PartitionPosition] = []
    total: int | None = None
    try:
        admin = bus.admin()
        committed = admin.committed_offsets(row.group_id, row.topic)
        beginning = admin.beginning_offsets(row.topic)
        for partition, end in sorted(admin.end_offsets(row.topic).items()):
            offset = next((o for tp, o in committed.items() if tp.partition == partition), None)
            positions.append(
                PartitionPosition(
                    partition=partition,
                    committed=offset,
                    end=end,
                    lag=max(0, end - (offset if offset is not None else beginning.get(partition, 0))),
                )
            )
        total = sum(p.lag for p in positions)
    except BusError as error:
        if lag:
            log.warning("positions of %s unavailable: %s", row.id, error)
    return SubscriptionDetail(**read.model_dump(), grant=grant_ref, positions=positions, lag=total)


def webhook_deliveries(session: Session, *, subscription_id: str, limit: int) -> list[WebhookDeliveryRead]:
    """The webhook delivery log of the subscription, newest first."""
    rows = session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
    return [
        WebhookDeliveryRead(
            id=r.id,
            attempted_at=aware(r.attempted_at),
            attempt=r.attempt,
            outcome="delivered" if r.outcome == "delivered" else "failed",
            http_status=r.http_status,
            error=r.error,
            records=r.records,
            cursor=r.cursor,
            duration_ms=r.duration_ms,
        )
        for r in rows
    ]
