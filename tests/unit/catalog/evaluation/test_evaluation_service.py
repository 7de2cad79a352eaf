"""The rules of objectives, outcomes and verdicts on the service functions (SQLite, the real audit
chain): who may do what, each invalid member named by its path, idempotent reports, corrections,
one reason per active objective, the audit entries and the events; and an evaluator's view of the
trail and of grants."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from services.catalog.access import exceptions as access_exceptions
from services.catalog.access import grants
from services.catalog.audit.service import AuditEvent, AuditFilter, append, list_entries, visible_to
from services.catalog.evaluation import exceptions, service
from services.catalog.evaluation.schemas import ObjectiveCreate, OutcomeCreate, VerdictCreate
from services.common import catalog_events
from services.common.auth import Principal
from services.common.problems import Problem
from tests.factories import (
    objective_create,
    outcome_create,
    outcome_objective_create,
    verdict_create,
)
from tests.support.catalog_units import ADMIN
from tests.support.evaluation_units import (
    COMMUNITY,
    EVALUATOR,
    MARKET,
    OPERATOR,
    VISIT,
    EvaluationWorld,
    schema_errors,
)


def _set(
    world: EvaluationWorld, body: dict[str, Any], actor: Principal = VISIT, scenario: str = VISIT.id
) -> Any:
    return service.set_objective(
        world.ctx(actor), actor=actor, scenario_id=scenario, payload=ObjectiveCreate.model_validate(body)
    )


def _report(
    world: EvaluationWorld, body: dict[str, Any], actor: Principal = VISIT, key: str | None = None
) -> tuple[Any, bool]:
    return service.report_outcome(
        world.ctx(actor),
        actor=actor,
        scenario_id=VISIT.id,
        payload=OutcomeCreate.model_validate(body),
        idempotency_key=key,
    )


def _paths(problem: pytest.ExceptionInfo[Problem]) -> list[str]:
    return [error.path for error in problem.value.errors or []]


def _entries(world: EvaluationWorld, action: str) -> list[Any]:
    return [entry for entry in world.catalog.audit_entries() if entry.action == action]


# --- objectives -------------------------------------------------------------------------------


def test_a_scenario_sets_an_objective_audited_with_its_figures_and_announced(world: EvaluationWorld) -> None:
    objective = _set(world, objective_create())
    assert re.fullmatch(r"obj_[0-9a-f]{12}", objective.id)
    assert (objective.status, objective.version, objective.set_by, objective.target) == (
        "active",
        1,
        VISIT.id,
        100,
    )
    [entry] = _entries(world, "objective.set")
    assert (entry.scenario_id, entry.resource_id, entry.actor_id) == (VISIT.id, objective.id, VISIT.id)
    assert entry.details["target"] == 100 and entry.details["kind"] == "delivered-records"
    assert entry.details["datasets"] == ["market.inspections"]
    assert entry.details["period_start"] == "2027-01-01T00:00:00Z"
    announced = world.catalog.announced(catalog_events.OBJECTIVE)
    assert [state["id"] for state in announced] == [objective.id]
    assert schema_errors(catalog_events.OBJECTIVE, announced) == []


def test_an_operator_sets_and_an_evaluator_lists_objectives(world: EvaluationWorld) -> None:
    objective = _set(world, outcome_objective_create(), actor=OPERATOR)
    assert objective.kpi is not None and objective.kpi.direction == "at-most"
    listed = service.list_objectives(world.catalog.session, actor=EVALUATOR, scenario_id=VISIT.id)
    assert [item.id for item in listed] == [objective.id]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (objective_create(target=None), ["/body/target"]),
        (objective_create(target=-1), ["/body/target"]),
        (objective_create(kind="quality-floor", target=101), ["/body/target"]),
        (objective_create(kind="dataset-use", target=5), ["/body/target"]),
        (outcome_objective_create(kpi=None), ["/body/kpi"]),
        (objective_create(datasets=["market.inspections", "water.nowhere"]), ["/body/datasets/1"]),
        (objective_create(datasets=[]), ["/body/datasets"]),
        (objective_create(period_end="2027-01-01T00:00:00Z"), ["/body/period_end"]),
        (
            objective_create(period_end="2026-12-01T00:00:00Z", target=-5),
            ["/body/period_end", "/body/target"],
        ),
    ],
    ids=[
        "target-missing",
        "target-negative",
        "quality-floor-above-100",
        "dataset-use-with-target",
        "outcome-without-kpi",
        "unknown-dataset",
        "no-datasets",
        "period-empty",
        "each-error-named",
    ],
)
def test_an_invalid_objective_names_each_member(
    world: EvaluationWorld, body: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(exceptions.InvalidObjective) as refused:
        _set(world, body)
    assert _paths(refused) == paths
    assert world.catalog.announced(catalog_events.OBJECTIVE) == []


def test_an_unknown_kind_or_a_period_without_a_zone_is_refused_by_the_schema() -> None:
    with pytest.raises(ValidationError) as kind:
        ObjectiveCreate.model_validate(objective_create(kind="happiness"))
    assert [error["loc"] for error in kind.value.errors()] == [("kind",)]
    with pytest.raises(ValidationError) as naive:
        ObjectiveCreate.model_validate(objective_create(period_start="2027-01-01T00:00:00"))
    assert [error["loc"] for error in naive.value.errors()] == [("period_start",)]


@pytest.mark.parametrize(
    "actor", [COMMUNITY, MARKET, EVALUATOR], ids=["another-scenario", "a-department", "an-evaluator"]
)
def test_only_the_scenario_or_an_operator_sets_its_objectives(
    world: EvaluationWorld, actor: Principal
) -> None:
    with pytest.raises(exceptions.NotYourScenario):
        _set(world, objective_create(), actor=actor)


def test_a_department_does_not_read_a_scenarios_evaluation(world: EvaluationWorld) -> None:
    for listing in (service.list_objectives, service.list_outcomes, service.list_verdicts):
        with pytest.raises(exceptions.NotAnEvaluationReader):
            listing(world.catalog.session, actor=MARKET, scenario_id=VISIT.id)
        with pytest.raises(exceptions.NotAnEvaluationReader):
            listing(world.catalog.session, actor=COMMUNITY, scenario_id=VISIT.id)


def test_a_withdrawn_objective_keeps_its_reason_and_cannot_be_withdrawn_again(world: EvaluationWorld) -> None:
    objective = _set(world, objective_create())
    withdrawn = service.withdraw_objective(
        world.ctx(OPERATOR), actor=OPERATOR, objective_id=objective.id, reason="Replaced by a sharper one."
    )
    assert (withdrawn.status, withdrawn.version, withdrawn.withdrawn_reason) == (
        "withdrawn",
        2,
        "Replaced by a sharper one.",
    )
    assert withdrawn.withdrawn_at is not None
    [entry] = _entries(world, "objective.withdraw")
    assert entry.scenario_id == VISIT.id and entry.details["reason"] == "Replaced by a sharper one."
    assert [state["status"] for state in world.catalog.announced(catalog_events.OBJECTIVE)] == [
        "active",
        "withdrawn",
    ]
    assert schema_errors(catalog_events.OBJECTIVE, world.catalog.announced(catalog_events.OBJECTIVE)) == []
    with pytest.raises(exceptions.ObjectiveWithdrawn):
        service.withdraw_objective(world.ctx(VISIT), actor=VISIT, objective_id=objective.id, reason="again")
    with pytest.raises(exceptions.NotYourScenario):
        service.withdraw_objective(
            world.ctx(COMMUNITY), actor=COMMUNITY, objective_id=objective.id, reason="x"
        )
    with pytest.raises(exceptions.ObjectiveNotFound):
        service.withdraw_objective(world.ctx(VISIT), actor=VISIT, objective_id="obj_000000000000", reason="x")


# --- outcomes ---------------------------------------------------------------------------------


def test_an_outcome_is_reported_audited_with_its_figures_and_announced(world: EvaluationWorld) -> None:
    objective = _set(world, outcome_objective_create())
    body = outcome_create(objective.id, grant_ids=[world.grant_id], dataset_ids=["market.inspections"])
    outcome, created = _report(world, body)
    assert created and re.fullmatch(r"out_[0-9a-f]{12}", outcome.id)
    assert (outcome.value, outcome.grant_ids, outcome.superseded_by) == (27.5, [world.grant_id], None)
    [entry] = _entries(world, "outcome.report")
    assert entry.scenario_id == VISIT.id
    assert entry.details == {
        "objective_id": objective.id,
        "period_start": "2027-01-01T00:00:00Z",
        "period_end": "2027-02-01T00:00:00Z",
        "value": 27.5,
        "grant_ids": [world.grant_id],
        "dataset_ids": ["market.inspections"],
        "corrects": None,
    }
    announced = world.catalog.announced(catalog_events.OUTCOME)
    assert [state["id"] for state in announced] == [outcome.id]
    assert schema_errors(catalog_events.OUTCOME, announced) == []


def test_the_same_idempotency_key_answers_the_same_outcome_and_refuses_another_body(
    world: EvaluationWorld,
) -> None:
    objective = _set(world, outcome_objective_create())
    first, created = _report(world, outcome_create(objective.id), key="jan-2027")
    again, created_again = _report(world, outcome_create(objective.id), key="jan-2027")
    assert (created, created_again, again.id) == (True, False, first.id)
    assert len(_entries(world, "outcome.report")) == 1
    with pytest.raises(exceptions.IdempotencyKeyReused):
        _report(world, outcome_create(objective.id, value=31), key="jan-2027")
    other, created_other = _report(world, outcome_create(objective.id), key="jan-2027-b")
    assert created_other and other.id != first.id
    with pytest.raises(exceptions.InvalidIdempotencyKey):
        _report(world, outcome_create(objective.id), key="with space")


def test_an_invalid_outcome_names_each_member(world: EvaluationWorld) -> None:
    outcome_objective = _set(world, outcome_objective_create())
    delivery_objective = _set(world, objective_create())
    theirs = _set(world, outcome_objective_create(), actor=COMMUNITY, scenario=COMMUNITY.id)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        (outcome_create(theirs.id), ["/body/objective_id"]),
        (outcome_create("obj_000000000000"), ["/body/objective_id"]),
        (outcome_create(delivery_objective.id), ["/body/objective_id"]),
        (outcome_create(outcome_objective.id, grant_ids=[world.community_grant_id]), ["/body/grant_ids/0"]),
        (outcome_create(outcome_objective.id, dataset_ids=["market.inspections"]), ["/body/dataset_ids/0"]),
        (
            outcome_create(
                outcome_objective.id, grant_ids=[world.grant_id], dataset_ids=["health.outpatient-visits"]
            ),
            ["/body/dataset_ids/0"],
        ),
        (outcome_create(outcome_objective.id, period_end="2026-12-01T00:00:00Z"), ["/body/period_end"]),
        (outcome_create(outcome_objective.id, corrects="out_000000000000"), ["/body/corrects"]),
    ]
    for body, paths in cases:
        with pytest.raises(exceptions.InvalidOutcome) as refused:
            _report(world, body)
        assert _paths(refused) == paths, body
    assert _entries(world, "outcome.report") == []


def test_only_the_scenario_or_an_operator_reports_its_outcomes(world: EvaluationWorld) -> None:
    objective = _set(world, outcome_objective_create())
    for actor in (COMMUNITY, MARKET, EVALUATOR):
        with pytest.raises(exceptions.NotYourScenario):
            _report(world, outcome_create(objective.id), actor=actor)
    assert _report(world, outcome_create(objective.id), actor=OPERATOR)[1]


def test_a_correction_is_a_new_outcome_and_supersedes_the_corrected_one_once(world: EvaluationWorld) -> None:
    objective = _set(world, outcome_objective_create())
    first, _ = _report(world, outcome_create(objective.id))
    correction, _ = _report(world, outcome_create(objective.id, value=29.0, corrects=first.id))
    assert correction.corrects == first.id and correction.value == 29.0
    listed = {
        item.id: item
        for item in service.list_outcomes(world.catalog.session, actor=VISIT, scenario_id=VISIT.id)
    }
    assert listed[first.id].superseded_by == correction.id and listed[first.id].value == 27.5
    announced = world.catalog.announced(catalog_events.OUTCOME)
    assert [(state["id"], state["superseded_by"]) for state in announced] == [
        (first.id, None),
        (correction.id, None),
        (first.id, correction.id),
    ]
    assert schema_errors(catalog_events.OUTCOME, announced) == []
    with pytest.raises(exceptions.OutcomeSuperseded) as refused:
        _report(world, outcome_create(objective.id, value=30.0, corrects=first.id))
    assert _paths(refused) == ["/body/corrects"]


# --- verdicts ---------------------------------------------------------------------------------


def _verdict(
    world: EvaluationWorld, reasons: list[dict[str, Any]], actor: Principal = EVALUATOR, **overrides: Any
) -> Any:
    return service.record_verdict(
        world.ctx(actor),
        actor=actor,
        scenario_id=VISIT.id,
        payload=VerdictCreate.model_validate(verdict_create(reasons, **overrides)),
    )


def _reason(objective_id: str, result: str = "met") -> dict[str, Any]:
    return {"objective_id": objective_id, "result": result, "reason": "Measured in the report."}


def test_an_evaluator_records_a_verdict_with_one_reason_per_active_objective(world: EvaluationWorld) -> None:
    delivery = _set(world, objective_create())
    outcome = _set(world, outcome_objective_create())
    withdrawn = _set(world, objective_create(title="Dropped"))
    service.withdraw_objective(world.ctx(VISIT), actor=VISIT, objective_id=withdrawn.id, reason="dropped")
    _set(world, objective_create(period_start="2027-06-01T00:00:00Z", period_end="2027-07-01T00:00:00Z"))
    head = world.catalog.audit_entries()[-1]
    report = {"checkpoint": {"seq": head.seq, "hash": head.hash}, "digest": "d"}
    verdict = _verdict(world, [_reason(delivery.id), _reason(outcome.id, "no-data")], report=report)
    assert verdict.report.checkpoint is not None and verdict.report.checkpoint.seq == head.seq
    assert re.fullmatch(r"ver_[0-9a-f]{12}", verdict.id)
    assert (verdict.result, verdict.evaluator_id) == ("partly", EVALUATOR.id)
    [entry] = _entries(world, "verdict.record")
    assert entry.scenario_id == VISIT.id and entry.details["result"] == "partly"
    assert [reason["objective_id"] for reason in entry.details["reasons"]] == [delivery.id, outcome.id]
    announced = world.catalog.announced(catalog_events.VERDICT)
    assert [state["id"] for state in announced] == [verdict.id]
    assert schema_errors(catalog_events.VERDICT, announced) == []
    assert [
        item.id for item in service.list_verdicts(world.catalog.session, actor=VISIT, scenario_id=VISIT.id)
    ] == [verdict.id]


def test_a_verdict_without_a_reason_for_each_active_objective_names_what_is_wrong(
    world: EvaluationWorld,
) -> None:
    delivery = _set(world, objective_create())
    outcome = _set(world, outcome_objective_create())
    cases: list[tuple[list[dict[str, Any]], list[str]]] = [
        ([_reason(delivery.id)], ["/body/reasons"]),
        (
            [_reason(delivery.id), _reason(outcome.id), _reason("obj_000000000000")],
            ["/body/reasons/2/objective_id"],
        ),
        ([_reason(delivery.id), _reason(delivery.id), _reason(outcome.id)], ["/body/reasons/1/objective_id"]),
    ]
    for reasons, paths in cases:
        with pytest.raises(exceptions.InvalidVerdict) as refused:
            _verdict(world, reasons)
        assert _paths(refused) == paths
    with pytest.raises(exceptions.InvalidVerdict) as empty:
        _verdict(world, [], period_end="2027-01-01T00:00:00Z")
    assert _paths(empty) == ["/body/period_end"]
    reasons = [_reason(delivery.id), _reason(outcome.id)]
    head = world.catalog.audit_entries()[-1]
    for checkpoint in ({"seq": head.seq, "hash": "a" * 64}, {"seq": head.seq + 100, "hash": head.hash}):
        with pytest.raises(exceptions.InvalidVerdict) as forged:
            _verdict(world, reasons, report={"checkpoint": checkpoint, "digest": "d"})
        assert _paths(forged) == ["/body/report/checkpoint"]
    assert _entries(world, "verdict.record") == []


@pytest.mark.parametrize("actor", [ADMIN, OPERATOR, VISIT], ids=["admin", "operator", "the-scenario"])
def test_only_an_evaluator_records_a_verdict(world: EvaluationWorld, actor: Principal) -> None:
    with pytest.raises(exceptions.EvaluatorsOnly):
        _verdict(world, [], actor=actor)


# --- the evaluator's view ---------------------------------------------------------------------


def test_an_evaluator_reads_no_grant_and_only_the_entries_that_name_a_scenario(
    world: EvaluationWorld,
) -> None:
    with pytest.raises(access_exceptions.EvidenceOnly):
        grants.get_grant(world.catalog.session, actor=EVALUATOR, grant_id=world.grant_id)
    with pytest.raises(access_exceptions.EvidenceOnly):
        grants.list_grants(world.catalog.session, actor=EVALUATOR, filters=grants.GrantFilter())
    _set(world, objective_create())
    append(
        world.catalog.session,
        AuditEvent(action="principal.create", resource_type="principal", resource_id="x"),
    )
    entries, _ = list_entries(world.catalog.session, AuditFilter(), scope=visible_to(EVALUATOR), limit=500)
    everything, _ = list_entries(world.catalog.session, AuditFilter(), scope=None, limit=500)
    assert entries and all(entry.scenario_id for entry in entries)
    assert {entry.seq for entry in entries} == {entry.seq for entry in everything if entry.scenario_id}
    assert len(everything) > len(entries)
