"""Transactional outbox: events are written in the same transaction as the change they announce.

A service adds its events to its own ``<service>_outbox`` table inside the unit of work; a relay
thread publishes committed rows in id order, waits for the bus to acknowledge them and only then
deletes them. No event ever announces a row that was rolled back, and none is lost when the
process dies between the commit and the publish: the relay picks it up on the next start.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from services.common import db
from services.common.background import Loop
from services.common.bus import Bus, OutgoingRecord

log = logging.getLogger(__name__)


def outbox_table(metadata: sa.MetaData, service: str) -> sa.Table:
    return sa.Table(
        f"{service}_outbox",
        metadata,
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False, default="[]"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, default=lambda: datetime.now(UTC)
        ),
    )


class Outbox:
    """Writes events into the outbox table within the caller's transaction."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._relay: OutboxRelay | None = None

    def add(self, session: Session, record: OutgoingRecord) -> None:
        headers = json.dumps([[name, base64.b64encode(value).decode()] for name, value in record.headers])
        session.execute(
            self.table.insert().values(
                topic=record.topic, key=record.key, value=record.value, headers=headers
            )
        )
        if self._relay is not None:
            db.after_commit(session, self._relay.wake)

    def attach(self, relay: OutboxRelay) -> None:
        self._relay = relay


class OutboxRelay:
    """Publishes committed outbox rows in order; owned by the service's lifespan."""

    def __init__(
        self,
        outbox: Outbox,
        engine: Engine,
        bus: Bus,
        *,
        name: str,
        batch: int = 500,
        idle_interval_s: float = 1.0,
    ) -> None:
        self._outbox = outbox
        self._engine = engine
        self._bus = bus
        self.name = name
        self._batch = batch
        self._idle_interval_s = idle_interval_s
        self._wake = threading.Event()
        self._loop = Loop(f"outbox-{name}", self._run, wake=self._wake.set)
        self.published = 0
        outbox.attach(self)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    def wake(self) -> None:
        self._wake.set()

    @property
    def last_error(self) -> str | None:
        """Why the last relay failed, None once one succeeded: the outbox's readiness."""
        return self._loop.last_error

    def _run(self, loop: Loop) -> None:
        backoff = 0.2
        while not loop.stopping:
            try:
                moved = self.relay_once()
                loop.last_error = None
                backoff = 0.2
                if moved:
                    continue
                self._wake.wait(self._idle_interval_s)
                self._wake.clear()
            except Exception as error:
                log.warning("outbox %s: relay failed (%s); retrying", self.name, loop.fail(error))
                loop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def relay_once(self) -> int:
        """Publish one batch of pending events; returns how many were published."""
        table = self._outbox.table
        with self._engine.begin() as connection:
            # FOR UPDATE makes a second replica's relay wait instead of publishing out of order.
            rows = connection.execute(
                sa.select(table).order_by(table.c.id).limit(self._batch).with_for_update()
            ).all()
            if not rows:
                return 0
            records = [
                OutgoingRecord(
                    topic=row.topic,
                    key=row.key,
                    value=row.value,
                    headers=tuple((name, base64.b64decode(value)) for name, value in json.loads(row.headers)),
                )
                for row in rows
            ]
            self._bus.producer().publish(records)
            connection.execute(table.delete().where(table.c.id.in_([row.id for row in rows])))
        self.published += len(rows)
        return len(rows)

    def pending(self) -> int:
        with self._engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(self._outbox.table)).scalar_one()
            )
