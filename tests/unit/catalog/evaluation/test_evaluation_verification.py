"""A saved evaluation report verified against the audit trail (SQLite, the real chain): a report
built by hand from what happened verifies; a figure changed in it is named by its JSON Pointer; an
audit row edited in the database breaks the chain; what happened after the report's checkpoint, a
refused delivery or another scenario's deliveries do not count."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

from services.catalog.audit import service as audit_service
from services.catalog.audit.service import DENIED, AuditEvent, append
from services.catalog.evaluation import exceptions, service, verification
from services.catalog.evaluation.schemas import ObjectiveCreate, OutcomeCreate, Verification
from services.common.auth import Principal
from tests.factories import evaluation_report, objective_create, outcome_create, outcome_objective_create
from tests.support.evaluation_units import COMMUNITY, EVALUATOR, VISIT, EvaluationWorld

MARKET_DATA, HEALTH_DATA = "market.inspections", "health.outpatient-visits"


def _deliver(
    world: EvaluationWorld, at: str, records: int, *, scenario: Principal = VISIT, outcome: str = "success"
) -> int:
    entry = append(
        world.catalog.session,
        AuditEvent(
            action="feed.deliver",
            resource_type="subscription",
            resource_id=f"sub-{scenario.id}",
            outcome=outcome,
            actor_id=scenario.id,
            actor_kind="scenario",
            dataset_id=MARKET_DATA,
            scenario_id=scenario.id,
            details={"records": records, "delivered_at": at, "grant_id": world.grant_id},
        ),
    )
    return entry.seq


def _objective(world: EvaluationWorld, body: dict[str, Any]) -> str:
    return service.set_objective(
        world.ctx(VISIT), actor=VISIT, scenario_id=VISIT.id, payload=ObjectiveCreate.model_validate(body)
    ).id


def _outcome(world: EvaluationWorld, body: dict[str, Any]) -> str:
    return service.report_outcome(
        world.ctx(VISIT), actor=VISIT, scenario_id=VISIT.id, payload=OutcomeCreate.model_validate(body)
    )[0].id


def _history(world: EvaluationWorld) -> dict[str, Any]:
    """Q1 2027 of the one-stop visit, checkpointed, then more that the report cannot know of; and
    the report quality would have computed at the checkpoint."""
    delivered = _objective(world, objective_create())
    days = _objective(world, objective_create(kind="active-days", target=2))
    use = _objective(
        world, objective_create(kind="dataset-use", target=None, datasets=[MARKET_DATA, HEALTH_DATA])
    )
    kpi = _objective(world, outcome_objective_create())
    floor = _objective(world, objective_create(kind="quality-floor", target=80))
    _deliver(world, "2027-01-10T08:00:00Z", 40)
    _deliver(world, "2027-01-10T17:30:00Z", 30)
    first_feb = _deliver(world, "2027-02-02T09:00:00Z", 50)
    _deliver(world, "2027-05-01T09:00:00Z", 1000)  # after the period
    _deliver(world, "2027-01-11T09:00:00Z", 500, outcome=DENIED)  # refused: nothing delivered
    _deliver(world, "2027-01-12T09:00:00Z", 700, scenario=COMMUNITY)  # another scenario's
    january = _outcome(world, outcome_create(kpi))
    corrected = _outcome(world, outcome_create(kpi, value=29.0, corrects=january))
    february = _outcome(
        world,
        outcome_create(
            kpi, value=25.0, period_start="2027-02-01T00:00:00Z", period_end="2027-03-01T00:00:00Z"
        ),
    )
    point = audit_service.checkpoint(world.catalog.session)
    assert point is not None
    after = _deliver(world, "2027-01-20T09:00:00Z", 999)  # after the checkpoint: not in the report
    _outcome(world, outcome_create(kpi, value=12.0, corrects=february))

    def per_day() -> list[dict[str, Any]]:
        return [
            {"dataset_id": MARKET_DATA, "day": "2027-01-10", "records": 70, "batches": 2},
            {"dataset_id": MARKET_DATA, "day": "2027-02-02", "records": 50, "batches": 1},
        ]

    report = evaluation_report(
        VISIT.id,
        {"seq": point.seq, "hash": point.hash, "at": "2027-04-01T08:00:00Z"},
        [
            {
                "id": delivered,
                "kind": "delivered-records",
                "target": 100,
                "actual": 120,
                "status": "met",
                "per_dataset": [{"dataset_id": MARKET_DATA, "actual": 120, "status": "met"}],
                "evidence": {"deliveries": per_day(), "windows": [], "outcomes": []},
            },
            {
                "id": days,
                "kind": "active-days",
                "target": 2,
                "actual": 2,
                "status": "met",
                "per_dataset": [{"dataset_id": MARKET_DATA, "actual": 2, "status": "met"}],
                "evidence": {"deliveries": per_day(), "windows": [], "outcomes": []},
            },
            {
                "id": use,
                "kind": "dataset-use",
                "target": None,
                "actual": 1,
                "status": "not-met",
                "per_dataset": [
                    {"dataset_id": MARKET_DATA, "actual": 120, "status": "met"},
                    {"dataset_id": HEALTH_DATA, "actual": 0, "status": "not-met"},
                ],
                "evidence": {"deliveries": per_day(), "windows": [], "outcomes": []},
            },
            {
                "id": kpi,
                "kind": "outcome",
                "target": 30,
                "actual": 27.0,
                "status": "met",
                "per_dataset": [],
                "evidence": {
                    "deliveries": [],
                    "windows": [],
                    "outcomes": [
                        {"id": corrected, "value": 29.0, "period_start": "2027-01-01T00:00:00Z"},
                        {"id": february, "value": 25.0, "period_start": "2027-02-01T00:00:00Z"},
                    ],
                },
            },
            {
                "id": floor,
                "kind": "quality-floor",
                "target": 80,
                "actual": 91.5,
                "status": "met",
                "per_dataset": [{"dataset_id": MARKET_DATA, "actual": 91.5, "status": "met"}],
                "evidence": {"deliveries": [], "windows": [], "outcomes": []},
            },
        ],
    )
    return {"report": report, "first_feb": first_feb, "january": january, "after": after}


def _verify(world: EvaluationWorld, report: dict[str, Any]) -> Verification:
    return verification.verify_report(
        world.catalog.session,
        report,
        chain=lambda session, seq: audit_service.verify(session, until=seq),
        audit=world.catalog.auditor(EVALUATOR),
    )


def test_a_report_that_matches_the_trail_verifies_and_is_audited(world: EvaluationWorld) -> None:
    report = _history(world)["report"]
    verified = _verify(world, report)
    assert verified.mismatches == []
    assert verified.ok and verified.chain.ok
    assert verified.checkpoint.seq == report["checkpoint"]["seq"]
    for path in (
        "/checkpoint/hash",
        "/objectives/0/target",
        "/objectives/0/per_dataset/0/actual",
        "/objectives/0/evidence/deliveries/0/records",
        "/objectives/1/per_dataset/0/actual",
        "/objectives/2/per_dataset/1/status",
        "/objectives/3/evidence/outcomes/1/value",
        "/objectives/3/actual",
    ):
        assert path in verified.checked
    assert "/objectives/4/actual" in verified.not_checked
    assert "/objectives/4/per_dataset/0/actual" in verified.not_checked
    [entry] = [entry for entry in world.catalog.audit_entries() if entry.action == "evaluation.verify"]
    assert (entry.scenario_id, entry.actor_id, entry.details["ok"]) == (VISIT.id, EVALUATOR.id, True)


@pytest.mark.parametrize(
    ("path", "value", "trail"),
    [
        (["objectives", 0, "per_dataset", 0, "actual"], 150, 120),
        (["objectives", 0, "target"], 90, 100),
        (["objectives", 1, "per_dataset", 0, "actual"], 3, 2),
        (["objectives", 0, "evidence", "deliveries", 0, "batches"], 1, 2),
        (["objectives", 2, "per_dataset", 1, "status"], "met", False),
        (["objectives", 3, "actual"], 26.0, 27.0),
        (["objectives", 3, "evidence", "outcomes", 1, "value"], 24.0, 25.0),
    ],
)
def test_a_changed_figure_is_named_by_its_path(
    world: EvaluationWorld, path: list[Any], value: Any, trail: Any
) -> None:
    report = copy.deepcopy(_history(world)["report"])
    holder = report
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    verified = _verify(world, report)
    assert not verified.ok and verified.chain.ok
    pointer = "/" + "/".join(str(step) for step in path)
    assert [(m.path, m.report, m.trail) for m in verified.mismatches] == [
        (pointer, value == "met" if pointer.endswith("status") else value, trail)
    ]


def test_a_corrected_outcome_in_the_report_is_a_mismatch(world: EvaluationWorld) -> None:
    history = _history(world)
    report = copy.deepcopy(history["report"])
    report["objectives"][3]["evidence"]["outcomes"][0] = {"id": history["january"], "value": 27.5}
    verified = _verify(world, report)
    assert [m.path for m in verified.mismatches] == [
        "/objectives/3/evidence/outcomes/0/id",
        "/objectives/3/evidence/outcomes",
    ]


def test_an_audit_row_edited_in_the_database_fails_the_verification(world: EvaluationWorld) -> None:
    history = _history(world)
    world.catalog.session.execute(
        sa.text("UPDATE catalog_audit_entries SET details = :details WHERE seq = :seq"),
        {
            "details": json.dumps({"records": 50, "delivered_at": "2027-02-03T09:00:00Z"}),
            "seq": history["first_feb"],
        },
    )
    world.catalog.session.expire_all()  # read the row as the database now holds it
    verified = _verify(world, history["report"])
    assert not verified.ok and not verified.chain.ok
    assert verified.chain.first_break is not None and verified.chain.first_break.seq == history["first_feb"]


def test_a_checkpoint_that_is_not_on_the_chain_is_a_mismatch(world: EvaluationWorld) -> None:
    report = copy.deepcopy(_history(world)["report"])
    report["checkpoint"]["hash"] = "a" * 64
    verified = _verify(world, report)
    assert not verified.ok
    assert [m.path for m in verified.mismatches] == ["/checkpoint/hash"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"checkpoint": None}, "/body/checkpoint"),
        ({"checkpoint": {"seq": "one", "hash": "x"}}, "/body/checkpoint"),
        ({"scenario": {}}, "/body/scenario/id"),
        ({"period": {"start": "2027-04-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}}, "/body/period"),
        ({"objectives": "all of them"}, "/body/objectives"),
    ],
)
def test_a_report_that_cannot_be_verified_is_refused_naming_what_is_missing(
    world: EvaluationWorld, change: dict[str, Any], path: str
) -> None:
    report = {**evaluation_report(VISIT.id, {"seq": 1, "hash": "0" * 64}, []), **change}
    with pytest.raises(exceptions.InvalidReport) as refused:
        _verify(world, report)
    assert [error.path for error in refused.value.errors or []] == [path]


def test_an_entry_edited_after_the_reports_checkpoint_does_not_touch_the_report(
    world: EvaluationWorld,
) -> None:
    """The chain is verified up to the report's checkpoint: what the report rests on."""
    history = _history(world)
    world.catalog.session.execute(
        sa.text("UPDATE catalog_audit_entries SET details = :details WHERE seq = :seq"),
        {
            "details": json.dumps({"records": 1, "delivered_at": "2027-01-20T09:00:00Z"}),
            "seq": history["after"],
        },
    )
    world.catalog.session.expire_all()
    verified = _verify(world, history["report"])
    assert verified.ok and verified.chain.ok
    assert verified.chain.head_seq == history["report"]["checkpoint"]["seq"]
    assert not audit_service.verify(world.catalog.session).ok  # the whole chain does not hold
