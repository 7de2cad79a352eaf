"""Streams sharing consumers: one consumer per dataset topic in the process, fanning its records
out to the open Server-Sent Events streams that read the topic.

A kafka-python consumer costs a stream about 185 KiB while idle (350 KiB as a group member: its
own network client, IO thread, encode buffers and group coordinator) and its own fetch buffers
while a burst arrives. So a stream of a subscription that nobody else reads holds no consumer: it
keeps its own positions per partition (from the subscription group's committed offsets, or its
``Last-Event-ID``) and takes from its topic's :class:`TopicFeed` the records at or after them.

- **Acknowledgements** stay commits to the subscription's group ``feeds.sub.<id>``, made from
  outside the group (:meth:`~services.common.bus.base.Admin.commit_offsets`). The bus refuses such
  a commit while the group has a live member; so a stream opens on the shared path only while the
  group has none and no other stream of the subscription is open in the process.
- **Exclusivity.** When a second reader of the subscription appears (another stream here, a
  long-poll or a stream on another replica), the shared stream turns into a group member like
  any other reader (:meth:`StreamReader.join_group`): at once when the other is a stream of this
  process, else when its next acknowledgement is refused. It then reads from the group's
  committed offsets, and the group splits the partitions, so what it delivered but had not
  acknowledged may come again (at-least-once, as after any rebalance).
- **Catching up.** A stream whose positions are behind its topic's feed (records arrived after
  the feed read them, a resumption from an older ``Last-Event-ID``, a client slower than the
  others whose buffer overflowed) reads on its own consumer, with no group, until it reaches the
  feed, and then attaches. The feed never goes back for one stream: every other stream would wait
  while it re-reads what they already had.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from services.common.bus import Bus, BusError, Consumer, GroupActive, Message, TopicPartition
from services.feeds.readers import Reader

log = logging.getLogger(__name__)

STREAM_BUFFER = 2_000
"""Records a stream may have waiting in its buffer. A stream that falls further behind (its
client reads slowly) leaves the feed and catches up on its own consumer, instead of the feed's
records piling up for it. Several times :data:`FEED_POLL`, so that one hand-out never overflows
a stream that keeps up."""

STREAM_FETCH_BYTES = 256 * 1024
"""What a consumer of one stream (catching up, or a group member) fetches ahead per partition: a
batch of ``sse_batch`` (500) records of a few hundred bytes, not kafka-python's 1 MiB, which a
stream far behind would otherwise hold per partition."""

FEED_POLL = 500
"""Records the feed takes from its consumer at a time."""

ATTACH_RETRY_S = 1.0
"""How often a stream catching up on its own consumer looks whether it is near its feed."""

CATCH_UP_GAP = 1_000
"""Records a stream may be behind its feed and still attach: it reads those on its own consumer
while the feed's records after them wait in its buffer, then goes on with the buffer. A stream
further behind catches up on its own consumer first; attaching only once level with the feed
would never happen while other streams keep the feed moving."""


class TopicFeed:
    """The shared consumer of one topic (no group, every partition) and the streams attached to it.

    No thread of its own: a stream that finds its buffer empty polls the consumer for every
    attached stream (one at a time; the others wait for what it hands out)."""

    def __init__(self, bus: Bus, topic: str, client_id: str, on_empty: Callable[[TopicFeed], None]) -> None:
        self.topic = topic
        self._bus = bus
        self._client_id = client_id
        self._on_empty = on_empty
        self._consumer: Consumer | None = None
        self._polling = threading.Lock()
        """Held while polling or moving the consumer; taken before :attr:`_state`."""
        self._state = threading.Condition()
        self.positions: dict[int, int] = {}
        """partition -> the next offset the consumer hands out."""
        self.attached: set[StreamReader] = set()
        self.closed = False

    def attach(self, reader: StreamReader) -> bool:
        """Attach ``reader`` unless the feed is more than :data:`CATCH_UP_GAP` records past its
        positions (it then gets every record at or after them and the feed's position); a feed
        nobody reads is moved to the reader's positions first, unless they are more than
        :data:`CATCH_UP_GAP` records behind the topic's end."""
        with self._state:
            if self.attached:
                return self._attach_if_near(reader)
        with self._polling, self._state:
            if self.closed:
                return False  # dropped meanwhile: the stream catches up, then takes the new feed
            if self.attached:
                return self._attach_if_near(reader)
            # Far behind the topic's end, the stream would hold the feed back for the streams that
            # come after it: it catches up on its own consumer first.
            ends = self._bus.admin().end_offsets(self.topic)
            if sum(max(0, end - reader.positions.get(p, 0)) for p, end in ends.items()) > CATCH_UP_GAP:
                return False
            if self._consumer is None:
                self._consumer = self._bus.consumer(None, [self.topic], client_id=self._client_id)
            for partition, offset in reader.positions.items():
                self._consumer.seek(TopicPartition(self.topic, partition), offset)
            self.positions = dict(reader.positions)
            self._add(reader)
            return True

    def _attach_if_near(self, reader: StreamReader) -> bool:
        gap = {p: o for p, o in self.positions.items() if reader.positions.get(p, 0) < o}
        if sum(o - reader.positions.get(p, 0) for p, o in gap.items()) > CATCH_UP_GAP:
            return False
        self._add(reader, gap or None)
        return True

    def _add(self, reader: StreamReader, gap: dict[int, int] | None = None) -> None:
        reader.buffer.clear()
        reader.bridge = gap
        reader.feed = self
        self.attached.add(reader)

    def detach(self, reader: StreamReader) -> None:
        with self._state:
            self._remove(reader)
            empty = not self.attached
        if empty:
            self._on_empty(self)

    def _remove(self, reader: StreamReader) -> None:
        self.attached.discard(reader)
        reader.feed = None
        reader.bridge = None
        reader.buffer.clear()

    def fill(self, reader: StreamReader, timeout_s: float) -> None:
        """Poll for every attached stream, or wait (up to ``timeout_s``) while another does."""
        if not self._polling.acquire(blocking=False):
            with self._state:
                if reader.feed is self and not reader.buffer:
                    self._state.wait(timeout_s)
            return
        overflowed = False
        try:
            consumer = self._consumer
            if consumer is None:
                return
            try:
                messages = consumer.poll(timeout_s, FEED_POLL)
            except BusError:
                with self._state:
                    self._state.notify_all()
                raise
            with self._state:
                overflowed = self._hand_out(messages)
                self._state.notify_all()
        finally:
            self._polling.release()
        if overflowed and not self.attached:
            self._on_empty(self)

    def _hand_out(self, messages: list[Message]) -> bool:
        """Give each attached stream the records at or after its positions; True when a stream
        was detached for overflowing."""
        overflowed = False
        for message in messages:
            self.positions[message.partition] = message.offset + 1
        for reader in list(self.attached):
            positions, buffer = reader.positions, reader.buffer
            buffer.extend(m for m in messages if m.offset >= positions.get(m.partition, 0))
            if len(buffer) > STREAM_BUFFER:
                self._remove(reader)
                overflowed = True
        return overflowed

    def close(self) -> None:
        with self._polling, self._state:
            self.closed = True
            consumer, self._consumer = self._consumer, None
            for reader in list(self.attached):
                self._remove(reader)
            self._state.notify_all()
        if consumer is not None:
            try:
                consumer.close()
            except Exception:
                log.debug("closing the feed of %s failed", self.topic, exc_info=True)


class StreamReader:
    """What a stream reads through: the records of its topic's feed at or after its own positions
    (or, behind the feed, its own consumer); once another reader of the subscription appears, a
    group member (:class:`~services.feeds.readers.Reader`) like any other.

    The interface of a :class:`Reader` as :class:`~services.feeds.delivery.Delivery` and
    :class:`~services.feeds.streams.Stream` use it. Used by its stream's thread only, but for
    :meth:`leave_feed`, which another stream of the subscription may call."""

    def __init__(
        self,
        fanout: Fanout,
        *,
        subscription_id: str,
        group_id: str,
        topic: str,
        epoch: int,
        positions: Mapping[int, int],
        member: Callable[[], Reader],
    ) -> None:
        self.fanout = fanout
        self.subscription_id = subscription_id
        self.group_id = group_id
        self.topic = topic
        self.epoch = epoch
        self._member = member
        self.positions: dict[int, int] = dict(positions)
        """partition -> the next offset this stream delivers (shared path)."""
        self.buffer: deque[Message] = deque()
        """Records the feed handed out for this stream, not delivered yet."""
        self.feed: TopicFeed | None = None
        self.bridge: dict[int, int] | None = None
        """Attached behind the feed: partition -> the feed's position then, up to which this
        stream reads on its own consumer before taking from its buffer."""
        self._own: Consumer | None = None
        """The consumer a stream behind its feed catches up on."""
        self._attach_after = 0.0
        """Catching up, the stream tries to attach again at this time (monotonic)."""
        self.group_reader: Reader | None = None
        self._must_join = False
        self.closed = False

    @property
    def shared(self) -> bool:
        """Whether the stream reads without being a member of its subscription's group."""
        return self.group_reader is None

    def leave_feed(self) -> None:
        """Become a group member before the next read (another stream of the subscription opened)."""
        self._must_join = True

    def join_group(self) -> Reader:
        """Leave the shared path for good: read as a member of the subscription's group, from its
        committed offsets."""
        if self.group_reader is None:
            self._leave_shared()
            self.group_reader = self._member()
        return self.group_reader

    def _leave_shared(self) -> None:
        feed = self.feed
        if feed is not None:
            feed.detach(self)
        self._close_own()

    def _close_own(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            try:
                own.close()
            except Exception:
                log.debug("closing the catch-up reader of %s failed", self.group_id, exc_info=True)

    def poll(self, timeout_s: float, max_records: int) -> list[Message]:
        if self._must_join and timeout_s > 0:
            # A waiting poll starts a batch (Delivery.read_batch); the batch being built is not
            # switched to the group's positions in its middle.
            self.join_group()
        if self.group_reader is not None:
            return self.group_reader.poll(timeout_s, max_records)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.feed is None and time.monotonic() >= self._attach_after:
                try:
                    attached = self.fanout.feed_of(self.topic).attach(self)
                except BusError as error:  # the topic's end unknown just now: read on, try later
                    log.info(
                        "stream of %s: cannot attach to the feed of %s: %s", self.group_id, self.topic, error
                    )
                    attached = False
                if not attached:
                    self._attach_after = time.monotonic() + ATTACH_RETRY_S
                elif self.bridge is None:
                    self._close_own()
            feed = self.feed
            if feed is None or self.bridge is not None:
                return self._catch_up(max(0.0, deadline - time.monotonic()), max_records)
            messages = self._take_buffered(max_records)
            if messages:
                return messages
            feed.fill(self, max(0.0, deadline - time.monotonic()))
            messages = self._take_buffered(max_records)
            if messages or time.monotonic() >= deadline:
                return messages

    def _take_buffered(self, max_records: int) -> list[Message]:
        buffer, taken = self.buffer, list[Message]()
        try:
            while len(taken) < max_records:
                taken.append(buffer.popleft())
        except IndexError:  # empty, or emptied by the feed detaching this stream meanwhile
            pass
        return self._take(taken)

    def _take(self, messages: list[Message]) -> list[Message]:
        """The records at or after the positions, which then move past them."""
        positions = self.positions
        taken = [m for m in messages if m.offset >= positions.get(m.partition, 0)]
        for message in taken:
            positions[message.partition] = message.offset + 1
        return taken

    def _catch_up(self, timeout_s: float, max_records: int) -> list[Message]:
        """Records from the stream's own consumer; once it is past the gap it was attached with,
        the rest comes from the buffer."""
        if self._own is None:
            own = self.fanout.bus.consumer(
                None, [self.topic], client_id=self.fanout.client_id, fetch_bytes=STREAM_FETCH_BYTES
            )
            try:
                for partition, offset in self.positions.items():
                    own.seek(TopicPartition(self.topic, partition), offset)
            except BaseException:
                own.close()
                raise
            self._own = own
        messages = self._take(self._own.poll(timeout_s, max_records))
        bridge = self.bridge
        if bridge is not None and all(self.positions.get(p, 0) >= o for p, o in bridge.items()):
            self.bridge = None
            self._close_own()
        return messages

    def assigned(self) -> set[int]:
        if self.group_reader is not None:
            return self.group_reader.assigned()
        return set(self.positions)

    def cursor_offsets(self) -> dict[int, int]:
        """Every partition's position (a cursor carries them all, as a group member's does)."""
        if self.group_reader is not None:
            return self.group_reader.cursor_offsets()
        return dict(self.positions)

    def commit(self, offsets: Mapping[int, int]) -> dict[int, int]:
        """Commit to the subscription's group; refused while it has members, and then this stream
        becomes one (the batch is not acknowledged, so it comes again: at-least-once)."""
        if self.group_reader is not None:
            return self.group_reader.commit(offsets)
        try:
            self.fanout.bus.admin().commit_offsets(self.group_id, self.topic, offsets)
        except GroupActive:
            self.join_group()
            raise
        return dict(offsets)

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Read on from ``offsets``; going back past what the feed handed out means catching up."""
        if self.group_reader is not None:
            self.group_reader.seek(offsets)
            return
        back = any(offset < self.positions.get(p, 0) for p, offset in offsets.items())
        self.positions.update(offsets)
        if back:
            self._leave_shared()  # the next poll attaches again, or catches up first

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._leave_shared()
            if self.group_reader is not None:
                self.group_reader.close()
        finally:
            self.fanout.forget(self)


class Fanout:
    """The process's topic feeds and its open streams, by subscription."""

    def __init__(self, bus: Bus, *, client_id: str = "citybase-feeds-sse") -> None:
        self.bus = bus
        self.client_id = client_id
        self._feeds: dict[str, TopicFeed] = {}
        self._streams: dict[str, list[StreamReader]] = {}
        self._lock = threading.Lock()

    def open(
        self,
        *,
        subscription_id: str,
        group_id: str,
        topic: str,
        epoch: int,
        resume: Mapping[int, int] | None,
        member: Callable[[], Reader],
    ) -> StreamReader:
        """A stream's reader: on the shared path when the subscription has no other reader (no
        other stream in the process, no live member of its group), else a group member.

        On the shared path the stream starts at the group's committed offsets, or after
        ``resume`` (a ``Last-Event-ID``), which is then committed, as a member would."""
        with self._lock:
            others = list(self._streams.get(subscription_id, ()))
            share = not others
            reader = StreamReader(
                self,
                subscription_id=subscription_id,
                group_id=group_id,
                topic=topic,
                epoch=epoch,
                positions={},
                member=member,
            )
            self._streams[subscription_id] = [*others, reader]
        try:
            for other in others:
                other.leave_feed()
            admin = self.bus.admin()
            if share and admin.group_members(group_id) == 0:
                positions = dict(admin.beginning_offsets(topic))
                positions.update(
                    {tp.partition: o for tp, o in admin.committed_offsets(group_id, topic).items()}
                )
                if resume:
                    try:
                        admin.commit_offsets(group_id, topic, resume)
                        positions.update(resume)
                    except GroupActive:
                        share = False
                reader.positions = positions
            else:
                share = False
            if not share:
                reader.join_group()
        except BaseException:
            reader.close()
            raise
        return reader

    def feed_of(self, topic: str) -> TopicFeed:
        with self._lock:
            feed = self._feeds.get(topic)
            if feed is None:
                feed = self._feeds[topic] = TopicFeed(self.bus, topic, self.client_id, self._drop)
            return feed

    def _drop(self, feed: TopicFeed) -> None:
        """Close a feed no stream reads any more (a new stream opens one again)."""
        with self._lock:
            if feed.attached:
                return
            if self._feeds.get(feed.topic) is feed:
                del self._feeds[feed.topic]
        feed.close()

    def forget(self, reader: StreamReader) -> None:
        with self._lock:
            streams = [r for r in self._streams.get(reader.subscription_id, ()) if r is not reader]
            if streams:
                self._streams[reader.subscription_id] = streams
            else:
                self._streams.pop(reader.subscription_id, None)

    def feeds(self) -> int:
        """How many topics have a shared consumer now."""
        return len(self._feeds)

    def readers(self, subscription_id: str) -> list[StreamReader]:
        """The readers of the subscription's open streams in this process."""
        with self._lock:
            return list(self._streams.get(subscription_id, ()))

    def start(self) -> None:
        """Nothing to start: feeds open with their first stream."""

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.close()
