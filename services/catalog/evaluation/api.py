"""HTTP routes of scenario evaluation under ``/v1``: objectives, outcomes, verdicts, and the
verification of a saved evaluation report. Each parses the request, calls one service function
(which authorizes, audits and writes) and answers. Who may call which route is in
docs/authorization.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response, status

from services.catalog.access.deps import AccessDep
from services.catalog.deps import AuditDep, ReaderDep, SessionDep
from services.catalog.evaluation import service, verification
from services.catalog.evaluation.deps import VerifierDep
from services.catalog.evaluation.schemas import (
    ObjectiveCreate,
    ObjectivePage,
    ObjectiveRead,
    ObjectiveWithdraw,
    OutcomeCreate,
    OutcomePage,
    OutcomeRead,
    VerdictCreate,
    VerdictPage,
    VerdictRead,
    Verification,
)
from services.common.deps import BusDep

router = APIRouter(prefix="/v1", tags=["evaluation"])


@router.post(
    "/scenarios/{scenario_id}/objectives",
    response_model=ObjectiveRead,
    status_code=status.HTTP_201_CREATED,
    summary="Set an objective of the scenario for a period (the scenario itself, operators)",
)
def set_objective(
    scenario_id: str, payload: ObjectiveCreate, ctx: AccessDep, caller: ReaderDep
) -> ObjectiveRead:
    return service.set_objective(ctx, actor=caller, scenario_id=scenario_id, payload=payload)


@router.get(
    "/scenarios/{scenario_id}/objectives",
    response_model=ObjectivePage,
    summary="The scenario's objectives, withdrawn ones included (the scenario, evaluators, operators)",
)
def list_objectives(scenario_id: str, session: SessionDep, caller: ReaderDep) -> ObjectivePage:
    return ObjectivePage(items=service.list_objectives(session, actor=caller, scenario_id=scenario_id))


@router.post(
    "/objectives/{objective_id}/withdraw",
    response_model=ObjectiveRead,
    summary="Withdraw an objective, with a reason (its scenario, operators)",
)
def withdraw_objective(
    objective_id: str, payload: ObjectiveWithdraw, ctx: AccessDep, caller: ReaderDep
) -> ObjectiveRead:
    return service.withdraw_objective(ctx, actor=caller, objective_id=objective_id, reason=payload.reason)


@router.post(
    "/scenarios/{scenario_id}/outcomes",
    response_model=OutcomeRead,
    status_code=status.HTTP_201_CREATED,
    summary="Report an outcome of an outcome objective (the scenario itself, operators); with an "
    "Idempotency-Key, a retry answers the same outcome (200) and another body 409",
    responses={200: {"description": "The outcome reported before under the same Idempotency-Key."}},
)
def report_outcome(
    scenario_id: str,
    payload: OutcomeCreate,
    ctx: AccessDep,
    caller: ReaderDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(max_length=255, description="Makes a retry of this report safe.")
    ] = None,
) -> OutcomeRead:
    outcome, created = service.report_outcome(
        ctx, actor=caller, scenario_id=scenario_id, payload=payload, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return outcome


@router.get(
    "/scenarios/{scenario_id}/outcomes",
    response_model=OutcomePage,
    summary="The scenario's outcomes, corrected ones with superseded_by (the scenario, evaluators, operators)",
)
def list_outcomes(scenario_id: str, session: SessionDep, caller: ReaderDep) -> OutcomePage:
    return OutcomePage(items=service.list_outcomes(session, actor=caller, scenario_id=scenario_id))


@router.post(
    "/scenarios/{scenario_id}/verdicts",
    response_model=VerdictRead,
    status_code=status.HTTP_201_CREATED,
    summary="Record a verdict on a period, one reason per active objective (evaluators only)",
)
def record_verdict(
    scenario_id: str, payload: VerdictCreate, ctx: AccessDep, caller: ReaderDep
) -> VerdictRead:
    return service.record_verdict(ctx, actor=caller, scenario_id=scenario_id, payload=payload)


@router.get(
    "/scenarios/{scenario_id}/verdicts",
    response_model=VerdictPage,
    summary="The scenario's verdicts (the scenario, evaluators, operators)",
)
def list_verdicts(scenario_id: str, session: SessionDep, caller: ReaderDep) -> VerdictPage:
    return VerdictPage(items=service.list_verdicts(session, actor=caller, scenario_id=scenario_id))


@router.post(
    "/evaluations/verify",
    response_model=Verification,
    summary="Verify a saved evaluation report against the audit trail: the chain, the report's "
    "checkpoint and every figure the trail holds (evaluators, operators)",
)
def verify_evaluation(
    report: Annotated[
        dict[str, Any], Body(description="The evaluation report as quality answered it (JSON).")
    ],
    session: SessionDep,
    bus: BusDep,
    audit: AuditDep,
    _: VerifierDep,
) -> Verification:
    """503 when platform.catalog cannot be read: the chain is verified against its checkpoints."""
    return verification.verify_saved_report(session, bus, report, audit=audit)
