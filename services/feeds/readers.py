"""Readers: the Kafka consumers that read a subscription, one consumer group per subscription.

Every reader of a subscription (a long-poll consumer held in the :class:`ReaderPool`, the webhook
pusher, an open Server-Sent Events stream that is not alone on its subscription) is a member of the
subscription's group ``feeds.sub.<id>``: several readers, in one process or several replicas,
share the partitions, and the group's committed offsets (moved only by acknowledgements) are where
any new reader starts. A stream alone on its subscription reads its topic's shared consumer and
commits to the group from outside it (:mod:`services.feeds.fanout`).
A record delivered but not acknowledged is therefore delivered again after a restart, an idle
reader being closed or a rebalance: at-least-once.

Positioning (a new subscription's start, a replay) needs the whole group: :func:`open_positioned`
joins as a member, waits until it holds every partition, seeks and commits, and hands the reader
on, so the positions exist before any other reader reads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.background import Periodic, detached
from services.common.bus import Bus, BusError, Consumer, Message, TopicPartition
from services.common.i18n import N_, Sentence
from services.feeds.exceptions import GroupNotReady, InvalidPosition, ReadersExhausted

log = logging.getLogger(__name__)


def group_id_of(subscription_id: str) -> str:
    return f"feeds.sub.{subscription_id}"


class SubscriptionReader(Protocol):
    """What a delivery reads a subscription through: a group member (:class:`Reader`) or an open
    stream's reader (:class:`~services.feeds.fanout.StreamReader`)."""

    def poll(self, timeout_s: float, max_records: int) -> list[Message]: ...

    def cursor_offsets(self) -> dict[int, int]: ...

    def commit(self, offsets: Mapping[int, int]) -> dict[int, int]: ...

    def seek(self, offsets: Mapping[int, int]) -> None: ...

    def close(self) -> None: ...


