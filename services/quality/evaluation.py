"""The evaluation report of a scenario over a period: each objective's target against its actual,
with the evidence behind the actual, the datasets the scenario consumed, the outcomes it
reported, the evaluator's verdict and a digest the verdict names.

Actuals are measured from what quality already keeps, never computed another way: the deliveries
feeds metered (:class:`~services.quality.models.QualityUsage`), the period quality scores
(:func:`services.quality.queries.period_scores`) and the showcase-only findings
(:func:`services.quality.utilization.idle`). Objectives, outcomes and verdicts come from the
catalog's events (:class:`~services.quality.projection.QualityCatalog`). The report names the
latest audit checkpoint quality had seen, so a saved report can be verified against the trail
(``POST /catalog/v1/evaluations/verify``).

One builder (:func:`evaluation_report`), three renderings: JSON, CSV (:func:`to_csv`, one row per
objective and per dataset of an objective) and a self-contained HTML page (:func:`to_html`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common import i18n
from services.common.auth import Principal, PrincipalKind
from services.common.clock import aware
from services.common.i18n import N_, Sentence, _
from services.common.page_style import page_environment
from services.common.problems import Forbidden
from services.quality import queries, utilization
from services.quality.exceptions import InvalidTimeRange, ScenarioNotFound
from services.quality.models import QualityUsage, QualityWindow
from services.quality.projection import (
    DELIVERY_KINDS,
    OUTCOME_KIND,
    ObjectiveState,
    OutcomeState,
    QualityCatalog,
)
from services.quality.settings import QualitySettings

MET, NOT_MET, NO_DATA = "met", "not-met", "no-data"
QUALITY_FLOOR = "quality-floor"
EVIDENCE_WINDOWS = 500
"""Windows listed per dataset as a quality-floor objective's evidence (the latest ones); the
actual is the period score over all of them."""

EVALUATION_READERS = frozenset({PrincipalKind.operator, PrincipalKind.admin, PrincipalKind.evaluator})


def may_read(reader: Principal, scenario_id: str) -> None:
    """A scenario reads its own evaluation; operators, admins and evaluators read every one."""
    if reader.kind in EVALUATION_READERS:
        return
    if reader.kind is PrincipalKind.scenario and reader.id == scenario_id:
        return
    raise Forbidden(
        Sentence(
            N_("the evaluation of scenario %(scenario_id)s is for the scenario, operators and evaluators"),
            scenario_id=scenario_id,
        )
    )


def checked_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period in UTC (a moment without a zone is taken as UTC); 422 unless it is not empty."""
    start, end = aware(start), aware(end)
    if end <= start:
        raise InvalidTimeRange(
            Sentence(N_("period_end must be after period_start")), path="/query/period_end"
        )
    return start, end


# --- what was measured ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judged:
    actual: float | int | None
    status: str
    outcomes: tuple[OutcomeState, ...] = ()


def current_outcomes(
    outcomes: Iterable[OutcomeState], start: datetime, end: datetime, *, overlapping: bool = False
) -> list[OutcomeState]:
    """Per objective and reporting period inside ``[start, end)`` (or meeting it, when
    ``overlapping``), the latest value that no correction superseded."""
    latest: dict[tuple[str, datetime, datetime], OutcomeState] = {}
    for outcome in outcomes:
        if outcome.superseded_by is not None:
            continue
        if overlapping:
            if not (outcome.period_start < end and outcome.period_end > start):
                continue
        elif not outcome.inside(start, end):
            continue
        key = (outcome.objective_id, outcome.period_start, outcome.period_end)
        known = latest.get(key)
        if known is None or (outcome.reported_at or outcome.period_end) >= (
            known.reported_at or known.period_end
        ):
            latest[key] = outcome
    return sorted(latest.values(), key=lambda o: (o.period_start, o.objective_id, o.id))


def on_target(value: float, target: float | None, direction: str) -> bool:
    if target is None:
        return True
    return value <= target if direction == "at-most" else value >= target


def judge_outcome(
    objective: ObjectiveState,
    outcomes: Iterable[OutcomeState],
    start: datetime,
    end: datetime,
    *,
    overlapping: bool = False,
) -> Judged:
    """An outcome objective over ``[start, end)``: the mean of the latest values of the reporting
    periods inside it, met when on the KPI's side of the target; no-data when none was reported.
    The one judgement the report and the value-conversion indicator make; the indicators take the
    reporting periods that meet their period (``overlapping``: a monthly value counts in each of
    its weeks), as their periods are calendar weeks and months and a scorecard's the last days."""
    used = [
        o
        for o in current_outcomes(outcomes, start, end, overlapping=overlapping)
        if o.objective_id == objective.id
    ]
    if not used:
        return Judged(None, NO_DATA)
    actual = sum(o.value for o in used) / len(used)  # unrounded: the trail's mean is checked against it
    direction = str((objective.kpi or {}).get("direction") or "at-least")
    status = MET if on_target(actual, objective.target, direction) else NOT_MET
    return Judged(actual, status, tuple(used))


