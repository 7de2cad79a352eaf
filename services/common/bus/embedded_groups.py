"""Consumer groups on the embedded bus: the heartbeat thread that keeps members alive between polls
(the assignment every member computes alike is :mod:`services.common.bus.assignment`)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.background import Loop
from services.common.bus.embedded_log import connect, immediate, wall_ms

if TYPE_CHECKING:
    from services.common.bus.embedded_consumer import EmbeddedConsumer


log = logging.getLogger(__name__)


class Heartbeats:
    """The bus's heartbeat thread: keeps its group members alive while they work between polls.

    A Kafka consumer heartbeats from a background thread, so a member that spends long on a batch
    is not taken for dead; only one that does not poll for ``max.poll.interval.ms`` is, or one
    whose process died. Heartbeating only in ``poll`` would instead hand the partitions of any
    batch slower than the session timeout to another member and refuse its commit, and a worker
    retrying that batch would never get through. One thread serves every member of the bus, with
    one short UPDATE transaction per beat.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float, max_poll_interval_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._max_poll_interval_s = max_poll_interval_s
        self._members: set[EmbeddedConsumer] = set()
        self._state = threading.Condition()
        self._stopping = False
        self._loop = Loop(
            f"embedded-bus-heartbeats[{path.name}]", lambda _: self._run(), wake=self._wake_to_stop
        )
        self._loop.start()

    def add(self, member: EmbeddedConsumer) -> None:
        with self._state:
            self._members.add(member)
            self._state.notify_all()

    def discard(self, member: EmbeddedConsumer) -> None:
        with self._state:
            self._members.discard(member)

    def close(self) -> None:
        self._loop.stop(None)

    def _wake_to_stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        interval_s = 1.0
        try:
            while True:
                with self._state:
                    # add() wakes the thread early: a new member's first beat must not wait for
                    # an interval set before it, which may be longer than its whole session.
                    if not self._stopping:
                        self._state.wait(interval_s)
                    if self._stopping:
                        return
                    interval_s = min((member.heartbeat_interval_s for member in self._members), default=1.0)
                    now = time.monotonic()
                    # A member that stopped polling is stuck or gone: let its session run out.
                    beats = [
                        (wall_ms(), member.group_id, member.member_id, member.generation)
                        for member in self._members
                        if now - member.last_poll < self._max_poll_interval_s
                    ]
                if not beats:
                    continue
                try:
                    if connection is None:
                        connection = connect(
                            self._path, synchronous="NORMAL", busy_timeout_s=self._busy_timeout_s
                        )
                    with immediate(connection):
                        # Only ever refresh a row: a member that was removed must rejoin itself.
                        connection.executemany(
                            "UPDATE group_members SET heartbeat_ms = ?"
                            " WHERE group_id = ? AND member_id = ? AND generation = ?",
                            beats,
                        )
                except sqlite3.Error:
                    log.warning("embedded bus: heartbeats failed; retrying", exc_info=True)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()
