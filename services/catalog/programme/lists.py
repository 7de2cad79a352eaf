"""Opportunity lists (机会清单): an operator drafts a list, adds openings, and publishes it as a
dated, numbered release that anyone reads without a key (JSON, CSV, Atom).

Every change takes the request's :class:`~services.catalog.access.context.Collaborators`,
authorizes, audits and announces the whole list on ``platform.catalog``; reads take the session.
"""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access.context import Collaborators
from services.catalog.datasets.service import get_dataset
from services.catalog.domains.service import get_department
from services.catalog.exceptions import refuse_unknown
from services.catalog.needs.models import Need
from services.catalog.programme import exceptions
from services.catalog.programme.models import Opening, OpportunityList
from services.catalog.programme.schemas import (
    ListStatus,
    OpeningCreate,
    OpeningRead,
    OpeningStatus,
    OpportunityListCreate,
    OpportunityListRead,
)
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import aware
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, Forbidden


def new_id(prefix: str, now: datetime) -> str:
    """Ids that sort by creation time."""
    return f"{prefix}-{int(now.timestamp() * 1000):012x}{secrets.token_hex(5)}"


def is_staff(actor: Principal | None) -> bool:
    return actor is not None and (actor.is_admin() or actor.kind is PrincipalKind.operator)


def _operator(actor: Principal, action: Sentence) -> None:
    """Only staff may do ``action`` (what an operator does: ``Sentence(N_("adds openings"))``)."""
    if not is_staff(actor):
        raise Forbidden(
            Sentence(N_("an operator %(action)s, not a %(kind)s"), action=action, kind=actor.kind)
        )


def opening_read(opening: Opening) -> OpeningRead:
    read = OpeningRead.model_validate(opening)
    read.deadline = aware(opening.deadline)
    return read


def _openings(session: Session, list_id: str) -> list[Opening]:
    return list(
        session.scalars(sa.select(Opening).where(Opening.list_id == list_id).order_by(Opening.position))
    )


def list_read(session: Session, row: OpportunityList) -> OpportunityListRead:
    return OpportunityListRead.model_validate(
        {
            **{
                column: getattr(row, column)
                for column in OpportunityListRead.model_fields
                if column != "openings"
            },
            "openings": [opening_read(opening) for opening in _openings(session, row.id)],
        }
    )


def list_of(session: Session, list_id: str, *, reader: Principal | None = None) -> OpportunityList:
    """The list; a draft only to operators and admins (to everyone else it does not exist)."""
    row = session.get(OpportunityList, list_id)
    if row is None or (row.status != ListStatus.published and not is_staff(reader)):
        raise exceptions.OpportunityListNotFound(
            Sentence(N_("no published opportunity list %(list_id)r"), list_id=list_id)
        )
    return row


def opening_of(session: Session, opening_id: str) -> Opening:
    opening = session.get(Opening, opening_id)
    if opening is None:
        raise exceptions.OpeningNotFound(Sentence(N_("no opening %(opening_id)r"), opening_id=opening_id))
    return opening


def announce_list(ctx: Collaborators, row: OpportunityList) -> OpportunityListRead:
    """Publish the list's whole state (its openings included) on ``platform.catalog``."""
    ctx.session.flush()
    read = list_read(ctx.session, row)
    ctx.events.publish(ctx.session, catalog_events.OPPORTUNITY_LIST, row.id, read)
    return read


