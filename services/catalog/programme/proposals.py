"""Proposals (揭榜挂帅 / 赛马): vetted organisations answer an opening before its deadline; the
opening's owning department compares them side by side and selects one or more. Each selection
creates a scenario in stage ``approved`` for the organisation, with a draft access request for each
dataset of its proposal (which the scenario submits or changes); the proposals not selected are
told by their status and an event.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access.context import Collaborators
from services.catalog.access.requests import prepare_access_request
from services.catalog.access.scenarios import create_scenario
from services.catalog.access.schemas import AccessRequestCreate, ScenarioCreate, ScenarioRead, ScenarioStage
from services.catalog.access.terms import contract_scope
from services.catalog.datasets.service import get_dataset
from services.catalog.domains.service import get_department
from services.catalog.programme import exceptions
from services.catalog.programme.applicants import applicant_of, vetted_applicant
from services.catalog.programme.lists import (
    announce_list,
    is_staff,
    list_of,
    new_id,
    opening_of,
    opening_read,
)
from services.catalog.programme.models import Opening, Proposal
from services.catalog.programme.schemas import (
    OpeningStatus,
    ProposalComparison,
    ProposalCreate,
    ProposalRead,
    ProposalStatus,
    Selection,
    SelectionRead,
)
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import aware
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError


def proposal_read(proposal: Proposal) -> ProposalRead:
    return ProposalRead.model_validate(proposal)


def _owns(actor: Principal, opening: Opening) -> bool:
    """The opening's owning department (its publishers and approvers), operators and admins."""
    if is_staff(actor):
        return True
    return (
        actor.kind in (PrincipalKind.department, PrincipalKind.approver)
        and actor.department_id == opening.owner_department_id
    )


def _owner_only(actor: Principal, opening: Opening) -> None:
    if not _owns(actor, opening):
        raise exceptions.NotTheOpeningOwner(
            Sentence(
                N_("only %(department_id)r (or an operator) decides on opening %(opening_id)s"),
                department_id=opening.owner_department_id,
                opening_id=opening.id,
            )
        )


def _check_datasets(ctx: Collaborators, payload: ProposalCreate) -> None:
    """Every dataset exists with a contract and every field is in it, and the duration may be
    granted, so that the access requests a selection prepares are valid as they stand."""
    errors: list[FieldError] = []
    for index, wanted in enumerate(payload.datasets):
        scope = contract_scope(ctx.session, get_dataset(ctx.session, wanted.dataset_id))
        errors += [
            FieldError(
                path=f"/body/datasets/{index}/fields/{position}",
                rule="unknown-field",
                message=Sentence(
                    N_("%(field)r is not a top-level field of %(dataset_id)s %(version)s"),
                    field=name,
                    dataset_id=wanted.dataset_id,
                    version=scope.version,
                ),
            )
            for position, name in enumerate(wanted.fields)
            if name not in scope.fields
        ]
    if errors:
        raise exceptions.UnknownProposalFields(
            Sentence(N_("fields not in the datasets' current contracts")), errors=errors
        )
    if payload.duration_days > ctx.settings.max_duration_days:
        raise exceptions.UnknownProposalFields(
            Sentence(
                N_("%(days)s days is beyond the maximum of %(max_duration_days)s"),
                days=payload.duration_days,
                max_duration_days=ctx.settings.max_duration_days,
            ),
            errors=[FieldError(path="/body/duration_days", rule="maximum", message=Sentence(N_("too long")))],
        )


