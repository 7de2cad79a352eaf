"""Applicants: organisations (enterprises, research teams, other departments' agencies) that
register themselves to answer openings, and may propose once an operator vets them.

Vetting makes the applicant a principal of kind ``organisation`` with the applicant's id and
issues its first key, shown once to the vetting operator to hand over with the decision. Until
then the organisation has nothing to authenticate with, so an unvetted applicant can neither
propose nor read anything that needs a key (docs/authorization.md, "Applicants").
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access.context import Collaborators
from services.catalog.models import Principal as PrincipalRow
from services.catalog.needs.service import address_hash, flood_retry_after
from services.catalog.needs.settings import NeedsSettings
from services.catalog.principals.service import add_api_key, add_principal
from services.catalog.programme import exceptions
from services.catalog.programme.lists import is_staff
from services.catalog.programme.models import Applicant
from services.catalog.programme.schemas import (
    ApplicantCreate,
    ApplicantRead,
    ApplicantStatus,
    ApplicantVetted,
    ApplicantVetting,
)
from services.catalog.schemas import PrincipalCreate
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, Forbidden


def applicant_read(applicant: Applicant) -> ApplicantRead:
    return ApplicantRead.model_validate(applicant)


def applicant_of(session: Session, applicant_id: str) -> Applicant:
    applicant = session.get(Applicant, applicant_id)
    if applicant is None:
        raise exceptions.ApplicantNotFound(
            Sentence(N_("no applicant %(applicant_id)r"), applicant_id=applicant_id)
        )
    return applicant


def register_applicant(
    ctx: Collaborators, *, payload: ApplicantCreate, settings: NeedsSettings, client_address: str
) -> ApplicantRead:
    """An organisation registers itself (no key needed); it waits for an operator's vetting. At
    most ``applicant_limit`` registrations per client address per window (429 with Retry-After
    beyond), counted before anything else is checked, so that a flood cannot probe which ids are
    taken."""
    ctx.audit.attempting("applicant.register", "applicant", payload.id)
    session = ctx.session
    now, source = ctx.clock(), address_hash(settings, client_address)
    window_start = now - timedelta(seconds=settings.applicant_window_s)
    recent = list(
        session.scalars(
            sa.select(Applicant.created_at)
            .where(Applicant.submitted_from == source, Applicant.created_at > window_start)
            .order_by(Applicant.created_at)
        )
    )
    retry = flood_retry_after(recent, limit=settings.applicant_limit, window_start=window_start)
    if retry is not None:
        raise exceptions.RegistrationFlood(
            Sentence(
                N_("at most %(limit)s registrations per %(window_s)s s from one address"),
                limit=settings.applicant_limit,
                window_s=settings.applicant_window_s,
            ),
            retry_after_s=retry,
        )
    if session.get(Applicant, payload.id) is not None or session.get(PrincipalRow, payload.id) is not None:
        raise exceptions.AlreadyRegistered(
            Sentence(N_("%(id)r is taken"), id=payload.id),
            errors=[FieldError(path="/body/id", rule="unique", message=Sentence(N_("choose another id")))],
        )
    applicant = Applicant(
        **payload.model_dump(),
        status=ApplicantStatus.pending.value,
        submitted_from=source,
        created_at=now,
        updated_at=now,
    )
    session.add(applicant)
    session.flush()
    read = applicant_read(applicant)
    ctx.events.publish(session, catalog_events.APPLICANT, applicant.id, read)
    ctx.audit.record(
        session,
        action="applicant.register",
        resource_type="applicant",
        resource_id=applicant.id,
        details={"name": applicant.name},
    )
    return read


def list_applicants(
    session: Session, *, actor: Principal, status: ApplicantStatus | None = None
) -> list[ApplicantRead]:
    """Every applicant, for the operators who vet them."""
    if not is_staff(actor):
        raise Forbidden(Sentence(N_("operators review applicants, not a %(kind)s"), kind=actor.kind))
    query = sa.select(Applicant).order_by(Applicant.created_at, Applicant.id)
    if status is not None:
        query = query.where(Applicant.status == status.value)
    return [applicant_read(row) for row in session.scalars(query)]


def get_applicant(session: Session, *, actor: Principal, applicant_id: str) -> ApplicantRead:
    """An applicant, to operators and to the organisation itself."""
    if not is_staff(actor) and not (actor.kind is PrincipalKind.organisation and actor.id == applicant_id):
        raise Forbidden(Sentence(N_("an applicant is seen by operators and by the organisation itself")))
    return applicant_read(applicant_of(session, applicant_id))


def vet_applicant(
    ctx: Collaborators, *, actor: Principal, applicant_id: str, vetting: ApplicantVetting
) -> ApplicantVetted:
    """An operator vets (the organisation becomes a principal and gets its first key) or refuses."""
    ctx.audit.attempting(
        "applicant.vet", "applicant", applicant_id, details={"decision": vetting.decision.value}
    )
    if not is_staff(actor):
        raise Forbidden(Sentence(N_("an operator vets applicants, not a %(kind)s"), kind=actor.kind))
    session = ctx.session
    applicant = applicant_of(session, applicant_id)
    if applicant.status != ApplicantStatus.pending:
        raise exceptions.AlreadyVetted(
            Sentence(
                N_("applicant %(applicant_id)r is %(status)s"),
                applicant_id=applicant_id,
                status=applicant.status,
            )
        )
    if vetting.decision is ApplicantStatus.pending:
        raise exceptions.AlreadyVetted(Sentence(N_("a vetting decides: vetted or refused")))
    now = ctx.clock()
    applicant.status = vetting.decision.value
    applicant.vetting_reason = vetting.reason
    applicant.vetted_by = actor.id
    applicant.vetted_at = now
    applicant.updated_at = now
    key = None
    if vetting.decision is ApplicantStatus.vetted:
        add_principal(
            session,
            events=ctx.events,
            payload=PrincipalCreate(
                id=applicant.id, kind=PrincipalKind.organisation.value, name=applicant.name
            ),
        )
        key = add_api_key(session, events=ctx.events, principal_id=applicant.id, name="vetting")
    session.flush()
    read = applicant_read(applicant)
    ctx.events.publish(session, catalog_events.APPLICANT, applicant.id, read)
    ctx.audit.record(
        session,
        action="applicant.vet",
        resource_type="applicant",
        resource_id=applicant.id,
        details={
            "decision": applicant.status,
            "reason": vetting.reason,
            **({"key_prefix": key.prefix} if key else {}),
        },
    )
    return ApplicantVetted(applicant=read, key=key)


def vetted_applicant(session: Session, actor: Principal) -> Applicant:
    """The vetted applicant the actor is; anyone else is refused (403 ``applicant-not-vetted``)."""
    applicant = session.get(Applicant, actor.id) if actor.kind is PrincipalKind.organisation else None
    if applicant is None or applicant.status != ApplicantStatus.vetted:
        raise exceptions.ApplicantNotVetted(
            Sentence(
                N_("%(kind)s %(principal_id)r is not a vetted applicant organisation"),
                kind=actor.kind,
                principal_id=actor.id,
            )
        )
    return applicant
