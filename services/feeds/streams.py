"""Server-Sent Events: how many streams may be open, and one open stream reading batch after
batch until the grant, the subscription, the key it was opened with or its scenario stops it.

A stream opens no session itself: each batch is read and metered by
:class:`~services.feeds.delivery.Delivery` (the meter in a unit of work of its own), and the
subscription is re-read now and then by ``reload`` (a short session of the caller's
:class:`~services.feeds.service.Feeds`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from services.common.bus import BusError
from services.common.envelope import encode_json
from services.common.i18n import N_, Sentence
from services.feeds.access import Credential
from services.feeds.delivery import Delivery
from services.feeds.exceptions import (
    AccessWithdrawn,
    GrantNotActive,
    NoGrant,
    QuotaExceeded,
    ReadersExhausted,
    StaleCursor,
    SubscriptionNotFound,
    SubscriptionPaused,
    TooManyStreams,
)
from services.feeds.readers import SubscriptionReader
from services.feeds.settings import FeedsSettings
from services.feeds.subscriptions import SubscriptionView

log = logging.getLogger(__name__)


class StreamSlots:
    """How many streams are open, in the process and per scenario: one scenario may not take every
    stream of the process from the others."""

    def __init__(self, total: int, per_scenario: int) -> None:
        self.total = total
        self.per_scenario = per_scenario
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, scenario_id: str) -> None:
        """A slot for a stream of ``scenario_id``, or the problem saying which limit is reached."""
        with self._lock:
            held = self._open.get(scenario_id, 0)
            if held >= self.per_scenario:
                raise TooManyStreams(
                    Sentence(
                        N_(
                            "scenario %(scenario_id)r has %(held)s streams open in this process, the most one scenario may; close one or retry later"
                        ),
                        scenario_id=scenario_id,
                        held=held,
                    ),
                    retry_after_s=5,
                    limit=self.per_scenario,
                )
            if sum(self._open.values()) >= self.total:
                raise ReadersExhausted(
                    Sentence(
                        N_("%(total)s streams are open in this process; retry shortly"), total=self.total
                    ),
                    retry_after_s=2,
                )
            self._open[scenario_id] = held + 1

    def give_back(self, scenario_id: str) -> None:
        with self._lock:
            held = self._open.get(scenario_id, 0) - 1
            if held > 0:
                self._open[scenario_id] = held
            else:
                self._open.pop(scenario_id, None)


_DATABASE_DOWN = (sa_exc.OperationalError, sa_exc.TimeoutError)
"""What the apps answer with 503 "the database is unavailable" (services.common.app)."""
_DATABASE_RETRY_S = 0.5


@dataclass
class StreamEvent:
    text: bytes
    final: bool = False


class Stream:
    """One open SSE stream: its reader (see :mod:`services.feeds.fanout`); ends when the grant, the subscription, the key it was
    opened with or its scenario stops it.

    A stream acknowledges what it delivered: a batch is committed once it was written to the
    connection, that is when the next event is asked for (the response writes one event at a
    time and asks for the next only once the previous one went out), so the subscription's lag
    moves as the stream delivers. A client that lost batches on a broken connection reconnects
    with ``Last-Event-ID``: that commits its cursor (back, if need be) and reads on after it, so
    what it did not receive comes again. ``POST .../ack`` still works as for a long-poll.
    """

    def __init__(
        self,
        *,
        delivery: Delivery,
        reload: Callable[[str], SubscriptionView],
        settings: FeedsSettings,
        subscription: SubscriptionView,
        reader: SubscriptionReader,
        credential: Credential | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.delivery = delivery
        self.reload = reload
        self.settings = settings
        self.subscription = subscription
        self.reader = reader
        self.credential = credential or Credential(subscription.scenario_id, None)
        self._on_close = on_close
        self._checked = time.monotonic()
        self._last_event = time.monotonic()
        self._written: dict[int, int] | None = None
        """The positions after the last batch handed to the connection, acknowledged when the next
        event is asked for (only they: the batch's records are not kept that long)."""
        self.closed = False

    def next_event(self) -> StreamEvent:
        """The next event: a batch, a keep-alive comment, the final ``end`` event saying why, or
        (after about a second with nothing to say) an empty event, so that the caller can look
        whether the client is still there."""
        settings = self.settings
        try:
            self._acknowledge_written()
            self._recheck()
            batch = self.delivery.read_batch(
                self.subscription,
                self.reader,
                max_records=settings.sse_batch,
                wait_s=settings.subscription_recheck_s,
                mode="sse",
                credential=self.credential,
            )
        except (
            AccessWithdrawn,
            GrantNotActive,
            NoGrant,
            QuotaExceeded,
            SubscriptionPaused,
            SubscriptionNotFound,
            StaleCursor,
        ) as problem:
            return StreamEvent(b"event: end\ndata: " + encode_json(problem.body()) + b"\n\n", final=True)
        except _DATABASE_DOWN:
            # Busy or unreachable (every connection of the pool taken by other streams, say): the
            # stream waits and tries again rather than breaking the response in the middle.
            log.warning("stream of %s: the database is unavailable; trying again", self.subscription.id)
            time.sleep(_DATABASE_RETRY_S)
            return StreamEvent(b"")
        if batch.records:
            try:
                self.delivery.meter(batch)
            except _DATABASE_DOWN:
                # Not metered, so not delivered: read it again next time.
                self.reader.seek({p: first for p, (first, _last) in batch.ranges.items()})
                log.warning("stream of %s: metering failed; the batch comes again", self.subscription.id)
                time.sleep(_DATABASE_RETRY_S)
                return StreamEvent(b"")
            self._last_event = time.monotonic()
            self._written = batch.offsets
            # One copy of the records, not three (the body, then the event around it): 200 streams
            # receiving a burst each build theirs at about the same moment.
            return StreamEvent(
                b"".join(
                    (
                        b"id: ",
                        batch.cursor.encode(),
                        b"\nevent: records\ndata: ",
                        *batch.body_parts(),
                        b"\n\n",
                    )
                )
            )
        if time.monotonic() - self._last_event >= settings.sse_heartbeat_s:
            self._last_event = time.monotonic()
            return StreamEvent(b": keep-alive\n\n")
        return StreamEvent(b"")

    def _acknowledge_written(self) -> None:
        """Commit the positions after the batch written last. The subscription is re-read first:
        a replay since that batch makes its positions stale (the stream then ends), and a commit
        must not undo the replay's positions."""
        written, self._written = self._written, None
        if written is None:
            return
        self._recheck(force=True)
        try:
            self.reader.commit(written)
        except BusError as error:  # not acknowledged: the batch comes again on the next stream
            log.warning("stream of %s: acknowledging a batch failed: %s", self.subscription.id, error)

    def _recheck(self, *, force: bool = False) -> None:
        """Re-read the subscription now and then: a pause, a replay or a deletion ends the stream."""
        if not force and time.monotonic() - self._checked < self.settings.subscription_recheck_s:
            return
        self._checked = time.monotonic()
        current = self.reload(self.subscription.id)
        if current.reset_epoch != self.subscription.reset_epoch:
            raise StaleCursor(
                Sentence(N_("the subscription was replayed; reconnect to read from the new positions"))
            )
        self.subscription = current

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.reader.close()
            finally:
                if self._on_close is not None:
                    self._on_close()
