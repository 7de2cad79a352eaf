"""Verifying a saved evaluation report against the audit trail.

Quality computes an evaluation report from the streams it reads and names the audit checkpoint it
had seen (``checkpoint: {seq, hash}``). Anyone holding the report later asks the catalog whether it
still stands: the chain up to that checkpoint is verified (the audit verification, against the
checkpoints published on ``platform.catalog``), the report's checkpoint must be on it, and the figures the trail holds are
recomputed from the entries up to that checkpoint:

- the targets of the objectives, from their ``objective.set`` entries;
- per delivery objective and dataset, the records delivered to the scenario in the report's
  period and the distinct UTC days with a delivery, from the successful ``feed.deliver`` entries
  (``details.records``, ``details.delivered_at``), and the daily evidence;
- per outcome objective, the outcomes used (``outcome.report`` entries, leaving out those a later
  entry corrects) and their mean: the mean of the latest value of each reporting period inside
  the report's period.

Quality scores are not on the trail: they are listed as not checked. Each difference is a
mismatch naming the JSON Pointer of the report's figure, what the report says and what the trail
says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.audit.auditor import Auditor
from services.catalog.audit.models import AuditEntry
from services.catalog.audit.schemas import AuditVerification
from services.catalog.audit.service import SUCCESS, verify_with_bus
from services.catalog.evaluation import exceptions
from services.catalog.evaluation.schemas import (
    DELIVERY_KINDS,
    CheckpointRef,
    Mismatch,
    ObjectiveKind,
    Verification,
)
from services.common.bus import Bus
from services.common.clock import as_utc
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError

TRAIL_ACTIONS = ("feed.deliver", "objective.set", "outcome.report")


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _same(report: Any, trail: Any) -> bool:
    """Figures agree: both absent, or equal numbers (to a relative 1e-9, for means), or equal values."""
    if report is None or trail is None:
        return report is None and trail is None
    if isinstance(report, int | float) and isinstance(trail, int | float) and not isinstance(report, bool):
        return abs(float(report) - float(trail)) <= 1e-9 * max(1.0, abs(float(trail)))
    return bool(report == trail)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


@dataclass
class Trail:
    """The figures of one scenario on the trail, as of a checkpoint."""

    objectives: dict[str, dict[str, Any]] = field(default_factory=dict)
    """objective id -> the details of its ``objective.set`` entry."""
    deliveries: list[tuple[str, datetime, int]] = field(default_factory=list)
    """(dataset id, delivered at, records) of each successful delivery batch."""
    outcomes: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """outcome id -> (seq, the details of its ``outcome.report`` entry)."""

    @classmethod
    def read(cls, session: Session, scenario_id: str, up_to_seq: int) -> Trail:
        trail = cls()
        entries = session.scalars(
            sa.select(AuditEntry)
            .where(
                AuditEntry.seq <= up_to_seq,
                AuditEntry.scenario_id == scenario_id,
                AuditEntry.outcome == SUCCESS,
                AuditEntry.action.in_(TRAIL_ACTIONS),
            )
            .order_by(AuditEntry.seq)
        )
        for entry in entries:
            details = dict(entry.details or {})
            if entry.action == "objective.set":
                trail.objectives[entry.resource_id] = details
            elif entry.action == "outcome.report":
                trail.outcomes[entry.resource_id] = (entry.seq, details)
            elif entry.dataset_id:
                when = _when(details.get("delivered_at")) or as_utc(entry.at)
                records = details.get("records")
                trail.deliveries.append((entry.dataset_id, when, records if isinstance(records, int) else 0))
        return trail

    def delivered(self, dataset_id: str, period: Period) -> tuple[int, int, dict[str, tuple[int, int]]]:
        """Records, distinct UTC days, and per day (records, batches) of ``dataset_id`` in ``period``."""
        days: dict[str, tuple[int, int]] = {}
        for dataset, when, records in self.deliveries:
            if dataset != dataset_id or not period.holds(when):
                continue
            day = when.date().isoformat()
            total, batches = days.get(day, (0, 0))
            days[day] = (total + records, batches + 1)
        return sum(records for records, _ in days.values()), len(days), days

    def current_outcomes(self, objective_id: str, period: Period) -> dict[str, dict[str, Any]]:
        """The outcomes of the objective whose reporting period lies inside ``period`` and that no
        later entry corrects, by id."""
        corrected = {details.get("corrects") for _, details in self.outcomes.values()}
        found = {}
        for outcome_id, (_, details) in self.outcomes.items():
            start, end = _when(details.get("period_start")), _when(details.get("period_end"))
            if details.get("objective_id") != objective_id or outcome_id in corrected:
                continue
            if start is None or end is None or start < period.start or end > period.end:
                continue
            found[outcome_id] = details
        return found

    def outcome_mean(self, objective_id: str, period: Period) -> float | None:
        """The mean of the latest value of each reporting period: what the report's ``actual`` is."""
        latest: dict[tuple[str, str], tuple[int, float]] = {}
        current = self.current_outcomes(objective_id, period)
        for outcome_id, details in current.items():
            seq = self.outcomes[outcome_id][0]
            key = (str(details.get("period_start")), str(details.get("period_end")))
            if key not in latest or latest[key][0] < seq:
                latest[key] = (seq, float(details.get("value", 0)))
        if not latest:
            return None
        return sum(value for _, value in latest.values()) / len(latest)


