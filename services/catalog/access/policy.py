"""Who may do what in authorized operation (docs/authorization.md): who decides on a dataset's
data, who sees which access requests and grants, and what a listing shows each caller."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.catalog.access import exceptions
from services.catalog.access.models import AccessRequest, Grant
from services.catalog.models import Dataset
from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence


def _is_staff(actor: Principal) -> bool:
    return actor.kind in (PrincipalKind.admin, PrincipalKind.operator)


def _of_department(actor: Principal, dataset: Dataset) -> bool:
    return actor.department_id is not None and actor.department_id == dataset.owner_department_id


def may_decide(actor: Principal, dataset: Dataset) -> None:
    """Only an approver of the dataset's owning department, or an admin, decides on its data."""
    if actor.is_admin():
        return
    if actor.kind is PrincipalKind.approver and _of_department(actor, dataset):
        return
    raise exceptions.NotTheOwningDepartment(
        Sentence(
            N_("only an approver of %(owner_department_id)r (or an admin) may decide on %(id)r"),
            owner_department_id=dataset.owner_department_id,
            id=dataset.id,
        )
    )


def refuse_evaluator(actor: Principal) -> None:
    """An evaluator reads evidence (objectives, outcomes, reports, the trail), never the terms of a
    grant or request: the fields, masks and row filters under which record data flows."""
    if actor.kind is PrincipalKind.evaluator:
        raise exceptions.EvidenceOnly(
            Sentence(N_("an evaluator reads no access request or grant: they name record-level fields"))
        )


def may_see(actor: Principal, scenario_id: str, dataset: Dataset) -> None:
    """A scenario sees its own requests and grants; a department (publisher or approver) those of
    its datasets; operators and admins everything; an evaluator none."""
    if _is_staff(actor):
        return
    refuse_evaluator(actor)
    if actor.kind is PrincipalKind.scenario:
        if actor.id == scenario_id:
            return
        raise exceptions.NotYourScenario(
            Sentence(N_("a scenario sees only its own access requests and grants"))
        )
    if _of_department(actor, dataset):
        return
    raise exceptions.NotTheOwningDepartment(
        Sentence(
            N_("only the owning department %(owner_department_id)r sees access to %(id)r"),
            owner_department_id=dataset.owner_department_id,
            id=dataset.id,
        )
    )


def visible(
    actor: Principal, query: sa.Select[Any], scenario_column: Any, dataset_column: Any
) -> sa.Select[Any]:
    if _is_staff(actor):
        return query
    if actor.kind is PrincipalKind.scenario:
        return query.where(scenario_column == actor.id)
    if actor.department_id is None:
        return query.where(sa.false())
    owned = sa.select(Dataset.id).where(Dataset.owner_department_id == actor.department_id)
    return query.where(dataset_column.in_(owned))


def listed(
    actor: Principal,
    model: type[AccessRequest] | type[Grant],
    scenario_id: str | None,
    dataset_id: str | None,
    others_refused: str,
) -> Any:
    """The rows of ``model`` the actor may see, oldest first, narrowed by scenario and dataset;
    ``others_refused`` (marked ``N_``) says why a scenario may not ask for another's. An evaluator
    is refused: a listing carries each grant's fields."""
    refuse_evaluator(actor)
    if actor.kind is PrincipalKind.scenario and scenario_id not in (None, actor.id):
        raise exceptions.NotYourScenario(Sentence(others_refused))
    query = visible(actor, sa.select(model), model.scenario_id, model.dataset_id).order_by(model.id)
    if scenario_id:
        query = query.where(model.scenario_id == scenario_id)
    if dataset_id:
        query = query.where(model.dataset_id == dataset_id)
    return query
