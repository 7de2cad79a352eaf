"""A subscription's rows and how the API shows them: the copy a delivery works on, the start
position it was asked for, whose it is, its read and detail views and its webhook delivery log.

Every function here works in the session of the :class:`~services.feeds.service.Feeds` method
that calls it (a unit of work that method opened and commits); none opens or commits one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common.auth import Principal, PrincipalKind
from services.common.bus import Bus, BusError
from services.common.clock import aware
from services.common.i18n import N_, Sentence
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
    SubscriptionStatus,
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
        raise SubscriptionNotFound(
            Sentence(N_("no subscription %(subscription_id)r"), subscription_id=subscription_id)
        )
    if row.scenario_id != principal.id and principal.kind is not PrincipalKind.admin:
        raise NotYourSubscription(
            Sentence(
                N_("subscription %(subscription_id)r is not one of yours"), subscription_id=subscription_id
            )
        )
    return row


GrantOf = Callable[[Subscription], GrantState | None]
"""The grant that decides whether a subscription may deliver now (see
:meth:`~services.feeds.access.DeliveryAccess.current_grant`)."""


def subscriptions_of(
    session: Session, *, principal: Principal, grant_of: GrantOf, now: datetime
) -> list[SubscriptionRead]:
    """The caller's subscriptions, oldest first; an admin's are every scenario's (the role table:
    an admin manages every subscription)."""
    query = sa.select(Subscription).order_by(Subscription.created_at, Subscription.id)
    if principal.kind is not PrincipalKind.admin:
        query = query.where(Subscription.scenario_id == principal.id)
    return [subscription_read(row, grant_of(row), now) for row in session.scalars(query).all()]


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Whether a subscription delivers now, and if not why: the one answer the API, the console
    and the pusher's view of a subscription show."""

    status: SubscriptionStatus
    delivering: bool
    reason: str | None


def delivery_state(
    status: str, status_reason: str | None, grant: GrantState | None, now: datetime
) -> DeliveryState:
    """The subscription's status as it stands now. The grant comes first: a subscription whose
    grant is revoked, suspended, expired or not valid yet (or which has none) delivers nothing,
    whatever its own setting, and says so with the grant's status; otherwise a paused one is
    ``paused`` and the rest ``active``. Delivery itself refuses on the same grounds
    (:class:`~services.feeds.access.DeliveryAccess`)."""
    if grant is None:
        return DeliveryState("no_grant", False, "the scenario holds no grant for the dataset")
    refusal = grant.refusal(now)
    if refusal is not None:
        return DeliveryState(cast(SubscriptionStatus, grant.effective_status(now)), False, str(refusal))
    if status == "paused":
        return DeliveryState("paused", False, status_reason or "paused by the scenario")
    return DeliveryState("active", True, None)


def subscription_read(row: Subscription, grant: GrantState | None, now: datetime) -> SubscriptionRead:
    state = delivery_state(row.status, row.status_reason, grant, now)
    return SubscriptionRead(
        id=row.id,
        dataset=row.dataset_id,
        scenario_id=row.scenario_id,
        grant_id=row.grant_id,
        status=state.status,
        paused=row.status == "paused",
        status_reason=row.status_reason,
        delivering=state.delivering,
        reason=state.reason,
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
    per partition (``lag`` False: a bus that does not answer is not worth a warning).

    Lag is :meth:`~services.common.bus.Admin.lag` of the subscription's group: records of the topic
    not acknowledged yet. The lag gauge (:mod:`services.feeds.metrics`) and quality's utilization
    count it with the same function, so every place shows the same figure."""
    read = subscription_read(row, grant, now)
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
        lags = admin.lag(row.group_id, row.topic)
        committed = {tp.partition: o for tp, o in admin.committed_offsets(row.group_id, row.topic).items()}
        ends = admin.end_offsets(row.topic)
        positions = [
            PartitionPosition(
                partition=partition,
                committed=committed.get(partition),
                end=ends.get(partition, 0),
                lag=lags[partition],
            )
            for partition in sorted(lags)
        ]
        total = sum(lags.values())
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
