"""Scenarios: the applications that consume data, each a principal of kind ``scenario`` with its
own keys. Suspending or retiring one stops its keys; retiring revokes its grants and withdraws its
pending and draft requests. Every change takes the request's
:class:`~services.catalog.access.context.Collaborators` (so the request's session, committed by
the caller), authorizes, audits and announces; reads take the caller's session.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access.context import Collaborators, plain, scenario_of
from services.catalog.access.grants import set_status
from services.catalog.access.models import AccessRequest, Grant, Scenario
from services.catalog.access.requests import close_request
from services.catalog.access.schemas import (
    AccessRequestStatus,
    GrantStatus,
    ScenarioCreate,
    ScenarioRead,
    ScenarioStatus,
    ScenarioUpdate,
)
from services.catalog.datasets.service import get_dataset
from services.catalog.principals.service import add_api_key, add_principal, set_principal_status
from services.catalog.schemas import ApiKeyIssued, PrincipalCreate
from services.common import catalog_events
from services.common.auth import Principal
from services.common.i18n import N_, Sentence
from services.common.problems import Forbidden


def scenario_read(scenario: Scenario) -> ScenarioRead:
    return ScenarioRead.model_validate(scenario)


def create_scenario(ctx: Collaborators, *, payload: ScenarioCreate) -> ScenarioRead:
    """A scenario and its principal (kind ``scenario``), which receives the scenario's keys."""
    session = ctx.session
    ctx.audit.attempting("scenario.create", "scenario", payload.id, scenario_id=payload.id)
    add_principal(
        session, events=ctx.events, payload=PrincipalCreate(id=payload.id, kind="scenario", name=payload.name)
    )
    now = ctx.clock()
    scenario = Scenario(**payload.model_dump(), status=ScenarioStatus.active, created_at=now, updated_at=now)
    session.add(scenario)
    session.flush()
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


def list_scenarios(session: Session, *, status: ScenarioStatus | None = None) -> list[ScenarioRead]:
    query = sa.select(Scenario).order_by(Scenario.id)
    if status is not None:
        query = query.where(Scenario.status == status.value)
    return [scenario_read(row) for row in session.scalars(query)]


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
    for name, value in changes.items():
        setattr(scenario, name, value.value if isinstance(value, ScenarioStatus) else value)
    scenario.updated_at = ctx.clock()
    if "status" in changes:
        principal_status = "active" if scenario.status == ScenarioStatus.active else "suspended"
        set_principal_status(session, events=ctx.events, principal_id=scenario.id, status=principal_status)
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
