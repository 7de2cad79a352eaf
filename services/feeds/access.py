"""Whether a delivery may go ahead now: the keys and principals behind it (the key ring), the
subscription's grant (the read model, against the clock) and the grant's daily quota (feeds'
table, shared by replicas). Each refusal is a problem that says why, counted by reason.

Only the quota is read from the database, in a short read-only session of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.common.i18n import N_, Sentence
from services.feeds.exceptions import (
    AccessWithdrawn,
    GrantNotActive,
    NoGrant,
    QuotaExceeded,
    SubscriptionPaused,
)
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import QuotaUsage
from services.feeds.projection import FeedsCatalog, GrantState
from services.feeds.subscriptions import SubscriptionView

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Credential:
    """The key a delivery was asked for with. A delivery that outlives its request (a long-poll
    waiting for records, an open stream) re-checks it before every batch: revoking the key ends
    it, as suspending the principal does. ``key_prefix`` None: the caller's key is not known (only
    the principal is checked)."""

    principal_id: str
    key_prefix: str | None


def _refusal_code(grant: GrantState | None, now: datetime) -> str:
    return "no_grant" if grant is None else grant.effective_status(now)


class DeliveryAccess:
    """The checks every delivery goes through; one per process, inside :class:`~services.feeds.service.Feeds`."""

    def __init__(
        self,
        *,
        catalog: FeedsCatalog,
        sessions: sessionmaker[Session],
        metrics: FeedsMetrics,
        clock: Clock,
    ) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.metrics = metrics
        self.clock = clock

    def current_grant(self, scenario_id: str, dataset_id: str, grant_id: str | None) -> GrantState | None:
        """The grant that allows delivery now, else the one the subscription names, else the
        scenario's latest for the dataset; None if it never had one."""
        now = self.clock()
        usable = self.catalog.usable_grant(scenario_id, dataset_id, now)
        if usable is not None:
            return usable
        known = self.catalog.grant(grant_id) if grant_id else None
        if known is not None:
            return known
        grants = self.catalog.grants_of(scenario_id, dataset_id)
        return max(grants, key=lambda g: (g.data.get("updated_at") or "", g.version), default=None)

    def grant_for(self, scenario_id: str, dataset_id: str, grant_id: str | None) -> GrantState:
        """The grant that allows delivery now, or the problem that says why there is none."""
        now = self.clock()
        usable = self.catalog.usable_grant(scenario_id, dataset_id, now)
        if usable is not None:
            return usable
        grant = self.current_grant(scenario_id, dataset_id, grant_id)
        reason = _refusal_code(grant, now)
        self.metrics.denied.labels(reason).inc()
        if grant is None:
            raise NoGrant(
                Sentence(
                    N_(
                        "scenario %(scenario_id)r has no grant for dataset %(dataset_id)r; file an access request"
                    ),
                    scenario_id=scenario_id,
                    dataset_id=dataset_id,
                ),
                reason=reason,
            )
        raise GrantNotActive(
            grant.refusal(now), reason=reason, grant_id=grant.id, grant_version=grant.version
        )

    def check_access(self, subscription: SubscriptionView, credential: Credential | None) -> None:
        """Refuse delivery (401 access-withdrawn) once the keys or the principals behind it stopped:
        the subscription's scenario is suspended; the key of the request was revoked (or its
        principal suspended); for the webhook pusher (``credential`` None), every key of the
        scenario was revoked. The key ring follows platform.catalog, so this holds within a
        second of the catalog's change, like a grant's revocation."""
        keyring = self.catalog.keyring
        scenario = keyring.principal(subscription.scenario_id)
        problem: AccessWithdrawn | None = None
        if scenario is None or not scenario.active:
            problem = AccessWithdrawn(
                Sentence(
                    N_("scenario %(scenario_id)r is suspended; nothing is delivered to it"),
                    scenario_id=subscription.scenario_id,
                ),
                reason="suspended",
            )
        elif credential is None:
            if not keyring.has_live_key(subscription.scenario_id):
                problem = AccessWithdrawn(
                    Sentence(
                        N_(
                            "every API key of scenario %(scenario_id)r is revoked; the webhook is held until the scenario has a key again"
                        ),
                        scenario_id=subscription.scenario_id,
                    ),
                    reason="keys_revoked",
                )
        else:
            caller = keyring.principal(credential.principal_id)
            if caller is None or not caller.active:
                problem = AccessWithdrawn(
                    Sentence(
                        N_("principal %(principal_id)r is suspended"), principal_id=credential.principal_id
                    ),
                    reason="suspended",
                )
            elif credential.key_prefix is not None and not keyring.key_live(
                credential.key_prefix, credential.principal_id
            ):
                problem = AccessWithdrawn(
                    Sentence(N_("the API key this delivery was asked with is revoked")), reason="key_revoked"
                )
        if problem is not None:
            self.metrics.denied.labels(problem.extensions["reason"]).inc()
            raise problem

    def allowed_grant(self, subscription: SubscriptionView, credential: Credential | None) -> GrantState:
        """The grant a batch is delivered under now, once the keys and principals behind the
        delivery are checked (see :meth:`check_access`)."""
        self.check_access(subscription, credential)
        return self.grant_for(subscription.scenario_id, subscription.dataset_id, subscription.grant_id)

    def authorize(
        self, subscription: SubscriptionView, credential: Credential | None
    ) -> tuple[GrantState, int | None]:
        """The grant for a batch now and how many records its quota still allows today (None: no quota)."""
        if subscription.status == "paused":
            self.metrics.denied.labels("paused").inc()
            paused = (
                Sentence(
                    N_("subscription %(id)s is paused: %(reason)s"),
                    id=subscription.id,
                    reason=subscription.status_reason,
                )
                if subscription.status_reason
                else Sentence(N_("subscription %(id)s is paused"), id=subscription.id)
            )
            raise SubscriptionPaused(paused, reason="paused")
        grant = self.allowed_grant(subscription, credential)
        if grant.records_per_day is None:
            return grant, None
        now = self.clock()
        day = now.strftime("%Y-%m-%d")
        with self.sessions() as session:
            used = session.scalar(
                sa.select(QuotaUsage.records).where(QuotaUsage.grant_id == grant.id, QuotaUsage.day == day)
            )
        remaining = grant.records_per_day - int(used or 0)
        if remaining <= 0:
            self.metrics.denied.labels("quota").inc()
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
            raise QuotaExceeded(
                Sentence(
                    N_("grant %(id)s allows %(records_per_day)s records a day; today's are delivered"),
                    id=grant.id,
                    records_per_day=grant.records_per_day,
                ),
                retry_after_s=max(1, int((midnight - now).total_seconds())),
                reason="quota",
                grant_id=grant.id,
            )
        return grant, remaining
