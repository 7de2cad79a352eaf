"""Scenarios: the applications that consume data, each a principal of kind ``scenario`` with its
own keys, with a standard definition (the needs or opening it answers, domains, datasets,
objectives, owning body, builder) and a stage in the city's programme: proposed → approved →
building → live → suspended → retired. Suspending or retiring one stops its keys; retiring revokes
its grants and withdraws its pending and draft requests. Every stage change is kept in the stage
history (``catalog_scenario_stages``). Every change takes the request's
:class:`~services.catalog.access.context.Collaborators` (so the request's session, committed by
the caller), authorizes, audits and announces; reads take the caller's session.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access import exceptions
from services.catalog.access.context import Collaborators, plain, scenario_of
from services.catalog.access.grants import set_status
from services.catalog.access.models import AccessRequest, Grant, Scenario, ScenarioStageChange
from services.catalog.access.requests import close_request
from services.catalog.access.schemas import (
    AccessRequestStatus,
    GrantStatus,
    ScenarioCreate,
    ScenarioRead,
    ScenarioStage,
    ScenarioStageRead,
    ScenarioStatus,
    ScenarioUpdate,
)
from services.catalog.datasets.service import get_dataset
from services.catalog.principals.service import add_api_key, add_principal, set_principal_status
from services.catalog.schemas import ApiKeyIssued, PrincipalCreate
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, Forbidden

Stage = ScenarioStage
MOVES: dict[ScenarioStage, frozenset[ScenarioStage]] = {
    Stage.proposed: frozenset({Stage.approved, Stage.retired}),
    Stage.approved: frozenset({Stage.building, Stage.suspended, Stage.retired}),
    Stage.building: frozenset({Stage.live, Stage.suspended, Stage.retired}),
    Stage.live: frozenset({Stage.suspended, Stage.retired}),
    Stage.suspended: frozenset({Stage.approved, Stage.building, Stage.live, Stage.retired}),
    Stage.retired: frozenset(),
}
"""The stage a scenario may move to from each stage; ``retired`` is final."""

BUILDER_MOVES = frozenset({(Stage.approved, Stage.building)})
"""The moves a scenario makes itself (starting to build once approved); every other move is an
operator's (or an admin's) decision for the programme."""

STARTING_STAGES = frozenset({Stage.proposed, Stage.approved, Stage.building, Stage.live})


def scenario_read(scenario: Scenario) -> ScenarioRead:
    return ScenarioRead.model_validate(scenario)


def create_scenario(
    ctx: Collaborators, *, payload: ScenarioCreate, actor: Principal | None = None, reason: str = "registered"
) -> ScenarioRead:
    """A scenario and its principal (kind ``scenario``), which receives the scenario's keys; its
    stage history starts with the stage it is registered in (``live`` unless said otherwise)."""
    session = ctx.session
    ctx.audit.attempting("scenario.create", "scenario", payload.id, scenario_id=payload.id)
    if payload.stage not in STARTING_STAGES:
        raise exceptions.InvalidStartingStage(
            Sentence(
                N_("a scenario starts as proposed, approved, building or live, not %(stage)s"),
                stage=payload.stage.value,
            ),
            errors=[
                FieldError(path="/body/stage", rule="enum", message=Sentence(N_("not a starting stage")))
            ],
        )
    add_principal(
        session, events=ctx.events, payload=PrincipalCreate(id=payload.id, kind="scenario", name=payload.name)
    )
    now = ctx.clock()
    values = payload.model_dump()
    values["stage"] = payload.stage.value
    scenario = Scenario(**values, status=ScenarioStatus.active, created_at=now, updated_at=now)
    session.add(scenario)
    session.flush()
    _record_stage(ctx, scenario, None, actor.id if actor else "platform", reason)
    read = scenario_read(scenario)
    ctx.events.publish(session, catalog_events.SCENARIO, scenario.id, read)
    ctx.audit.record(
        session,
        action="scenario.create",
        resource_type="scenario",
        resource_id=scenario.id,
        scenario_id=scenario.id,
        details={"name": scenario.name, "organisation": scenario.organisation},
    )
    return read


def get_scenario(session: Session, *, scenario_id: str) -> ScenarioRead:
    return scenario_read(scenario_of(session, scenario_id))


def list_scenarios(
    session: Session, *, status: ScenarioStatus | None = None, stage: ScenarioStage | None = None
) -> list[ScenarioRead]:
    query = sa.select(Scenario).order_by(Scenario.id)
    if status is not None:
        query = query.where(Scenario.status == status.value)
    if stage is not None:
        query = query.where(Scenario.stage == stage.value)
    return [scenario_read(row) for row in session.scalars(query)]


def stage_history(session: Session, *, scenario_id: str) -> list[ScenarioStageRead]:
    """Every stage the scenario has been in, oldest first, with who moved it and why."""
    scenario_of(session, scenario_id)
    rows = session.scalars(
        sa.select(ScenarioStageChange)
        .where(ScenarioStageChange.scenario_id == scenario_id)
        .order_by(ScenarioStageChange.id)
    )
    return [ScenarioStageRead.model_validate(row) for row in rows]


def change_stage(
    ctx: Collaborators, *, actor: Principal, scenario_id: str, stage: ScenarioStage, reason: str
) -> ScenarioRead:
    """Move a scenario to its next stage, with a reason (docs/authorization.md, "Scenario stages").

    Only the scenario itself (and only from approved to building), an operator or an admin moves
    a scenario; a move :data:`MOVES` does not allow is a 409. Suspending stops its keys, a later
    move back into a working stage restores them, retiring revokes its grants.
    """
    ctx.audit.attempting(
        "scenario.stage", "scenario", scenario_id, scenario_id=scenario_id, details={"stage": stage.value}
    )
    staff = actor.is_admin() or actor.kind is PrincipalKind.operator
    if not staff and not (actor.kind is PrincipalKind.scenario and actor.id == scenario_id):
        raise exceptions.NotYourScenario(
            Sentence(N_("only an operator, an admin or the scenario itself moves its stage"))
        )
    scenario = scenario_of(ctx.session, scenario_id)
    current = ScenarioStage(scenario.stage)
    if stage not in MOVES[current]:
        allowed = ", ".join(sorted(MOVES[current])) or Sentence(N_("none: retired is final"))
        raise exceptions.StageTransitionNotAllowed(
            Sentence(
                N_("a scenario in stage %(stage)s cannot move to %(target)s (allowed: %(allowed)s)"),
                stage=current.value,
                target=stage.value,
                allowed=allowed,
            ),
            stage=current.value,
            allowed=sorted(MOVES[current]),
        )
    if not staff and (current, stage) not in BUILDER_MOVES:
        raise exceptions.StageMoveNotYours(
            Sentence(
                N_("moving from %(stage)s to %(target)s is an operator's decision, not the scenario's"),
                stage=current.value,
                target=stage.value,
            )
        )
    _move(ctx, actor, scenario, stage, reason)
    ctx.session.flush()
    read = scenario_read(scenario)
    ctx.events.publish(ctx.session, catalog_events.SCENARIO, scenario.id, read)
    ctx.audit.record(
        ctx.session,
        action="scenario.stage",
        resource_type="scenario",
        resource_id=scenario.id,
        scenario_id=scenario.id,
        details={"from": current.value, "to": stage.value, "reason": reason},
    )
    if stage is Stage.retired:
        _retire(ctx, actor, scenario)
    return read


def _status_of(stage: ScenarioStage) -> ScenarioStatus:
    if stage in (Stage.suspended, Stage.retired):
        return ScenarioStatus(stage.value)
    return ScenarioStatus.active


def _move(
    ctx: Collaborators, actor: Principal, scenario: Scenario, stage: ScenarioStage, reason: str
) -> None:
    """Set the stage, the status that follows from it (and the principal's), and record the step."""
    previous = ScenarioStage(scenario.stage)
    scenario.stage = stage.value
    scenario.updated_at = ctx.clock()
    status = _status_of(stage)
    if status.value != scenario.status:
        scenario.status = status.value
        principal_status = "active" if status is ScenarioStatus.active else "suspended"
        set_principal_status(
            ctx.session, events=ctx.events, principal_id=scenario.id, status=principal_status
        )
    _record_stage(ctx, scenario, previous, actor.id, reason)


def _record_stage(
    ctx: Collaborators, scenario: Scenario, previous: ScenarioStage | None, by: str, reason: str
) -> None:
    ctx.session.add(
        ScenarioStageChange(
            scenario_id=scenario.id,
            stage=scenario.stage,
            previous_stage=previous.value if previous else None,
            reason=reason,
            changed_by=by,
            changed_at=ctx.clock(),
        )
    )


def _stage_for_status(session: Session, scenario: Scenario, status: ScenarioStatus) -> ScenarioStage:
    """The stage a status set through ``PATCH`` means: suspended and retired are stages of their
    own; ``active`` resumes the stage the scenario was suspended in (``live`` if none is known)."""
    if status is not ScenarioStatus.active:
        return ScenarioStage(status.value)
    if scenario.stage not in (Stage.suspended, Stage.retired):
        return ScenarioStage(scenario.stage)
    before = session.scalars(
        sa.select(ScenarioStageChange.previous_stage)
        .where(
            ScenarioStageChange.scenario_id == scenario.id,
            ScenarioStageChange.stage == scenario.stage,
        )
        .order_by(ScenarioStageChange.id.desc())
        .limit(1)
    ).first()
    if before is None or before in (Stage.suspended, Stage.retired):
        return Stage.live
    return ScenarioStage(before)


def update_scenario(
    ctx: Collaborators, *, actor: Principal, scenario_id: str, payload: ScenarioUpdate
) -> ScenarioRead:
    """Change a scenario's description or status; a suspended or retired scenario's keys stop.

    Retiring a scenario also revokes its grants and withdraws its pending requests, so that no
    grant of a scenario that no longer exists counts as live (in feeds or in utilization scores).
    """
    ctx.audit.attempting("scenario.update", "scenario", scenario_id, scenario_id=scenario_id)
    session = ctx.session
    scenario = scenario_of(session, scenario_id)
    retiring = payload.status is ScenarioStatus.retired and scenario.status != ScenarioStatus.retired
    changes = {
        name: value for name, value in payload.model_dump(exclude_unset=True).items() if value is not None
    }
    before = {name: getattr(scenario, name) for name in changes}
    status = changes.pop("status", None)
    for name, value in changes.items():
        setattr(scenario, name, value)
    scenario.updated_at = ctx.clock()
    if status is not None:
        stage = _stage_for_status(session, scenario, status)
        if stage.value != scenario.stage:
            _move(ctx, actor, scenario, stage, f"status set to {status.value}")
        changes["status"] = status
    session.flush()
    read = scenario_read(scenario)
    ctx.events.publish(session, catalog_events.SCENARIO, scenario.id, read)
    ctx.audit.record(
        session,
        action="scenario.update",
        resource_type="scenario",
        resource_id=scenario.id,
        scenario_id=scenario.id,
        details={"before": plain(before), "after": plain(changes)},
    )
    if retiring:
        _retire(ctx, actor, scenario)
    return read


def _retire(ctx: Collaborators, actor: Principal, scenario: Scenario) -> None:
    session, reason = ctx.session, f"scenario {scenario.id} retired"
    grants = session.scalars(
        sa.select(Grant)
        .where(Grant.scenario_id == scenario.id, Grant.status != GrantStatus.revoked.value)
        .order_by(Grant.id)
    ).all()
    for grant in grants:
        set_status(
            ctx, grant, get_dataset(session, grant.dataset_id), GrantStatus.revoked, reason, "grant.revoke"
        )
    pending = session.scalars(
        sa.select(AccessRequest)
        .where(
            AccessRequest.scenario_id == scenario.id,
            AccessRequest.status.in_((AccessRequestStatus.pending.value, AccessRequestStatus.draft.value)),
        )
        .order_by(AccessRequest.id)
    ).all()
    for request in pending:
        dataset = get_dataset(session, request.dataset_id)
        close_request(
            ctx, actor, request, dataset, AccessRequestStatus.withdrawn, reason, "access_request.withdraw"
        )


def issue_scenario_key(ctx: Collaborators, *, actor: Principal, scenario_id: str, name: str) -> ApiKeyIssued:
    """A key for the scenario (shown once), through the catalog's principal keys.

    Only an admin issues them: a scenario that could mint its own keys would let a stolen key
    leave behind a sibling that outlives the stolen one's revocation.
    """
    ctx.audit.attempting("api_key.issue", "principal", scenario_id, scenario_id=scenario_id)
    if not actor.is_admin():
        raise Forbidden(
            Sentence(
                N_("a scenario's keys are issued by an admin, not by %(kind)s %(id)r"),
                kind=actor.kind,
                id=actor.id,
            )
        )
    scenario_of(ctx.session, scenario_id)
    issued = add_api_key(ctx.session, events=ctx.events, principal_id=scenario_id, name=name)
    ctx.audit.record(
        ctx.session,
        action="api_key.issue",
        resource_type="api_key",
        resource_id=issued.prefix,
        scenario_id=scenario_id,
        details={"principal_id": scenario_id, "name": name},
    )
    return issued
