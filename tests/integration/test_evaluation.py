"""A scenario evaluated end to end, in one process (``citybase up``'s app on SQLite and the embedded
bus): it sets two objectives on the data it consumes and one outcome KPI, consumes two datasets,
reports outcomes for two periods (one corrected); quality's evaluation report shows target against
actual for each with its evidence; an evaluator, who reads no record data, records a verdict; the
saved report verifies against the audit trail after a checkpoint, and no longer does once an audit
row is edited. The report's JSON and HTML are saved under ``test-artifacts/evaluation/``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from services.catalog.audit.models import AuditEntry
from services.common import db
from services.common.worker import wait_until
from tests.factories import INSPECTION_FIELDS, OUTPATIENT_FIELDS, access_request_create
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process

SCENARIO = "one-stop-visit"
INSPECTIONS, VISITS = "market.inspections", "health.outpatient-visits"
RECORDS = 30
OPERATOR, EVALUATOR = "city-ops", "evaluator-1"
FAST_GAUGES = {**SHORT_QUALITY_WINDOWS, "CITYBASE_QUALITY_UTILIZATION_REFRESH_S": "0.3"}
"""Windows that close within a second, and the indicator gauges refreshed three times a second."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "evaluation"

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START, MIDDLE, END = TODAY - timedelta(days=1), TODAY + timedelta(days=1), TODAY + timedelta(days=3)
"""The evaluation period (four days around today) and the two reporting periods it holds."""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _people(platform: Platform) -> None:
    platform.principal(OPERATOR, "operator")
    platform.principal(EVALUATOR, "evaluator")
    platform.principal("market-approver", "approver", "market-supervision")
    platform.principal("health-approver", "approver", "health-commission")
    platform.scenario(SCENARIO)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("evaluation"), prepare_platform=_people, environment=FAST_GAUGES
    ) as platform:
        yield platform


def _granted(platform: Platform, dataset_id: str, fields: list[str], approver: str) -> str:
    asked = platform.ok(
        "POST",
        "/catalog/v1/access-requests",
        platform.keys[SCENARIO],
        json=access_request_create(dataset_id, fields),
    )
    decided = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{asked['id']}/approve",
        platform.keys[approver],
        json={"reason": "the one-stop visit planner"},
    )
    return str(decided["grant_id"])


def _consume(platform: Platform, dataset_id: str) -> str:
    """Subscribe once the grant reached feeds, and poll and acknowledge until every record came."""
    key = platform.keys[SCENARIO]

    def subscribe() -> bool:
        answer = platform.call(
            "POST", "/feeds/v1/subscriptions", key, json={"dataset": dataset_id, "start": "earliest"}
        )
        return answer.status_code == 201

    assert wait_until(subscribe, 15.0), f"the grant on {dataset_id} never reached feeds"
    [subscription] = [
        s for s in platform.ok("GET", "/feeds/v1/subscriptions", key)["items"] if s["dataset"] == dataset_id
    ]
    received = 0
    deadline = time.monotonic() + 30
    while received < RECORDS and time.monotonic() < deadline:
        batch = platform.ok(
            "GET", f"/feeds/v1/subscriptions/{subscription['id']}/records", key, params={"wait": 1}
        )
        received += len(batch["records"])
        if batch["records"]:
            platform.ok(
                "POST",
                f"/feeds/v1/subscriptions/{subscription['id']}/ack",
                key,
                json={"cursor": batch["cursor"]},
            )
    assert received == RECORDS, f"{received} of {RECORDS} records of {dataset_id} delivered"
    return str(subscription["id"])


def _objective(platform: Platform, body: dict[str, Any]) -> dict[str, Any]:
    payload = {"period_start": _iso(START), "period_end": _iso(END), "target": None, "kpi": None, **body}
    created: dict[str, Any] = platform.ok(
        "POST", f"/catalog/v1/scenarios/{SCENARIO}/objectives", platform.keys[SCENARIO], json=payload
    )
    return created


def _outcome(
    platform: Platform, objective_id: str, start: datetime, end: datetime, value: float, **extra: Any
) -> dict[str, Any]:
    body = {
        "objective_id": objective_id,
        "period_start": _iso(start),
        "period_end": _iso(end),
        "value": value,
        "grant_ids": [],
        "dataset_ids": [],
        "note": "visits booked through the planner",
        "corrects": None,
        **extra,
    }
    reported: dict[str, Any] = platform.ok(
        "POST", f"/catalog/v1/scenarios/{SCENARIO}/outcomes", platform.keys[SCENARIO], json=body
    )
    return reported


def _report(platform: Platform, key: str | None = None, fmt: str = "json") -> Any:
    response = platform.call(
        "GET",
        f"/quality/v1/scenarios/{SCENARIO}/evaluation",
        key or platform.keys[EVALUATOR],
        params={"period_start": _iso(START), "period_end": _iso(END), "format": fmt},
    )
    assert response.status_code == 200, response.text
    return response.json() if fmt == "json" else response.text