def deliveries(
    session: Session, scenario_id: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Records and batches delivered per scenario, dataset and UTC day in ``[start, end)``, from
    feeds' metering (one scenario when given)."""
    query = (
        sa.select(
            QualityUsage.scenario_id,
            QualityUsage.dataset_id,
            QualityUsage.day,
            sa.func.sum(QualityUsage.records),
            sa.func.count(),
        )
        .where(QualityUsage.delivered_at >= start, QualityUsage.delivered_at < end)
        .group_by(QualityUsage.scenario_id, QualityUsage.dataset_id, QualityUsage.day)
        .order_by(QualityUsage.scenario_id, QualityUsage.dataset_id, QualityUsage.day)
    )
    if scenario_id is not None:
        query = query.where(QualityUsage.scenario_id == scenario_id)
    return [
        {
            "scenario_id": scenario,
            "dataset_id": dataset_id,
            "day": day,
            "records": int(records or 0),
            "batches": int(batches),
        }
        for scenario, dataset_id, day, records, batches in session.execute(query)
    ]


def _status_of(per_dataset: Sequence[dict[str, Any]]) -> str:
    statuses = {entry["status"] for entry in per_dataset}
    if not statuses:
        return NO_DATA
    if NOT_MET in statuses:
        return NOT_MET
    return NO_DATA if NO_DATA in statuses else MET


def _lowest(per_dataset: Sequence[dict[str, Any]]) -> float | int | None:
    values = [entry["actual"] for entry in per_dataset if entry["actual"] is not None]
    return min(values) if values else None


def _delivery_objective(
    objective: ObjectiveState, delivered: Sequence[dict[str, Any]]
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    evidence = [
        {k: row[k] for k in ("dataset_id", "day", "records", "batches")}
        for row in delivered
        if row["dataset_id"] in objective.datasets
    ]
    target = objective.target or 0
    per_dataset = []
    for dataset_id in objective.datasets:
        mine = [row for row in evidence if row["dataset_id"] == dataset_id]
        if objective.kind == "active-days":
            actual: int = len({row["day"] for row in mine})
            met = actual >= target
        elif objective.kind == "delivered-records":
            actual = sum(row["records"] for row in mine)
            met = actual >= target
        else:  # dataset-use: delivered at least once
            actual = sum(row["records"] for row in mine)
            met = bool(mine)
        per_dataset.append({"dataset_id": dataset_id, "actual": actual, "status": MET if met else NOT_MET})
    if objective.kind == "dataset-use":
        overall: Any = sum(1 for entry in per_dataset if entry["status"] == MET)
    else:
        overall = _lowest(per_dataset)
    return overall, per_dataset, evidence


def _quality_windows(
    session: Session, dataset_ids: Sequence[str], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for dataset_id in dataset_ids:
        rows = session.execute(
            sa.select(QualityWindow.closed_at, QualityWindow.overall)
            .where(
                QualityWindow.dataset_id == dataset_id,
                QualityWindow.kind == "window",
                QualityWindow.closed_at >= start,
                QualityWindow.closed_at < end,
            )
            .order_by(QualityWindow.closed_at.desc(), QualityWindow.id.desc())
            .limit(EVIDENCE_WINDOWS)
        ).all()
        found += [
            {"dataset_id": dataset_id, "closed_at": aware(closed), "overall": overall}
            for closed, overall in reversed(rows)
        ]
    return found


def _objective_entry(
    session: Session,
    objective: ObjectiveState,
    outcomes: Sequence[OutcomeState],
    delivered: Sequence[dict[str, Any]],
    scores: dict[str, dict[str, Any]],
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    evidence: dict[str, list[dict[str, Any]]] = {"deliveries": [], "windows": [], "outcomes": []}
    per_dataset: list[dict[str, Any]] = []
    if objective.kind == OUTCOME_KIND:
        judged = judge_outcome(objective, outcomes, start, end)
        actual, status = judged.actual, judged.status
        evidence["outcomes"] = [
            {"id": o.id, "period_start": o.period_start, "period_end": o.period_end, "value": o.value}
            for o in judged.outcomes
        ]
    elif objective.kind in DELIVERY_KINDS:
        actual, per_dataset, evidence["deliveries"] = _delivery_objective(objective, delivered)
        status = _status_of(per_dataset)
    elif objective.kind == QUALITY_FLOOR:
        floor = objective.target or 0
        for dataset_id in objective.datasets:
            overall = (scores.get(dataset_id) or {}).get("scores", {}).get("overall")
            per_dataset.append(
                {
                    "dataset_id": dataset_id,
                    "actual": overall,
                    "status": NO_DATA if overall is None else MET if overall >= floor else NOT_MET,
                }
            )
        actual, status = _lowest(per_dataset), _status_of(per_dataset)
        evidence["windows"] = _quality_windows(session, objective.datasets, start, end)
    else:  # a kind this version of quality does not know: shown, never judged
        actual, status = None, NO_DATA
    return {
        "id": objective.id,
        "title": objective.title,
        "kind": objective.kind,
        "datasets": list(objective.datasets),
        "target": objective.target,
        "kpi": objective.kpi,
        "actual": actual,
        "status": status,
        "per_dataset": per_dataset,
        "evidence": evidence,
    }


def _canonical_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def digest(objectives: Sequence[dict[str, Any]]) -> str:
    """SHA-256 (hex) of the canonical JSON (sorted keys, no spaces, a whole number written as an
    integer) of each objective's id, target, actual and status, in the report's order."""
    canonical = [
        {
            "id": entry["id"],
            "target": _canonical_number(entry["target"]),
            "actual": _canonical_number(entry["actual"]),
            "status": entry["status"],
        }
        for entry in objectives
    ]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def period_objectives(
    catalog: QualityCatalog, scenario_id: str | None, start: datetime, end: datetime
) -> list[ObjectiveState]:
    """The active objectives whose period meets ``[start, end)`` (of one scenario when given)."""
    return [
        objective
        for objective in catalog.objectives(scenario_id)
        if objective.status == "active" and objective.overlaps(start, end)
    ]


def _showcase_only(findings: dict[str, Any], scenario_id: str) -> set[str]:
    """The datasets the showcase-only findings name for this scenario: never delivered to anyone,
    an unused grant of the scenario, or held by the scenario while it is idle."""
    flagged = {f["dataset_id"] for f in findings["never_delivered_datasets"]}
    flagged |= {f["dataset_id"] for f in findings["unused_grants"] if f["scenario_id"] == scenario_id}
    for finding in findings["idle_scenarios"]:
        if finding["scenario_id"] == scenario_id:
            flagged |= set(finding["datasets"])
    return flagged


def evaluation_report(
    *,
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    scenario_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The evaluation report of ``scenario_id`` over ``[start, end)`` (see the module's doc).

    Every actual is measured over the report's period. 404 for a scenario the catalog never
    announced; 422 for an empty period. Reads in the caller's session (the request's)."""
    start, end = checked_period(start, end)
    scenario = catalog.scenario(scenario_id)
    if scenario is None:
        raise ScenarioNotFound(Sentence(N_("no scenario %(scenario_id)r"), scenario_id=scenario_id))
    objectives = period_objectives(catalog, scenario_id, start, end)
    outcomes = catalog.outcomes(scenario_id)
    delivered = deliveries(session, scenario_id, start, end)
    grants = [
        g
        for g in catalog.grants()
        if g.scenario_id == scenario_id
        and (g.valid_from is None or g.valid_from < end)
        and (g.expires_at is None or g.expires_at > start)
    ]
    input_ids = sorted(
        {row["dataset_id"] for row in delivered}
        | {d for o in objectives for d in o.datasets}
        | {g.dataset_id for g in grants}
    )
    scores = queries.period_scores(session=session, dataset_ids=input_ids, start=start, end=end)
    entries = [
        _objective_entry(session, objective, outcomes, delivered, scores, start, end)
        for objective in objectives
    ]
    flagged = _showcase_only(utilization.idle(session, catalog, now, settings.idle_days), scenario_id)
    inputs = []
    for dataset_id in input_ids:
        dataset = catalog.dataset(dataset_id)
        inputs.append(
            {
                "dataset_id": dataset_id,
                "title": dataset.title if dataset else dataset_id,
                "department_id": dataset.owner_department_id if dataset else None,
                "records": sum(row["records"] for row in delivered if row["dataset_id"] == dataset_id),
                "quality": (scores.get(dataset_id) or {}).get("scores", {}).get("overall"),
                "showcase_only": dataset_id in flagged,
            }
        )
    reported = current_outcomes(outcomes, start, end)
    periods = sorted({(o.period_start, o.period_end) for o in reported})
    verdicts = [v for v in catalog.verdicts(scenario_id) if v.period_start == start and v.period_end == end]
    checkpoint = catalog.checkpoint()
    return {
        "scenario": {"id": scenario.id, "name": scenario.name, "stage": scenario.stage},
        "period": {"start": start, "end": end},
        "computed_at": now,
        "checkpoint": (
            {"seq": checkpoint.seq, "hash": checkpoint.hash, "at": checkpoint.at} if checkpoint else None
        ),
        "objectives": entries,
        "inputs": inputs,
        "outcomes": {
            "reported": len(reported),
            "periods": [{"period_start": s, "period_end": e} for s, e in periods],
            "none_reported": not reported,
        },
        "verdict": verdicts[-1].read if verdicts else None,
        "digest": digest(entries),
    }


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = ["objective_id", "title", "kind", "dataset_id", "target", "actual", "status"]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.6g}"
    return str(value)


def to_csv(report: dict[str, Any]) -> str:
    """One row per objective (``dataset_id`` empty), followed by one row per dataset it measures."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in report["objectives"]:
        base = {"objective_id": entry["id"], "title": entry["title"], "kind": entry["kind"]}
        writer.writerow(
            {
                **base,
                "dataset_id": "",
                "target": _text(entry["target"]),
                "actual": _text(entry["actual"]),
                "status": entry["status"],
            }
        )
        for line in entry["per_dataset"]:
            writer.writerow(
                {
                    **base,
                    "dataset_id": line["dataset_id"],
                    "target": _text(entry["target"]),
                    "actual": _text(line["actual"]),
                    "status": line["status"],
                }
            )
    return out.getvalue()


# --- HTML --------------------------------------------------------------------------------------

KIND_WORDS = {
    "dataset-use": N_("every dataset delivered"),
    "delivered-records": N_("records delivered"),
    "active-days": N_("days with a delivery"),
    "quality-floor": N_("quality floor"),
    "outcome": N_("outcome reported by the scenario"),
}
STATUS_WORDS = {MET: N_("met"), NOT_MET: N_("not met"), NO_DATA: N_("no data")}
RESULT_WORDS = {"meets": N_("meets"), "partly": N_("partly meets"), "does-not-meet": N_("does not meet")}
STAGE_WORDS = {
    "proposed": N_("proposed"),
    "approved": N_("approved"),
    "building": N_("building"),
    "live": N_("live"),
    "suspended": N_("suspended"),
    "retired": N_("retired"),
}
_PAGES = page_environment(Path(__file__).resolve().parent / "templates")


def _words(table: dict[str, str], key: Any) -> str:
    return _(table[key]) if key in table else str(key or "")


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return i18n.format_number(round(value, digits), digits=digits)
    return i18n.format_number(value)


def to_html(report: dict[str, Any], locale: str = i18n.DEFAULT_LOCALE) -> str:
    """The report as one self-contained page in ``locale`` (Chinese or English), in the console's
    style: inline CSS, no script, nothing loaded from elsewhere."""
    with i18n.use(locale):
        scenario = report["scenario"]
        title = _("Evaluation of scenario %(name)s") % {"name": scenario["name"]}
        objectives = []
        for entry in report["objectives"]:
            kpi = entry.get("kpi") or {}
            objectives.append(
                {
                    "id": entry["id"],
                    "title": entry["title"],
                    "kind": _words(KIND_WORDS, entry["kind"]),
                    "kpi": " ".join(str(kpi.get(k)) for k in ("name", "unit") if kpi.get(k)),
                    "target": _number(entry["target"]),
                    "actual": _number(entry["actual"]),
                    "status": entry["status"],
                    "status_words": _words(STATUS_WORDS, entry["status"]),
                    "per_dataset": [
                        {
                            "dataset_id": line["dataset_id"],
                            "actual": _number(line["actual"]),
                            "status": line["status"],
                            "status_words": _words(STATUS_WORDS, line["status"]),
                        }
                        for line in entry["per_dataset"]
                    ],
                    "deliveries": entry["evidence"]["deliveries"],
                    "windows": len(entry["evidence"]["windows"]),
                    "outcomes": [
                        {
                            "id": o["id"],
                            "start": i18n.format_datetime(o["period_start"]),
                            "end": i18n.format_datetime(o["period_end"]),
                            "value": _number(o["value"]),
                        }
                        for o in entry["evidence"]["outcomes"]
                    ],
                }
            )
        verdict = report.get("verdict")
        return _PAGES.get_template("evaluation.html").render(
            title=title,
            lang_tag=i18n.tag(),
            report=report,
            stage=_words(STAGE_WORDS, scenario["stage"]),
            start=i18n.format_datetime(report["period"]["start"]),
            end=i18n.format_datetime(report["period"]["end"]),
            computed_at=i18n.format_datetime(report["computed_at"]),
            objectives=objectives,
            inputs=[
                {
                    **item,
                    "quality_text": _number(item["quality"], 1),
                    "records_text": _number(item["records"]),
                }
                for item in report["inputs"]
            ],
            verdict=verdict,
            verdict_words=_words(RESULT_WORDS, verdict["result"]) if verdict else "",
            reason_words={key: _(words) for key, words in STATUS_WORDS.items()},
        )