def submit_proposal(
    ctx: Collaborators, *, actor: Principal, opening_id: str, payload: ProposalCreate
) -> ProposalRead:
    """A vetted organisation answers an open opening of a published list, before its deadline."""
    ctx.audit.attempting("proposal.submit", "opening", opening_id)
    session = ctx.session
    applicant = vetted_applicant(session, actor)
    opening = opening_of(session, opening_id)
    list_of(session, opening.list_id)  # a draft list's openings take no proposals
    now = ctx.clock()
    if opening.status != OpeningStatus.open:
        raise exceptions.OpeningDecided(
            Sentence(N_("opening %(opening_id)s has been decided"), opening_id=opening_id)
        )
    if aware(opening.deadline) <= now:
        raise exceptions.DeadlinePassed(
            Sentence(
                N_("opening %(opening_id)s closed at %(deadline)s"),
                opening_id=opening_id,
                deadline=aware(opening.deadline).isoformat(),
            ),
            deadline=aware(opening.deadline).isoformat(),
        )
    taken = sa.select(Proposal.id).where(
        Proposal.opening_id == opening_id, Proposal.applicant_id == applicant.id
    )
    if session.scalar(taken) is not None:
        raise exceptions.AlreadyProposed(
            Sentence(
                N_("%(applicant_id)r has already answered opening %(opening_id)s"),
                applicant_id=applicant.id,
                opening_id=opening_id,
            )
        )
    _check_datasets(ctx, payload)
    proposal = Proposal(
        id=new_id("pr", now),
        opening_id=opening_id,
        applicant_id=applicant.id,
        **payload.model_dump(mode="json"),
        status=ProposalStatus.submitted.value,
        created_at=now,
        updated_at=now,
    )
    session.add(proposal)
    session.flush()
    read = proposal_read(proposal)
    ctx.events.publish(session, catalog_events.PROPOSAL, proposal.id, read)
    ctx.audit.record(
        session,
        action="proposal.submit",
        resource_type="proposal",
        resource_id=proposal.id,
        department_id=opening.owner_department_id,
        details={"opening_id": opening_id, "applicant_id": applicant.id, "title": proposal.title},
    )
    return read


def _proposals(session: Session, opening_id: str) -> list[Proposal]:
    query = sa.select(Proposal).where(Proposal.opening_id == opening_id).order_by(Proposal.id)
    return list(session.scalars(query))


def compare_proposals(session: Session, *, actor: Principal, opening_id: str) -> ProposalComparison:
    """The opening's proposals side by side, for its owner: and per dataset and field, which
    proposals ask for it (the data each plan would take out of its owner's hands)."""
    opening = opening_of(session, opening_id)
    _owner_only(actor, opening)
    proposals = [proposal_read(row) for row in _proposals(session, opening_id)]
    fields_asked: dict[str, dict[str, list[str]]] = {}
    for proposal in proposals:
        for wanted in proposal.datasets:
            for name in wanted.fields:
                fields_asked.setdefault(wanted.dataset_id, {}).setdefault(name, []).append(proposal.id)
    return ProposalComparison(opening=opening_read(opening), proposals=proposals, fields_asked=fields_asked)


def get_proposal(session: Session, *, actor: Principal, proposal_id: str) -> ProposalRead:
    """A proposal, to the organisation that made it and to the opening's owner."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is None:
        raise exceptions.ProposalNotFound(
            Sentence(N_("no proposal %(proposal_id)r"), proposal_id=proposal_id)
        )
    mine = actor.kind is PrincipalKind.organisation and actor.id == proposal.applicant_id
    if not mine and not _owns(actor, opening_of(session, proposal.opening_id)):
        raise exceptions.NotYourProposal(
            Sentence(N_("a proposal is seen by its organisation and the opening's owner"))
        )
    return proposal_read(proposal)


def my_proposals(session: Session, *, actor: Principal) -> list[ProposalRead]:
    """The caller's own proposals (an organisation), with their status: how it is told."""
    vetted_applicant(session, actor)
    query = sa.select(Proposal).where(Proposal.applicant_id == actor.id).order_by(Proposal.id)
    return [proposal_read(row) for row in session.scalars(query)]


def _scenario_id(proposal: Proposal, opening: Opening) -> str:
    """``<applicant>-<list>-<position>``, cut to a slug's length."""
    text = f"{proposal.applicant_id}-{opening.list_id}-{opening.position}"
    return re.sub(r"-+$", "", text[:63]) if len(text) > 63 else text