class _Check:
    """Collects what was compared and where the report and the trail differ."""

    def __init__(self) -> None:
        self.mismatches: list[Mismatch] = []
        self.checked: list[str] = []
        self.not_checked: list[str] = []

    def compare(self, path: str, report: Any, trail: Any) -> None:
        self.checked.append(path)
        if not _same(report, trail):
            self.mismatches.append(Mismatch(path=path, report=report, trail=trail))


def _invalid(path: str, message: Sentence) -> exceptions.InvalidReport:
    return exceptions.InvalidReport(
        Sentence(N_("the evaluation report cannot be verified")),
        errors=[FieldError(path=f"/body{path}", rule="report", message=message)],
    )


def report_scope(report: Mapping[str, Any]) -> tuple[str, Period, CheckpointRef]:
    """The scenario, period and checkpoint a report names; 422 naming what is missing."""
    scenario = report.get("scenario")
    scenario_id = scenario.get("id") if isinstance(scenario, Mapping) else None
    if not isinstance(scenario_id, str) or not scenario_id:
        raise _invalid("/scenario/id", Sentence(N_("the report names no scenario")))
    period = report.get("period")
    start = _when(period.get("start")) if isinstance(period, Mapping) else None
    end = _when(period.get("end")) if isinstance(period, Mapping) else None
    if start is None or end is None or end <= start:
        raise _invalid(
            "/period", Sentence(N_("the report's period needs a start and a later end, with a zone"))
        )
    checkpoint = report.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        raise _invalid(
            "/checkpoint",
            Sentence(N_("the report names no audit checkpoint, so nothing on the trail vouches for it")),
        )
    try:
        point = CheckpointRef.model_validate({"seq": checkpoint.get("seq"), "hash": checkpoint.get("hash")})
    except ValueError:
        raise _invalid(
            "/checkpoint", Sentence(N_("the report's checkpoint needs an integer seq and a SHA-256 hash"))
        ) from None
    return scenario_id, Period(start, end), point


