"""The city's indicators (services/quality/indicators.py) on hand-made projections and
deliveries: each figure, the breakdowns, the trend, and the same number in the API, the gauge and
the scorecards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from services.common import i18n
from services.common.app import Runtime
from services.common.auth import Principal, PrincipalKind
from services.common.metrics import ServiceMetrics
from services.quality import api, indicators, scorecards
from services.quality.app import refresh_utilization_gauges
from services.quality.projection import QualityCatalog
from services.quality.schemas import DepartmentScorecard, IndicatorReport, ScenarioScorecard
from services.quality.settings import QualitySettings
from tests.factories import dataset_event_state, grant_state
from tests.support.evaluation_factories import (
    apply,
    deliver,
    evaluation_records,
    moment,
    objective_state,
    outcome_state,
    projected,
    quality_database,
    scenario_state,
    scored_window,
)

VISITS, ARRIVALS = "health.outpatient-visits", "transport.bus-arrivals"
INSPECTIONS, PERMITS = "market.inspections", "spatial.building-permits"
JAN, FEB, MAR = moment("2027-01-01", 0), moment("2027-02-01", 0), moment("2027-03-01", 0)
NOW = moment("2027-02-20")
SINCE = JAN - timedelta(days=60)
OPERATOR = Principal("operator-1", PrincipalKind.operator, "O")


@pytest.fixture
def session() -> Any:
    with quality_database() as session:
        yield session


def grant(scenario_id: str, dataset_id: str, purpose: str) -> dict[str, Any]:
    return grant_state(
        scenario_id,
        dataset_id,
        grant_id=f"gr-{scenario_id}-{dataset_id}",
        valid_from=SINCE,
        purpose_category=purpose,
    )


def city(session: Session) -> QualityCatalog:
    """Four active datasets of four departments; two live scenarios with an outcome objective
    each (one-stop meets it in January and reports nothing in February, ai-community misses it in
    January and meets it in February), one scenario building, one proposed.

    January: one-stop uses visits (100 records) and arrivals (50) for public service,
    ai-community inspections (40, research) and visits (10, commercial), pilot arrivals (20,
    research). February: one-stop visits, ai-community inspections, pilot arrivals."""
    grants = {
        ("one-stop", VISITS): grant("one-stop", VISITS, "public_service"),
        ("one-stop", ARRIVALS): grant("one-stop", ARRIVALS, "public_service"),
        ("ai-community", INSPECTIONS): grant("ai-community", INSPECTIONS, "research"),
        ("ai-community", VISITS): grant("ai-community", VISITS, "commercial"),
        ("pilot", ARRIVALS): grant("pilot", ARRIVALS, "research"),
    }
    for (scenario_id, dataset_id), records in {
        ("one-stop", VISITS): 100,
        ("one-stop", ARRIVALS): 50,
        ("ai-community", INSPECTIONS): 40,
        ("ai-community", VISITS): 10,
        ("pilot", ARRIVALS): 20,
    }.items():
        deliver(session, grants[(scenario_id, dataset_id)], at=moment("2027-01-10"), records=records)
    for pair in (("one-stop", VISITS), ("ai-community", INSPECTIONS), ("pilot", ARRIVALS)):
        deliver(session, grants[pair], at=moment("2027-02-10"), records=30)
    scored_window(session, VISITS, closed_at=moment("2027-01-10"), overall=90)
    scored_window(session, ARRIVALS, closed_at=moment("2027-01-10"), overall=60)
    scored_window(session, INSPECTIONS, closed_at=moment("2027-01-10"), overall=80)
    one_stop = objective_state("one-stop", "outcome", start=JAN, end=MAR, target=10)
    community = objective_state("ai-community", "outcome", start=JAN, end=MAR, target=5)
    session.commit()
    return projected(
        datasets=[
            dataset_event_state(VISITS, department_id="health-commission"),
            dataset_event_state(ARRIVALS, department_id="transport-bureau"),
            dataset_event_state(INSPECTIONS, department_id="market-bureau"),
            dataset_event_state(PERMITS, department_id="urban-construction"),
            dataset_event_state("health.draft", status="draft"),
        ],
        grants=list(grants.values()),
        scenarios=[
            scenario_state("one-stop"),
            scenario_state("ai-community"),
            scenario_state("pilot", stage="building"),
            scenario_state("idea", stage="proposed"),
        ],
        objectives=[one_stop, community],
        outcomes=[
            outcome_state(one_stop, 12, start=JAN, end=FEB),
            outcome_state(community, 3, start=JAN, end=FEB),
            outcome_state(community, 6, start=FEB, end=MAR),
        ],
    )


def named(figures: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {figure["name"]: figure for figure in figures}


def test_each_indicator_of_a_month_with_its_numerator_denominator_and_evidence(session: Session) -> None:
    january = named(indicators.indicators(session, city(session), JAN, FEB))
    assert list(january) == list(indicators.NAMES)

    datasets = january["penetration.datasets"]
    assert (datasets["numerator"], datasets["denominator"], datasets["value"]) == (3, 4, 0.75)
    assert datasets["evidence"]["delivered_to_live_scenarios"] == [VISITS, INSPECTIONS, ARRIVALS]
    assert PERMITS in datasets["evidence"]["active_datasets"]

    scenarios = january["penetration.scenarios"]
    assert (scenarios["numerator"], scenarios["denominator"]) == (2, 3)  # the proposed one is not counted
    assert scenarios["evidence"]["past_proposed"] == ["ai-community", "one-stop", "pilot"]

    quality = january["quality.used"]
    assert quality["denominator"] == 110 + 70 + 40
    assert quality["value"] == round((90 * 110 + 60 * 70 + 80 * 40) / 220, 3)

    conversion = january["value.conversion"]
    assert (conversion["numerator"], conversion["denominator"]) == (2, 5)  # one-stop's two uses
    assert conversion["evidence"]["outcome_objectives"]["ai-community"][0]["status"] == "not-met"

    outcomes = january["value.outcomes-per-dataset"]
    assert (outcomes["numerator"], outcomes["denominator"]) == (2, 3)

    share = january["value.public-service-share"]
    assert (share["numerator"], share["denominator"], share["value"]) == (2, 5, 0.4)
    assert all(figure["formula"] for figure in january.values())


def test_value_conversion_falls_when_a_scenario_stops_reporting_outcomes_that_meet_its_target(
    session: Session,
) -> None:
    catalog = city(session)
    report = indicators.indicator_report(session, catalog, NOW, period="month", periods=2, by="scenario")
    trend = [named(point["indicators"])["value.conversion"]["value"] for point in report["trend"]]
    assert trend == [0.4, round(1 / 3, 4)]  # one-stop's uses converted in January, not in February
    rows = {row["key"]: named(row["indicators"]) for row in report["breakdown"]["rows"]}
    assert rows["one-stop"]["value.conversion"]["value"] == 0.0
    assert rows["ai-community"]["value.conversion"]["value"] == 1.0
    january = named(
        indicators.indicators(
            session, catalog, JAN, FEB, indicators.Scope(key="one-stop", scenario="one-stop")
        )
    )
    assert january["value.conversion"]["value"] == 1.0

    # reporting again, below the target, does not bring it back
    objective = catalog.objectives("one-stop")[0]
    low = outcome_state(
        {"id": objective.id, "scenario_id": "one-stop", "datasets": []}, 4, start=FEB, end=MAR
    )
    apply(catalog, evaluation_records(outcomes=[low]))
    again = indicators.indicators(
        session, catalog, FEB, MAR, indicators.Scope(key="one-stop", scenario="one-stop")
    )
    assert named(again)["value.conversion"]["value"] == 0.0


def test_the_by_purpose_rows_sum_to_the_city(session: Session) -> None:
    catalog = city(session)
    facts = indicators.period_facts(session, catalog, JAN, FEB)
    whole = named(indicators.figures(facts))["value.conversion"]
    rows = {
        scope.key: named(indicators.figures(facts, scope))["value.conversion"]
        for scope in indicators.scopes(facts, "purpose")
    }
    assert set(rows) == {"public_service", "research", "commercial"}
    assert sum(row["numerator"] for row in rows.values()) == whole["numerator"] == 2
    assert sum(row["denominator"] for row in rows.values()) == whole["denominator"] == 5
    assert rows["public_service"]["value"] == 1.0 and rows["research"]["value"] == 0.0


def test_the_department_and_domain_rows_restrict_to_their_datasets(session: Session) -> None:
    catalog = city(session)
    report = indicators.indicator_report(session, catalog, moment("2027-01-20"), periods=1, by="department")
    rows = {row["key"]: named(row["indicators"]) for row in report["breakdown"]["rows"]}
    assert set(rows) == {"health-commission", "transport-bureau", "market-bureau", "urban-construction"}
    health = rows["health-commission"]
    assert (health["penetration.datasets"]["numerator"], health["penetration.datasets"]["denominator"]) == (
        1,
        1,
    )
    assert health["value.conversion"]["evidence"]["uses"] == [
        {"scenario_id": "ai-community", "dataset_id": VISITS, "converted": False},
        {"scenario_id": "one-stop", "dataset_id": VISITS, "converted": True},
    ]
    assert health["quality.used"]["value"] == 90.0
    assert rows["urban-construction"]["penetration.datasets"]["value"] == 0.0
    domains = indicators.indicator_report(session, catalog, moment("2027-01-20"), periods=1, by="domain")
    assert [row["key"] for row in domains["breakdown"]["rows"]] == [
        "health",
        "market",
        "spatial",
        "transport",
    ]


def test_weeks_start_on_monday_and_the_current_period_is_last() -> None:
    weeks = indicators.periods_until(moment("2027-02-20"), "week", 3)  # a Saturday
    assert [start.date().isoformat() for start, _ in weeks] == ["2027-02-01", "2027-02-08", "2027-02-15"]
    assert weeks[-1][1] == moment("2027-02-22", 0)
    months = indicators.periods_until(moment("2027-01-20"), "month", 3)
    assert [(s.date().isoformat(), e.date().isoformat()) for s, e in months] == [
        ("2026-11-01", "2026-12-01"),
        ("2026-12-01", "2027-01-01"),
        ("2027-01-01", "2027-02-01"),
    ]


def test_the_formula_speaks_the_language_asked(session: Session) -> None:
    catalog = city(session)
    english = named(indicators.indicators(session, catalog, JAN, FEB))
    with i18n.use("zh_CN"):
        chinese = named(indicators.indicators(session, catalog, JAN, FEB))
    for name in indicators.NAMES:
        assert english[name]["formula"] == str(indicators.FORMULAS[name])
        assert chinese[name]["formula"] != english[name]["formula"]


def request(language: str = "en") -> Request:
    return Request(
        {"type": "http", "headers": [(b"accept-language", language.encode())], "query_string": b""}
    )


def test_the_gauge_equals_the_api_figure(session: Session) -> None:
    now = datetime.now(UTC)
    start, _end = indicators.periods_until(now, "month", 1)[0]
    middle = start + (now - start) / 2
    catalog = projected(
        datasets=[dataset_event_state(VISITS), dataset_event_state(ARRIVALS)],
        grants=[grant("one-stop", VISITS, "public_service"), grant("one-stop", ARRIVALS, "research")],
        scenarios=[scenario_state("one-stop"), scenario_state("pilot", stage="building")],
    )
    deliver(session, grant("one-stop", VISITS, "public_service"), at=middle, records=80)
    scored_window(session, VISITS, closed_at=middle, overall=75)
    session.commit()
    metrics = ServiceMetrics("quality")
    runtime = SimpleNamespace(metrics=metrics, sessions=sessionmaker(bind=session.get_bind()))
    refresh_utilization_gauges(cast(Runtime, runtime), catalog, QualitySettings())

    answer = api.city_indicators(
        request=request(),
        session=session,
        catalog=catalog,
        _reader=OPERATOR,
        periods=1,
        period=api.IndicatorPeriodKind.month,
        by=api.IndicatorBy.purpose,
    )
    IndicatorReport.model_validate(answer)
    gauges = {
        sample.labels["indicator"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "citybase_indicator"
    }
    figures = {figure["name"]: figure["value"] for figure in answer["indicators"]}
    assert figures["penetration.datasets"] == 0.5 and figures["quality.used"] == 75.0
    assert set(gauges) == set(indicators.NAMES)
    assert gauges == figures


def test_the_scorecards_carry_the_indicators_restricted_to_them(session: Session) -> None:
    catalog = city(session)
    settings = QualitySettings()
    card = scorecards.department_scorecard(
        session, catalog, settings, "transport-bureau", timedelta(days=30), moment("2027-01-31")
    )
    DepartmentScorecard.model_validate(card)
    figures = named(card["indicators"])
    assert (figures["value.conversion"]["numerator"], figures["value.conversion"]["denominator"]) == (1, 2)
    assert figures["penetration.datasets"]["evidence"]["active_datasets"] == [ARRIVALS]
    assert "Value conversion" in scorecards.to_html(card)
    with i18n.use("zh_CN"):
        chinese_formula = indicators.FORMULAS["value.conversion"].render()
    assert chinese_formula in scorecards.to_html(card, "zh_CN")

    mine = scorecards.scenario_scorecard(
        session, catalog, settings, "one-stop", timedelta(days=30), moment("2027-01-31")
    )
    ScenarioScorecard.model_validate(mine)
    own = named(mine["indicators"])
    assert (own["value.conversion"]["numerator"], own["value.conversion"]["denominator"]) == (2, 2)
    assert own["penetration.scenarios"]["evidence"] == {"live": ["one-stop"], "past_proposed": ["one-stop"]}