def _settled(platform: Platform, check: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """The report once ``check(report)`` holds (quality reads the catalog and the metering as they
    come)."""
    found: dict[str, Any] = {}

    def ready() -> bool:
        found.update(_report(platform))
        return bool(check(found))

    assert wait_until(ready, timeout_s, 0.3), json.dumps(found, indent=1, default=str)[:4000]
    return found


def test_a_scenario_is_evaluated_by_an_evaluator_and_the_saved_report_verifies(platform: Platform) -> None:
    grants = {
        INSPECTIONS: _granted(platform, INSPECTIONS, INSPECTION_FIELDS, "market-approver"),
        VISITS: _granted(platform, VISITS, OUTPATIENT_FIELDS, "health-approver"),
    }
    for dataset_id in grants:
        platform.demo_traffic(dataset_id, RECORDS)
    subscriptions = {dataset_id: _consume(platform, dataset_id) for dataset_id in grants}

    use = _objective(
        platform, {"title": "Both datasets in use", "kind": "dataset-use", "datasets": [INSPECTIONS, VISITS]}
    )
    volume = _objective(
        platform,
        {
            "title": "Enough records",
            "kind": "delivered-records",
            "datasets": [INSPECTIONS, VISITS],
            "target": 20,
        },
    )
    booked = _objective(
        platform,
        {
            "title": "Visits booked a day",
            "kind": "outcome",
            "datasets": [],
            "target": 10,
            "kpi": {"name": "visits booked", "unit": "visits", "direction": "at-least"},
        },
    )
    _outcome(platform, booked["id"], START, MIDDLE, 12)
    first = _outcome(platform, booked["id"], MIDDLE, END, 5)
    corrected = _outcome(platform, booked["id"], MIDDLE, END, 8, corrects=first["id"])

    def measured(report: dict[str, Any]) -> bool:
        entries = {entry["id"]: entry for entry in report["objectives"]}
        return (
            len(entries) == 3
            and [line["actual"] for line in entries[volume["id"]]["per_dataset"]] == [RECORDS, RECORDS]
            and entries[booked["id"]]["actual"] == 10
        )

    report = _settled(platform, measured)
    entries = {entry["id"]: entry for entry in report["objectives"]}
    assert report["scenario"] == {"id": SCENARIO, "name": "One Stop Visit", "stage": "live"}
    assert entries[use["id"]]["status"] == "met" and entries[use["id"]]["actual"] == 2
    assert entries[volume["id"]]["target"] == 20 and entries[volume["id"]]["status"] == "met"
    deliveries = entries[volume["id"]]["evidence"]["deliveries"]
    assert {row["dataset_id"] for row in deliveries} == {INSPECTIONS, VISITS}
    assert sum(row["records"] for row in deliveries) == 2 * RECORDS
    outcome = entries[booked["id"]]
    assert (outcome["target"], outcome["actual"], outcome["status"]) == (10, 10, "met")  # (12 + 8) / 2
    assert sorted(o["id"] for o in outcome["evidence"]["outcomes"]) == sorted(
        [
            o["id"]
            for o in platform.ok(
                "GET", f"/catalog/v1/scenarios/{SCENARIO}/outcomes", platform.keys[EVALUATOR]
            )["items"]
            if o["superseded_by"] is None
        ]
    )
    assert corrected["id"] in {o["id"] for o in outcome["evidence"]["outcomes"]}
    assert report["outcomes"]["reported"] == 2 and not report["outcomes"]["none_reported"]
    assert {item["dataset_id"]: item["records"] for item in report["inputs"]} == {
        INSPECTIONS: RECORDS,
        VISITS: RECORDS,
    }

    # The evaluator reads evidence, never record data.
    evaluator = platform.keys[EVALUATOR]
    refused = [
        ("GET", "/feeds/v1/subscriptions"),
        ("POST", "/feeds/v1/subscriptions"),
        ("GET", f"/feeds/v1/subscriptions/{subscriptions[INSPECTIONS]}"),
        ("GET", f"/feeds/v1/subscriptions/{subscriptions[INSPECTIONS]}/records"),
        ("GET", f"/catalog/v1/grants/{grants[VISITS]}"),
    ]
    for method, path in refused:
        kwargs: dict[str, Any] = {"json": {"dataset": INSPECTIONS}} if method == "POST" else {}
        answer = platform.call(method, path, evaluator, **kwargs)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
    quality = platform.ok("GET", f"/quality/v1/datasets/{INSPECTIONS}/quality", evaluator)
    assert quality["record_evidence"]["shown"] is False
    assert all(rule["examples"] == [] for rule in quality["rules"])
    assert platform.ok("GET", f"/quality/v1/datasets/{INSPECTIONS}/quality", platform.keys[OPERATOR])[
        "record_evidence"
    ]["shown"]
    indicators = platform.ok(
        "GET", "/quality/v1/indicators", evaluator, params={"by": "scenario", "periods": 2}
    )
    assert {figure["name"] for figure in indicators["indicators"]} >= {
        "penetration.datasets",
        "value.conversion",
    }
    assert platform.call("GET", f"/quality/v1/scorecards/scenarios/{SCENARIO}", evaluator).status_code == 200
    other = platform.scenario("ai-community")
    assert (
        platform.call(
            "GET",
            f"/quality/v1/scenarios/{SCENARIO}/evaluation",
            other,
            params={"period_start": _iso(START), "period_end": _iso(END)},
        ).status_code
        == 403
    )

    # A checkpoint once every delivery is on the trail; the report names it.
    batches = sum(row["batches"] for row in deliveries)

    def audited() -> bool:
        entries = platform.ok(
            "GET", "/catalog/v1/audit", params={"action": "feed.deliver", "scenario": SCENARIO, "limit": 500}
        )["items"]
        return len(entries) >= batches

    assert wait_until(audited, 15.0), "the deliveries did not reach the audit trail"
    checkpoint = platform.ok("POST", "/catalog/v1/audit/checkpoints", platform.keys[OPERATOR])
    report = _settled(platform, lambda r: (r["checkpoint"] or {}).get("seq") == checkpoint["seq"])
    assert report["checkpoint"]["hash"] == checkpoint["hash"]

    verdict = platform.ok(
        "POST",
        f"/catalog/v1/scenarios/{SCENARIO}/verdicts",
        evaluator,
        json={
            "period_start": _iso(START),
            "period_end": _iso(END),
            "result": "meets",
            "reasons": [
                {
                    "objective_id": entry["id"],
                    "result": entry["status"],
                    "reason": f"actual {entry['actual']}",
                }
                for entry in report["objectives"]
            ],
            "report": {
                "checkpoint": {"seq": checkpoint["seq"], "hash": checkpoint["hash"]},
                "digest": report["digest"],
            },
        },
    )
    report = _settled(platform, lambda r: (r["verdict"] or {}).get("id") == verdict["id"])
    assert report["verdict"]["report"]["digest"] == report["digest"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    page = _report(platform, fmt="html")
    assert "Visits booked a day" in page and report["digest"] in page
    (ARTIFACTS / "report.html").write_text(page, encoding="utf-8")
    chinese = platform.call(
        "GET",
        f"/quality/v1/scenarios/{SCENARIO}/evaluation",
        evaluator,
        params={"period_start": _iso(START), "period_end": _iso(END), "format": "html"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert chinese.headers["content-language"] == "zh-CN"
    (ARTIFACTS / "report.zh-CN.html").write_text(chinese.text, encoding="utf-8")
    rows = _report(platform, fmt="csv").splitlines()
    assert (
        rows[0] == "objective_id,title,kind,dataset_id,target,actual,status"
        and len(rows) == 1 + (1 + 2) + (1 + 2) + 1
    )

    # The saved report verifies against the trail up to its checkpoint...
    verified = platform.ok("POST", "/catalog/v1/evaluations/verify", evaluator, json=report)
    assert verified["ok"] is True, verified
    assert verified["mismatches"] == []
    assert (
        f"/objectives/{[e['id'] for e in report['objectives']].index(volume['id'])}/per_dataset/0/actual"
        in verified["checked"]
    )

    # ... and not once a delivery on the trail is edited.
    assert platform.app is not None
    runtime = platform.app.state.services["catalog"].state.runtime
    with db.unit_of_work(runtime.sessions) as session:
        entry = session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.action == "feed.deliver", AuditEntry.scenario_id == SCENARIO)
            .order_by(AuditEntry.seq)
            .limit(1)
        ).one()
        entry.details = {**entry.details, "records": int(entry.details["records"]) + 1000}
    tampered = platform.call("POST", "/catalog/v1/evaluations/verify", evaluator, json=report)
    assert tampered.status_code == 200, tampered.text
    answer = tampered.json()
    assert answer["ok"] is False
    assert answer["chain"]["ok"] is False or answer["mismatches"], answer
    (ARTIFACTS / "verification-after-edit.json").write_text(json.dumps(answer, indent=2), encoding="utf-8")


def _gauges(platform: Platform) -> dict[str, float]:
    text = platform.client.get("/quality/metrics").text
    return {
        sample.labels["indicator"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "citybase_indicator"
        for sample in family.samples
    }


def test_the_indicator_gauges_show_the_apis_figures(platform: Platform) -> None:
    """The gauges read what the API answers (after the scenario above consumed its datasets, when
    the module runs whole)."""
    figures: dict[str, Any] = {}

    def same() -> bool:
        answer = platform.ok("GET", "/quality/v1/indicators", params={"period": "month", "periods": 1})
        figures.clear()
        figures.update({f["name"]: f["value"] for f in answer["indicators"] if f["value"] is not None})
        return bool(figures) and _gauges(platform) == figures

    assert wait_until(same, 10.0, 0.3), (figures, _gauges(platform))
    assert figures["penetration.scenarios"] > 0  # the scenario of the module's platform is live
