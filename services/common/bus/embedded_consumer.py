"""Consuming on the embedded bus: consumers alone (every partition) or as members of a group."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.common.bus.assignment import assign_range, assign_whole
from services.common.bus.base import (
    BusError,
    Consumer,
    GroupOf,
    GroupRebalancing,
    Message,
    StartFrom,
    TopicPartition,
    UnknownTopic,
)
from services.common.bus.embedded_log import (
    bus_errors,
    check_topic_name,
    connect,
    decode_headers,
    immediate,
    known_bounds,
    partition_bounds,
    wall_ms,
)

if TYPE_CHECKING:
    from services.common.bus.embedded import EmbeddedBus


log = logging.getLogger(__name__)


# A consumer waiting in poll looks for writes of other processes this often: from 5 ms right after
# a change (latency when records flow) backing off to 20 ms when idle (cost when nothing happens).
_MIN_WAIT_S = 0.005
_MAX_WAIT_S = 0.02
# ... and re-checks its group this often, to take over partitions another member gave up.
_GROUP_CHECK_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class _Member:
    """A row of ``group_members`` as one consumer sees it."""

    topics: frozenset[str]
    heartbeat_ms: int
    generation: int
    live: bool


_DEAD = _Member(frozenset(), 0, 0, live=False)


class EmbeddedConsumer(Consumer):
    """A consumer on its own SQLite connection; a group member if ``group_id`` is given."""

    def __init__(
        self,
        bus: EmbeddedBus,
        group_id: str | None,
        topics: Sequence[str],
        *,
        start: StartFrom,
        client_id: str,
        session_timeout_s: float,
        group_by: GroupOf | None = None,
    ) -> None:
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if session_timeout_s <= 0:
            raise ValueError("session_timeout_s must be positive")
        for topic in topics:
            check_topic_name(topic)
        self._bus = bus
        self._group_by = group_by
        self.group_id = group_id
        self.topics = tuple(dict.fromkeys(topics))
        self._start = start
        self.client_id = client_id
        self.member_id = f"{client_id}-{uuid.uuid4().hex}"
        self._session_timeout_ms = max(1, int(session_timeout_s * 1000))
        # Four heartbeats per session: one or two may be late (a busy disk) before the others
        # declare this member dead.
        self._heartbeat_interval_ms = max(1, min(1000, self._session_timeout_ms // 4))
        self.heartbeat_interval_s = self._heartbeat_interval_ms / 1000
        self.last_poll = time.monotonic()
        self._heartbeating = False
        self._generation = 0
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0
        self._last_group_check = 0.0
        self._closed = False
        # Consumers are single-threaded by contract; the lock only makes close() from another
        # thread (a lifespan shutting down) wait for a poll in progress instead of breaking it.
        self._lock = threading.RLock()
        # NORMAL: heartbeats and offset commits need not survive a power cut (a lost commit means
        # records are read again, which at-least-once allows) and must not pay an fsync each.
        with bus_errors():
            self._connection = connect(bus.path, synchronous="NORMAL", busy_timeout_s=bus.busy_timeout_s)
        if group_id is None:
            try:
                with bus_errors():
                    self._sync_assignment()
            except BaseException:
                self._connection.close()
                raise

    @property
    def generation(self) -> int:
        """How many times this member has joined its group (0: not yet)."""
        return self._generation

    # -- reading ---------------------------------------------------------------------------------

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Message]:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        with self._lock, bus_errors():
            self._check_open()
            self.last_poll = time.monotonic()
            deadline = self.last_poll + max(0.0, timeout_s)
            try:
                self._sync_assignment()
                while True:
                    seen_appends = self._bus._appends
                    seen_version = self._data_version()
                    messages = self._fetch(max_records)
                    if messages:
                        return messages
                    if not self._wait_for_change(deadline, seen_appends, seen_version):
                        return []
            finally:
                self.last_poll = time.monotonic()

    def _wait_for_change(self, deadline: float, seen_appends: int, seen_version: int) -> bool:
        """Wait until records may have arrived or the assignment changed; False at the deadline."""
        wait_s = _MIN_WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._bus._wait_for_append(seen_appends, min(wait_s, remaining)):
                return True
            if self._data_version() != seen_version:
                return True
            if time.monotonic() - self._last_group_check >= _GROUP_CHECK_INTERVAL_S:
                before = set(self._positions)
                self._sync_assignment()
                if set(self._positions) != before:
                    return True
            wait_s = min(wait_s * 2, _MAX_WAIT_S)

    def _data_version(self) -> int:
        """Changes whenever another connection, in any process, commits to the database."""
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _fetch(self, max_records: int) -> list[Message]:
        """Up to ``max_records`` after the positions, shared fairly between the partitions.

        Each partition with records gets an equal quota first, the rest of the budget then goes
        to partitions that had more; the partition served first rotates from poll to poll, so one
        busy partition cannot starve the others.
        """
        bounds = {
            topic: partition_bounds(self._connection, topic) for topic in {tp.topic for tp in self._positions}
        }
        ends: dict[TopicPartition, int] = {}
        for tp, position in self._positions.items():
            start, end = bounds[tp.topic].get(tp.partition, (0, 0))
            if not start <= position <= end:
                # Out of range (deleted by retention, or sought past the end): reset as Kafka's
                # auto.offset.reset would.
                position = self._positions[tp] = start if self._start == "earliest" else end
            if position < end:
                ends[tp] = end
        if not ends:
            return []
        readable = sorted(ends, key=lambda tp: (tp.topic, tp.partition))
        self._turn = (self._turn + 1) % len(readable)
        readable = readable[self._turn :] + readable[: self._turn]
        budget = max_records
        quota = max(1, max_records // len(readable))
        fetched: dict[TopicPartition, list[Message]] = {}
        exhausted: set[TopicPartition] = set()
        for second_pass in (False, True):
            for tp in readable:
                if budget <= 0:
                    break
                if second_pass and (tp in exhausted or tp not in fetched):
                    continue
                batch = fetched.setdefault(tp, [])
                limit = budget if second_pass else min(quota, budget)
                more = self._read(tp, batch[-1].offset + 1 if batch else self._positions[tp], limit)
                batch.extend(more)
                budget -= len(more)
                if len(more) < limit:
                    exhausted.add(tp)
        messages: list[Message] = []
        for tp, batch in fetched.items():
            if batch:
                self._positions[tp] = batch[-1].offset + 1
                messages.extend(batch)
            if tp in exhausted:
                # Nothing more below the end: what is missing was compacted away. Step over the
                # gap, so that a reader at the end is at the end (read models wait for that).
                self._positions[tp] = max(self._positions[tp], ends[tp])
        return messages

    def _read(self, tp: TopicPartition, offset: int, limit: int) -> list[Message]:
        rows = self._connection.execute(
            "SELECT offset, key, value, headers, timestamp_ms FROM records"
            " WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
            (tp.topic, tp.partition, offset, limit),
        ).fetchall()
        return [
            Message(tp.topic, tp.partition, row[0], row[1], row[2], decode_headers(row[3]), row[4])
            for row in rows
        ]

    # -- assignment ------------------------------------------------------------------------------

    def _sync_assignment(self) -> None:
        self._last_group_check = time.monotonic()
        if self.group_id is None:
            self._sync_standalone()
        elif self._group_needs_write(wall_ms()):
            self._sync_group()

    def _sync_standalone(self) -> None:
        """Without a group: every partition of the subscribed topics that exists now."""
        current: set[TopicPartition] = set()
        for topic in self.topics:
            for partition, (start, end) in partition_bounds(self._connection, topic).items():
                tp = TopicPartition(topic, partition)
                current.add(tp)
                if tp not in self._positions:
                    self._positions[tp] = start if self._start == "earliest" else end
        for tp in set(self._positions) - current:
            del self._positions[tp]

    def _group_view(self, now_ms: int) -> tuple[dict[str, _Member], dict[TopicPartition, str]]:
        """The group's members and who owns which partition, as the database has them now."""
        members = {
            member_id: _Member(
                topics=frozenset(json.loads(topics)),
                heartbeat_ms=heartbeat_ms,
                generation=generation,
                live=heartbeat_ms + session_timeout_ms >= now_ms,
            )
            for member_id, topics, heartbeat_ms, session_timeout_ms, generation in self._connection.execute(
                "SELECT member_id, topics, heartbeat_ms, session_timeout_ms, generation"
                " FROM group_members WHERE group_id = ?",
                (self.group_id,),
            )
        }
        owners = {
            TopicPartition(topic, partition): member_id
            for topic, partition, member_id in self._connection.execute(
                "SELECT topic, partition, member_id FROM group_assignments WHERE group_id = ?",
                (self.group_id,),
            )
        }
        return members, owners

    def _target(self, members: Mapping[str, _Member]) -> set[TopicPartition]:
        """This member's share of the partitions, computed from the live members' subscriptions."""
        subscriptions = {member_id: member.topics for member_id, member in members.items() if member.live}
        subscriptions[self.member_id] = frozenset(self.topics)
        wanted = sorted({topic for topics in subscriptions.values() for topic in topics})
        partitions = {
            topic: count
            for topic, count in self._connection.execute(
                f"SELECT name, partitions FROM topics WHERE name IN ({','.join('?' * len(wanted))})", wanted
            )
        }
        if self._group_by is not None:
            return assign_whole(subscriptions, partitions, self._group_by)[self.member_id]
        return assign_range(subscriptions, partitions)[self.member_id]

    def _group_needs_write(self, now_ms: int) -> bool:
        """Whether this member must heartbeat, clean up, give up or take partitions: reads only.

        Most polls change nothing, so they cost a few reads and no write transaction.
        """
        members, owners = self._group_view(now_ms)
        me = members.get(self.member_id)
        if (
            me is None
            or me.generation != self._generation
            or now_ms - me.heartbeat_ms >= self._heartbeat_interval_ms
        ):
            return True
        if not all(member.live for member in members.values()):
            return True
        target = self._target(members)
        mine = {tp for tp, owner in owners.items() if owner == self.member_id}
        if mine - target or mine != set(self._positions):  # the latter: a topic was deleted
            return True
        return any(tp not in owners for tp in target - mine)

    def _sync_group(self) -> None:
        """Heartbeat, drop dead members, give up and take partitions: one write transaction."""
        now_ms = wall_ms()
        fenced = False
        with immediate(self._connection) as connection:
            members, _ = self._group_view(now_ms)
            me = members.get(self.member_id)
            if me is None or me.generation != self._generation:
                # Not a member (yet, or any more: we stopped heartbeating and another member
                # removed us and took our partitions). Join with a new generation.
                fenced = self._generation > 0
                self._generation += 1
                connection.execute(
                    "INSERT OR REPLACE INTO group_members"
                    " (group_id, member_id, client_id, topics, session_timeout_ms, heartbeat_ms, generation)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.group_id,
                        self.member_id,
                        self.client_id,
                        json.dumps(list(self.topics)),
                        self._session_timeout_ms,
                        now_ms,
                        self._generation,
                    ),
                )
            else:
                # Late but not yet removed: nobody took our partitions, so we may keep them.
                connection.execute(
                    "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                    (now_ms, self.group_id, self.member_id),
                )
            connection.execute(
                "DELETE FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms < ?",
                (self.group_id, now_ms),
            )
            connection.execute(
                "DELETE FROM group_assignments WHERE group_id = ? AND member_id NOT IN"
                " (SELECT member_id FROM group_members WHERE group_id = ?)",
                (self.group_id, self.group_id),
            )
            members, owners = self._group_view(now_ms)
            target = self._target(members)
            mine = {tp for tp, owner in owners.items() if owner == self.member_id}
            connection.executemany(
                "DELETE FROM group_assignments WHERE group_id = ? AND topic = ? AND partition = ?",
                [(self.group_id, tp.topic, tp.partition) for tp in mine - target],
            )
            taken = {tp for tp in target - mine if tp not in owners}
            connection.executemany(
                "INSERT INTO group_assignments (group_id, topic, partition, member_id) VALUES (?, ?, ?, ?)",
                [(self.group_id, tp.topic, tp.partition, self.member_id) for tp in taken],
            )
            owned = (mine & target) | taken
            starts = {tp: self._committed(tp) for tp in owned if fenced or tp not in self._positions}
            bounds = {topic: partition_bounds(connection, topic) for topic in {tp.topic for tp in starts}}
        if not self._heartbeating:
            self._bus._heartbeats().add(self)
            self._heartbeating = True
        if fenced:
            self._positions.clear()
        for tp in set(self._positions) - owned:
            del self._positions[tp]
        for tp, committed in starts.items():
            if committed is not None:
                self._positions[tp] = committed
            else:
                start, end = bounds[tp.topic].get(tp.partition, (0, 0))
                self._positions[tp] = start if self._start == "earliest" else end

    # -- positions and offsets -------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        with self._lock, bus_errors():
            self._check_open()
            if self.group_id is None:
                raise BusError("a consumer without a group cannot commit offsets")
            to_commit = dict(self._positions if offsets is None else offsets)
            for tp, offset in to_commit.items():
                if offset < 0:
                    raise ValueError(f"cannot commit negative offset {offset} for {tp}")
            if not to_commit:
                return
            now_ms = wall_ms()
            with immediate(self._connection) as connection:
                members, owners = self._group_view(now_ms)
                me = members.get(self.member_id)
                if self._generation > 0 and (me is None or me.generation != self._generation):
                    raise GroupRebalancing(
                        f"member {self.member_id} of group {self.group_id!r} was removed after missing its"
                        " heartbeats and its partitions went to other members; poll to rejoin"
                    )
                foreign = sorted(
                    f"{tp.topic}/{tp.partition}"
                    for tp in to_commit
                    if owners.get(tp, self.member_id) != self.member_id
                    and members.get(owners[tp], _DEAD).live
                )
                if foreign:
                    raise GroupRebalancing(
                        f"cannot commit {', '.join(foreign)}: assigned to another member of the group"
                    )
                connection.executemany(
                    "INSERT OR REPLACE INTO group_offsets (group_id, topic, partition, offset, committed_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (self.group_id, tp.topic, tp.partition, offset, now_ms)
                        for tp, offset in to_commit.items()
                    ],
                )
                if me is not None:
                    connection.execute(
                        "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                        (now_ms, self.group_id, self.member_id),
                    )

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def position(self, tp: TopicPartition) -> int:
        self._check_assigned([tp])
        return self._positions[tp]

    def committed(self, tp: TopicPartition) -> int | None:
        with self._lock, bus_errors():
            self._check_open()
            return self._committed(tp)

    def _committed(self, tp: TopicPartition) -> int | None:
        if self.group_id is None:
            return None
        row = self._connection.execute(
            "SELECT offset FROM group_offsets WHERE group_id = ? AND topic = ? AND partition = ?",
            (self.group_id, tp.topic, tp.partition),
        ).fetchone()
        return None if row is None else int(row[0])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        self._check_assigned([tp])
        self._positions[tp] = offset

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, bus_errors():
            for tp, (start, _end) in self._bounds_of(tps).items():
                self._positions[tp] = start

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, bus_errors():
            for tp, (_start, end) in self._bounds_of(tps).items():
                self._positions[tp] = end

    def seek_to_timestamp(self, timestamp_ms: int, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, bus_errors():
            for tp, (_start, end) in self._bounds_of(tps).items():
                # The time index holds (timestamp, offset): this visits only the records at or
                # after the timestamp, and timestamps need not grow with offsets.
                (first,) = self._connection.execute(
                    "SELECT MIN(offset) FROM records INDEXED BY records_by_time"
                    " WHERE topic = ? AND partition = ? AND timestamp_ms >= ?",
                    (tp.topic, tp.partition, timestamp_ms),
                ).fetchone()
                self._positions[tp] = end if first is None else int(first)

    def end_offsets(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        with self._lock, bus_errors():
            self._check_open()
            wanted = list(self._positions if tps is None else tps)
            bounds = {topic: known_bounds(self._connection, topic) for topic in {tp.topic for tp in wanted}}
            result = {}
            for tp in wanted:
                if tp.partition not in bounds[tp.topic]:
                    raise UnknownTopic(f"topic {tp.topic!r} has no partition {tp.partition}")
                result[tp] = bounds[tp.topic][tp.partition][1]
            return result

    def _bounds_of(self, tps: Iterable[TopicPartition] | None) -> dict[TopicPartition, tuple[int, int]]:
        """(log start, high watermark) of the given assigned partitions, or of all assigned ones."""
        wanted = list(self._positions if tps is None else tps)
        self._check_assigned(wanted)
        bounds = {topic: partition_bounds(self._connection, topic) for topic in {tp.topic for tp in wanted}}
        return {tp: bounds[tp.topic].get(tp.partition, (0, 0)) for tp in wanted}

    def _check_assigned(self, tps: Iterable[TopicPartition]) -> None:
        self._check_open()
        missing = [tp for tp in tps if tp not in self._positions]
        if missing:
            assigned = ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in self._positions)) or "nothing"
            raise BusError(
                f"{', '.join(f'{tp.topic}/{tp.partition}' for tp in missing)} not assigned to this consumer"
                f" (assigned: {assigned}); a group member gets its partitions in poll()"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the consumer is closed")

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group at once, without committing: the others take over on their next poll."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.group_id is not None and self._generation > 0:
                    with immediate(self._connection) as connection:
                        connection.execute(
                            "DELETE FROM group_assignments WHERE group_id = ? AND member_id = ?",
                            (self.group_id, self.member_id),
                        )
                        connection.execute(
                            "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
                            (self.group_id, self.member_id),
                        )
            except sqlite3.Error:
                # The others will notice the missing heartbeats after the session timeout instead.
                log.warning(
                    "consumer %s could not leave group %r", self.member_id, self.group_id, exc_info=True
                )
            finally:
                self._connection.close()
                self._positions.clear()
                self._bus._forget(self)