class Reader:
    """One group member reading one subscription. Not thread-safe: hold :attr:`lock` to use it."""

    def __init__(
        self,
        bus: Bus,
        *,
        group_id: str,
        topic: str,
        epoch: int,
        client_id: str,
        fetch_bytes: int | None = None,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.epoch = epoch
        self.consumer: Consumer = bus.consumer(
            group_id, [topic], start="earliest", client_id=client_id, fetch_bytes=fetch_bytes
        )
        self.lock = threading.Lock()
        self.positions: dict[int, int] = {}
        """partition -> next offset after what this reader delivered (or was positioned at)."""
        self.last_used = time.monotonic()
        self.closed = False

    def poll(self, timeout_s: float, max_records: int) -> list[Message]:
        self.last_used = time.monotonic()
        messages = self.consumer.poll(timeout_s, max_records)
        for message in messages:
            self.positions[message.partition] = message.offset + 1
        return messages

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment() if tp.topic == self.topic}

    def cursor_offsets(self) -> dict[int, int]:
        """The positions of every partition this reader holds now: what a cursor carries.

        Every held partition, not only those the last batch came from: acknowledging the cursor
        then also says where the others stand, and a client resuming from it gets again whatever
        any partition delivered after it.
        """
        return {
            tp.partition: self.consumer.position(tp)
            for tp in self.consumer.assignment()
            if tp.topic == self.topic
        }

    def commit(self, offsets: Mapping[int, int]) -> dict[int, int]:
        """Commit ``offsets`` of the partitions this reader holds; returns what was committed.

        A partition that moved to another member is left to it: that member reads on from the
        last committed offset, so nothing is lost, at worst delivered again.
        """
        assigned = self.assigned()
        mine = {p: o for p, o in offsets.items() if p in assigned}
        if mine:
            self.consumer.commit({TopicPartition(self.topic, p): o for p, o in mine.items()})
        return mine

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Read on from ``offsets`` on the partitions this reader holds (a resumed stream)."""
        assigned = self.assigned()
        for partition, offset in offsets.items():
            if partition in assigned:
                self.consumer.seek(TopicPartition(self.topic, partition), offset)
                self.positions[partition] = offset

    def rewind(self) -> None:
        """Go back to the committed offsets, so that what was not acknowledged comes again."""
        for tp in self.consumer.assignment():
            committed = self.consumer.committed(tp)
            if committed is not None:
                self.consumer.seek(tp, committed)
                self.positions[tp.partition] = committed
            else:
                self.consumer.seek_to_beginning([tp])
                self.positions.pop(tp.partition, None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.consumer.close()
        except Exception:
            log.debug("closing the reader of %s failed", self.group_id, exc_info=True)


@dataclass(frozen=True)
class StartPosition:
    """Where a subscription starts or replays to: earliest, latest, offsets or a timestamp."""

    kind: str
    offsets: dict[int, int] | None = None
    timestamp_ms: int | None = None

    def to_value(self) -> dict[str, Any]:
        if self.kind == "offsets":
            return {"offsets": {str(p): o for p, o in sorted((self.offsets or {}).items())}}
        if self.kind == "timestamp":
            return {"timestamp_ms": self.timestamp_ms}
        return {"kind": self.kind}


def check_offsets(bus: Bus, topic: str, offsets: Mapping[int, int]) -> None:
    """Every offset names a partition of ``topic`` and lies within its retention (start..end)."""
    admin = bus.admin()
    beginning, end = admin.beginning_offsets(topic), admin.end_offsets(topic)
    for partition, offset in offsets.items():
        if partition not in end:
            raise InvalidPosition(
                Sentence(
                    N_("%(topic)s has no partition %(partition)s (it has %(count)s)"),
                    topic=topic,
                    partition=partition,
                    count=len(end),
                ),
                path=f"/offsets/{partition}",
            )
        first, last = beginning.get(partition, 0), end[partition]
        if not first <= offset <= last:
            raise InvalidPosition(
                Sentence(
                    N_(
                        "offset %(offset)s of partition %(partition)s is outside the retained range %(first)s..%(last)s"
                    ),
                    offset=offset,
                    partition=partition,
                    first=first,
                    last=last,
                ),
                path=f"/offsets/{partition}",
            )


def open_positioned(
    bus: Bus,
    *,
    group_id: str,
    topic: str,
    epoch: int,
    target: StartPosition,
    client_id: str,
    join_timeout_s: float,
) -> tuple[Reader, dict[int, int]]:
    """A reader holding every partition of the group, moved to ``target`` and committed there."""
    partitions = bus.admin().partitions_for(topic)
    reader = Reader(bus, group_id=group_id, topic=topic, epoch=epoch, client_id=client_id)
    try:
        deadline = time.monotonic() + join_timeout_s
        while len(reader.assigned()) < partitions:
            if time.monotonic() > deadline:
                raise GroupNotReady(
                    Sentence(
                        N_(
                            "the consumer group %(group_id)s did not hand all %(partitions)s partitions over within %(join_timeout_s).0fs (other readers still hold some); retry shortly"
                        ),
                        group_id=group_id,
                        partitions=partitions,
                        join_timeout_s=join_timeout_s,
                    )
                )
            # Records polled while joining are not delivered: the seek below sets the position.
            reader.consumer.poll(0.1, 1)
        consumer = reader.consumer
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        if target.kind == "earliest":
            consumer.seek_to_beginning(tps)
        elif target.kind == "latest":
            consumer.seek_to_end(tps)
        elif target.kind == "timestamp":
            consumer.seek_to_timestamp(int(target.timestamp_ms or 0), tps)
        else:
            given = target.offsets or {}
            for tp in tps:
                if tp.partition in given:
                    consumer.seek(tp, given[tp.partition])
                else:
                    committed = consumer.committed(tp)
                    if committed is not None:
                        consumer.seek(tp, committed)
                    else:
                        consumer.seek_to_beginning([tp])
        positions = {tp.partition: consumer.position(tp) for tp in tps}
        reader.commit(positions)
        reader.positions = dict(positions)
        return reader, positions
    except BaseException:
        reader.close()
        raise


class ReaderPool:
    """Long-poll readers by subscription: bounded, each closed after being idle a while."""

    def __init__(
        self, bus: Bus, *, max_readers: int, idle_s: float, client_id: str = "citybase-feeds"
    ) -> None:
        self._bus = bus
        self._max = max_readers
        self._idle_s = idle_s
        self._client_id = client_id
        self._readers: dict[str, Reader] = {}
        self._lock = threading.Lock()
        self._janitor = Periodic("feeds-reader-janitor", min(idle_s / 2, 5.0), self._close_idle)

    def start(self) -> None:
        self._janitor.start()

    def stop(self) -> None:
        self._janitor.stop(5)
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            with reader.lock:
                reader.close()

    def __len__(self) -> int:
        return len(self._readers)

    @contextlib.contextmanager
    def lease(self, subscription_id: str, group_id: str, topic: str, epoch: int) -> Iterator[Reader]:
        """The subscription's reader, locked for the caller; rebuilt after a replay or a failure."""
        while True:
            reader = self._get(subscription_id, group_id, topic, epoch)
            reader.lock.acquire()
            if not reader.closed:
                break
            reader.lock.release()  # closed by the janitor or a replay meanwhile: take a new one
        try:
            yield reader
        except BusError:
            self.discard(subscription_id, reader)
            raise
        finally:
            reader.last_used = time.monotonic()
            reader.lock.release()

    def _get(self, subscription_id: str, group_id: str, topic: str, epoch: int) -> Reader:
        with self._lock:
            reader = self._readers.get(subscription_id)
            if reader is not None and not reader.closed and reader.epoch == epoch:
                return reader
            stale = self._readers.pop(subscription_id, None)
            if len(self._readers) >= self._max:
                self._evict_one()
            reader = Reader(self._bus, group_id=group_id, topic=topic, epoch=epoch, client_id=self._client_id)
            self._readers[subscription_id] = reader
        if stale is not None:
            self._close_later(stale)
        return reader

    def put(self, subscription_id: str, reader: Reader) -> None:
        """Hand a positioned reader to the pool (it replaces any other of the subscription)."""
        with self._lock:
            stale = self._readers.get(subscription_id)
            if stale is None and len(self._readers) >= self._max:
                try:
                    self._evict_one()
                except ReadersExhausted:
                    reader.close()
                    return
            self._readers[subscription_id] = reader
        if stale is not None and stale is not reader:
            self._close_later(stale)

    def discard(self, subscription_id: str, reader: Reader | None = None) -> None:
        with self._lock:
            current = self._readers.get(subscription_id)
            if current is None or (reader is not None and current is not reader):
                target = reader
            else:
                target = self._readers.pop(subscription_id)
        if target is not None:
            self._close_later(target)

    def _evict_one(self) -> None:
        idle = [(r.last_used, key) for key, r in self._readers.items() if not r.lock.locked()]
        if not idle:
            raise ReadersExhausted(
                Sentence(
                    N_("%(limit)s subscriptions are being read in this process; retry shortly"),
                    limit=self._max,
                ),
                retry_after_s=2,
            )
        _, key = min(idle)
        self._close_later(self._readers.pop(key))

    def _close_later(self, reader: Reader) -> None:
        """Close ``reader`` once its current user is done with it (never under the pool lock)."""

        def close() -> None:
            with reader.lock:
                reader.close()

        if reader.lock.acquire(blocking=False):
            try:
                reader.close()
            finally:
                reader.lock.release()
        else:
            detached("feeds-reader-close", close)

    def _close_idle(self) -> None:
        """The janitor's tick: close the readers nobody used for ``idle_s``."""
        cutoff = time.monotonic() - self._idle_s
        with self._lock:
            idle = [
                key
                for key, reader in self._readers.items()
                if reader.last_used < cutoff and not reader.lock.locked()
            ]
            readers = [self._readers.pop(key) for key in idle]
        for reader in readers:
            self._close_later(reader)
