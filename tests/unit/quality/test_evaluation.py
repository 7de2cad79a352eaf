"""The evaluation report (services/quality/evaluation.py) on hand-made projections and deliveries:
target against actual per objective kind, with the evidence behind each actual."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy.orm import Session

from services.common.auth import Principal, PrincipalKind
from services.common.problems import Forbidden
from services.quality import evaluation, queries
from services.quality.exceptions import InvalidTimeRange, ScenarioNotFound
from services.quality.projection import QualityCatalog
from services.quality.schemas import EvaluationReport
from services.quality.settings import QualitySettings
from tests.factories import catalog_records, dataset_event_state, grant_state
from tests.support.evaluation_factories import (
    apply,
    checkpoint_state,
    deliver,
    evaluation_records,
    moment,
    objective_state,
    outcome_state,
    projected,
    quality_database,
    scenario_state,
    scored_window,
    verdict_state,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "events"
SCENARIO = "one-stop-visit"
VISITS, ARRIVALS = "health.outpatient-visits", "transport.bus-arrivals"
START, END = moment("2027-01-01", 0), moment("2027-02-01", 0)
NOW = moment("2027-02-03")
SETTINGS = QualitySettings()


@pytest.fixture
def session() -> Any:
    with quality_database() as session:
        yield session


def grants() -> list[dict[str, Any]]:
    since = START - timedelta(days=30)
    return [
        grant_state(SCENARIO, VISITS, grant_id="gr-visits", valid_from=since),
        grant_state(SCENARIO, ARRIVALS, grant_id="gr-arrivals", valid_from=since),
    ]


def objectives() -> dict[str, dict[str, Any]]:
    def one(kind: str, **kwargs: Any) -> dict[str, Any]:
        return objective_state(
            SCENARIO, kind, start=START, end=END, objective_id=f"obj_{kind[:12]}", **kwargs
        )

    return {
        "dataset-use": one("dataset-use", datasets=[VISITS, ARRIVALS]),
        "delivered-records": one("delivered-records", datasets=[VISITS, ARRIVALS], target=150),
        "active-days": one("active-days", datasets=[VISITS], target=2),
        "quality-floor": one("quality-floor", datasets=[VISITS], target=80),
        "outcome": one("outcome", target=10),
    }


def world(session: Session, **extra: Any) -> tuple[QualityCatalog, dict[str, dict[str, Any]]]:
    """Two datasets delivered to the scenario in January: visits on two days (200 records, scored
    90 and 70 over 100 records each), arrivals on one (50 records); an outcome of 8 corrected to 12."""
    goals = objectives()
    outcome = goals["outcome"]
    corrected = outcome_state(
        outcome, 8, start=START, end=END, outcome_id="out_first", superseded_by="out_second"
    )
    correction = outcome_state(
        outcome, 12, start=START, end=END, outcome_id="out_second", corrects="out_first"
    )
    visits, arrivals = grants()
    deliver(session, visits, at=moment("2027-01-05"), records=100)
    deliver(session, visits, at=moment("2027-01-06"), records=100)
    deliver(session, arrivals, at=moment("2027-01-05"), records=50)
    deliver(session, arrivals, at=moment("2027-02-02"), records=500)  # after the period
    scored_window(session, VISITS, closed_at=moment("2027-01-05"), overall=90)
    scored_window(session, VISITS, closed_at=moment("2027-01-06"), overall=70)
    catalog = projected(
        datasets=[
            dataset_event_state(VISITS),
            dataset_event_state(ARRIVALS, department_id="transport-bureau"),
        ],
        grants=[visits, arrivals],
        scenarios=[scenario_state(SCENARIO)],
        objectives=[*goals.values(), *extra.pop("objectives", [])],
        outcomes=[corrected, correction],
        **extra,
    )
    return catalog, goals


def report_of(
    session: Session, catalog: QualityCatalog, start: datetime = START, end: datetime = END
) -> dict[str, Any]:
    return evaluation.evaluation_report(
        session=session,
        catalog=catalog,
        settings=SETTINGS,
        scenario_id=SCENARIO,
        start=start,
        end=end,
        now=NOW,
    )


def by_kind(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["kind"]: entry for entry in report["objectives"]}


def test_the_factories_publish_what_the_catalog_publishes() -> None:
    objective = objective_state(SCENARIO, "outcome", start=START, end=END, target=3)
    for schema, state in (
        ("catalog.scenario.json", scenario_state(SCENARIO)),
        ("catalog.audit-checkpoint.json", checkpoint_state(3)),
        ("catalog.objective.json", objective),
        (
            "catalog.objective.json",
            objective_state(SCENARIO, "dataset-use", start=START, end=END, datasets=[VISITS]),
        ),
        ("catalog.outcome.json", outcome_state(objective, 2.5, start=START, end=END)),
        ("catalog.verdict.json", verdict_state(SCENARIO, start=START, end=END)),
    ):
        Draft202012Validator(json.loads((SCHEMAS / schema).read_text(encoding="utf-8"))).validate(state)


def test_each_kind_of_objective_shows_target_against_actual_with_its_evidence(session: Session) -> None:
    catalog, _goals = world(session)
    objectives = by_kind(report_of(session, catalog))

    used = objectives["dataset-use"]
    assert used["status"] == "met" and used["actual"] == 2
    assert {line["dataset_id"]: line["status"] for line in used["per_dataset"]} == {
        VISITS: "met",
        ARRIVALS: "met",
    }

    records = objectives["delivered-records"]
    assert {line["dataset_id"]: (line["actual"], line["status"]) for line in records["per_dataset"]} == {
        VISITS: (200, "met"),
        ARRIVALS: (50, "not-met"),
    }
    assert records["status"] == "not-met" and records["actual"] == 50  # the dataset that falls short
    assert records["evidence"]["deliveries"] == [
        {"dataset_id": VISITS, "day": "2027-01-05", "records": 100, "batches": 1},
        {"dataset_id": VISITS, "day": "2027-01-06", "records": 100, "batches": 1},
        {"dataset_id": ARRIVALS, "day": "2027-01-05", "records": 50, "batches": 1},
    ]  # the delivery of February is outside the period

    days = objectives["active-days"]
    assert (days["actual"], days["status"]) == (2, "met")

    floor = objectives["quality-floor"]
    period = queries.period_scores(session=session, dataset_ids=[VISITS], start=START, end=END)
    assert floor["actual"] == period[VISITS]["scores"]["overall"] == 80.0
    assert floor["status"] == "met"
    assert [w["overall"] for w in floor["evidence"]["windows"]] == [90, 70]

    outcome = objectives["outcome"]
    assert (outcome["actual"], outcome["status"]) == (12, "met")  # the correction, not the 8
    assert [o["id"] for o in outcome["evidence"]["outcomes"]] == ["out_second"]
    assert outcome["per_dataset"] == []


def test_the_outcome_actual_is_the_mean_of_the_reporting_periods_and_falls_on_the_kpis_side(
    session: Session,
) -> None:
    lower = objective_state(
        SCENARIO,
        "outcome",
        start=START,
        end=END,
        target=20,
        kpi={"name": "wait", "unit": "minutes", "direction": "at-most"},
    )
    weeks = [
        outcome_state(lower, value, start=START + timedelta(weeks=n), end=START + timedelta(weeks=n + 1))
        for n, value in enumerate([10, 30, 26])
    ]
    silent = objective_state(SCENARIO, "outcome", start=START, end=END, target=1)
    catalog, _ = world(session, objectives=[lower, silent])
    apply(catalog, evaluation_records(outcomes=weeks))
    entries = {entry["id"]: entry for entry in report_of(session, catalog)["objectives"]}
    assert entries[lower["id"]]["actual"] == 22 and entries[lower["id"]]["status"] == "not-met"
    assert entries[silent["id"]]["actual"] is None and entries[silent["id"]]["status"] == "no-data"


def test_withdrawn_objectives_and_objectives_of_other_periods_are_left_out(session: Session) -> None:
    withdrawn = objective_state(
        SCENARIO, "dataset-use", start=START, end=END, datasets=[VISITS], status="withdrawn"
    )
    later = objective_state(
        SCENARIO, "dataset-use", start=END, end=END + timedelta(days=30), datasets=[VISITS]
    )
    catalog, goals = world(session, objectives=[withdrawn, later])
    ids = [entry["id"] for entry in report_of(session, catalog)["objectives"]]
    assert sorted(ids) == sorted(goal["id"] for goal in goals.values())


def test_the_report_names_inputs_outcomes_verdict_checkpoint_and_digest(session: Session) -> None:
    verdict = verdict_state(SCENARIO, start=START, end=END, result="partly")
    other = verdict_state(SCENARIO, start=END, end=END + timedelta(days=28))
    catalog, _ = world(
        session, verdicts=[verdict, other], checkpoints=[checkpoint_state(7), checkpoint_state(4)]
    )
    report = report_of(session, catalog)
    EvaluationReport.model_validate(report)  # the shape the API promises
    assert report["scenario"] == {"id": SCENARIO, "name": "One Stop Visit", "stage": "live"}
    assert report["period"] == {"start": START, "end": END}
    assert report["checkpoint"] == {
        "seq": 7,
        "hash": checkpoint_state(7)["hash"],
        "at": report["checkpoint"]["at"],
    }
    inputs = {item["dataset_id"]: item for item in report["inputs"]}
    assert inputs[VISITS]["records"] == 200 and inputs[VISITS]["quality"] == 80.0
    assert inputs[ARRIVALS]["records"] == 50 and inputs[ARRIVALS]["quality"] is None
    assert inputs[ARRIVALS]["department_id"] == "transport-bureau"
    assert report["outcomes"]["reported"] == 1 and report["outcomes"]["none_reported"] is False
    assert report["verdict"]["id"] == verdict["id"] and report["verdict"]["result"] == "partly"
    assert report["digest"] == evaluation.digest(report["objectives"])
    assert len(report["digest"]) == 64


def test_the_digest_changes_with_an_actual(session: Session) -> None:
    catalog, _ = world(session)
    before = report_of(session, catalog)["digest"]
    visits, _arrivals = grants()
    deliver(session, visits, at=moment("2027-01-20"), records=1)
    assert report_of(session, catalog)["digest"] != before
    assert report_of(session, catalog)["digest"] == report_of(session, catalog)["digest"]


def test_a_dataset_the_showcase_only_findings_name_is_flagged(session: Session) -> None:
    catalog, _ = world(session)
    idle = grant_state(
        SCENARIO, "market.inspections", grant_id="gr-idle", valid_from=START - timedelta(days=60)
    )
    apply(catalog, catalog_records(datasets=[dataset_event_state("market.inspections")], grants=[idle]))
    inputs = {item["dataset_id"]: item for item in report_of(session, catalog)["inputs"]}
    assert inputs["market.inspections"]["showcase_only"] is True  # granted 60 days, never delivered
    assert inputs[ARRIVALS]["showcase_only"] is False  # delivered the day before


def test_no_report_for_an_unknown_scenario_or_an_empty_period(session: Session) -> None:
    catalog, _ = world(session)
    with pytest.raises(ScenarioNotFound):
        evaluation.evaluation_report(
            session=session,
            catalog=catalog,
            settings=SETTINGS,
            scenario_id="nobody",
            start=START,
            end=END,
            now=NOW,
        )
    with pytest.raises(InvalidTimeRange):
        report_of(session, catalog, start=END, end=START)


@pytest.mark.parametrize(
    ("reader", "allowed"),
    [
        (Principal("evaluator-1", PrincipalKind.evaluator, "E"), True),
        (Principal("operator-1", PrincipalKind.operator, "O"), True),
        (Principal(SCENARIO, PrincipalKind.scenario, "S"), True),
        (Principal("another-scenario", PrincipalKind.scenario, "S"), False),
        (Principal("health-publisher", PrincipalKind.department, "H", "health-commission"), False),
    ],
)
def test_who_reads_an_evaluation(reader: Principal, allowed: bool) -> None:
    if allowed:
        evaluation.may_read(reader, SCENARIO)
    else:
        with pytest.raises(Forbidden):
            evaluation.may_read(reader, SCENARIO)


def test_an_evaluator_never_sees_record_level_evidence_even_of_an_open_dataset() -> None:
    catalog = projected(datasets=[{**dataset_event_state(VISITS), "classification": "open"}])
    dataset = catalog.dataset(VISITS)
    evaluator = Principal("evaluator-1", PrincipalKind.evaluator, "E")
    scenario = Principal(SCENARIO, PrincipalKind.scenario, "S")
    assert queries.record_evidence_withheld(evaluator, dataset) is not None
    assert queries.record_evidence_withheld(scenario, dataset) is None


def test_csv_has_a_row_per_objective_and_per_dataset(session: Session) -> None:
    catalog, goals = world(session)
    rows = list(csv.DictReader(io.StringIO(evaluation.to_csv(report_of(session, catalog)))))
    records = [row for row in rows if row["objective_id"] == goals["delivered-records"]["id"]]
    assert [(r["dataset_id"], r["actual"], r["status"]) for r in records] == [
        ("", "50", "not-met"),
        (VISITS, "200", "met"),
        (ARRIVALS, "50", "not-met"),
    ]
    assert len(rows) == 5 + 2 + 2 + 1 + 1


def test_the_page_speaks_english_and_chinese(session: Session) -> None:
    catalog, goals = world(session, checkpoints=[checkpoint_state(2)])
    report = report_of(session, catalog)
    english = evaluation.to_html(report)
    chinese = evaluation.to_html(report, "zh_CN")
    assert '<html lang="en">' in english and '<html lang="zh-CN">' in chinese
    assert "Evaluation of scenario One Stop Visit" in english
    assert "not met" in english and goals["outcome"]["title"] in english
    assert report["digest"] in english and report["digest"] in chinese
    assert "Evaluation of scenario" not in chinese and "Objectives: target and actual" not in chinese
    assert "<script" not in english and " src=" not in english


def test_a_naive_period_is_taken_as_utc(session: Session) -> None:
    catalog, _ = world(session)
    naive = report_of(session, catalog, start=START.replace(tzinfo=None), end=END.replace(tzinfo=None))
    assert naive["period"]["start"] == START and naive["digest"] == report_of(session, catalog)["digest"]
    assert naive["period"]["start"].tzinfo is UTC
