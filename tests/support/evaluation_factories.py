"""Factories for the evaluation of scenarios as quality sees it: the catalog's scenario, objective,
outcome, verdict and audit-checkpoint events, feeds' metered deliveries and scored windows, and a
quality database on SQLite to put them in."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import catalog_events
from services.common.bus import Message, OutgoingRecord
from services.common.envelope import CloudEvent
from services.quality import utilization
from services.quality.models import Base, QualityWindow
from services.quality.projection import QualityCatalog
from tests.factories import catalog_records, usage_record


def moment(day: str, hour: int = 12) -> datetime:
    """``2027-01-05`` at ``hour`` UTC."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def scenario_state(scenario_id: str, *, stage: str = "live", name: str | None = None) -> dict[str, Any]:
    """The scenario event data the catalog publishes (contracts/events/catalog.scenario.json)."""
    now = datetime.now(UTC).isoformat()
    return {
        "id": scenario_id,
        "name": name or scenario_id.replace("-", " ").title(),
        "organisation": "Shenkang Hospital Development Center",
        "description": "Books outpatient visits at the least crowded clinic.",
        "contact": "scenario-team@shdc.example.cn",
        "status": "active",
        "stage": stage,
        "need_ids": [],
        "opening_id": None,
        "domains": [],
        "datasets": [],
        "objectives": "",
        "owning_body": "",
        "builder_id": None,
        "serves_residents": True,
        "created_at": now,
        "updated_at": now,
    }


def objective_state(
    scenario_id: str,
    kind: str,
    *,
    start: datetime,
    end: datetime,
    datasets: Iterable[str] = (),
    target: float | None = None,
    kpi: dict[str, Any] | None = None,
    status: str = "active",
    objective_id: str | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """An objective as the catalog publishes it (``city.citybase.catalog.objective.v1``)."""
    if kind == "outcome" and kpi is None:
        kpi = {"name": "visits booked", "unit": "visits", "direction": "at-least"}
    return {
        "id": objective_id or f"obj_{uuid.uuid4().hex[:12]}",
        "scenario_id": scenario_id,
        "title": f"{kind} of {scenario_id}",
        "kind": kind,
        "datasets": list(datasets),
        "target": target,
        "kpi": kpi,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "status": status,
        "version": version,
        "set_by": scenario_id,
        "set_at": start.isoformat(),
        "withdrawn_at": None if status == "active" else end.isoformat(),
        "withdrawn_reason": None if status == "active" else "no longer pursued",
    }


def outcome_state(
    objective: dict[str, Any],
    value: float,
    *,
    start: datetime,
    end: datetime,
    outcome_id: str | None = None,
    corrects: str | None = None,
    superseded_by: str | None = None,
    reported_at: datetime | None = None,
) -> dict[str, Any]:
    """An outcome the scenario reported for ``objective`` (``city.citybase.catalog.outcome.v1``)."""
    return {
        "id": outcome_id or f"out_{uuid.uuid4().hex[:12]}",
        "scenario_id": objective["scenario_id"],
        "objective_id": objective["id"],
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "value": value,
        "grant_ids": [],
        "dataset_ids": list(objective["datasets"]),
        "note": "",
        "corrects": corrects,
        "superseded_by": superseded_by,
        "reported_by": objective["scenario_id"],
        "reported_at": (reported_at or end).isoformat(),
    }


def verdict_state(
    scenario_id: str, *, start: datetime, end: datetime, result: str = "meets", digest: str = "0" * 64
) -> dict[str, Any]:
    """A verdict an evaluator recorded (``city.citybase.catalog.verdict.v1``)."""
    return {
        "id": f"ver_{uuid.uuid4().hex[:12]}",
        "scenario_id": scenario_id,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "result": result,
        "reasons": [],
        "report": {"checkpoint": None, "digest": digest},
        "evaluator_id": "evaluator-1",
        "recorded_at": end.isoformat(),
    }


def checkpoint_state(seq: int, at: datetime | None = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "hash": hashlib.sha256(str(seq).encode()).hexdigest(),
        "at": (at or datetime.now(UTC)).isoformat(),
    }


def evaluation_records(
    *,
    scenarios: Iterable[dict[str, Any]] = (),
    objectives: Iterable[dict[str, Any]] = (),
    outcomes: Iterable[dict[str, Any]] = (),
    verdicts: Iterable[dict[str, Any]] = (),
    checkpoints: Iterable[dict[str, Any]] = (),
) -> list[OutgoingRecord]:
    """platform.catalog records announcing the given states."""
    records = [catalog_events.catalog_record(catalog_events.SCENARIO, s["id"], s) for s in scenarios]
    records += [catalog_events.catalog_record(catalog_events.OBJECTIVE, o["id"], o) for o in objectives]
    records += [catalog_events.catalog_record(catalog_events.OUTCOME, o["id"], o) for o in outcomes]
    records += [catalog_events.catalog_record(catalog_events.VERDICT, v["id"], v) for v in verdicts]
    records += [
        catalog_events.catalog_record(catalog_events.AUDIT_CHECKPOINT, f"{c['seq']}:{c['hash']}", c)
        for c in checkpoints
    ]
    return records


def apply(catalog: QualityCatalog, records: Iterable[OutgoingRecord]) -> QualityCatalog:
    for offset, record in enumerate(records):
        catalog.apply(Message(record.topic, 0, offset, record.key, record.value, record.headers, 0))
    return catalog


def projected(
    *,
    datasets: Iterable[dict[str, Any]] = (),
    grants: Iterable[dict[str, Any]] = (),
    **evaluation: Iterable[dict[str, Any]],
) -> QualityCatalog:
    """A quality read model that has seen the given datasets, grants and evaluation events."""
    catalog = QualityCatalog()
    apply(catalog, catalog_records(datasets=list(datasets), grants=list(grants)))
    return apply(catalog, evaluation_records(**evaluation))


@contextmanager
def quality_database() -> Iterator[Session]:
    """A session on quality's tables in an in-memory SQLite database; ``session.bind`` is the
    engine, on one connection, for other sessions to read what this one committed."""
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def deliver(
    session: Session,
    grant: dict[str, Any],
    *,
    at: datetime,
    records: int = 100,
) -> None:
    """One batch of ``grant``'s dataset delivered to its scenario at ``at``, metered as feeds
    meters it and stored as quality stores it."""
    record = usage_record(
        grant["scenario_id"], grant["dataset_id"], grant_id=grant["id"], records=records, delivered_at=at
    )
    event = CloudEvent.from_message(Message(record.topic, 0, 0, record.key, record.value, record.headers, 0))
    delivery = utilization.delivery_from_event(event)
    assert delivery is not None
    utilization.store_deliveries(session, [delivery])
    session.flush()


def scored_window(
    session: Session, dataset_id: str, *, closed_at: datetime, overall: float, records: int = 100
) -> None:
    """A window of ``dataset_id`` scored ``overall`` (every dimension the same)."""
    session.add(
        QualityWindow(
            dataset_id=dataset_id,
            contract_version="1.0.0",
            kind="window",
            opened_at=closed_at - timedelta(minutes=1),
            closed_at=closed_at,
            records=records,
            accepted=records,
            validity=overall,
            completeness=overall,
            uniqueness=overall,
            conformity=overall,
            timeliness=overall,
            overall=overall,
            problems=[],
            details={},
        )
    )
    session.flush()