def _objectives(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    objectives = report.get("objectives")
    if not isinstance(objectives, list) or not all(isinstance(item, Mapping) for item in objectives):
        raise _invalid("/objectives", Sentence(N_("the report's objectives are a list of objects")))
    return objectives


def _items(value: Any) -> Iterable[tuple[int, Mapping[str, Any]]]:
    return ((index, item) for index, item in enumerate(value or []) if isinstance(item, Mapping))


def _check_delivery(
    check: _Check, path: str, kind: ObjectiveKind, objective: Mapping[str, Any], trail: Trail, period: Period
) -> None:
    for index, row in _items(objective.get("per_dataset")):
        dataset_id = str(row.get("dataset_id"))
        records, days, _ = trail.delivered(dataset_id, period)
        if kind is ObjectiveKind.delivered_records:
            check.compare(f"{path}/per_dataset/{index}/actual", row.get("actual"), records)
        elif kind is ObjectiveKind.active_days:
            check.compare(f"{path}/per_dataset/{index}/actual", row.get("actual"), days)
        else:  # dataset-use: delivered at least once, whatever the report counts
            check.compare(f"{path}/per_dataset/{index}/status", row.get("status") == "met", records > 0)
    evidence = objective.get("evidence")
    deliveries = evidence.get("deliveries") if isinstance(evidence, Mapping) else None
    for index, row in _items(deliveries):
        _, _, per_day = trail.delivered(str(row.get("dataset_id")), period)
        day_records, day_batches = per_day.get(str(row.get("day")), (0, 0))
        check.compare(f"{path}/evidence/deliveries/{index}/records", row.get("records"), day_records)
        check.compare(f"{path}/evidence/deliveries/{index}/batches", row.get("batches"), day_batches)


def _check_outcomes(
    check: _Check, path: str, objective_id: str, objective: Mapping[str, Any], trail: Trail, period: Period
) -> None:
    current = trail.current_outcomes(objective_id, period)
    evidence = objective.get("evidence")
    listed = evidence.get("outcomes") if isinstance(evidence, Mapping) else None
    seen = []
    for index, row in _items(listed):
        outcome_id = str(row.get("id"))
        seen.append(outcome_id)
        details = current.get(outcome_id)
        if details is None:
            on_trail = trail.outcomes.get(outcome_id)
            said = "corrected" if on_trail is not None else "absent"
            check.compare(f"{path}/evidence/outcomes/{index}/id", outcome_id, f"{outcome_id} ({said})")
            continue
        check.compare(f"{path}/evidence/outcomes/{index}/value", row.get("value"), details.get("value"))
    check.compare(f"{path}/evidence/outcomes", sorted(seen), sorted(current))
    check.compare(f"{path}/actual", objective.get("actual"), trail.outcome_mean(objective_id, period))


def compare_report(report: Mapping[str, Any], trail: Trail, period: Period) -> _Check:
    """Every figure of ``report`` the trail holds, recomputed and compared."""
    check = _Check()
    for index, objective in enumerate(_objectives(report)):
        path = f"/objectives/{index}"
        objective_id = str(objective.get("id"))
        on_trail = trail.objectives.get(objective_id)
        if on_trail is None:
            check.compare(f"{path}/id", objective_id, None)
            continue
        check.compare(f"{path}/target", objective.get("target"), on_trail.get("target"))
        try:
            kind = ObjectiveKind(str(on_trail.get("kind")))
        except ValueError:
            continue
        check.compare(f"{path}/kind", objective.get("kind"), kind.value)
        if kind in DELIVERY_KINDS:
            _check_delivery(check, path, kind, objective, trail, period)
        elif kind is ObjectiveKind.outcome:
            _check_outcomes(check, path, objective_id, objective, trail, period)
        else:  # quality-floor: scores are quality's, not the trail's
            check.not_checked += [f"{path}/actual"] + [
                f"{path}/per_dataset/{row}/actual" for row, _ in _items(objective.get("per_dataset"))
            ]
    for index, _ in _items(report.get("inputs")):
        check.not_checked.append(f"/inputs/{index}/quality")
    return check


def verify_saved_report(
    session: Session, bus: Bus, report: Mapping[str, Any], *, audit: Auditor
) -> Verification:
    """:func:`verify_report` with the chain verified against the checkpoints published on
    ``platform.catalog`` (:func:`~services.catalog.audit.service.verify_with_bus`: 503 if they
    cannot be read, for the database alone cannot vouch for itself)."""
    return verify_report(
        session, report, chain=lambda current, seq: verify_with_bus(current, bus, until=seq), audit=audit
    )


def verify_report(
    session: Session,
    report: Mapping[str, Any],
    *,
    chain: Callable[[Session, int], AuditVerification],
    audit: Auditor,
) -> Verification:
    """Verify ``report``: the audit chain up to the report's checkpoint (``chain(session, seq)``),
    the checkpoint on it, its figures against the trail up to that checkpoint. Audited as ``evaluation.verify`` naming the report's
    scenario; a report that names no scenario, period or checkpoint is a 422 before the chain is
    walked."""
    audit.attempting("evaluation.verify", "evaluation", "-")
    scenario_id, period, point = report_scope(report)
    digest = report.get("digest")
    audit.attempting(
        "evaluation.verify",
        "evaluation",
        scenario_id,
        scenario_id=scenario_id,
        details={"checkpoint": point.model_dump(), "digest": digest},
    )
    walked = chain(session, point.seq)
    check = _Check()
    anchored = session.get(AuditEntry, point.seq)
    check.compare("/checkpoint/hash", point.hash, anchored.hash if anchored is not None else None)
    trail = Trail.read(session, scenario_id, point.seq)
    figures = compare_report(report, trail, period)
    check.mismatches += figures.mismatches
    check.checked += figures.checked
    check.not_checked += figures.not_checked
    result = Verification(
        ok=walked.ok and not check.mismatches,
        checkpoint=point,
        chain=walked,
        mismatches=check.mismatches,
        checked=check.checked,
        not_checked=check.not_checked,
    )
    audit.record(
        session,
        action="evaluation.verify",
        resource_type="evaluation",
        resource_id=scenario_id,
        scenario_id=scenario_id,
        details={
            "ok": result.ok,
            "checkpoint": point.model_dump(),
            "digest": digest if isinstance(digest, str) else None,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "chain_ok": walked.ok,
            "mismatches": [mismatch.path for mismatch in result.mismatches],
            "checked": len(result.checked),
        },
    )
    return result
