"""Consumer workers: a thread that polls, hands each message to a handler, and commits after.

The handler says what to do with a message by what it raises:

- nothing: the message is done;
- :class:`PoisonMessage`: the message can never be processed; it goes to the dead-letter topic
  the worker was given, with the reason in headers, and processing goes on;
- :class:`RetryableError` (or any other exception): something outside the message failed (bus,
  database); the batch is retried from the last committed offsets after a backoff.

Offsets are committed only after ``handler.flush()`` returned, so a crash anywhere before that
makes the group read the same records again: at-least-once, never a skipped record.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from services.common.background import Loop
from services.common.bus import Bus, Consumer, Message, OutgoingRecord, TopicPartition
from services.common.envelope import CloudEvent

log = logging.getLogger(__name__)
Item = TypeVar("Item")


class RetryableError(Exception):
    """Processing failed for a reason that may pass (an unreachable bus or database)."""


class PoisonMessage(Exception):
    """This message can never be processed; dead-letter it with ``reason``."""

    def __init__(self, reason: str, code: str = "poison") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class MessageHandler(Protocol):
    def handle(self, message: Message) -> None:
        """Process one message; raise PoisonMessage or RetryableError to say otherwise."""

    def flush(self) -> None:
        """Finish the batch (wait for acks, store results): called before every commit."""


class EventBatchHandler(abc.ABC, Generic[Item]):
    """A handler whose work is one transaction per batch: each CloudEvent is read into an item
    (or skipped), and :meth:`apply` does the whole batch at flush time, before the commit.

    A record that is no CloudEvent is a poison message. If :meth:`apply` fails, the items are
    dropped: the worker re-reads the batch from the committed offsets and reads them again.
    """

    def __init__(self) -> None:
        self._pending: list[Item] = []

    @abc.abstractmethod
    def read(self, event: CloudEvent) -> Item | None:
        """The item an event contributes, None to skip it; PoisonMessage if it never can."""

    @abc.abstractmethod
    def apply(self, items: list[Item]) -> None:
        """Do the batch's work (one transaction); raise to have the batch retried."""

    def handle(self, message: Message) -> None:
        if message.value is None:
            return
        try:
            event = CloudEvent.from_message(message)
        except Exception as error:
            raise PoisonMessage(f"not a CloudEvent: {error}", code="not-a-cloudevent") from None
        item = self.read(event)
        if item is not None:
            self._pending.append(item)

    def flush(self) -> None:
        if not self._pending:
            return
        try:
            self.apply(self._pending)
        finally:
            self._pending = []


DeadLetterTopic = Callable[[Message], str]


class ConsumerWorker:
    """Runs one consumer in its own thread, owned and stopped by a service's lifespan."""

    def __init__(
        self,
        bus: Bus,
        *,
        name: str,
        group_id: str,
        topics: Sequence[str],
        handler: MessageHandler,
        dead_letter_topic: DeadLetterTopic | None = None,
        max_records: int = 500,
        poll_timeout_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._bus = bus
        self.name = name
        self._group_id = group_id
        self._topics = list(topics)
        self._handler = handler
        self._dead_letter_topic = dead_letter_topic
        self._max_records = max_records
        self._poll_timeout_s = poll_timeout_s
        self._max_backoff_s = max_backoff_s
        self._loop = Loop(f"worker-{name}", self._run)
        self.processed = 0
        self.dead_lettered = 0
        self.failures = 0

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    @property
    def alive(self) -> bool:
        return self._loop.alive

    def readiness(self) -> str | None:
        """A readiness check: None while the worker's thread runs."""
        return self._loop.readiness()

    def _run(self, loop: Loop) -> None:
        backoff = 0.1
        consumer: Consumer | None = None
        while not loop.stopping:
            try:
                if consumer is None:
                    consumer = self._bus.consumer(self._group_id, self._topics, client_id=self.name)
                self._process_batch(consumer)
                backoff = 0.1
            except Exception:
                self.failures += 1
                log.exception("worker %s: batch failed, retrying from committed offsets", self.name)
                if consumer is not None:
                    _close_quietly(consumer)
                    consumer = None
                loop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
        if consumer is not None:
            _close_quietly(consumer)

    def _process_batch(self, consumer: Consumer) -> None:
        messages = consumer.poll(self._poll_timeout_s, self._max_records)
        if not messages:
            return
        positions: dict[TopicPartition, int] = {}
        poisoned: list[tuple[Message, PoisonMessage]] = []
        for message in messages:
            try:
                self._handler.handle(message)
            except PoisonMessage as poison:
                poisoned.append((message, poison))
            positions[message.topic_partition] = message.offset + 1
        self._handler.flush()
        # Dead letters go out only once the batch's own work is done, so a retried batch does
        # not dead-letter the same message twice.
        if poisoned:
            self._dead_letter(poisoned)
        consumer.commit(positions)
        self.processed += len(messages)

    def _dead_letter(self, poisoned: list[tuple[Message, PoisonMessage]]) -> None:
        if self._dead_letter_topic is None:
            for message, poison in poisoned:
                log.error(
                    "worker %s: dropping poison message %s@%s: %s",
                    self.name,
                    message.topic,
                    message.offset,
                    poison.reason,
                )
            return
        now = datetime.now(UTC).isoformat().encode()
        records = [
            OutgoingRecord(
                self._dead_letter_topic(message),
                message.value,
                message.key,
                (
                    *message.headers,
                    ("dlq_reason", poison.code.encode()),
                    ("dlq_message", poison.reason.encode()),
                    ("dlq_source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
                    ("dlq_time", now),
                ),
            )
            for message, poison in poisoned
        ]
        self._bus.producer().publish(records)
        self.dead_lettered += len(records)


def _close_quietly(consumer: Consumer) -> None:
    try:
        consumer.close()
    except Exception:
        log.debug("closing a consumer failed", exc_info=True)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
