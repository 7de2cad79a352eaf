"""Keeps the latest quality score and utilization of each dataset, from the events quality publishes.

Quality announces on ``platform.quality`` each new current score of a dataset (its latest closed
window's, the figure its quality endpoint, rankings and metrics show) and each SLA breach opened
or resolved. The catalog folds those events into one row per dataset, so that a dataset's
description, search results and DCAT record carry the same current score without asking the
quality service. Events are applied in offset order per dataset (the topic is keyed by dataset
id); a window older than the stored one is ignored, so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from services.catalog.models import Dataset
from services.catalog.scores.models import DatasetQuality, DatasetUtilization
from services.common import db, quality_events
from services.common.bus import Bus
from services.common.clock import aware
from services.common.envelope import CloudEvent
from services.common.worker import ConsumerWorker, EventBatchHandler, PoisonMessage

log = logging.getLogger(__name__)

GROUP = "catalog.quality-scores"


def _moment(text: Any) -> datetime:
    return aware(datetime.fromisoformat(str(text)))


def apply_score(session: Session, data: dict[str, Any]) -> None:
    """Store a score event unless the stored score is from a later window."""
    dataset_id = str(data["dataset_id"])
    if session.get(Dataset, dataset_id) is None:
        return  # not (or no longer) in this catalog
    closed_at = _moment(data["closed_at"])
    row = session.get(DatasetQuality, dataset_id)
    if row is None:
        row = DatasetQuality(dataset_id=dataset_id, open_breaches=[])
        session.add(row)
    elif aware(row.window_closed_at) > closed_at:
        return
    row.overall = data.get("overall")
    row.scores = dict(data.get("scores") or {})
    row.problems = [str(problem) for problem in data.get("problems") or []]
    row.window_closed_at = closed_at
    row.contract_version = data.get("contract_version")
    row.updated_at = datetime.now(UTC)


def apply_breach(session: Session, data: dict[str, Any]) -> None:
    """Keep the set of open SLA breaches (by kind) of a dataset."""
    dataset_id = str(data.get("dataset_id", ""))
    row = session.get(DatasetQuality, dataset_id)
    if row is None:
        return  # breaches show next to a score; a dataset never scored has none to show yet
    kind = str(data.get("kind") or data.get("breach") or "sla")
    open_now = set(row.open_breaches or [])
    if data.get("resolved_at") or data.get("state") == "resolved" or data.get("status") == "resolved":
        open_now.discard(kind)
    else:
        open_now.add(kind)
    row.open_breaches = sorted(open_now)
    row.updated_at = datetime.now(UTC)


def apply_utilization(session: Session, data: dict[str, Any]) -> None:
    """Store a utilization event unless the stored one was computed later."""
    dataset_id = str(data["dataset_id"])
    if session.get(Dataset, dataset_id) is None:
        return
    computed_at = _moment(data["computed_at"])
    row = session.get(DatasetUtilization, dataset_id)
    if row is None:
        row = DatasetUtilization(dataset_id=dataset_id)
        session.add(row)
    elif aware(row.computed_at) > computed_at:
        return
    row.score = float(data["score"])
    for name in ("active_grants", "grants_used", "active_subscribers", "records_last_day"):
        setattr(row, name, int(data.get(name) or 0))
    row.last_use = _moment(data["last_use"]) if data.get("last_use") else None
    row.computed_at = computed_at


APPLY = {
    quality_events.SCORE: apply_score,
    quality_events.SLA_BREACH: apply_breach,
    quality_events.UTILIZATION: apply_utilization,
}


class QualityScores(EventBatchHandler[tuple[str, dict[str, Any]]]):
    """Consumer handler: applies a batch of ``platform.quality`` events in one transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__()
        self._sessions = sessions

    def read(self, event: CloudEvent) -> tuple[str, dict[str, Any]] | None:
        if event.type not in APPLY:
            return None
        if not isinstance(event.data, dict) or "dataset_id" not in event.data:
            raise PoisonMessage("a quality event names its dataset_id", code="missing-fields")
        if event.type == quality_events.SCORE and "closed_at" not in event.data:
            raise PoisonMessage("a score event says when its window closed", code="missing-fields")
        if event.type == quality_events.UTILIZATION and not {"score", "computed_at"} <= event.data.keys():
            raise PoisonMessage("a utilization event carries its score and when", code="missing-fields")
        return event.type, event.data

    def apply(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        with db.unit_of_work(self._sessions) as session:
            for event_type, data in items:
                APPLY[event_type](session, data)
                session.flush()


def quality_scores_worker(bus: Bus, sessions: sessionmaker[Session]) -> ConsumerWorker:
    return ConsumerWorker(
        bus,
        name="catalog-quality-scores",
        group_id=GROUP,
        topics=[quality_events.TOPIC],
        handler=QualityScores(sessions),
    )
