"""The score queries of the API: a dataset's latest quality with its evidence, its history,
rankings and the period scores of the scorecards. Every function reads in the caller's session
(the request's) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common.auth import Principal, PrincipalKind
from services.common.clock import aware
from services.common.i18n import N_, Sentence
from services.quality.exceptions import DatasetNotFound, InvalidTimeRange
from services.quality.models import (
    QualityDatasetState,
    QualityRuleResult,
    QualitySlaBreach,
    QualityWindow,
)
from services.quality.projection import DatasetState, QualityCatalog
from services.quality.settings import DIMENSIONS, QualitySettings
from services.quality.store import breach_data, current_windows, scores_of


def known_dataset(session: Session, catalog: QualityCatalog, dataset_id: str) -> None:
    """404 unless the catalog announced the dataset or quality has scored it."""
    if catalog.dataset(dataset_id) is not None:
        return
    if session.get(QualityDatasetState, dataset_id) is None:
        raise DatasetNotFound(Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id))


def window_summary(row: QualityWindow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "contract_version": row.contract_version,
        "opened_at": aware(row.opened_at),
        "closed_at": aware(row.closed_at),
        "records": row.records,
        "accepted": row.accepted,
        "rejected": row.rejected,
        "duplicates": row.duplicates,
        "late": row.late,
        "freshness_s": row.freshness_s,
        "lateness_p95_s": row.lateness_p95_s,
        "scores": scores_of(row),
        "problems": list(row.problems or []),
        "details": row.details or {},
    }


RECORD_EVIDENCE_READERS = frozenset({PrincipalKind.operator, PrincipalKind.admin})
"""Who reads the record-level evidence (failing values, repeated keys) of every dataset; the
owning department and its approvers read their own datasets', and anyone an ``open`` dataset's."""


def record_evidence_withheld(reader: Principal, dataset: DatasetState | None) -> str | None:
    """Why ``reader`` may not see the record-level evidence of ``dataset``, or None if it may.

    Even masked, failing values and repeated keys are record data: of a ``conditional`` or
    ``restricted`` dataset they are for its owner and the platform's operators, not for every
    scenario or department that can read scores; an evaluator reads none, whatever the dataset.
    """
    if reader.kind in RECORD_EVIDENCE_READERS:
        return None
    if reader.kind is PrincipalKind.evaluator:
        return Sentence(N_("an evaluator reads evaluation evidence, never record data"))
    if dataset is None:
        return "the dataset is not known to quality yet: its record-level evidence is for operators"
    if dataset.classification == "open":
        return None
    if reader.kind in (PrincipalKind.department, PrincipalKind.approver) and (
        reader.department_id is not None and reader.department_id == dataset.owner_department_id
    ):
        return None
    return (
        f"the dataset is {dataset.classification}: failing values and repeated keys are shown to "
        "its owning department and to operators only"
    )


def _without_record_evidence(summary: dict[str, Any], withheld: str | None) -> dict[str, Any]:
    if withheld is not None:
        summary["details"] = {
            name: value for name, value in summary["details"].items() if name != "repeated_keys"
        }
    return summary


def latest_quality(
    *,
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    dataset_id: str,
    now: datetime,
    reader: Principal,
) -> dict[str, Any]:
    """The current scores per dimension (:func:`~services.quality.store.current_windows`: the
    latest closed window's) with their evidence per rule, the rolling 24 h view and
    the open SLA breaches of one dataset. The record-level evidence (failing values, repeated
    keys) is left out for a reader :func:`record_evidence_withheld` names a reason for. Reads in
    the caller's session (the request's)."""
    known_dataset(session, catalog, dataset_id)
    dataset = catalog.dataset(dataset_id)
    withheld = record_evidence_withheld(reader, dataset)
    state = session.get(QualityDatasetState, dataset_id)
    latest = current_windows(session, [dataset_id]).get(dataset_id)
    evidence_window = latest
    if latest is not None and latest.kind != "window":
        evidence_window = session.scalars(
            sa.select(QualityWindow)
            .where(QualityWindow.dataset_id == dataset_id, QualityWindow.kind == "window")
            .order_by(QualityWindow.closed_at.desc(), QualityWindow.id.desc())
            .limit(1)
        ).first()
    rules = []
    if evidence_window is not None:
        for result in session.scalars(
            sa.select(QualityRuleResult)
            .where(QualityRuleResult.window_id == evidence_window.id)
            .order_by(QualityRuleResult.rule_index)
        ):
            rules.append(
                {
                    "rule": result.rule,
                    "expectation_type": result.expectation_type,
                    "column": result.column,
                    "dimension": result.dimension,
                    "success": result.success,
                    "element_count": result.element_count,
                    "unexpected_count": result.unexpected_count,
                    "missing_count": result.missing_count,
                    "observed_value": result.observed_value,
                    "examples": [] if withheld else (result.examples or []),
                    "error": result.error,
                }
            )
    breaches = session.scalars(
        sa.select(QualitySlaBreach)
        .where(QualitySlaBreach.dataset_id == dataset_id, QualitySlaBreach.resolved_at.is_(None))
        .order_by(QualitySlaBreach.opened_at)
    ).all()
    last_event = aware(state.last_event_at) if state is not None else None
    problems = list(latest.problems or []) if latest is not None else []
    if latest is None:
        problems.append("no window scored yet: no record has reached quality")
    return {
        "dataset_id": dataset_id,
        "domain_id": dataset.domain_id if dataset else None,
        "owner_department_id": dataset.owner_department_id if dataset else None,
        "scores": scores_of(latest) if latest is not None else dict.fromkeys([*DIMENSIONS, "overall"]),
        "weights": settings.weights_of(dataset_id),
        "window": _without_record_evidence(window_summary(latest), withheld) if latest is not None else None,
        "record_evidence": {"shown": withheld is None, "withheld_because": withheld},
        "evidence_window_id": evidence_window.id if evidence_window is not None else None,
        "rules": rules,
        "rolling": rolling_view(session, dataset_id, now, settings.rolling_s),
        "last_event_at": last_event,
        "freshness_s": max(0.0, (now - last_event).total_seconds()) if last_event else None,
        "sla_breaches": [breach_data(breach, "open") for breach in breaches],
        "problems": problems,
    }


_DIMENSION_COLUMNS = [getattr(QualityWindow, name) for name in (*DIMENSIONS, "overall")]


def rolling_view(session: Session, dataset_id: str, now: datetime, span_s: float) -> dict[str, Any]:
    """Record-weighted scores of the windows of the last ``span_s`` (24 h); timeliness the latest."""
    since = now - timedelta(seconds=span_s)
    rows = session.execute(
        sa.select(QualityWindow.records, QualityWindow.kind, QualityWindow.duplicates, *_DIMENSION_COLUMNS)
        .where(QualityWindow.dataset_id == dataset_id, QualityWindow.closed_at >= since)
        .order_by(QualityWindow.closed_at, QualityWindow.id)
    ).all()
    names = [*DIMENSIONS, "overall"]
    weighted = _weighted(
        [
            (max(row.records, 1), {name: getattr(row, name) for name in names})
            for row in rows
            if row.kind == "window"
        ]
    )
    if rows:
        weighted["timeliness"] = rows[-1].timeliness
    return {
        "since": since,
        "windows": len(rows),
        "records": sum(row.records for row in rows),
        "duplicates": sum(row.duplicates for row in rows),
        "scores": weighted,
    }


def _weighted(items: Sequence[tuple[float, dict[str, float | None]]]) -> dict[str, float | None]:
    names = [*DIMENSIONS, "overall"]
    out: dict[str, float | None] = {}
    for name in names:
        pairs = [(weight, scores[name]) for weight, scores in items if scores.get(name) is not None]
        total = sum(weight for weight, _ in pairs)
        out[name] = (
            round(sum(weight * value for weight, value in pairs if value is not None) / total, 3)
            if total
            else None
        )
    return out


MIN_RATE_SPAN_S = 1.0
"""The shortest span a rate is taken over: a burst scored in one window that closed within
milliseconds is not a rate of millions a second."""


def records_per_second(windows: Sequence[tuple[datetime | None, datetime | None, int]]) -> float:
    """Records per second that reached a dataset (accepted or dead-lettered), from scored windows
    ``(opened_at, closed_at, records)``: their records over the time they cover, from the first
    one's opening to the last one's close. Not over the whole period asked for: quality may have
    started, or the feed begun, in the middle of it, and the open window's records are not
    counted yet either; dividing by the whole period would show a feed at a fraction of its rate.
    Idle time between windows is covered (it lies between the first and the last). 0 when no
    window closed."""
    spans = [(opened, closed, records) for opened, closed, records in windows if opened and closed]
    if not spans:
        return 0.0
    covered = (max(c for _, c, _ in spans) - min(o for o, _, _ in spans)).total_seconds()
    return round(sum(r for _, _, r in spans) / max(covered, MIN_RATE_SPAN_S), 2)


def quality_history(
    *,
    session: Session,
    catalog: QualityCatalog,
    dataset_id: str,
    start: datetime,
    end: datetime,
    max_points: int,
) -> dict[str, Any]:
    """Scores from ``start`` to ``end``: every window, or record-weighted buckets when they are
    more than ``max_points``, and the rate records arrived at (:func:`records_per_second`). 422 when ``end`` is not after ``start``. Reads in the caller's
    session (the request's)."""
    start, end = aware(start), aware(end)
    if end <= start:
        raise InvalidTimeRange(Sentence(N_("'to' must be after 'from'")), path="/query/to")
    known_dataset(session, catalog, dataset_id)
    rows = session.execute(
        sa.select(
            QualityWindow.opened_at,
            QualityWindow.closed_at,
            QualityWindow.records,
            QualityWindow.kind,
            *_DIMENSION_COLUMNS,
        )
        .where(
            QualityWindow.dataset_id == dataset_id,
            QualityWindow.closed_at >= start,
            QualityWindow.closed_at < end,
        )
        .order_by(QualityWindow.closed_at, QualityWindow.id)
    ).all()
    names = [*DIMENSIONS, "overall"]
    rate = records_per_second(
        [(aware(row.opened_at), aware(row.closed_at), row.records) for row in rows if row.kind == "window"]
    )
    if len(rows) <= max_points:
        points = [
            {
                "at": aware(row.closed_at),
                "windows": 1,
                "records": row.records,
                "scores": {name: getattr(row, name) for name in names},
                "min_overall": row.overall,
            }
            for row in rows
        ]
        return {
            "dataset_id": dataset_id,
            "from": start,
            "to": end,
            "downsampled": False,
            "bucket_s": None,
            "records_per_s": rate,
            "points": points,
        }
    width = (end - start).total_seconds() / max_points
    buckets: dict[int, list[Any]] = {}
    for row in rows:
        closed = aware(row.closed_at)
        assert closed is not None
        index = min(max_points - 1, int((closed - start).total_seconds() // width))
        buckets.setdefault(index, []).append(row)
    points = []
    for index in sorted(buckets):
        members = buckets[index]
        scores = _weighted(
            [(max(row.records, 1), {name: getattr(row, name) for name in names}) for row in members]
        )
        overalls = [row.overall for row in members if row.overall is not None]
        points.append(
            {
                "at": start + timedelta(seconds=width * (index + 1)),
                "windows": len(members),
                "records": sum(row.records for row in members),
                "scores": scores,
                "min_overall": min(overalls) if overalls else None,
            }
        )
    return {
        "dataset_id": dataset_id,
        "from": start,
        "to": end,
        "downsampled": True,
        "bucket_s": width,
        "records_per_s": rate,
        "points": points,
    }


def rankings(
    *,
    session: Session,
    catalog: QualityCatalog,
    by: str,
    domain: str | None = None,
    department: str | None = None,
) -> dict[str, Any]:
    """Current overall score per dataset (:func:`~services.quality.store.current_windows`), or the
    mean per domain or department; worst first.

    A dataset never scored has no score (not 100): it ranks first, as nothing shows it is good.
    Reads in the caller's session (the request's).
    """
    states = {state.dataset_id: state for state in session.scalars(sa.select(QualityDatasetState))}
    windows = current_windows(session)
    entries = []
    for dataset in catalog.datasets():
        if not dataset.scored:
            continue
        if domain is not None and dataset.domain_id != domain:
            continue
        if department is not None and dataset.owner_department_id != department:
            continue
        row = windows.get(dataset.id)
        entries.append(
            {
                "key": dataset.id,
                "dataset_id": dataset.id,
                "domain_id": dataset.domain_id,
                "owner_department_id": dataset.owner_department_id,
                "overall": row.overall if row is not None else None,
                "scores": scores_of(row) if row is not None else None,
                "closed_at": aware(row.closed_at) if row is not None else None,
                "open_breaches": sum(
                    1
                    for breach_id in (
                        (states[dataset.id].freshness_breach_id, states[dataset.id].latency_breach_id)
                        if dataset.id in states
                        else ()
                    )
                    if breach_id is not None
                ),
            }
        )
    if by != "dataset":
        field_name = "domain_id" if by == "domain" else "owner_department_id"
        groups: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            groups.setdefault(str(entry[field_name]), []).append(entry)
        entries = []
        for key, members in groups.items():
            scored = [m["overall"] for m in members if m["overall"] is not None]
            entries.append(
                {
                    "key": key,
                    "datasets": len(members),
                    "scored_datasets": len(scored),
                    "overall": round(sum(scored) / len(scored), 3) if scored else None,
                    "worst_dataset": min(
                        (m for m in members if m["overall"] is not None),
                        key=lambda m: m["overall"],
                        default={"dataset_id": None},
                    )["dataset_id"],
                    "open_breaches": sum(m["open_breaches"] for m in members),
                }
            )
    entries.sort(
        key=lambda e: (e["overall"] is not None, e["overall"] if e["overall"] is not None else 0.0, e["key"])
    )
    for position, entry in enumerate(entries, 1):
        entry["rank"] = position
    return {"by": by, "items": entries}


def period_scores(
    *, session: Session, dataset_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[str, Any]]:
    """Record-weighted scores per dataset over a period, with daily overall and SLA breaches.
    Reads in the caller's session."""
    if not dataset_ids:
        return {}
    rows = session.execute(
        sa.select(
            QualityWindow.dataset_id,
            QualityWindow.closed_at,
            QualityWindow.records,
            QualityWindow.kind,
            *_DIMENSION_COLUMNS,
        )
        .where(
            QualityWindow.dataset_id.in_(list(dataset_ids)),
            QualityWindow.closed_at >= start,
            QualityWindow.closed_at < end,
        )
        .order_by(QualityWindow.closed_at)
    ).all()
    breaches = session.execute(
        sa.select(QualitySlaBreach.dataset_id, QualitySlaBreach.kind, sa.func.count())
        .where(
            QualitySlaBreach.dataset_id.in_(list(dataset_ids)),
            QualitySlaBreach.opened_at >= start,
            QualitySlaBreach.opened_at < end,
        )
        .group_by(QualitySlaBreach.dataset_id, QualitySlaBreach.kind)
    ).all()
    names = [*DIMENSIONS, "overall"]
    out: dict[str, dict[str, Any]] = {
        dataset_id: {
            "windows": 0,
            "records": 0,
            "scores": dict.fromkeys(names),
            "daily": [],
            "sla_breaches": {},
        }
        for dataset_id in dataset_ids
    }
    by_dataset: dict[str, list[Any]] = {}
    for row in rows:
        by_dataset.setdefault(row.dataset_id, []).append(row)
    for dataset_id, members in by_dataset.items():
        entry = out[dataset_id]
        entry["windows"] = len(members)
        entry["records"] = sum(row.records for row in members)
        entry["scores"] = _weighted(
            [(max(row.records, 1), {name: getattr(row, name) for name in names}) for row in members]
        )
        days: dict[str, list[Any]] = {}
        for row in members:
            closed = aware(row.closed_at)
            assert closed is not None
            days.setdefault(closed.strftime("%Y-%m-%d"), []).append(row)
        entry["daily"] = [
            {
                "day": day,
                "overall": _weighted(
                    [
                        (max(r.records, 1), {"overall": r.overall, **dict.fromkeys(DIMENSIONS)})
                        for r in day_rows
                    ]
                )["overall"],
            }
            for day, day_rows in sorted(days.items())
        ]
    for dataset_id, kind, count in breaches:
        out[dataset_id]["sla_breaches"][kind] = int(count)
    return out
