"""Read models: a service's local state, built from a (compacted) topic and kept following it.

Ingest, feeds and quality never ask the catalog over HTTP on the hot path; each keeps what it
needs (compiled validators, key hashes, active grants) in memory, built by replaying
``platform.catalog`` from the beginning and then following it. Every replica reads the whole
topic (no consumer group: state is not split), and the service reports ready only once it has
caught up with the end offsets it saw when it started.

A service starts while the bus is still down: ``start`` returns at once, and the read model's
thread keeps trying to create its topic (each try bounded by ``ensure_timeout_s``) until the bus
answers; ``readiness`` says why it is not ready meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from services.common.background import Loop, until_bus_answers
from services.common.bus import Bus, Consumer, Message, TopicPartition, TopicSpec

log = logging.getLogger(__name__)


class Projection(Protocol):
    """Applies one message to local state. Must be idempotent: replays re-apply messages."""

    def apply(self, message: Message) -> None: ...


ChangeListener = Callable[[Message], None]


class ReadModel:
    """Replays ``topic`` into ``projection`` from the beginning, then follows it in a thread."""

    def __init__(
        self,
        bus: Bus,
        topic: str | TopicSpec,
        projection: Projection,
        *,
        name: str,
        poll_timeout_s: float = 0.2,
        ensure_timeout_s: float = 10.0,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._bus = bus
        # A bare name is a topic like platform.catalog: one partition, compacted.
        self._spec = topic if isinstance(topic, TopicSpec) else TopicSpec(topic, partitions=1, compact=True)
        self.topic = self._spec.name
        self._projection = projection
        self.name = name
        self._poll_timeout_s = poll_timeout_s
        self._ensure_timeout_s = ensure_timeout_s
        self._retry_interval_s = retry_interval_s
        self._caught_up = threading.Event()
        self._loop = Loop(f"readmodel-{name}", self._run)
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()
        self.applied = 0

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener`` after each applied message (from the read model's thread)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Replay and follow the topic on the read model's thread; returns at once, bus up or not."""
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    @property
    def last_error(self) -> str | None:
        """Why the wait for the bus or the last replay failed; cleared when it succeeds."""
        return self._loop.last_error

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._caught_up.wait(timeout_s)

    def readiness(self) -> str | None:
        """A readiness check: None once caught up."""
        if self.caught_up:
            return None
        return f"replaying {self.topic}" + (f" (last error: {self.last_error})" if self.last_error else "")

    def _run(self, loop: Loop) -> None:
        # Create the topic if missing, retrying while the bus is down.
        answered = until_bus_answers(
            loop,
            lambda: self._bus.admin().ensure_topic(self._spec, timeout_s=self._ensure_timeout_s),
            what=f"read model {self.name} of {self.topic}",
            backoff_s=self._retry_interval_s,
            max_backoff_s=self._retry_interval_s,
        )
        if not answered:
            return
        while not loop.stopping:
            consumer: Consumer | None = None
            try:
                consumer = self._bus.consumer(None, [self.topic], start="earliest", client_id=self.name)
                consumer.seek_to_beginning()
                targets = consumer.end_offsets()
                self._follow(loop, consumer, targets)
            except Exception as error:
                loop.fail(error)
                log.exception("read model %s failed; replaying again", self.name)
                loop.wait(1.0)
            finally:
                if consumer is not None:
                    consumer.close()

    def _follow(self, loop: Loop, consumer: Consumer, targets: dict[TopicPartition, int]) -> None:
        self._mark_if_caught_up(consumer, targets)
        while not loop.stopping:
            messages = consumer.poll(self._poll_timeout_s, 1000)
            for message in messages:
                self._apply(message)
            if not self._caught_up.is_set():
                self._mark_if_caught_up(consumer, targets)

    def _apply(self, message: Message) -> None:
        with self._lock:
            self._projection.apply(message)
            self.applied += 1
        for listener in self._listeners:
            try:
                listener(message)
            except Exception:
                log.exception("read model %s: a change listener failed", self.name)

    def _mark_if_caught_up(self, consumer: Consumer, targets: dict[TopicPartition, int]) -> None:
        if all(consumer.position(tp) >= end for tp, end in targets.items()):
            self._loop.last_error = None
            self._caught_up.set()
