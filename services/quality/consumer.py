"""Quality's consumers: the stream worker on ``ds.*`` / ``dlq.*`` and the metering handler of
``platform.usage``.

The stream worker is one consumer in the group ``quality`` subscribed to the records and
dead-letter topics of every dataset the catalog says is active or deprecated. The bus has no
subscription by pattern, so every ``resubscribe_interval_s`` it compares that list with the topics
that exist; when it changed, the open windows are closed and stored, their offsets committed, and
the consumer replaced by one on the new list (the group's offsets carry over).

Offsets are committed only up to the first record of a window whose results are not stored yet
(:meth:`~services.quality.windows.WindowSet.committable`): a crash re-reads the open windows whole
and nothing stored is read twice. Any failure drops the open windows and starts again from the
committed offsets.

Replicas: the group hands out each dataset whole (its ``ds.`` and ``dlq.`` partitions to one
member, ``group_by=dataset_group``), so a dataset's windows are built from all of its records by
one replica, the same windows one replica alone would build. When a rebalance takes a dataset away
(another replica joined, or this one was thought dead) its open windows are dropped, not stored:
the new holder reads them again from the committed offsets. When a partition comes back rewound
(the group gave it back and the consumer restarted from the committed offset), the windows holding
its records are dropped and their other partitions sought back to where those windows began, so
that no record is counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from services.common import db, usage_events
from services.common.background import Loop
from services.common.bus import Bus, Consumer, Message, TopicPartition
from services.common.envelope import CloudEvent, EnvelopeError
from services.common.topics import dataset_group, dataset_of, dead_letter_topic, records_topic
from services.common.worker import PoisonMessage
from services.quality import utilization
from services.quality.metrics import QualityMetrics
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings
from services.quality.store import QualityService
from services.quality.windows import WindowSet

log = logging.getLogger(__name__)


class StreamWorker:
    """Windows of every dataset's ``ds.`` and ``dlq.`` records, scored and stored, then committed."""

    def __init__(
        self,
        bus: Bus,
        service: QualityService,
        catalog: QualityCatalog,
        settings: QualitySettings,
        metrics: QualityMetrics,
        *,
        caught_up: Callable[[], bool] | None = None,
    ) -> None:
        self._bus = bus
        self._service = service
        self._catalog = catalog
        self._settings = settings
        self._metrics = metrics
        self._caught_up = caught_up
        self.windows = WindowSet(self._window_size)
        self._loop = Loop("quality-stream", self._run)
        self.topics: list[str] = []
        self.assigned: frozenset[str] = frozenset()
        """Topics the group has given this worker partitions of (after its last poll)."""
        self.handled = 0
        self.failures = 0
        self.dropped_windows = 0
        """Times a rebalance moved or rewound a dataset and its open windows were read again."""
        self._next_lag = 0.0

    def _window_size(self, dataset_id: str) -> tuple[int, float]:
        size = self._settings.window_of(dataset_id)
        return size.records, size.seconds

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    @property
    def alive(self) -> bool:
        return self._loop.alive

    @property
    def last_error(self) -> str | None:
        return self._loop.last_error

    def readiness(self) -> str | None:
        if self._loop.started and not self.alive:
            return "the stream worker stopped"
        return None

    def wanted_topics(self) -> list[str]:
        """ds./dlq. topics of the datasets quality scores, among those that exist."""
        existing = self._bus.admin().list_topics()
        wanted = []
        for dataset in self._catalog.datasets():
            if not dataset.scored or not self._settings.follows(dataset.id):
                continue
            for topic in (records_topic(dataset.id), dead_letter_topic(dataset.id)):
                if topic in existing:
                    wanted.append(topic)
        return sorted(wanted)

    def _run(self, loop: Loop) -> None:
        consumer: Consumer | None = None
        positions: dict[TopicPartition, int] = {}
        committed: dict[TopicPartition, int] = {}
        next_check = 0.0
        backoff = 0.2
        while not loop.stopping:
            try:
                if self._caught_up is not None and not self._caught_up():
                    loop.wait(0.1)
                    continue
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self._settings.resubscribe_interval_s
                    topics = self.wanted_topics()
                    if topics != self.topics or consumer is None:
                        if consumer is not None:
                            # Store what is open before the group rebalances onto the new list.
                            self.windows.close_all("resubscribe")
                            self._store_and_commit(consumer, positions, committed)
                            consumer.close()
                            consumer = None
                        positions, committed = {}, {}
                        self.topics = topics
                        self.assigned = frozenset()
                        if topics:
                            consumer = self._bus.consumer(
                                self._settings.group_id,
                                topics,
                                client_id="citybase-quality",
                                group_by=dataset_group,
                            )
                            log.info("quality follows %d ds./dlq. topics", len(topics))
                if consumer is None:
                    loop.wait(0.2)
                    continue
                messages = consumer.poll(0.2, self._settings.max_poll_records)
                assignment = consumer.assignment()
                self._show_assignment(assignment)
                self._take(consumer, messages, assignment, positions, committed)
                self.windows.close_due()
                self._store_and_commit(consumer, positions, committed)
                self._measure_lag()
                backoff = 0.2
                loop.last_error = None
            except Exception as error:
                self.failures += 1
                loop.fail(error)
                log.exception("quality stream worker failed; reading again from the committed offsets")
                self.windows.clear()
                if consumer is not None:
                    _close_quietly(consumer)
                    consumer = None
                self.topics = []
                self.assigned = frozenset()
                loop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        if consumer is not None:
            _close_quietly(consumer)

    def _show_assignment(self, assignment: set[TopicPartition]) -> None:
        topics = frozenset(tp.topic for tp in assignment)
        if topics == self.assigned:
            return
        held: dict[str, int] = {}
        for tp in assignment:
            found = dataset_of(tp.topic)
            if found is not None:
                held[found[0]] = held.get(found[0], 0) + 1
        for topic in self.assigned - topics:
            found = dataset_of(topic)
            if found is not None and found[0] not in held:
                self._metrics.assigned_partitions.labels(found[0]).set(0)
        for dataset_id, count in held.items():
            self._metrics.assigned_partitions.labels(dataset_id).set(count)
        self.assigned = topics

    def _take(
        self,
        consumer: Consumer,
        messages: list[Message],
        assignment: set[TopicPartition],
        positions: dict[TopicPartition, int],
        committed: dict[TopicPartition, int],
    ) -> None:
        """File ``messages`` under their windows, minding what a rebalance moved or rewound."""
        lost = {tp for tp in positions if tp not in assignment}
        ignore = set(self._drop(consumer, lost, assignment, positions, committed)) if lost else set()
        skip_below: dict[TopicPartition, int] = {}
        for message in messages:
            tp = message.topic_partition
            if tp in ignore or message.offset < skip_below.get(tp, -1):
                continue  # read again after a seek, or stored before the rewound window began
            expected = positions.get(tp)
            if expected is not None and message.offset < expected:
                starts = self._drop(consumer, {tp}, assignment, positions, committed)
                skip_below[tp] = starts.pop(tp, message.offset)
                ignore |= set(starts)
                if message.offset < skip_below[tp]:
                    continue
            self.windows.add(message)
            positions[tp] = message.offset + 1
            self.handled += 1

    def _drop(
        self,
        consumer: Consumer,
        tps: set[TopicPartition],
        assignment: set[TopicPartition],
        positions: dict[TopicPartition, int],
        committed: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        """Drop the windows holding records of ``tps`` and seek their other assigned partitions
        back to where those windows began. Returns where each dropped window began, per partition."""
        starts: dict[TopicPartition, int] = {}
        dropped = self.windows.drop(tps)
        for window in dropped:
            for tp, first in window.first_offsets.items():
                starts[tp] = min(first, starts.get(tp, first))
        self.dropped_windows += len(dropped)
        for tp in tps | set(starts):
            positions.pop(tp, None)
            committed.pop(tp, None)
        for tp, offset in starts.items():
            if tp in assignment and tp not in tps:
                consumer.seek(tp, offset)
        return starts

    def _store_and_commit(
        self,
        consumer: Consumer,
        positions: dict[TopicPartition, int],
        committed: dict[TopicPartition, int],
    ) -> None:
        closed = self.windows.take_closed()
        if closed:
            try:
                self._service.process(closed)
            except Exception:
                self.windows.closed = closed + self.windows.closed  # keep them uncommitted
                raise
        offsets = {
            tp: offset
            for tp, offset in self.windows.committable(positions).items()
            if committed.get(tp) != offset
        }
        if offsets:
            consumer.commit(offsets)
            committed.update(offsets)

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag:
            return
        self._next_lag = now + self._settings.sla_check_interval_s
        admin = self._bus.admin()
        lag: dict[str, int] = {}
        for topic in self.topics:
            found = dataset_of(topic)
            if found is None:
                continue
            try:
                lag[found[0]] = lag.get(found[0], 0) + sum(admin.lag(self._settings.group_id, topic).values())
            except Exception:
                log.debug("lag of %s unavailable", topic, exc_info=True)
        for dataset_id, value in lag.items():
            self._metrics.consumer_lag.labels(dataset_id).set(value)


def _close_quietly(consumer: Consumer) -> None:
    try:
        consumer.close()
    except Exception:
        log.debug("closing a consumer failed", exc_info=True)


class UsageHandler:
    """Reads ``platform.usage`` events; stores each batch's deliveries before the commit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._pending: list[dict[str, Any]] = []

    def handle(self, message: Message) -> None:
        try:
            event = CloudEvent.from_message(message)
        except EnvelopeError as error:
            raise PoisonMessage(f"not a CloudEvent: {error}", "envelope") from error
        if event.type != usage_events.USAGE:
            # Replays, and open-data snapshots: a download without a grant is no scenario's use,
            # so it stays out of every scenario and utilization figure.
            return
        delivery = utilization.delivery_from_event(event)
        if delivery is None:
            raise PoisonMessage("a usage event without scenario_id or dataset_id", "usage")
        self._pending.append(delivery)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            with db.unit_of_work(self._sessions) as session:
                utilization.store_deliveries(session, pending)
        except Exception:
            self._pending = []
            raise