def select_proposals(
    ctx: Collaborators, *, actor: Principal, opening_id: str, selection: Selection
) -> SelectionRead:
    """The owner selects one or more proposals (赛马: several may run); the opening is decided.

    Each selected organisation gets a scenario in stage ``approved`` (answering the opening and
    its needs) with a draft access request per dataset of its proposal; the others are told by
    their status (``not_selected``) and an event."""
    ctx.audit.attempting(
        "opening.select", "opening", opening_id, details={"proposals": selection.proposal_ids}
    )
    session = ctx.session
    opening = opening_of(session, opening_id)
    _owner_only(actor, opening)
    if opening.status != OpeningStatus.open:
        raise exceptions.OpeningDecided(
            Sentence(N_("opening %(opening_id)s has been decided"), opening_id=opening_id)
        )
    proposals = {row.id: row for row in _proposals(session, opening_id)}
    unknown = [
        FieldError(
            path=f"/body/proposal_ids/{index}",
            rule="exists",
            message=Sentence(N_("no proposal %(proposal_id)r for this opening"), proposal_id=pid),
        )
        for index, pid in enumerate(selection.proposal_ids)
        if pid not in proposals
    ]
    if unknown:
        raise exceptions.UnknownProposals(
            Sentence(N_("proposals that do not answer this opening")), errors=unknown
        )
    now = ctx.clock()
    owner = get_department(session, opening.owner_department_id)
    chosen = set(selection.proposal_ids)
    scenarios, drafts = [], []
    for proposal in proposals.values():
        proposal.status = (
            ProposalStatus.selected if proposal.id in chosen else ProposalStatus.not_selected
        ).value
        proposal.decided_by, proposal.decided_at = actor.id, now
        proposal.decision_reason, proposal.updated_at = selection.reason, now
        if proposal.id in chosen:
            scenario = _scenario_for(ctx, actor, proposal, opening, owner.name, selection.reason)
            proposal.scenario_id = scenario.id
            scenarios.append(scenario)
            drafts += [
                prepare_access_request(
                    ctx,
                    actor=actor,
                    scenario_id=scenario.id,
                    payload=AccessRequestCreate(
                        scenario_id=scenario.id,
                        dataset_id=wanted["dataset_id"],
                        purpose=f"{proposal.title}: {proposal.approach}"[:2000],
                        purpose_category=proposal.purpose_category,
                        fields=wanted["fields"],
                        duration_days=proposal.duration_days,
                    ),
                    origin=f"proposal:{proposal.id}",
                )
                for wanted in proposal.datasets
            ]
        session.flush()
        ctx.events.publish(session, catalog_events.PROPOSAL, proposal.id, proposal_read(proposal))
    opening.status, opening.updated_at = OpeningStatus.decided.value, now
    announce_list(ctx, list_of(session, opening.list_id))
    ctx.audit.record(
        session,
        action="opening.select",
        resource_type="opening",
        resource_id=opening.id,
        department_id=opening.owner_department_id,
        details={
            "selected": sorted(chosen),
            "not_selected": sorted(set(proposals) - chosen),
            "scenarios": [scenario.id for scenario in scenarios],
            "reason": selection.reason,
        },
    )
    return SelectionRead(
        opening=opening_read(opening),
        selected=[proposal_read(p) for p in proposals.values() if p.id in chosen],
        not_selected=[proposal_read(p) for p in proposals.values() if p.id not in chosen],
        scenarios=scenarios,
        access_requests=drafts,
    )


def _scenario_for(
    ctx: Collaborators, actor: Principal, proposal: Proposal, opening: Opening, owning_body: str, reason: str
) -> ScenarioRead:
    applicant = applicant_of(ctx.session, proposal.applicant_id)
    return create_scenario(
        ctx,
        payload=ScenarioCreate(
            id=_scenario_id(proposal, opening),
            name=proposal.title,
            organisation=applicant.name,
            description=proposal.approach,
            contact=applicant.contact,
            stage=ScenarioStage.approved,
            need_ids=opening.need_ids,
            opening_id=opening.id,
            domains=opening.domains,
            datasets=[wanted["dataset_id"] for wanted in proposal.datasets],
            objectives=proposal.objectives,
            owning_body=owning_body,
            builder_id=applicant.id,
            serves_residents=opening.serves_residents,
        ),
        actor=actor,
        reason=f"proposal {proposal.id} selected: {reason}",
    )
