"""Domain errors of feeds, each one problem type (RFC 9457)."""

from __future__ import annotations

from services.common.problems import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from services.common.webhooks import InvalidWebhook as InvalidWebhook  # the kernel's, as every webhook's


class DatasetNotFound(NotFound):
    slug, title = "dataset-not-found", "Dataset not found"


class SubscriptionNotFound(NotFound):
    slug, title = "subscription-not-found", "Subscription not found"


class NotYourSubscription(Forbidden):
    slug, title = "not-your-subscription", "The subscription belongs to another scenario"


class NoGrant(Forbidden):
    slug, title = "no-grant", "The scenario has no grant for this dataset"


class GrantNotActive(Forbidden):
    """Delivery refused: the grant is revoked, suspended, expired or not yet valid (``reason``)."""

    slug, title = "grant-not-active", "The grant does not allow delivery"


class AccessWithdrawn(Unauthenticated):
    """Delivery stopped: the key that opened it was revoked, or the scenario was suspended, or every
    key of the scenario was revoked (a webhook) (``reason``)."""

    slug, title = "access-withdrawn", "The key or the scenario no longer allows delivery"


class QuotaExceeded(TooManyRequests):
    slug, title = "quota-exceeded", "The grant's daily quota is used up"


class SubscriptionPaused(Conflict):
    slug, title = "subscription-paused", "The subscription is paused"


class InvalidCursor(BadRequest):
    slug, title = "invalid-cursor", "The cursor is not valid for this subscription"


class StaleCursor(Conflict):
    slug, title = "stale-cursor", "The cursor was issued before the subscription was replayed"


class InvalidPosition(InvalidRequest):
    slug, title = "invalid-position", "The requested position is not within the topic's retention"


class ReadersExhausted(ServiceUnavailable):
    slug, title = "readers-exhausted", "Feeds holds as many open readers as it may"


class TooManyStreams(TooManyRequests):
    slug, title = "too-many-streams", "The scenario holds as many open streams as it may"


class GroupNotReady(ServiceUnavailable):
    slug, title = "group-not-ready", "The subscription's consumer group did not settle in time"


class SnapshotTimeout(ServiceUnavailable):
    slug, title = "snapshot-timeout", "The snapshot could not be read in time"
