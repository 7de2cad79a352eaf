"""The Kafka path in: records that publishers write to ``raw.<dataset>``.

Topology: one :class:`~services.common.worker.ConsumerWorker` per process, in the consumer group
``citybase-ingest-raw``, subscribed to the raw topics of every dataset that takes records. The
bus has no subscription by pattern, so when that set of datasets changes (a dataset registered,
activated, retired) :class:`RawIngestSupervisor` creates the missing raw topics and replaces the
worker with one subscribed to the new list. The group's committed offsets carry over, so nothing
is read twice or skipped across the swap; the cost is one group rebalance per change, which is
rare (datasets change on the scale of days). Replicas of ingest share the group, hence the
partitions.

Each record goes through the same :func:`~services.ingest.routing.route_record` as an HTTP
batch; the handler sends its ds./dlq. record at once and ``flush`` waits for every
acknowledgement of the poll, so the worker commits the raw offsets only after the bus has what
they became. If the bus fails, the batch is read again from the committed offsets, and each
record gets the same event id again (derived from topic, partition and offset).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.common.background import Loop
from services.common.bus import Bus, Message, RecordMetadata
from services.common.bus.base import wait_all
from services.common.topics import dataset_of_raw, dead_letter_topic, raw_topic
from services.common.worker import ConsumerWorker, RetryableError
from services.ingest.projection import CatalogProjection
from services.ingest.service import Ingestor
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


@dataclass
class _Tally:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rules: Counter[str] = field(default_factory=Counter)


class RawRecordHandler:
    """Routes each raw record, sends its result at once, and waits for the acks in ``flush``."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor
        self._pending: list[concurrent.futures.Future[RecordMetadata]] = []
        self._tallies: dict[str, _Tally] = {}
        self._started: float | None = None

    def handle(self, message: Message) -> None:
        try:
            if self._started is None:
                self._started = time.perf_counter()
            routed = self._ingestor.route_raw(message)
            if routed is None:
                raise RetryableError(f"the contract of {message.topic} has not reached ingest yet")
            contract = self._ingestor.catalog.contract(routed.dataset, routed.contract_version)
            self._ingestor.topics.ensure_dataset(
                routed.dataset,
                contract.retention_ms if contract else None,
                contract.partitions if contract else None,
            )
            self._pending.extend(self._ingestor.producer.send_many(routed.records))
            tally = self._tallies.setdefault(routed.dataset, _Tally())
            tally.accepted += routed.accepted
            tally.rejected += routed.rejected
            tally.duplicates += routed.duplicates
            tally.rules.update(routed.rules)
        except BaseException:
            # The worker retries the whole poll from the committed offsets: forget this one.
            self._reset()
            raise

    def flush(self) -> None:
        """Wait until the bus acknowledged every record of this poll (else raise: no commit)."""
        try:
            if self._pending:
                wait_all(self._pending, self._ingestor.settings.ack_timeout_s)
        except Exception:
            self._ingestor.metrics.producer_errors.labels("unavailable").inc()
            self._reset()
            raise
        metrics = self._ingestor.metrics
        for dataset_id, tally in self._tallies.items():
            metrics.count(
                dataset_id,
                accepted=tally.accepted,
                rejected=tally.rejected,
                duplicates=tally.duplicates,
                rules=tally.rules,
            )
        if self._started is not None:
            metrics.batch_duration.labels("raw").observe(time.perf_counter() - self._started)
        self._reset()

    def _reset(self) -> None:
        self._pending = []
        self._tallies = {}
        self._started = None


class RawIngestSupervisor:
    """Keeps one raw worker subscribed to the raw topics of the datasets that take records."""

    def __init__(
        self,
        bus: Bus,
        ingestor: Ingestor,
        catalog: CatalogProjection,
        settings: IngestSettings,
        *,
        caught_up: Callable[[], bool] | None = None,
    ) -> None:
        self._bus = bus
        self._ingestor = ingestor
        self._catalog = catalog
        self._settings = settings
        self._caught_up = caught_up
        self._changed = threading.Event()
        self._loop = Loop("ingest-raw-supervisor", self._run, wake=self._changed.set)
        self.worker: ConsumerWorker | None = None
        self.topics: list[str] = []
        self.restarts = 0
        catalog.on_datasets_changed(self._changed.set)

    def start(self) -> None:
        self._changed.set()
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)
        self._stop_worker(timeout_s)

    @property
    def last_error(self) -> str | None:
        return self._loop.last_error

    def readiness(self) -> str | None:
        if self.last_error:
            return f"raw topics: {self.last_error}"
        if self.worker is not None and not self.worker.alive:
            return "the raw worker stopped"
        return None

    def _run(self, loop: Loop) -> None:
        while not loop.stopping:
            if self._caught_up is not None and not self._caught_up():
                loop.wait(0.1)
                continue
            if not self._changed.wait(1.0):
                continue
            # More changes often follow (a contract and its dataset): take them in one go.
            loop.wait(self._settings.raw_restart_debounce_s)
            self._changed.clear()
            try:
                self._resubscribe(self._catalog.writable_datasets())
                loop.last_error = None
            except Exception as error:
                loop.fail(error)
                log.warning("could not subscribe to the raw topics; retrying: %s", error)
                self._changed.set()
                loop.wait(1.0)

    def _resubscribe(self, dataset_ids: Sequence[str]) -> None:
        topics = [raw_topic(dataset_id) for dataset_id in dataset_ids]
        if topics == self.topics and (self.worker is None or self.worker.alive):
            return
        if dataset_ids:
            self._ingestor.topics.ensure_raw(dataset_ids)
        self._stop_worker()
        self.topics = topics
        if not topics:
            return
        worker = ConsumerWorker(
            self._bus,
            name="ingest-raw",
            group_id=self._settings.raw_group_id,
            topics=topics,
            handler=RawRecordHandler(self._ingestor),
            dead_letter_topic=lambda message: dead_letter_topic(dataset_of_raw(message.topic)),
        )
        worker.start()
        self.worker = worker
        self.restarts += 1
        log.info("raw worker subscribed to %d raw topics", len(topics))

    def _stop_worker(self, timeout_s: float = 10.0) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop(timeout_s)
