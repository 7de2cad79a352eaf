"""Webhook delivery: a feeds worker pushes batches of webhook subscriptions to their URLs.

Each push is a POST of the same JSON a long-poll returns, signed as every citybase webhook is
(:func:`services.common.webhooks.sign`) with the subscription's secret (shown once, when the
subscription was created). A 2xx answer
acknowledges the batch; anything else (an error status, a timeout, a refused connection) is a
failure: the batch is sent again after an exponential backoff, every attempt is written to the
delivery log, and after ``webhook_max_failures`` consecutive failures the subscription is paused
with the reason (resume it to try again).

Before every POST the URL's host is resolved again and checked (:mod:`services.common.webhooks`:
no loopback, private, link-local or unspecified address), and the POST goes to the checked address.
The delivery log tells the subscriber what its receiver answered (``HTTP 503``) and, for anything
short of an answer, one and the same text: a refused connection, a closed port, a reset, a timeout,
a TLS failure and an address feeds refuses to reach all read alike, so that the log is no scanner
of the network feeds runs in. The operators' log keeps the precise cause.

Delivery holds while the scenario is suspended or has no key left (every key revoked), as it does
while the grant does not allow it.

The pusher is a member of each webhook subscription's consumer group, so pushers of several
replicas share the partitions of a subscription.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx
import sqlalchemy as sa

from services.common import db
from services.common.background import Loop
from services.common.bus import BusError
from services.common.problems import Problem
from services.common.webhooks import (
    SIGNATURE_HEADER,
    UNREACHABLE,
    TargetRefused,
    WebhookSender,
    WebhookTargets,
    backoff_s,
    sign,
)
from services.feeds.models import Subscription, WebhookDelivery
from services.feeds.readers import Reader
from services.feeds.service import Feeds
from services.feeds.subscriptions import SubscriptionView

log = logging.getLogger(__name__)


@dataclass
class _PushState:
    reader: Reader
    failures: int
    next_attempt: float = 0.0


class WebhookPusher:
    """One thread pushing every active webhook subscription, in turn."""

    def __init__(
        self, feeds: Feeds, *, client: httpx.Client | None = None, targets: WebhookTargets | None = None
    ) -> None:
        self.feeds = feeds
        self.settings = feeds.settings
        self.targets = targets or feeds.webhook_targets
        self._sender = WebhookSender(self.targets, timeout_s=self.settings.webhook_timeout_s, client=client)
        self._states: dict[str, _PushState] = {}
        self._loop = Loop("feeds-webhooks", self._run)

    def start(self) -> None:
        self._loop.start()

    @property
    def last_error(self) -> str | None:
        return self._loop.last_error

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)
        for state in self._states.values():
            state.reader.close()
        self._states.clear()
        self._sender.close()

    def _run(self, loop: Loop) -> None:
        while not loop.stopping:
            busy = False
            try:
                busy = self.push_once()
                loop.last_error = None
            except Exception as error:
                loop.fail(error)
                log.exception("webhook pusher failed; trying again")
            if not busy:
                loop.wait(self.settings.webhook_scan_interval_s)

    def _active(self) -> list[SubscriptionView]:
        with self.feeds.sessions() as session:
            rows = session.scalars(
                sa.select(Subscription).where(
                    Subscription.webhook_url.is_not(None), Subscription.status == "active"
                )
            ).all()
            return [SubscriptionView.of(row) for row in rows]

    def push_once(self) -> bool:
        """One round over the active webhook subscriptions; True if any batch moved."""
        subscriptions = self._active()
        current = {s.id for s in subscriptions}
        for gone in set(self._states) - current:
            self._states.pop(gone).reader.close()
        self.feeds.metrics.readers.labels("webhook").set(len(self._states))
        moved = False
        for subscription in subscriptions:
            if self._loop.stopping:
                break
            try:
                moved = self._push(subscription) or moved
            except BusError as error:
                log.warning("webhook of %s: bus error %s; re-joining", subscription.id, error)
                state = self._states.pop(subscription.id, None)
                if state is not None:
                    state.reader.close()
        return moved

    def _state(self, subscription: SubscriptionView) -> _PushState:
        state = self._states.get(subscription.id)
        if state is not None and state.reader.epoch != subscription.reset_epoch:
            state.reader.close()
            state = None
        if state is None:
            reader = Reader(
                self.feeds.bus,
                group_id=subscription.group_id,
                topic=subscription.topic,
                epoch=subscription.reset_epoch,
                client_id="citybase-feeds-webhook",
            )
            state = self._states[subscription.id] = _PushState(reader, subscription.webhook_failures)
        return state

    def _push(self, subscription: SubscriptionView) -> bool:
        state = self._state(subscription)
        if time.monotonic() < state.next_attempt:
            return False
        try:
            batch = self.feeds.read_batch(
                subscription,
                state.reader,
                max_records=self.settings.webhook_batch,
                wait_s=0.1,
                mode="webhook",
                credential=None,
            )
        except Problem as refusal:
            # No grant, an expired one, a used-up quota: nothing is pushed; look again shortly.
            log.info("webhook of %s held: %s", subscription.id, refusal.detail)
            state.next_attempt = time.monotonic() + 1.0
            return False
        if not batch.polled:
            return False
        if not batch.records:
            state.reader.commit(batch.offsets)  # all filtered out: move on
            return True
        body = batch.body()
        sent_at = int(time.time())
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(subscription.webhook_secret or "", sent_at, body),
            "CityBase-Subscription": subscription.id,
            "CityBase-Cursor": batch.cursor,
        }
        try:
            status = self._sender.post(subscription.webhook_url or "", body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TargetRefused, httpx.HTTPError) as failure:
            log.warning(
                "webhook of %s not delivered: %s: %s", subscription.id, type(failure).__name__, failure
            )
            error = UNREACHABLE
        duration_ms = int((time.perf_counter() - started) * 1000)
        delivered = error is None
        attempt = state.failures + 1
        if delivered:
            state.reader.commit(batch.offsets)
            self.feeds.meter(batch)
            state.failures = 0
            state.next_attempt = 0.0
        else:
            self.feeds.metrics.webhook_failures.labels(subscription.dataset_id).inc()
            state.reader.rewind()
            state.failures += 1
            delay = backoff_s(
                state.failures, self.settings.webhook_backoff_s, self.settings.webhook_max_backoff_s
            )
            state.next_attempt = time.monotonic() + delay
        with db.unit_of_work(self.feeds.sessions) as session:
            session.add(
                WebhookDelivery(
                    subscription_id=subscription.id,
                    attempt=attempt,
                    outcome="delivered" if delivered else "failed",
                    http_status=status,
                    error=error,
                    records=batch.records,
                    cursor=batch.cursor,
                    duration_ms=duration_ms,
                )
            )
            row = session.get(Subscription, subscription.id)
            if row is not None:
                row.webhook_failures = state.failures
                if state.failures >= self.settings.webhook_max_failures:
                    row.status = "paused"
                    row.status_reason = (
                        f"the webhook failed {state.failures} times in a row (last: {error}); "
                        "resume the subscription to try again"
                    )
                    log.warning("webhook of %s paused: %s", subscription.id, error)
        return delivered
