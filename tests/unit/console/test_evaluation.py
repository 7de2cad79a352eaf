"""The console's evaluation pages and indicators against a stand-in of the catalog's and quality's
APIs as the shared contract describes them: what each role is offered, the bodies the forms send,
a refusal shown next to its form, the report's links, the verification of a saved report."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from services.common import i18n
from services.console import charts, evaluation_view
from services.console.app import create_app
from services.console.deps import COOKIE
from tests.support.evaluation_stand_in import (
    INDICATOR_NAMES,
    PERIOD_END,
    PERIOD_START,
    StandIn,
    evaluation_report,
    indicators_answer,
    objective_read,
    outcome_objective_read,
    outcome_read,
    verdict_read,
)

SCENARIO_ME = {"id": "one-stop-visit", "kind": "scenario", "name": "One Stop Visit", "department_id": None}
EVALUATOR_ME = {"id": "city-evaluator", "kind": "evaluator", "name": "City Evaluator", "department_id": None}
OPERATOR_ME = {"id": "city-ops", "kind": "operator", "name": "City Ops", "department_id": None}
DEPARTMENT_ME = {"id": "market-publisher", "kind": "department", "name": "Market", "department_id": "market"}
PAGE = "/scenarios/one-stop-visit/evaluation"
JANUARY = f"?period_start={PERIOD_START}&period_end={PERIOD_END}"


def console(stand_in: StandIn) -> TestClient:
    client = TestClient(create_app(transport=stand_in.transport()))
    client.cookies.set(COOKIE, "cbk_00000000_key")
    return client


# --- bodies and periods ---------------------------------------------------------------------------


def test_a_day_is_its_midnight_utc_and_a_moment_is_written_in_utc() -> None:
    assert evaluation_view.as_moment("2027-01-01") == "2027-01-01T00:00:00Z"
    assert evaluation_view.as_moment("2027-01-01T08:00:00+08:00") == "2027-01-01T00:00:00Z"
    assert evaluation_view.as_moment("next month") == "next month"  # for the catalog to refuse
    assert evaluation_view.as_moment(None) is None
    assert evaluation_view.day_of("2027-01-31T23:00:00Z") == "2027-01-31"
    assert evaluation_view.day_of("soon") == ""


def test_this_month_ends_where_the_next_one_starts_also_in_december() -> None:
    assert evaluation_view.this_month(datetime(2026, 12, 7, 16, tzinfo=UTC)) == (
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )
    assert evaluation_view.this_month(datetime(2027, 2, 28, tzinfo=UTC))[1] == "2027-03-01T00:00:00Z"


def test_the_period_shown_is_the_one_asked_for_else_the_latest_of_an_active_objective() -> None:
    objectives = [
        objective_read(
            "obj_1",
            period_start="2027-03-01T00:00:00Z",
            period_end="2027-04-01T00:00:00Z",
            status="withdrawn",
        ),
        objective_read("obj_2"),
        objective_read("obj_3", period_start="2026-12-01T00:00:00Z", period_end="2027-01-01T00:00:00Z"),
    ]
    assert evaluation_view.objective_periods(objectives) == [
        ("2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z"),
        (PERIOD_START, PERIOD_END),
        ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ]
    asked = {"period_start": ["2026-12-01"], "period_end": ["2027-01-01"]}
    assert evaluation_view.chosen_period(asked, objectives) == (
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )
    assert evaluation_view.chosen_period({}, objectives)[0] == "2027-03-01T00:00:00Z"


def test_an_outcome_objective_carries_its_kpi_and_a_delivery_one_none() -> None:
    outcome = evaluation_view.objective_create(
        {
            "title": ["Median wait"],
            "kind": ["outcome"],
            "target": ["30"],
            "kpi_name": ["median wait"],
            "kpi_unit": ["min"],
            "kpi_direction": ["at-most"],
            "period_start": ["2027-01-01"],
            "period_end": ["2027-02-01"],
        }
    )
    assert outcome == {
        "title": "Median wait",
        "kind": "outcome",
        "datasets": [],
        "target": 30,
        "kpi": {"name": "median wait", "unit": "min", "direction": "at-most"},
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
    }
    use = evaluation_view.objective_create(
        {
            "kind": ["dataset-use"],
            "datasets": ["transport.bus-arrivals"],
            "other_datasets": ["health.outpatient-visits, transport.bus-arrivals"],
            "target": [""],
            "kpi_name": ["ignored"],
        }
    )
    assert use["datasets"] == ["transport.bus-arrivals", "health.outpatient-visits"]
    assert use["target"] is None and use["kpi"] is None
    assert evaluation_view.objective_create({"kind": ["quality-floor"], "target": ["85.5"]})["target"] == 85.5
    assert evaluation_view.objective_create({"target": ["many"]})["target"] == "many"
    assert evaluation_view.objective_create({"target": ["nan"]})["target"] == "nan"
    assert evaluation_view.outcome_create({"value": ["inf"]})["value"] == "inf"


def test_a_correction_names_the_outcome_it_corrects() -> None:
    body = evaluation_view.outcome_create(
        {
            "objective_id": ["obj_00000000000b"],
            "period_start": [PERIOD_START],
            "period_end": [PERIOD_END],
            "value": ["26"],
            "grant_ids": ["grt_1"],
            "dataset_ids": ["transport.bus-arrivals"],
            "note": ["recounted"],
            "corrects": ["out_0123456789ab"],
        }
    )
    assert body == {
        "objective_id": "obj_00000000000b",
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "value": 26,
        "grant_ids": ["grt_1"],
        "dataset_ids": ["transport.bus-arrivals"],
        "note": "recounted",
        "corrects": "out_0123456789ab",
    }
    assert evaluation_view.outcome_create({})["corrects"] is None


def test_a_verdict_has_one_reason_per_objective_and_names_the_report() -> None:
    body = evaluation_view.verdict_create(
        {
            "period_start": [PERIOD_START],
            "period_end": [PERIOD_END],
            "result": ["partly"],
            "objective": ["obj_1", "obj_2"],
            "result.obj_1": ["met"],
            "reason.obj_1": ["every day"],
            "result.obj_2": ["no-data"],
            "reason.obj_2": ["nothing reported"],
            "checkpoint_seq": ["41"],
            "checkpoint_hash": ["ab" * 32],
            "digest": ["cd" * 32],
        }
    )
    assert body["reasons"] == [
        {"objective_id": "obj_1", "result": "met", "reason": "every day"},
        {"objective_id": "obj_2", "result": "no-data", "reason": "nothing reported"},
    ]
    assert body["report"] == {"checkpoint": {"seq": 41, "hash": "ab" * 32}, "digest": "cd" * 32}
    assert evaluation_view.verdict_create({"digest": ["x"]})["report"] == {"checkpoint": None, "digest": "x"}


# --- indicators ------------------------------------------------------------------------------------


def test_an_indicator_reads_as_a_share_a_score_or_a_count() -> None:
    assert evaluation_view.indicator_value("penetration.datasets", 0.6) == "60%"
    assert evaluation_view.indicator_value("quality.used", 91.25) == "91.2"
    assert evaluation_view.indicator_value("value.outcomes-per-dataset", 1.5) == "1.50"
    assert evaluation_view.indicator_value("value.conversion", None) == "—"
    with i18n.use("zh_CN"):
        assert evaluation_view.indicator_value("value.public-service-share", 0.25) == "25%"


def test_the_cards_keep_the_systems_order_and_draw_each_trend() -> None:
    answer = indicators_answer()
    answer["indicators"].reverse()
    cards = evaluation_view.indicator_cards(answer)
    assert [c["name"] for c in cards] == list(INDICATOR_NAMES)
    share = cards[0]
    assert share["title"] == "Datasets in use"
    assert share["shown"] == "60%"
    assert [round(p.value, 2) for p in share["chart"].points] == [0.3, 0.48, 0.6]
    assert share["chart"].ticks[-1][1] == "100%"
    assert cards[2]["chart"].ticks[-1][1] == "100"  # a score, 0-100
    # a share nobody could compute draws no point rather than a 0
    assert cards[5]["chart"].points == []
    assert evaluation_view.indicator_cards(None) == []


def test_an_indicator_the_console_does_not_know_shows_its_name_and_qualitys_formula() -> None:
    answer = indicators_answer()
    answer["indicators"].append(
        {
            "name": "value.new",
            "value": 2,
            "numerator": 2,
            "denominator": 1,
            "formula": "new ÷ old",
            "evidence": {},
        }
    )
    card = evaluation_view.indicator_cards(answer)[-1]
    assert (card["title"], card["formula"], card["shown"]) == ("value.new", "new ÷ old", "2.00")


def test_a_count_is_drawn_up_to_a_round_number_above_its_largest_value() -> None:
    assert [charts.round_up(v) for v in (0, 0.3, 1, 1.5, 3, 7.2, 180)] == [1, 0.5, 1, 2, 5, 10, 200]
    chart = charts.trend_chart(
        [(datetime(2027, 1, 1, tzinfo=UTC), 1.5), (datetime(2027, 2, 1, tzinfo=UTC), 0.5)]
    )
    assert chart.ticks[-1][1] == "2" and chart.ticks[0][1] == "0"
    assert chart.first_label == "Jan 1, 2027" and chart.last_label == "Feb 1, 2027"
    assert chart.points[0].label == "Jan 1, 2027: 1.50"


def test_the_indicators_page_shows_value_formula_trend_and_the_chosen_breakdown() -> None:
    stand_in = StandIn(SCENARIO_ME)
    with console(stand_in) as client:
        page = client.get("/indicators?by=purpose&period=week")
    assert page.status_code == 200
    assert stand_in.calls("GET", "/quality/v1/indicators")[0].params == {
        "periods": "6",
        "period": "week",
        "by": "purpose",
    }
    assert page.text.count('class="card indicator"') == 6
    assert 'id="evidence-quality-used"' in page.text  # the counts and ids behind each figure
    assert 'id="trend-penetration-datasets"' in page.text and 'data-points="3"' in page.text
    assert (
        'id="formula-penetration-scenarios">formula of penetration.scenarios' in page.text
    )  # quality's words
    assert "Breakdown by purpose" in page.text
    assert "public service" in page.text  # a purpose category in words
    assert '<option value="purpose" selected>' in page.text
    with console(stand_in) as client:
        client.cookies.set("citybase_lang", "zh-CN")
        chinese = client.get("/indicators?by=bogus")
    assert "<h1>指标</h1>" in chinese.text
    assert stand_in.calls("GET", "/quality/v1/indicators")[-1].params["by"] == "department"


def test_the_overview_shows_the_indicators_with_their_trend() -> None:
    stand_in = StandIn(OPERATOR_ME)
    stand_in.answers[("GET", "/quality/v1/quality/rankings")] = httpx.Response(200, json={"items": []})
    stand_in.answers[("GET", "/quality/v1/utilization")] = httpx.Response(
        200, json={"datasets": [], "active_datasets": 5, "used_datasets": 3, "penetration_rate": 0.6}
    )
    stand_in.answers[("GET", "/quality/v1/utilization/idle")] = httpx.Response(
        200, json={"days": 7, "idle_scenarios": [], "never_delivered_datasets": [], "unused_grants": []}
    )
    stand_in.answers[("GET", "/ingest/metrics")] = httpx.Response(200, text="")
    with console(stand_in) as client:
        page = client.get("/overview")
    assert page.status_code == 200, page.text
    assert 'id="indicators"' in page.text and 'id="trend-value-conversion"' in page.text
    stand_in.answers[("GET", "/quality/v1/indicators")] = httpx.Response(404, json={"title": "Not found"})
    with console(stand_in) as client:
        assert 'id="no-indicators"' in client.get("/overview").text


# --- the evaluation page, by role ------------------------------------------------------------------


def test_the_scenario_sets_objectives_and_reports_outcomes_but_records_no_verdict() -> None:
    with console(StandIn(SCENARIO_ME)) as client:
        page = client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    for offered in (
        'id="objective-form"',
        'id="outcome-form"',
        'id="withdraw-obj_0123456789ab-form"',
        'id="correct-out_0123456789ab-form"',
    ):
        assert offered in text, offered
    assert 'id="verdict-form"' not in text and 'id="verify-form"' not in text
    # the report of the objectives' period: target against actual, evidence, inputs' quality
    assert 'id="status-obj_0123456789ab">not met' in text
    assert "2027-01-03" in text and "340" in text
    assert 'id="showcase-health.outpatient-visits"' in text
    assert 'id="report-csv"' in text and "period_start=2027-01-01T00%3A00%3A00Z" in text
    # the grant and the dataset it may name as evidence of an outcome
    assert 'id="outcome-grant-grt_1"' in text and 'id="outcome-dataset-transport.bus-arrivals"' in text


def test_the_evaluator_records_a_verdict_and_verifies_but_sets_and_reports_nothing() -> None:
    stand_in = StandIn(EVALUATOR_ME)
    with console(stand_in) as client:
        page = client.get(PAGE)
        home = client.get("/")
    text = page.text
    assert 'id="verdict-form"' in text and 'id="verify-form"' in text
    assert 'id="reason-result-obj_0123456789ab"' in text
    # the report's own status is the reason's default, and the report it is judged on goes with it
    assert '<option value="not-met" selected>' in text
    assert f'name="checkpoint_hash" value="{"ab" * 32}"' in text
    for refused in ('id="objective-form"', 'id="outcome-form"', "withdraw-obj_", "correct-out_"):
        assert refused not in text, refused
    assert not stand_in.calls("GET", "/catalog/v1/grants")  # it never reads the scenario's grants
    assert 'id="scenario-link"' not in text
    assert 'id="evaluations-link"' in home.text and 'id="nav-evaluations"' in home.text
    assert 'href="/scenarios"' not in home.text


def test_another_scenario_and_a_department_are_refused_the_evaluation() -> None:
    other = {**SCENARIO_ME, "id": "ai-community"}
    for me in (other, DEPARTMENT_ME):
        with console(StandIn(me)) as client:
            page = client.get(PAGE)
        assert page.status_code == 403
        assert "Not for your role" in page.text


def test_without_a_report_the_page_says_so_and_offers_no_verdict() -> None:
    with console(StandIn(EVALUATOR_ME, report=None)) as client:
        page = client.get(PAGE)
    assert 'id="no-report"' in page.text and 'id="verdict-form"' not in page.text


def test_a_period_quality_refuses_is_said_on_the_page() -> None:
    stand_in = StandIn(OPERATOR_ME)
    stand_in.answers[("GET", "/quality/v1/scenarios/one-stop-visit/evaluation")] = httpx.Response(
        422, json={"title": "Invalid period", "detail": "period_end is before period_start"}
    )
    with console(stand_in) as client:
        page = client.get(f"{PAGE}?period_start=2027-02-01&period_end=2027-01-01")
    assert page.status_code == 200
    assert 'id="report-error"' in page.text and "period_end is before period_start" in page.text
    asked = stand_in.calls("GET", "/quality/v1/scenarios/one-stop-visit/evaluation")[-1]
    assert asked.params["period_start"] == "2027-02-01T00:00:00Z"


# --- forms -----------------------------------------------------------------------------------------


def test_setting_an_objective_goes_back_to_its_period() -> None:
    stand_in = StandIn(SCENARIO_ME)
    with console(stand_in) as client:
        answer = client.post(
            "/scenarios/one-stop-visit/objectives",
            data={
                "title": "Records",
                "kind": "delivered-records",
                "datasets": "transport.bus-arrivals",
                "target": "1000",
                "period_start": "2027-03-01",
                "period_end": "2027-04-01",
            },
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        f"{PAGE}?period_start=2027-03-01T00%3A00%3A00Z&period_end=2027-04-01T00%3A00%3A00Z"
    )
    [sent] = stand_in.calls("POST", "/catalog/v1/scenarios/one-stop-visit/objectives")
    assert sent.body["target"] == 1000 and sent.body["datasets"] == ["transport.bus-arrivals"]


def test_a_refused_objective_comes_back_on_its_form_with_the_field_and_what_was_typed() -> None:
    stand_in = StandIn(SCENARIO_ME)
    stand_in.answers[("POST", "/catalog/v1/scenarios/one-stop-visit/objectives")] = httpx.Response(
        422,
        json={
            "title": "Invalid objective",
            "detail": "a records objective needs a target",
            "errors": [{"path": "/body/target", "message": "a number of records is required"}],
        },
    )
    with console(stand_in) as client:
        page = client.post(
            "/scenarios/one-stop-visit/objectives",
            data={
                "title": "Records wanted",
                "kind": "delivered-records",
                "target": "",
                "shown_start": PERIOD_START,
                "shown_end": PERIOD_END,
            },
        )
    assert page.status_code == 422
    assert 'id="objective-error"' in page.text and "a records objective needs a target" in page.text
    assert 'data-field="target">a number of records is required' in page.text
    assert 'value="Records wanted"' in page.text
    assert '<option value="delivered-records" selected>' in page.text
    # the page shown again is the period it showed
    assert stand_in.calls("GET", "/quality/v1/scenarios/one-stop-visit/evaluation")[-1].params[
        "period_start"
    ] == (PERIOD_START)


def test_an_outcome_goes_with_the_forms_idempotency_key_so_a_second_send_reports_it_once() -> None:
    stand_in = StandIn(SCENARIO_ME)
    with console(stand_in) as client:
        page = client.get(PAGE).text
        key = page.split('id="outcome-idempotency_key" value="', 1)[1].split('"', 1)[0]
        form = {
            "idempotency_key": key,
            "objective_id": "obj_00000000000b",
            "period_start": "2027-01-01",
            "period_end": "2027-02-01",
            "value": "27.5",
            "grant_ids": "grt_1",
            "shown_start": PERIOD_START,
            "shown_end": PERIOD_END,
        }
        first = client.post("/scenarios/one-stop-visit/outcomes", data=form, follow_redirects=False)
        again = client.post("/scenarios/one-stop-visit/outcomes", data=form, follow_redirects=False)
        later = client.get(PAGE).text
    assert first.status_code == again.status_code == 303
    assert (
        first.headers["location"]
        == f"{PAGE}?period_start=2027-01-01T00%3A00%3A00Z&period_end=2027-02-01T00%3A00%3A00Z"
    )
    sent = stand_in.calls("POST", "/catalog/v1/scenarios/one-stop-visit/outcomes")
    assert [s.headers["idempotency-key"] for s in sent] == [key, key]
    assert sent[0].body["value"] == 27.5 and sent[0].body["grant_ids"] == ["grt_1"]
    assert later.count(key) == 0  # each page gives its forms a new key


def test_a_correction_and_a_withdrawal_are_sent_as_the_contract_says() -> None:
    stand_in = StandIn(OPERATOR_ME)
    with console(stand_in) as client:
        corrected = client.post(
            "/scenarios/one-stop-visit/outcomes",
            data={
                "corrects": "out_0123456789ab",
                "objective_id": "obj_00000000000b",
                "period_start": PERIOD_START,
                "period_end": PERIOD_END,
                "value": "26",
                "note": "recounted",
            },
            follow_redirects=False,
        )
        withdrawn = client.post(
            "/scenarios/one-stop-visit/objectives/obj_0123456789ab/withdraw",
            data={"reason": "the stop moved"},
            follow_redirects=False,
        )
    assert corrected.status_code == withdrawn.status_code == 303
    [correction] = stand_in.calls("POST", "/catalog/v1/scenarios/one-stop-visit/outcomes")
    assert correction.body["corrects"] == "out_0123456789ab" and correction.body["value"] == 26
    [withdrawal] = stand_in.calls("POST", "/catalog/v1/objectives/obj_0123456789ab/withdraw")
    assert withdrawal.body == {"reason": "the stop moved"}


def test_a_corrected_outcome_is_kept_and_marked_and_offers_no_second_correction() -> None:
    stand_in = StandIn(SCENARIO_ME)
    stand_in.outcomes = [
        outcome_read(superseded_by="out_00000000000c"),
        outcome_read("out_00000000000c", value=26, corrects="out_0123456789ab"),
    ]
    with console(stand_in) as client:
        page = client.get(PAGE).text
    assert 'id="correct-out_0123456789ab-form"' not in page
    assert 'id="correct-out_00000000000c-form"' in page
    assert "corrected by" in page


def test_the_evaluators_verdict_is_sent_with_its_reasons_and_the_reports_digest() -> None:
    stand_in = StandIn(EVALUATOR_ME)
    with console(stand_in) as client:
        answer = client.post(
            "/scenarios/one-stop-visit/verdicts",
            data={
                "period_start": PERIOD_START,
                "period_end": PERIOD_END,
                "result": "does-not-meet",
                "objective": "obj_0123456789ab",
                "result.obj_0123456789ab": "not-met",
                "reason.obj_0123456789ab": "12 days of 20",
                "digest": "cd" * 32,
                "checkpoint_seq": "41",
                "checkpoint_hash": "ab" * 32,
            },
            follow_redirects=False,
        )
    assert answer.status_code == 303
    [sent] = stand_in.calls("POST", "/catalog/v1/scenarios/one-stop-visit/verdicts")
    assert sent.body["result"] == "does-not-meet"
    assert sent.body["reasons"] == [
        {"objective_id": "obj_0123456789ab", "result": "not-met", "reason": "12 days of 20"}
    ]
    assert sent.body["report"]["checkpoint"] == {"seq": 41, "hash": "ab" * 32}


def test_the_periods_verdict_is_shown_with_its_reasons() -> None:
    stand_in = StandIn(OPERATOR_ME)
    stand_in.verdicts = {"one-stop-visit": [verdict_read()]}
    with console(stand_in) as client:
        page = client.get(PAGE).text
    assert 'id="verdict-result">partly meets its objectives' in page
    assert "12 days of 20" in page


# --- the report's documents and the verification ------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media", "disposition"),
    [
        ("csv", "text/csv", "attachment"),
        ("json", "application/json", "attachment"),
        ("html", "text/html", "inline"),
    ],
)
def test_the_report_is_saved_as_quality_renders_it(fmt: str, media: str, disposition: str) -> None:
    stand_in = StandIn(EVALUATOR_ME)
    with console(stand_in) as client:
        answer = client.get(f"{PAGE}/report.{fmt}{JANUARY}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media)
    assert (
        answer.headers["content-disposition"]
        == f'{disposition}; filename="evaluation-one-stop-visit-2027-01-01.{fmt}"'
    )
    assert "sandbox" in answer.headers["content-security-policy"]
    sent = stand_in.calls("GET", "/quality/v1/scenarios/one-stop-visit/evaluation")[-1]
    assert sent.params == {"period_start": PERIOD_START, "period_end": PERIOD_END, "format": fmt}
    if fmt == "json":
        assert answer.json()["digest"] == evaluation_report()["digest"]


def test_another_scenario_cannot_save_the_report() -> None:
    with console(StandIn({**SCENARIO_ME, "id": "ai-community"})) as client:
        assert client.get(f"{PAGE}/report.json{JANUARY}").status_code == 403


def test_an_uploaded_report_is_verified_and_the_mismatches_shown() -> None:
    stand_in = StandIn(EVALUATOR_ME)
    saved = json.dumps(evaluation_report())
    with console(stand_in) as client:
        page = client.post(
            f"{PAGE}/verify",
            files={"upload": ("report.json", saved, "application/json")},
            data={"shown_start": PERIOD_START, "shown_end": PERIOD_END},
        )
    assert page.status_code == 200
    [sent] = stand_in.calls("POST", "/catalog/v1/evaluations/verify")
    assert sent.body == evaluation_report()
    assert 'id="verification-result">does not match the audit trail' in page.text
    assert "/objectives/0/actual" in page.text and 'id="mismatches"' in page.text
    assert 'id="not-checked"' in page.text and "/inputs/0/quality" in page.text


def test_a_file_that_is_no_report_is_refused_next_to_the_form() -> None:
    stand_in = StandIn(OPERATOR_ME)
    with console(stand_in) as client:
        page = client.post(f"{PAGE}/verify", data={"document": "[1, 2]"})
        broken = client.post(f"{PAGE}/verify", data={"document": "{not json"})
    assert page.status_code == broken.status_code == 422
    assert 'id="verify-error"' in page.text and "is a JSON object" in page.text
    assert "is not JSON" in broken.text
    assert not stand_in.calls("POST", "/catalog/v1/evaluations/verify")


# --- the work list ------------------------------------------------------------------------------------


def test_the_work_list_shows_scenarios_past_proposed_never_judged_first() -> None:
    stand_in = StandIn(EVALUATOR_ME)
    stand_in.objectives = [
        objective_read(),
        outcome_objective_read(),
        objective_read("obj_x", status="withdrawn"),
    ]
    with console(stand_in) as client:
        page = client.get("/evaluations")
    assert page.status_code == 200
    text = page.text
    assert "new-idea" not in text  # still proposed
    assert text.index('id="work-one-stop-visit"') < text.index('id="work-ai-community"')
    row = text.split('id="work-one-stop-visit"', 1)[1].split("</tr>", 1)[0]
    assert "not judged yet" in row and "<td>2</td>" in row
    judged = text.split('id="work-ai-community"', 1)[1].split("</tr>", 1)[0]
    assert "partly meets its objectives" in judged
    assert 'href="/scenarios/ai-community/evaluation"' in judged


def test_the_work_list_is_not_for_a_scenario_or_a_department() -> None:
    for me in (SCENARIO_ME, DEPARTMENT_ME):
        with console(StandIn(me)) as client:
            assert client.get("/evaluations").status_code == 403
            home = client.get("/").text
        assert 'id="nav-evaluations"' not in home and 'id="nav-indicators"' in home


def test_a_scenarios_home_leads_to_its_own_evaluation() -> None:
    with console(StandIn(SCENARIO_ME)) as client:
        home = client.get("/").text
    assert 'id="my-evaluation"' in home and 'href="/scenarios/one-stop-visit/evaluation"' in home


def test_each_form_is_refused_to_the_roles_it_is_not_offered_to_before_any_call() -> None:
    refused = {
        "/scenarios/one-stop-visit/verdicts": (SCENARIO_ME, "Verdicts are recorded by evaluators."),
        "/scenarios/one-stop-visit/objectives": (EVALUATOR_ME, "set by the scenario itself"),
        "/scenarios/one-stop-visit/objectives/obj_0123456789ab/withdraw": (
            EVALUATOR_ME,
            "set by the scenario",
        ),
        "/scenarios/one-stop-visit/outcomes": (
            EVALUATOR_ME,
            "reported by the scenario itself, operators and administrators",
        ),
    }
    for path, (me, reason) in refused.items():
        stand_in = StandIn(me)
        with console(stand_in) as client:
            answer = client.post(path, data={"reason": "x", "value": "1"})
        assert answer.status_code == 403, path
        assert reason in answer.text, path
        assert not [s for s in stand_in.sent if s.method == "POST"], path
