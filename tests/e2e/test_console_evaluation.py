"""A scenario's evaluation through the console's forms, against ``citybase up``'s app: the scenario
sets objectives and reports (and corrects) an outcome, records are delivered to it, the
evaluator reads the report, records a verdict, saves the report and verifies it against the
audit trail; the indicators page shows the city's figures."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.console.evaluation_view import day_of, indicator_value, this_month
from tests.support.evaluation_cast import DATASET, EVALUATOR, FAST, evaluation_cast
from tests.support.http import wait_until
from tests.support.platform import Platform, in_process
from tests.support.principals import OPERATOR, PUBLISHER, SCENARIO


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-evaluation"),
        key_name="console",
        environment=FAST,
        prepare_platform=evaluation_cast,
    ) as running:
        yield running


def login(platform: Platform, who: str) -> TestClient:
    client = platform.client
    assert isinstance(client, TestClient)
    client.cookies.clear()
    response = client.post(
        "/console/login", data={"key": platform.keys[who], "next": "/console/"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client


START, END = this_month()
PAGE = f"/console/scenarios/{SCENARIO}/evaluation"
THIS_MONTH = {"period_start": START, "period_end": END}


def _objectives(platform: Platform) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/objectives")["items"]
    return items


def _outcomes(platform: Platform) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/outcomes")["items"]
    return items


def _hidden(page: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}" value="([^"]*)"', page)
    assert found, f"no {element_id} on the page"
    return found.group(1)


def test_the_scenario_sets_its_objectives_and_reports_and_corrects_an_outcome(platform: Platform) -> None:
    client = login(platform, SCENARIO)
    assert f'href="{PAGE}"' in client.get("/console/").text  # its home leads to its evaluation
    assert 'id="evaluation-link"' in client.get(f"/console/scenarios/{SCENARIO}").text
    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert 'id="objective-form"' in page.text and 'id="verdict-form"' not in page.text
    days = {"period_start": day_of(START), "period_end": day_of(END)}
    delivery = client.post(
        f"/console/scenarios/{SCENARIO}/objectives",
        data={
            "title": "Inspections every few days",
            "kind": "delivered-records",
            "datasets": DATASET,
            "target": "10",
            **days,
        },
        follow_redirects=False,
    )
    assert delivery.status_code == 303, delivery.text
    assert delivery.headers["location"].startswith(f"{PAGE}?period_start=")
    outcome = client.post(
        f"/console/scenarios/{SCENARIO}/objectives",
        data={
            "title": "Pharmacies checked by residents",
            "kind": "outcome",
            "target": "100",
            "kpi_name": "look-ups",
            "kpi_unit": "per day",
            "kpi_direction": "at-least",
            **days,
        },
        follow_redirects=False,
    )
    assert outcome.status_code == 303, outcome.text
    set_ = {o["title"]: o for o in _objectives(platform)}
    assert set_["Pharmacies checked by residents"]["kpi"] == {
        "name": "look-ups",
        "unit": "per day",
        "direction": "at-least",
    }
    assert set_["Inspections every few days"]["datasets"] == [DATASET]
    assert set_["Inspections every few days"]["period_start"].startswith(day_of(START))

    # a refused objective: the catalog's reason next to the form, what was typed kept
    refused = client.post(
        f"/console/scenarios/{SCENARIO}/objectives",
        data={"title": "No period", "kind": "active-days", "datasets": DATASET, "target": "3"},
    )
    assert refused.status_code == 422, refused.text
    assert 'id="objective-error"' in refused.text and 'value="No period"' in refused.text

    page = client.get(PAGE, params=THIS_MONTH).text
    key = _hidden(page, "outcome-idempotency_key")
    objective_id = set_["Pharmacies checked by residents"]["id"]
    # the grants it may name are offered on the form; a dataset it names must be under one of them
    [grant_id] = re.findall(r'id="outcome-grant-([^"]+)"', page)
    form = {
        "idempotency_key": key,
        "objective_id": objective_id,
        **days,
        "value": "120",
        "grant_ids": grant_id,
        "dataset_ids": DATASET,
        "note": "from the app's logs",
    }
    first = client.post(f"/console/scenarios/{SCENARIO}/outcomes", data=form, follow_redirects=False)
    again = client.post(f"/console/scenarios/{SCENARIO}/outcomes", data=form, follow_redirects=False)
    assert first.status_code == again.status_code == 303, again.text
    reported = [o for o in _outcomes(platform) if o["objective_id"] == objective_id]
    assert len(reported) == 1, reported  # the same form twice reports it once
    assert reported[0]["value"] == 120

    page = client.get(PAGE, params=THIS_MONTH).text
    correction = client.post(
        f"/console/scenarios/{SCENARIO}/outcomes",
        data={
            "idempotency_key": _hidden(page, "outcome-idempotency_key") + "-fix",
            "corrects": reported[0]["id"],
            "objective_id": objective_id,
            "period_start": reported[0]["period_start"],
            "period_end": reported[0]["period_end"],
            "value": "90",
            "note": "bots removed",
            "grant_ids": grant_id,
            "dataset_ids": DATASET,
        },
        follow_redirects=False,
    )
    assert correction.status_code == 303, correction.text
    outcomes = {o["id"]: o for o in _outcomes(platform)}
    assert outcomes[reported[0]["id"]]["superseded_by"] is not None
    page = client.get(PAGE, params=THIS_MONTH).text
    assert "corrected by" in page
    assert f'id="correct-{reported[0]["id"]}-form"' not in page


def test_the_evaluator_reads_the_report_records_a_verdict_and_verifies_the_saved_report(
    platform: Platform,
) -> None:
    if not _objectives(platform):
        test_the_scenario_sets_its_objectives_and_reports_and_corrects_an_outcome(platform)
    client = login(platform, EVALUATOR)
    work = client.get("/console/evaluations")
    assert work.status_code == 200, work.text
    assert f'id="work-{SCENARIO}"' in work.text and f'href="{PAGE}"' in work.text

    def report_shown() -> str | None:
        page = client.get(PAGE, params=THIS_MONTH).text
        return page if 'id="verdict-form"' in page and "Pharmacies checked by residents" in page else None

    assert wait_until(lambda: report_shown() is not None, 20), "quality shows no report of the objectives"
    page = report_shown() or ""
    assert 'id="objective-form"' not in page and 'id="outcome-form"' not in page
    assert 'id="report-json"' in page and 'id="report-csv"' in page and 'id="report-html"' in page

    saved = client.get(f"{PAGE}/report.json", params=THIS_MONTH)
    assert saved.status_code == 200, saved.text
    report = saved.json()
    assert "attachment" in saved.headers["content-disposition"]
    assert client.get(f"{PAGE}/report.csv", params=THIS_MONTH).headers["content-type"].startswith("text/csv")
    assert (
        client.get(f"{PAGE}/report.html", params=THIS_MONTH).headers["content-type"].startswith("text/html")
    )
    by_title = {o["title"]: o for o in report["objectives"]}
    assert by_title["Inspections every few days"]["status"] == "met", by_title
    assert by_title["Pharmacies checked by residents"]["actual"] == 90  # the correction, not the first value

    reasons = {}
    for o in report["objectives"]:
        reasons[f"result.{o['id']}"] = o["status"]
        reasons[f"reason.{o['id']}"] = f"{o['title']}: {o['actual']} against {o['target']}"
    verdict = client.post(
        f"/console/scenarios/{SCENARIO}/verdicts",
        data={
            "period_start": report["period"]["start"],
            "period_end": report["period"]["end"],
            "result": "meets",
            "objective": [o["id"] for o in report["objectives"]],
            "digest": report["digest"],
            **(
                {
                    "checkpoint_seq": str(report["checkpoint"]["seq"]),
                    "checkpoint_hash": report["checkpoint"]["hash"],
                }
                if report["checkpoint"]
                else {}
            ),
            **reasons,
        },
        follow_redirects=False,
    )
    assert verdict.status_code == 303, verdict.text
    [recorded] = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/verdicts")["items"]
    assert recorded["result"] == "meets" and recorded["report"]["digest"] == report["digest"]
    page = client.get(verdict.headers["location"]).text
    assert 'id="verdict-result">meets its objectives' in page
    assert "meets its objectives" in client.get("/console/evaluations").text

    # a saved report verifies against the trail up to the checkpoint it names: take one after the
    # verdict and save the report again once quality has seen it
    checkpoint = platform.ok("POST", "/catalog/v1/audit/checkpoints", platform.keys[OPERATOR])

    def saved_after_the_checkpoint() -> bytes | None:
        answer = client.get(f"{PAGE}/report.json", params=THIS_MONTH)
        seen = answer.json().get("checkpoint") or {}
        return answer.content if seen.get("seq", -1) >= checkpoint["seq"] else None

    assert wait_until(lambda: saved_after_the_checkpoint() is not None, 15), (
        "quality did not see the checkpoint"
    )
    saved_content = saved_after_the_checkpoint()
    assert saved_content is not None
    verified = client.post(
        f"{PAGE}/verify", files={"upload": ("report.json", saved_content, "application/json")}
    )
    assert verified.status_code == 200, verified.text
    assert 'id="verification-result">verified' in verified.text, verified.text
    tampered = json.loads(saved_content)
    delivery = next(o for o in tampered["objectives"] if o["kind"] == "delivered-records")
    delivery["per_dataset"][0]["actual"] += 1000  # records the trail never delivered
    shown = client.post(f"{PAGE}/verify", data={"document": json.dumps(tampered)})
    assert shown.status_code == 200, shown.text
    assert "does not match the audit trail" in shown.text and 'id="mismatches"' in shown.text
    index = tampered["objectives"].index(delivery)
    assert f"<code>/objectives/{index}/per_dataset/0/actual</code>" in shown.text


def test_a_department_is_refused_and_the_scenario_records_no_verdict(platform: Platform) -> None:
    assert login(platform, PUBLISHER).get(PAGE).status_code == 403
    scenario = login(platform, SCENARIO)
    assert scenario.get("/console/evaluations").status_code == 403
    refused = scenario.post(
        f"/console/scenarios/{SCENARIO}/verdicts",
        data={"period_start": START, "period_end": END, "result": "meets", "digest": "x"},
    )
    assert refused.status_code == 403, refused.text


def test_the_indicators_page_shows_the_six_with_their_trend_and_a_breakdown(platform: Platform) -> None:
    client = login(platform, EVALUATOR)
    page = client.get("/console/indicators")
    assert page.status_code == 200, page.text
    assert page.text.count('class="card indicator"') == 6
    assert 'id="trend-value-conversion"' in page.text
    answer = platform.ok("GET", "/quality/v1/indicators", platform.keys[EVALUATOR], params={"by": "purpose"})
    by_purpose = client.get("/console/indicators", params={"by": "purpose"}).text
    assert "public service" in by_purpose
    # one number, one source: each figure on the page is quality's, as quality computed it
    for figure in answer["indicators"]:
        card = f"indicator-{figure['name'].replace('.', '-')}"
        shown = by_purpose.split(f'id="{card}" data-name="{figure["name"]}" data-value="', 1)[1].split(
            '"', 1
        )[0]
        assert shown == ("" if figure["value"] is None else str(figure["value"])), figure
    penetration = next(i for i in answer["indicators"] if i["name"] == "penetration.datasets")
    assert penetration["numerator"] >= 1  # the market inspections delivered to the live scenario
    assert (
        f'id="value-penetration-datasets">{indicator_value("penetration.datasets", penetration["value"])}<'
        in (by_purpose)
    )
    assert f"{penetration['numerator']} / {penetration['denominator']}" in by_purpose
    operator = login(platform, OPERATOR).get("/console/overview")
    assert 'id="indicators"' in operator.text and 'id="trend-quality-used"' in operator.text
