"""Audit verification benchmark: the incremental walk against the full walk of a long chain.

A catalog database (SQLite) holds :data:`ENTRIES` audit entries with a checkpoint, published, every
:data:`CHECKPOINT_EVERY`; a full verification walks them all and leaves its anchor (the last
published checkpoint). Then :data:`NEW_ENTRIES` more entries arrive with one more checkpoint, and an
incremental verification walks only those. The figure is the incremental verification's time
against the full walk's time, both measured in this run on the same database (lower is better).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from services.catalog.audit import service as audit
from services.catalog.audit.models import AuditCheckpoint, AuditEntry, AuditHead
from services.common import db
from tests.bench.report import Figure

ENTRIES = int(os.environ.get("CITYBASE_BENCH_AUDIT_ENTRIES", "1000000"))
NEW_ENTRIES = 1_000
CHECKPOINT_EVERY = 10_000
CHUNK = 10_000
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "catalog" / "migrations"
START = datetime(2026, 1, 1, tzinfo=UTC)


class _Chain:
    """Appends entries the way the catalog does (same canonical hash), in bulk."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seq, self.prev = 0, audit.GENESIS
        self.published: list[audit.Checkpoint] = []

    def grow(self, count: int) -> None:
        rows: list[dict[str, Any]] = []
        for _ in range(count):
            self.seq += 1
            entry = SimpleNamespace(
                seq=self.seq,
                at=START + timedelta(seconds=self.seq),
                actor_id="feeds",
                actor_kind="service",
                action="feed.deliver",
                resource_type="subscription",
                resource_id=f"sub-{self.seq % 500}",
                outcome=audit.SUCCESS,
                purpose="Show patients the current wait per clinic.",
                dataset_id="health.outpatient-visits",
                department_id="health-commission",
                scenario_id="one-stop-visit",
                details={"records": 50, "offsets": [self.seq, self.seq + 50]},
                source_event_id=f"ev-{self.seq}",
                prev_hash=self.prev,
            )
            entry.hash = audit.entry_hash(entry)  # type: ignore[arg-type]
            self.prev = entry.hash
            rows.append(vars(entry))
            if self.seq % CHECKPOINT_EVERY == 0 or len(rows) == CHUNK:
                self._write(rows)
                rows = []
        self._write(rows)
        self._checkpoint()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            if rows:
                connection.execute(sa.insert(AuditEntry), rows)
            connection.execute(
                sa.update(AuditHead).where(AuditHead.id == 1).values(seq=self.seq, hash=self.prev)
            )
        if self.seq % CHECKPOINT_EVERY == 0:
            self._checkpoint()

    def _checkpoint(self) -> None:
        point = audit.Checkpoint(self.seq, self.prev)
        if point in self.published:
            return
        with self.engine.begin() as connection:
            connection.execute(
                sa.insert(AuditCheckpoint).values(seq=self.seq, hash=self.prev, at=datetime.now(UTC))
            )
        self.published.append(point)


def run() -> Figure:
    with tempfile.TemporaryDirectory(prefix="citybase-bench-audit-") as directory:
        url = f"sqlite:///{directory}/catalog.db"
        engine = db.create_db_engine(url)
        try:
            db.migrate(url, MIGRATIONS, "alembic_version_catalog", engine)
            chain = _Chain(engine)
            started = time.perf_counter()
            chain.grow(ENTRIES)
            built_s = time.perf_counter() - started
            sessions = db.session_factory(engine)

            with db.unit_of_work(sessions) as session:
                started = time.perf_counter()
                full = audit.verify(session, chain.published)
                full_s = time.perf_counter() - started
                audit.record_verification(session, full)
            assert full.ok and full.entries_checked == ENTRIES, full

            chain.grow(NEW_ENTRIES)
            with db.unit_of_work(sessions) as session:
                started = time.perf_counter()
                incremental = audit.verify_incremental(session, chain.published)
                incremental_s = time.perf_counter() - started
            assert incremental.ok and incremental.mode == "incremental", incremental
            assert incremental.entries_checked == NEW_ENTRIES, incremental
        finally:
            engine.dispose()
    return Figure(
        f"audit verification, incremental after {NEW_ENTRIES:,} new entries ({ENTRIES:,} in the chain)",
        incremental_s,
        "s",
        f"full walk of the {ENTRIES:,} entries",
        full_s,
        aim="<= 0.01",
        higher_is_better=False,
        notes=(
            f"SQLite; full walk {ENTRIES / full_s:,.0f} entries/s; a published checkpoint every "
            f"{CHECKPOINT_EVERY:,} entries; building the chain took {built_s:.0f} s"
        ),
    )