def create_list(
    ctx: Collaborators, *, actor: Principal, payload: OpportunityListCreate
) -> OpportunityListRead:
    """A draft list, which nobody but operators sees until it is published."""
    ctx.audit.attempting("opportunity_list.create", "opportunity_list", payload.id)
    _operator(actor, Sentence(N_("drafts opportunity lists")))
    if ctx.session.get(OpportunityList, payload.id) is not None:
        raise exceptions.ListNotDraft(Sentence(N_("opportunity list %(list_id)r exists"), list_id=payload.id))
    now = ctx.clock()
    row = OpportunityList(
        **payload.model_dump(),
        status=ListStatus.draft.value,
        created_by=actor.id,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(row)
    read = announce_list(ctx, row)
    ctx.audit.record(
        ctx.session,
        action="opportunity_list.create",
        resource_type="opportunity_list",
        resource_id=row.id,
        details={"title": row.title},
    )
    return read


def add_opening(
    ctx: Collaborators, *, actor: Principal, list_id: str, payload: OpeningCreate
) -> OpportunityListRead:
    """An opening on a draft list: its data offered (datasets that exist), its owning department
    (which will compare the proposals), its conditions and a deadline ahead."""
    ctx.audit.attempting("opportunity_list.add_opening", "opportunity_list", list_id)
    _operator(actor, Sentence(N_("adds openings")))
    session = ctx.session
    row = list_of(session, list_id, reader=actor)
    if row.status != ListStatus.draft:
        raise exceptions.ListNotDraft(
            Sentence(N_("opportunity list %(list_id)r is published; openings are fixed"), list_id=list_id)
        )
    now = ctx.clock()
    _check_deadline(aware(payload.deadline), now)
    get_department(session, payload.owner_department_id)
    for dataset_id in payload.datasets:
        get_dataset(session, dataset_id)
    known = set(session.scalars(sa.select(Need.id).where(Need.id.in_(payload.need_ids))))
    refuse_unknown(payload.need_ids, known, "need_ids", Sentence(N_("need")))
    position = len(_openings(session, list_id)) + 1
    opening = Opening(
        id=new_id("on", now),
        list_id=list_id,
        position=position,
        **payload.model_dump(),
        status=OpeningStatus.open.value,
        created_at=now,
        updated_at=now,
    )
    session.add(opening)
    row.updated_at = now
    read = announce_list(ctx, row)
    ctx.audit.record(
        session,
        action="opportunity_list.add_opening",
        resource_type="opening",
        resource_id=opening.id,
        department_id=opening.owner_department_id,
        details={"list_id": list_id, "title": opening.title, "deadline": opening.deadline.isoformat()},
    )
    return read


def _check_deadline(deadline: datetime, now: datetime) -> None:
    if deadline <= now:
        raise exceptions.DeadlineNotAhead(
            Sentence(N_("the deadline %(deadline)s is not after now"), deadline=deadline.isoformat()),
            errors=[
                FieldError(
                    path="/body/deadline", rule="minimum", message=Sentence(N_("must be in the future"))
                )
            ],
        )


def publish_list(ctx: Collaborators, *, actor: Principal, list_id: str) -> OpportunityListRead:
    """Publish a draft: it gets the next number and today's date, and is public from then on.

    A list without an opening whose deadline is still ahead is refused (409): it would invite
    proposals that can no longer be made."""
    ctx.audit.attempting("opportunity_list.publish", "opportunity_list", list_id)
    _operator(actor, Sentence(N_("publishes opportunity lists")))
    session = ctx.session
    row = list_of(session, list_id, reader=actor)
    if row.status != ListStatus.draft:
        raise exceptions.ListNotDraft(
            Sentence(
                N_("opportunity list %(list_id)r was published as number %(number)s"),
                list_id=list_id,
                number=row.number,
            )
        )
    now = ctx.clock()
    if not any(aware(opening.deadline) > now for opening in _openings(session, list_id)):
        raise exceptions.ListEmpty(
            Sentence(N_("opportunity list %(list_id)r has no opening with a deadline ahead"), list_id=list_id)
        )
    latest = session.scalar(sa.select(sa.func.max(OpportunityList.number)))
    row.number = (latest or 0) + 1
    row.status = ListStatus.published.value
    row.published_at = now
    row.updated_at = now
    read = announce_list(ctx, row)
    ctx.audit.record(
        session,
        action="opportunity_list.publish",
        resource_type="opportunity_list",
        resource_id=row.id,
        details={"number": row.number, "openings": len(read.openings)},
    )
    return read


def published_lists(session: Session, *, reader: Principal | None = None) -> list[OpportunityListRead]:
    """Published lists, newest number first; operators and admins also see drafts (last)."""
    query = sa.select(OpportunityList).order_by(
        OpportunityList.number.is_(None), OpportunityList.number.desc(), OpportunityList.id
    )
    if not is_staff(reader):
        query = query.where(OpportunityList.status == ListStatus.published.value)
    return [list_read(session, row) for row in session.scalars(query)]


def get_list(session: Session, *, list_id: str, reader: Principal | None = None) -> OpportunityListRead:
    return list_read(session, list_of(session, list_id, reader=reader))
