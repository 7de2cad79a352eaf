"""The catalog's side of scenario evaluation end to end, in one process (``citybase up``'s app on
SQLite and the embedded bus): an admin makes an evaluator, who reads evidence but no grant and no
record; a scenario sets objectives and reports outcomes (idempotent, corrected by new ones); an
evaluator records a verdict; an operator takes an audit checkpoint; a report built from what
happened verifies against the trail, a changed figure is named, and an edited audit row fails it.
Every refusal is problem+json with the field path, every change an audit entry naming the scenario
and an event on platform.catalog in the shape of contracts/events/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator

from services.common import catalog_events
from services.common.worker import wait_until
from tests.factories import (
    evaluation_report,
    objective_create,
    outcome_create,
    outcome_objective_create,
    verdict_create,
)
from tests.support.platform import Platform, in_process
from tests.support.problems import expect_problem

SCENARIO, OTHER, OPERATOR, EVALUATOR, APPROVER = (
    "one-stop-visit",
    "ai-community",
    "city-ops",
    "city-evaluator",
    "market-approver",
)
DATASET = "market.inspections"
EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
PERIOD = {"period_start": TODAY.isoformat(), "period_end": (TODAY + timedelta(days=30)).isoformat()}


def _people(platform: Platform) -> None:
    platform.principal(OPERATOR, "operator")
    platform.principal(APPROVER, "approver", "market-supervision")
    platform.principal(EVALUATOR, "evaluator")
    platform.scenario(SCENARIO)
    platform.scenario(OTHER)
    request = platform.request_access(SCENARIO)
    granted = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{request['id']}/approve",
        platform.keys[APPROVER],
        json={"reason": "serves residents"},
    )
    platform.context["grant_id"] = str(granted["grant_id"])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(tmp_path_factory.mktemp("evaluation"), prepare_platform=_people) as platform:
        yield platform


def _as(platform: Platform, who: str) -> str:
    return platform.keys[who]


def _schema_errors(events: list[tuple[str, bytes, dict[str, Any]]]) -> list[str]:
    schemas = [json.loads(path.read_text()) for path in EVENT_SCHEMAS.glob("catalog.*.json")]
    validators = {
        schema["x-citybase-event-type"]: Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        for schema in schemas
    }
    return [
        f"{event_type}: {error.message}"
        for event_type, _, announced_state in events
        for error in validators[event_type].iter_errors(announced_state)
    ]


def _audit(platform: Platform, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    page = platform.ok("GET", "/catalog/v1/audit", key, params={"limit": 500, **params})
    items: list[dict[str, Any]] = page["items"]
    return items


def _errors(response: Any, status: int, slug: str) -> list[str]:
    return [error["path"] for error in expect_problem(response, status, slug).get("errors", [])]


def test_an_admin_makes_an_evaluator_who_reads_evidence_but_no_grant_and_no_record(
    platform: Platform,
) -> None:
    evaluator = _as(platform, EVALUATOR)
    me = platform.ok("GET", "/catalog/v1/me", evaluator)
    assert (me["id"], me["kind"]) == (EVALUATOR, "evaluator")
    grant_id = platform.context["grant_id"]
    expect_problem(
        platform.call("GET", f"/catalog/v1/grants/{grant_id}", evaluator),
        403,
        "evaluators-read-evidence-only",
    )
    expect_problem(
        platform.call("GET", "/catalog/v1/grants", evaluator), 403, "evaluators-read-evidence-only"
    )
    expect_problem(
        platform.call("GET", "/catalog/v1/access-requests", evaluator), 403, "evaluators-read-evidence-only"
    )
    # Feeds carry record data: every route is a scenario's.
    assert platform.call("GET", "/feeds/v1/subscriptions", evaluator).status_code == 403
    assert platform.call("GET", "/feeds/v1/subscriptions/sub_any/records", evaluator).status_code == 403
    assert (
        platform.call("POST", "/feeds/v1/subscriptions", evaluator, json={"dataset": DATASET}).status_code
        == 403
    )
    # The trail: what names a scenario, nothing else.
    entries = _audit(platform, evaluator)
    assert entries and all(entry["scenario_id"] for entry in entries)
    assert any(entry["action"] == "grant.create" for entry in entries)
    # The scenarios themselves are evidence.
    assert platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}", evaluator)["id"] == SCENARIO
    principal = platform.ok("GET", f"/catalog/v1/principals/{EVALUATOR}")
    assert principal["kind"] == "evaluator"


def test_objectives_are_set_validated_listed_and_withdrawn(platform: Platform) -> None:
    scenario = _as(platform, SCENARIO)
    created = platform.call(
        "POST", f"/catalog/v1/scenarios/{SCENARIO}/objectives", scenario, json=objective_create(**PERIOD)
    )
    assert created.status_code == 201, created.text
    objective = created.json()
    assert objective["id"].startswith("obj_") and objective["status"] == "active"

    path = f"/catalog/v1/scenarios/{SCENARIO}/objectives"
    invalid = [
        (objective_create(kind="happiness"), "validation-error", ["/body/kind"]),
        (objective_create(target=None), "invalid-objective", ["/body/target"]),
        (objective_create(target=-3), "invalid-objective", ["/body/target"]),
        (objective_create(kind="quality-floor", target=120), "invalid-objective", ["/body/target"]),
        (outcome_objective_create(kpi=None), "invalid-objective", ["/body/kpi"]),
        (objective_create(datasets=["water.nowhere"]), "invalid-objective", ["/body/datasets/0"]),
        (objective_create(period_end="2026-01-01T00:00:00Z"), "invalid-objective", ["/body/period_end"]),
    ]
    for body, slug, paths in invalid:
        assert _errors(platform.call("POST", path, scenario, json=body), 422, slug) == paths, body

    for who in (OTHER, EVALUATOR):
        expect_problem(
            platform.call("POST", path, _as(platform, who), json=objective_create()),
            403,
            "not-your-scenario-evaluation",
        )
    expect_problem(platform.call("GET", path, _as(platform, OTHER)), 403, "not-an-evaluation-reader")
    expect_problem(platform.call("GET", path, _as(platform, APPROVER)), 403, "not-an-evaluation-reader")
    listed = platform.ok("GET", path, _as(platform, EVALUATOR))["items"]
    assert [item["id"] for item in listed] == [objective["id"]]

    dropped = platform.ok(
        "POST", path, _as(platform, OPERATOR), json=objective_create(title="Dropped", **PERIOD)
    )
    withdraw = f"/catalog/v1/objectives/{dropped['id']}/withdraw"
    expect_problem(
        platform.call("POST", withdraw, _as(platform, OTHER), json={"reason": "no"}),
        403,
        "not-your-scenario-evaluation",
    )
    withdrawn = platform.ok("POST", withdraw, scenario, json={"reason": "Replaced."})
    assert (withdrawn["status"], withdrawn["version"], withdrawn["withdrawn_reason"]) == (
        "withdrawn",
        2,
        "Replaced.",
    )
    expect_problem(
        platform.call("POST", withdraw, scenario, json={"reason": "again"}), 409, "objective-withdrawn"
    )

    actions = [
        entry["action"]
        for entry in _audit(platform, scenario=SCENARIO, action="objective", outcome="success")
    ]
    assert sorted(actions) == ["objective.set", "objective.set", "objective.withdraw"]
    events = [event for event in platform.catalog_events() if event[0] == catalog_events.OBJECTIVE]
    assert [(key, announced_state["status"]) for _, key, announced_state in events][-1] == (
        f"objective:{dropped['id']}".encode(),
        "withdrawn",
    )
    assert _schema_errors(events) == []


def test_outcomes_are_idempotent_validated_and_corrected_by_new_ones(platform: Platform) -> None:
    scenario = _as(platform, SCENARIO)
    grant_id = platform.context["grant_id"]
    objectives = f"/catalog/v1/scenarios/{SCENARIO}/objectives"
    kpi = platform.ok("POST", objectives, scenario, json=outcome_objective_create(**PERIOD))
    delivery = platform.ok("POST", objectives, scenario, json=objective_create(title="Use", **PERIOD))
    theirs = platform.ok(
        "POST",
        f"/catalog/v1/scenarios/{OTHER}/objectives",
        _as(platform, OTHER),
        json=outcome_objective_create(),
    )
    path = f"/catalog/v1/scenarios/{SCENARIO}/outcomes"
    body = outcome_create(kpi["id"], grant_ids=[grant_id], dataset_ids=[DATASET], **PERIOD)
    first = platform.call("POST", path, scenario, json=body, headers={"Idempotency-Key": "first-month"})
    assert first.status_code == 201, first.text
    again = platform.call("POST", path, scenario, json=body, headers={"Idempotency-Key": "first-month"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    expect_problem(
        platform.call(
            "POST", path, scenario, json={**body, "value": 99}, headers={"Idempotency-Key": "first-month"}
        ),
        409,
        "idempotency-key-reused",
    )

    invalid = [
        (outcome_create(theirs["id"]), ["/body/objective_id"]),
        (outcome_create(delivery["id"]), ["/body/objective_id"]),
        (outcome_create(kpi["id"], grant_ids=["gr-00000000000000000000"]), ["/body/grant_ids/0"]),
        (
            outcome_create(kpi["id"], grant_ids=[grant_id], dataset_ids=["health.outpatient-visits"]),
            ["/body/dataset_ids/0"],
        ),
        (outcome_create(kpi["id"], period_end="2026-01-01T00:00:00Z"), ["/body/period_end"]),
    ]
    for invalid_body, paths in invalid:
        assert (
            _errors(platform.call("POST", path, scenario, json=invalid_body), 422, "invalid-outcome") == paths
        )

    correction = platform.ok(
        "POST", path, scenario, json={**body, "value": 24.0, "corrects": first.json()["id"]}
    )
    assert correction["corrects"] == first.json()["id"]
    refused = platform.call(
        "POST", path, scenario, json={**body, "value": 23.0, "corrects": first.json()["id"]}
    )
    assert _errors(refused, 409, "outcome-superseded") == ["/body/corrects"]
    listed = {item["id"]: item for item in platform.ok("GET", path, _as(platform, EVALUATOR))["items"]}
    assert listed[first.json()["id"]]["superseded_by"] == correction["id"]
    for who in (OTHER, EVALUATOR, APPROVER):
        assert platform.call("POST", path, _as(platform, who), json=body).status_code == 403

    reports = _audit(platform, scenario=SCENARIO, action="outcome.report", outcome="success")
    assert len(reports) == 2 and reports[0]["details"]["value"] == 24.0
    assert reports[0]["details"]["corrects"] == first.json()["id"]
    events = [event for event in platform.catalog_events() if event[0] == catalog_events.OUTCOME]
    keyed = [(key.decode(), announced_state["superseded_by"]) for _, key, announced_state in events]
    assert keyed[-1] == (f"outcome:{first.json()['id']}", correction["id"])
    assert _schema_errors(events) == []
    platform.context.update(kpi_id=kpi["id"], correction_id=correction["id"])


def test_only_an_evaluator_records_a_verdict_with_a_reason_per_active_objective(platform: Platform) -> None:
    active = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/objectives", _as(platform, SCENARIO))[
        "items"
    ]
    reasons = [
        {"objective_id": item["id"], "result": "met", "reason": "Within target."}
        for item in active
        if item["status"] == "active"
    ]
    path = f"/catalog/v1/scenarios/{SCENARIO}/verdicts"
    body = verdict_create(reasons, **PERIOD)
    for who in (SCENARIO, OPERATOR):
        expect_problem(platform.call("POST", path, _as(platform, who), json=body), 403, "evaluators-only")
    expect_problem(platform.call("POST", path, json=body), 403, "evaluators-only")  # not even an admin
    missing = platform.call("POST", path, _as(platform, EVALUATOR), json={**body, "reasons": reasons[1:]})
    assert _errors(missing, 422, "invalid-verdict") == ["/body/reasons"]
    verdict = platform.call("POST", path, _as(platform, EVALUATOR), json=body)
    assert verdict.status_code == 201, verdict.text
    assert verdict.json()["id"].startswith("ver_") and verdict.json()["evaluator_id"] == EVALUATOR
    assert [item["id"] for item in platform.ok("GET", path, _as(platform, SCENARIO))["items"]] == [
        verdict.json()["id"]
    ]
    [entry] = _audit(platform, _as(platform, EVALUATOR), action="verdict.record", outcome="success")
    assert entry["scenario_id"] == SCENARIO and len(entry["details"]["reasons"]) == len(reasons)
    events = [event for event in platform.catalog_events() if event[0] == catalog_events.VERDICT]
    assert [key for _, key, _ in events] == [f"verdict:{verdict.json()['id']}".encode()]
    assert _schema_errors(events) == []


def _deliver(platform: Platform, records: int) -> int:
    """``records`` of the dataset published and polled by the scenario: the batches polled."""
    scenario = _as(platform, SCENARIO)
    platform.demo_traffic(DATASET, records)

    def subscribed() -> bool:
        response = platform.call(
            "POST", "/feeds/v1/subscriptions", scenario, json={"dataset": DATASET, "start": "earliest"}
        )
        return response.status_code == 201

    assert wait_until(subscribed, 15.0), "the grant never reached feeds"
    subscription = platform.ok("GET", "/feeds/v1/subscriptions", scenario)["items"][0]["id"]
    delivered, batches, deadline = 0, 0, time.monotonic() + 20
    while delivered < records and time.monotonic() < deadline:
        batch = platform.ok(
            "GET", f"/feeds/v1/subscriptions/{subscription}/records", scenario, params={"wait": 1}
        )
        if batch["records"]:
            delivered += len(batch["records"])
            batches += 1
            platform.ok(
                "POST",
                f"/feeds/v1/subscriptions/{subscription}/ack",
                scenario,
                json={"cursor": batch["cursor"]},
            )
    assert delivered == records
    assert wait_until(
        lambda: len(_audit(platform, scenario=SCENARIO, action="feed.deliver", outcome="success")) >= batches,
        10.0,
    )
    return batches


def _report(platform: Platform, checkpoint: dict[str, Any], records: int, batches: int) -> dict[str, Any]:
    objectives = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/objectives", _as(platform, EVALUATOR))
    delivery = next(item for item in objectives["items"] if item["title"] == "Use")
    day = datetime.now(UTC).date().isoformat()
    return evaluation_report(
        SCENARIO,
        checkpoint,
        [
            {
                "id": delivery["id"],
                "kind": "delivered-records",
                "target": 100,
                "actual": records,
                "status": "not-met",
                "per_dataset": [{"dataset_id": DATASET, "actual": records, "status": "not-met"}],
                "evidence": {
                    "deliveries": [
                        {"dataset_id": DATASET, "day": day, "records": records, "batches": batches}
                    ],
                    "windows": [],
                    "outcomes": [],
                },
            },
            {
                "id": platform.context["kpi_id"],
                "kind": "outcome",
                "target": 30,
                "actual": 24.0,
                "status": "met",
                "per_dataset": [],
                "evidence": {
                    "deliveries": [],
                    "windows": [],
                    "outcomes": [{"id": platform.context["correction_id"], "value": 24.0}],
                },
            },
        ],
        period={"start": PERIOD["period_start"], "end": PERIOD["period_end"]},
    )


def test_a_saved_report_verifies_against_the_trail_until_a_figure_or_a_row_changes(
    platform: Platform,
) -> None:
    batches = _deliver(platform, 20)
    expect_problem(
        platform.call("POST", "/catalog/v1/audit/checkpoints", _as(platform, EVALUATOR)), 403, "forbidden"
    )
    taken = platform.call("POST", "/catalog/v1/audit/checkpoints", _as(platform, OPERATOR))
    assert taken.status_code == 201, taken.text
    checkpoint = taken.json()
    published = [
        announced_state
        for event_type, _, announced_state in platform.catalog_events()
        if event_type == catalog_events.AUDIT_CHECKPOINT
    ]
    assert {"seq": checkpoint["seq"], "hash": checkpoint["hash"]} in [
        {"seq": announced_state["seq"], "hash": announced_state["hash"]} for announced_state in published
    ]
    report = _report(platform, checkpoint, 20, batches)
    evaluator = _as(platform, EVALUATOR)

    verified = platform.ok("POST", "/catalog/v1/evaluations/verify", evaluator, json=report)
    assert verified["mismatches"] == [] and verified["ok"] and verified["chain"]["ok"]
    assert verified["checkpoint"] == {"seq": checkpoint["seq"], "hash": checkpoint["hash"]}
    assert "/objectives/0/per_dataset/0/actual" in verified["checked"]
    assert "/objectives/1/actual" in verified["checked"]
    [entry] = _audit(platform, evaluator, action="evaluation.verify")
    assert (entry["scenario_id"], entry["details"]["ok"]) == (SCENARIO, True)

    changed = json.loads(json.dumps(report))
    changed["objectives"][0]["per_dataset"][0]["actual"] = 200
    mismatched = platform.ok("POST", "/catalog/v1/evaluations/verify", _as(platform, OPERATOR), json=changed)
    assert not mismatched["ok"]
    assert mismatched["mismatches"] == [
        {"path": "/objectives/0/per_dataset/0/actual", "report": 200, "trail": 20}
    ]
    no_checkpoint = platform.call(
        "POST", "/catalog/v1/evaluations/verify", evaluator, json={**report, "checkpoint": None}
    )
    assert _errors(no_checkpoint, 422, "invalid-evaluation-report") == ["/body/checkpoint"]
    expect_problem(
        platform.call("POST", "/catalog/v1/evaluations/verify", _as(platform, SCENARIO), json=report),
        403,
        "forbidden",
    )

    # Someone with the database's password edits a delivery: the chain says where.
    assert platform.app is not None
    engine = platform.app.state.services["catalog"].state.runtime.engine
    [delivered] = _audit(platform, scenario=SCENARIO, action="feed.deliver", outcome="success")[-1:]
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE catalog_audit_entries SET details = :details WHERE seq = :seq"),
            {"details": json.dumps({**delivered["details"], "records": 1}), "seq": delivered["seq"]},
        )
    tampered = platform.ok("POST", "/catalog/v1/evaluations/verify", evaluator, json=report)
    assert not tampered["ok"] and not tampered["chain"]["ok"]
    assert tampered["chain"]["first_break"]["seq"] == delivered["seq"]
