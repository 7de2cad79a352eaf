"""The needs board: principals file needs and join them, residents post through a moderated form,
the owning department (or an operator) answers, and followers are told.

A need's answering department is the owning department of its first domain
(``Domain.owner_department_id``) until an operator routes it elsewhere. An answer is:

- an **offer** of an existing dataset: every requester that is a scenario gets a draft access
  request for it (``origin`` ``need:<id>``) to submit as it is or changed; requesters of other
  kinds (departments, approvers, operators) are told of the dataset in the notice, and read it as
  their role allows;
- a **commit** to publish by a date: the need is fulfilled when a contract version registers
  whose contract lists the need under the ODCS custom property ``citybase.needs`` (a need id, a
  comma-separated string of them, or a list) and whose dataset belongs to the answering
  department; scenarios then get drafts for the new dataset. A commitment past its date is
  ``overdue``;
- a **decline** with a reason every requester sees.

Every change takes the request's :class:`~services.catalog.access.context.Collaborators`, names
what it attempts, authorizes, writes the need's history, audits, and announces the need on
``platform.catalog`` (and a notice to its followers for answers and comments). The caller's unit
of work commits.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from services.catalog import exceptions as catalog_exceptions
from services.catalog.access.context import Collaborators
from services.catalog.access.models import Scenario
from services.catalog.access.requests import prepare_access_request
from services.catalog.access.schemas import AccessRequestCreate, PurposeCategory, ScenarioStatus
from services.catalog.access.terms import contract_scope
from services.catalog.contracts.odcs import parse_contract
from services.catalog.models import ContractVersion, Dataset, Department, Domain
from services.catalog.needs import exceptions
from services.catalog.needs.models import (
    MissedSearch,
    Need,
    NeedComment,
    NeedFollower,
    NeedHistory,
    NeedRequester,
)
from services.catalog.needs.schemas import (
    CommentCreate,
    CommentRead,
    FollowRead,
    HistoryRead,
    MissedSearchRead,
    NeedCommit,
    NeedCreate,
    NeedDecline,
    NeedFiled,
    NeedJoin,
    NeedNotice,
    NeedOffer,
    NeedRead,
    NeedRoute,
    NeedStatus,
    RequesterRead,
    ResidentNeedCreate,
    SimilarNeed,
)
from services.catalog.needs.settings import NeedsSettings
from services.catalog.schemas import DatasetStatus
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, InvalidRequest

log = logging.getLogger(__name__)

NEEDS_PROPERTY = "citybase.needs"
"""The ODCS custom property by which a contract names the needs it fulfils."""

OPEN = (NeedStatus.open, NeedStatus.offered, NeedStatus.committed)
"""States in which a need is still waiting for its data: it may be joined and answered."""
_PUBLIC = tuple(status for status in NeedStatus if status not in (NeedStatus.held, NeedStatus.rejected))
_ID = re.compile(r"^nd-[0-9a-f]{22}$")


def _new_id(prefix: str, now: datetime) -> str:
    """Ids that sort by creation time (the board pages by id)."""
    return f"{prefix}-{int(now.timestamp() * 1000):012x}{secrets.token_hex(5)}"


def _is_staff(actor: Principal) -> bool:
    return actor.kind in (PrincipalKind.operator, PrincipalKind.admin)


# --- reads ----------------------------------------------------------------------------------


def _reads(session: Session, needs: Sequence[Need], now: datetime) -> list[NeedRead]:
    """The read shape of each need, its requesters and follower count fetched in two queries."""
    ids = [need.id for need in needs]
    requesters: dict[str, list[NeedRequester]] = {need_id: [] for need_id in ids}
    followers: dict[str, int] = {}
    if ids:
        for row in session.scalars(
            sa.select(NeedRequester).where(NeedRequester.need_id.in_(ids)).order_by(NeedRequester.id)
        ):
            requesters[row.need_id].append(row)
        followers = dict(
            session.execute(
                sa.select(NeedFollower.need_id, sa.func.count())
                .where(NeedFollower.need_id.in_(ids))
                .group_by(NeedFollower.need_id)
            ).all()
        )
    return [
        NeedRead(
            id=need.id,
            title=need.title,
            description=need.description,
            domains=need.domains,
            data_wanted=need.data_wanted,
            dataset_ids=need.dataset_ids,
            fields=need.fields,
            purpose_category=PurposeCategory(need.purpose_category),
            serves=need.serves,
            frequency=need.frequency,
            urgency=need.urgency,
            status=NeedStatus(need.status),
            department_id=need.department_id,
            filed_by=need.filed_by,
            from_resident=need.filed_by is None,
            answer=need.answer,
            commit_by=need.commit_by.date() if need.commit_by else None,
            overdue=is_overdue(need, now),
            moderation_reason=need.moderation_reason,
            requesters=[RequesterRead.model_validate(row) for row in requesters[need.id]],
            followers=followers.get(need.id, 0),
            created_at=need.created_at,
            updated_at=need.updated_at,
        )
        for need in needs
    ]


def is_overdue(need: Need, now: datetime) -> bool:
    """A commitment whose date has passed while the need still waits for its contract."""
    if need.status != NeedStatus.committed or need.commit_by is None:
        return False
    commit_by = need.commit_by if need.commit_by.tzinfo else need.commit_by.replace(tzinfo=now.tzinfo)
    return commit_by + timedelta(days=1) <= now


def _need_of(session: Session, need_id: str, *, for_update: bool = False) -> Need:
    query = sa.select(Need).where(Need.id == need_id)
    if for_update:
        query = query.with_for_update()
    need = session.scalars(query).one_or_none()
    if need is None:
        raise exceptions.NeedNotFound(Sentence(N_("no need %(need_id)r"), need_id=need_id))
    return need


def _visible_need(session: Session, actor: Principal | None, need_id: str, **lock: bool) -> Need:
    """A need as the actor may see it: held and rejected ones only to operators (a 404 to others,
    so that a resident's unmoderated text is not readable by id)."""
    need = _need_of(session, need_id, **lock)
    if need.status not in _PUBLIC and not (actor is not None and _is_staff(actor)):
        raise exceptions.NeedNotFound(Sentence(N_("no need %(need_id)r"), need_id=need_id))
    return need


def get_need(ctx: Collaborators, *, actor: Principal, need_id: str) -> NeedRead:
    return _reads(ctx.session, [_visible_need(ctx.session, actor, need_id)], ctx.clock())[0]


@dataclass(frozen=True)
class NeedFilter:
    status: NeedStatus | None = None
    domain: str | None = None
    department: str | None = None
    q: str | None = None
    overdue: bool | None = None


def list_needs(
    ctx: Collaborators, *, actor: Principal, filters: NeedFilter, limit: int = 50, cursor: str | None = None
) -> tuple[list[NeedRead], str | None]:
    """The board, newest first: every need but held and rejected ones, which operators see (their
    moderation queue is ``status=held``)."""
    session, now = ctx.session, ctx.clock()
    query = sa.select(Need).order_by(Need.id.desc())
    if not _is_staff(actor):
        query = query.where(Need.status.in_([status.value for status in _PUBLIC]))
    if cursor:
        if not _ID.match(cursor):
            raise catalog_exceptions.InvalidCursor(Sentence(N_("the cursor was not issued by this API")))
        query = query.where(Need.id < cursor)
    if filters.status:
        query = query.where(Need.status == filters.status.value)
    if filters.domain:
        query = query.where(sa.cast(Need.domains, sa.Text).like(f'%"{_like_safe(filters.domain)}"%'))
    if filters.department:
        query = query.where(Need.department_id == filters.department)
    for word in _words(filters.q or ""):
        query = query.where(Need.search_text.like(f"%{_like_safe(word)}%", escape="\\"))
    if filters.overdue is not None:
        late = sa.and_(
            Need.status == NeedStatus.committed.value,
            Need.commit_by.is_not(None),
            Need.commit_by <= now - timedelta(days=1),
        )
        query = query.where(late if filters.overdue else sa.not_(late))
    rows = list(session.scalars(query.limit(limit + 1)))
    page = rows[:limit]
    return _reads(session, page, now), (page[-1].id if len(rows) > limit and page else None)


def history(ctx: Collaborators, *, actor: Principal | None, need_id: str) -> list[HistoryRead]:
    """Every step of the need, oldest first."""
    need = _visible_need(ctx.session, actor, need_id)
    rows = ctx.session.scalars(
        sa.select(NeedHistory).where(NeedHistory.need_id == need.id).order_by(NeedHistory.id)
    )
    return [HistoryRead.model_validate(row) for row in rows]


def list_comments(ctx: Collaborators, *, actor: Principal, need_id: str) -> list[CommentRead]:
    """The thread, oldest first; a hidden comment keeps its place and reason, not its text."""
    need = _visible_need(ctx.session, actor, need_id)
    rows = ctx.session.scalars(
        sa.select(NeedComment).where(NeedComment.need_id == need.id).order_by(NeedComment.id)
    )
    return [_comment_read(row) for row in rows]


def _comment_read(comment: NeedComment) -> CommentRead:
    return CommentRead(
        id=comment.id,
        need_id=comment.need_id,
        author_id=comment.author_id,
        body=None if comment.hidden_reason else comment.body,
        hidden_reason=comment.hidden_reason,
        created_at=comment.created_at,
    )


# --- similar needs --------------------------------------------------------------------------

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "of",
        "on",
        "or",
        "per",
        "the",
        "to",
        "with",
        "we",
        "our",
        "data",
        "need",
    ]
)


def _words(text: str) -> list[str]:
    """The words of a text as the board indexes them: lowercased, punctuation separating words."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return list(dict.fromkeys(word for word in words if word not in _STOPWORDS and len(word) > 1))


def _like_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_text(need: Need) -> str:
    return " ".join(_words(" ".join([need.title, need.description, need.data_wanted, *need.domains])))


def similar_needs(session: Session, need: Need, limit: int) -> list[SimilarNeed]:
    """Open needs sharing words with ``need``'s title and data wanted, most shared first: plain
    ``LIKE`` over the stored word list, the same on SQLite and PostgreSQL, bounded to the newest
    200 candidates."""
    words = _words(f"{need.title} {need.data_wanted}")[:12]
    if not words:
        return []
    candidates = list(
        session.scalars(
            sa.select(Need)
            .where(
                Need.id != need.id,
                Need.status.in_([status.value for status in OPEN]),
                sa.or_(*(Need.search_text.like(f"%{_like_safe(word)}%", escape="\\") for word in words)),
            )
            .order_by(Need.id.desc())
            .limit(200)
        )
    )
    scored = sorted(
        (
            (sum(word in candidate.search_text.split() for word in words), candidate)
            for candidate in candidates
        ),
        key=lambda pair: (-pair[0], pair[1].id),
    )
    counts = _requester_counts(session, [candidate.id for score, candidate in scored[:limit]])
    return [
        SimilarNeed(
            id=candidate.id,
            title=candidate.title,
            status=NeedStatus(candidate.status),
            requesters=counts.get(candidate.id, 0),
            score=score,
        )
        for score, candidate in scored[:limit]
        if score > 0
    ]


def _requester_counts(session: Session, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    return dict(
        session.execute(
            sa.select(NeedRequester.need_id, sa.func.count())
            .where(NeedRequester.need_id.in_(ids))
            .group_by(NeedRequester.need_id)
        ).all()
    )


# --- filing ---------------------------------------------------------------------------------


def _answering_department(session: Session, domains: list[str]) -> str | None:
    """The owning department of the first domain that exists; each domain must exist."""
    known = {
        domain.id: domain.owner_department_id
        for domain in session.scalars(sa.select(Domain).where(Domain.id.in_(domains)))
    }
    catalog_exceptions.refuse_unknown(domains, known.keys(), "domains", Sentence(N_("domain")))
    return next((known[domain] for domain in domains if known[domain]), None)


def _check_datasets(session: Session, dataset_ids: list[str]) -> None:
    found = set(session.scalars(sa.select(Dataset.id).where(Dataset.id.in_(dataset_ids))))
    catalog_exceptions.refuse_unknown(dataset_ids, found, "dataset_ids", Sentence(N_("dataset")))


def file_need(
    ctx: Collaborators, *, actor: Principal, payload: NeedCreate, settings: NeedsSettings
) -> NeedFiled:
    """Any principal files a need; it is open at once, the filer its first requester and follower.
    The answer suggests similar open needs to join instead."""
    ctx.audit.attempting("need.file", "need", "-", purpose=payload.purpose)
    domains = list(dict.fromkeys(payload.domains))
    department = _answering_department(ctx.session, domains)
    dataset_ids = list(dict.fromkeys(payload.dataset_ids))
    _check_datasets(ctx.session, dataset_ids)
    need = _new_need(
        ctx,
        title=payload.title,
        description=payload.description,
        domains=domains,
        data_wanted=payload.data_wanted,
        dataset_ids=dataset_ids,
        fields=list(dict.fromkeys(payload.fields)),
        purpose_category=payload.purpose_category,
        serves=payload.serves,
        frequency=payload.frequency.value,
        urgency=payload.urgency.value,
        status=NeedStatus.open,
        department_id=department,
        filed_by=actor.id,
    )
    _add_requester(ctx, need, actor, payload.purpose)
    _add_follower(ctx.session, need.id, actor.id, ctx.clock())
    _changed(ctx, need, "need.file", actor, {"purpose": payload.purpose})
    similar = similar_needs(ctx.session, need, settings.similar_limit)
    return NeedFiled(need=_reads(ctx.session, [need], ctx.clock())[0], similar=similar)


def _new_need(ctx: Collaborators, **columns: Any) -> Need:
    now = ctx.clock()
    status: NeedStatus = columns.pop("status")
    purpose_category: PurposeCategory = columns.pop("purpose_category")
    need = Need(
        id=_new_id("nd", now),
        status=status.value,
        purpose_category=purpose_category.value,
        answer=None,
        created_at=now,
        updated_at=now,
        **columns,
    )
    need.search_text = _search_text(need)
    ctx.session.add(need)
    ctx.session.flush()
    return need


def _add_requester(ctx: Collaborators, need: Need, actor: Principal, purpose: str) -> None:
    ctx.session.add(
        NeedRequester(
            need_id=need.id,
            principal_id=actor.id,
            principal_kind=actor.kind.value,
            purpose=purpose,
            created_at=ctx.clock(),
        )
    )


def _add_follower(session: Session, need_id: str, principal_id: str, now: datetime) -> bool:
    exists = session.scalars(
        sa.select(NeedFollower.id).where(
            NeedFollower.need_id == need_id, NeedFollower.principal_id == principal_id
        )
    ).first()
    if exists is not None:
        return False
    session.add(NeedFollower(need_id=need_id, principal_id=principal_id, created_at=now))
    session.flush()
    return True


def address_hash(settings: NeedsSettings, client_address: str) -> str:
    """A keyed hash of a client address: enough to count its posts, not to recover it."""
    return hmac.new(settings.form_address_key.encode(), client_address.encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def post_resident_need(
    ctx: Collaborators, *, settings: NeedsSettings, client_address: str, payload: ResidentNeedCreate
) -> NeedRead:
    """A resident's need, without a key: at most ``form_limit`` per client address per window
    (429 with Retry-After beyond), held until an operator accepts or rejects it."""
    ctx.audit.attempting("need.post", "need", "-")
    now, source = ctx.clock(), address_hash(settings, client_address)
    window_start = now - timedelta(seconds=settings.form_window_s)
    recent = list(
        ctx.session.scalars(
            sa.select(Need.created_at)
            .where(Need.submitted_from == source, Need.created_at > window_start)
            .order_by(Need.created_at)
        )
    )
    if len(recent) >= settings.form_limit:
        oldest = recent[0] if recent[0].tzinfo else recent[0].replace(tzinfo=now.tzinfo)
        retry = max(1, int((oldest - window_start).total_seconds()) + 1)
        raise exceptions.FormFlood(
            Sentence(
                N_("at most %(limit)s needs per %(window_s)s s from one address"),
                limit=settings.form_limit,
                window_s=settings.form_window_s,
            ),
            retry_after_s=retry,
        )
    domains = list(dict.fromkeys(payload.domains))
    need = _new_need(
        ctx,
        title=payload.title,
        description=payload.description,
        domains=domains,
        data_wanted=payload.data_wanted,
        dataset_ids=[],
        fields=[],
        purpose_category=PurposeCategory.public_service,
        serves=payload.serves,
        frequency=payload.frequency.value,
        urgency=payload.urgency.value,
        status=NeedStatus.held,
        department_id=_answering_department(ctx.session, domains),
        filed_by=None,
        resident_contact=payload.contact,
        submitted_from=source,
    )
    _changed(ctx, need, "need.post", None, {})
    return _reads(ctx.session, [need], now)[0]


# --- moderation -----------------------------------------------------------------------------


def _operator(actor: Principal, action: Sentence) -> None:
    """Only staff may do ``action`` (a verb phrase: ``Sentence(N_("route a need"))``)."""
    if not _is_staff(actor):
        raise exceptions.OperatorsOnly(
            Sentence(
                N_("only an operator may %(action)s; a %(kind)s may not"), action=action, kind=actor.kind
            )
        )


def _in_state(need: Need, states: Iterable[NeedStatus], action: Sentence) -> None:
    """The need is in one of ``states``, else a 409 saying it cannot take ``action`` (a verb
    phrase: ``Sentence(N_("be joined"))``)."""
    if NeedStatus(need.status) not in tuple(states):
        raise exceptions.NeedStateConflict(
            Sentence(
                N_("need %(need_id)s is %(status)s: it cannot %(action)s"),
                need_id=need.id,
                status=need.status,
                action=action,
            )
        )


def moderate_need(
    ctx: Collaborators, *, actor: Principal, need_id: str, accept: bool, reason: str | None
) -> NeedRead:
    """An operator accepts a held resident's need onto the board, or rejects it with a reason."""
    action = "need.accept" if accept else "need.reject"
    ctx.audit.attempting(action, "need", need_id)
    _operator(actor, Sentence(N_("moderate a need")))
    need = _need_of(ctx.session, need_id, for_update=True)
    _in_state(need, [NeedStatus.held], Sentence(N_("be accepted")) if accept else Sentence(N_("be rejected")))
    need.status = (NeedStatus.open if accept else NeedStatus.rejected).value
    need.moderation_reason = reason
    _changed(ctx, need, action, actor, {"reason": reason})
    return _reads(ctx.session, [need], ctx.clock())[0]


# --- joining, following, the thread ---------------------------------------------------------


def join_need(ctx: Collaborators, *, actor: Principal, need_id: str, payload: NeedJoin) -> NeedRead:
    """Add the actor's demand, with its own purpose, to an open need; the joiner follows it."""
    ctx.audit.attempting("need.join", "need", need_id, purpose=payload.purpose)
    need = _visible_need(ctx.session, actor, need_id, for_update=True)
    _in_state(need, OPEN, Sentence(N_("be joined")))
    joined = ctx.session.scalars(
        sa.select(NeedRequester.id).where(
            NeedRequester.need_id == need.id, NeedRequester.principal_id == actor.id
        )
    ).first()
    if joined is not None:
        raise exceptions.AlreadyJoined(
            Sentence(
                N_("%(principal_id)s is already a requester of need %(need_id)s"),
                principal_id=actor.id,
                need_id=need.id,
            )
        )
    _add_requester(ctx, need, actor, payload.purpose)
    _add_follower(ctx.session, need.id, actor.id, ctx.clock())
    _changed(ctx, need, "need.join", actor, {"purpose": payload.purpose})
    return _reads(ctx.session, [need], ctx.clock())[0]


def follow_need(ctx: Collaborators, *, actor: Principal, need_id: str, follow: bool) -> FollowRead:
    """Anyone with a key follows (or stops following) a need's answers and comments."""
    action = "need.follow" if follow else "need.unfollow"
    ctx.audit.attempting(action, "need", need_id)
    need = _visible_need(ctx.session, actor, need_id)
    if follow:
        changed = _add_follower(ctx.session, need.id, actor.id, ctx.clock())
    else:
        changed = bool(
            ctx.session.execute(
                sa.delete(NeedFollower).where(
                    NeedFollower.need_id == need.id, NeedFollower.principal_id == actor.id
                )
            ).rowcount  # type: ignore[attr-defined]
        )
    if changed:
        ctx.audit.record(ctx.session, action=action, resource_type="need", resource_id=need.id)
    return FollowRead(need_id=need.id, principal_id=actor.id, following=follow)


def add_comment(ctx: Collaborators, *, actor: Principal, need_id: str, payload: CommentCreate) -> CommentRead:
    """A comment in the need's thread by anyone with a key; followers are told."""
    ctx.audit.attempting("need.comment", "need", need_id)
    need = _visible_need(ctx.session, actor, need_id)
    _in_state(need, _PUBLIC, Sentence(N_("be discussed")))
    now = ctx.clock()
    comment = NeedComment(
        id=_new_id("nc", now), need_id=need.id, author_id=actor.id, body=payload.body, created_at=now
    )
    ctx.session.add(comment)
    ctx.session.flush()
    _history(ctx, need, "need.comment", actor, {"comment_id": comment.id})
    ctx.audit.record(
        ctx.session,
        action="need.comment",
        resource_type="need",
        resource_id=need.id,
        details={"comment_id": comment.id},
    )
    _notify(ctx, need, "comment", {"comment_id": comment.id, "author_id": actor.id})
    return _comment_read(comment)


def hide_comment(
    ctx: Collaborators, *, actor: Principal, need_id: str, comment_id: str, reason: str
) -> CommentRead:
    """An operator hides a comment, with a reason shown in its place."""
    ctx.audit.attempting("need.comment.hide", "need", need_id, details={"comment_id": comment_id})
    _operator(actor, Sentence(N_("hide a comment")))
    need = _need_of(ctx.session, need_id)
    comment = ctx.session.get(NeedComment, comment_id)
    if comment is None or comment.need_id != need.id:
        raise exceptions.CommentNotFound(
            Sentence(
                N_("no comment %(comment_id)r on need %(need_id)s"), comment_id=comment_id, need_id=need.id
            )
        )
    if comment.hidden_reason:
        raise exceptions.NeedStateConflict(
            Sentence(N_("comment %(comment_id)s is already hidden"), comment_id=comment_id)
        )
    comment.hidden_reason, comment.hidden_by = reason, actor.id
    ctx.session.flush()
    _history(ctx, need, "need.comment.hide", actor, {"comment_id": comment.id, "reason": reason})
    ctx.audit.record(
        ctx.session,
        action="need.comment.hide",
        resource_type="need",
        resource_id=need.id,
        details={"comment_id": comment.id, "reason": reason},
    )
    return _comment_read(comment)


# --- answers --------------------------------------------------------------------------------


def _may_answer(actor: Principal, need: Need) -> None:
    if _is_staff(actor):
        return
    if (
        actor.kind in (PrincipalKind.department, PrincipalKind.approver)
        and actor.department_id is not None
        and actor.department_id == need.department_id
    ):
        return
    if need.department_id is None:
        raise exceptions.NotTheAnsweringDepartment(
            Sentence(N_("need %(need_id)s is answered by an operator (no department yet)"), need_id=need.id)
        )
    raise exceptions.NotTheAnsweringDepartment(
        Sentence(
            N_("need %(need_id)s is answered by %(department_id)r"),
            need_id=need.id,
            department_id=need.department_id,
        )
    )


def _answerable(ctx: Collaborators, actor: Principal, need_id: str, action: str) -> Need:
    ctx.audit.attempting(action, "need", need_id)
    need = _visible_need(ctx.session, actor, need_id, for_update=True)
    ctx.audit.attempting(action, "need", need.id, department_id=need.department_id)
    _may_answer(actor, need)
    _in_state(need, OPEN, Sentence(N_("be answered")))
    return need


def route_need(ctx: Collaborators, *, actor: Principal, need_id: str, payload: NeedRoute) -> NeedRead:
    """An operator sends an open need to the department that should answer it."""
    ctx.audit.attempting("need.route", "need", need_id)
    _operator(actor, Sentence(N_("route a need")))
    need = _visible_need(ctx.session, actor, need_id, for_update=True)
    _in_state(need, OPEN, Sentence(N_("be routed")))
    if ctx.session.get(Department, payload.department_id) is None:
        raise InvalidRequest(
            Sentence(N_("no department %(department_id)r"), department_id=payload.department_id),
            errors=[
                FieldError(
                    path="/body/department_id", rule="exists", message=Sentence(N_("no such department"))
                )
            ],
        )
    previous, need.department_id = need.department_id, payload.department_id
    _changed(
        ctx, need, "need.route", actor, {"from": previous, "to": need.department_id, "reason": payload.reason}
    )
    return _reads(ctx.session, [need], ctx.clock())[0]


def offer_dataset(ctx: Collaborators, *, actor: Principal, need_id: str, payload: NeedOffer) -> NeedRead:
    """Offer an existing dataset: each scenario among the requesters gets a draft access request
    for it; the other requesters are told of the dataset in the notice."""
    need = _answerable(ctx, actor, need_id, "need.offer")
    dataset = ctx.session.get(Dataset, payload.dataset_id)
    if dataset is None:
        raise InvalidRequest(
            Sentence(N_("no dataset %(dataset_id)r"), dataset_id=payload.dataset_id),
            errors=[
                FieldError(path="/body/dataset_id", rule="exists", message=Sentence(N_("no such dataset")))
            ],
        )
    if not _is_staff(actor) and dataset.owner_department_id != actor.department_id:
        raise exceptions.NotTheAnsweringDepartment(
            Sentence(
                N_("a department offers its own datasets; %(dataset_id)s belongs to %(department_id)s"),
                dataset_id=dataset.id,
                department_id=dataset.owner_department_id,
            )
        )
    if dataset.status in (DatasetStatus.retired, DatasetStatus.deprecated):
        raise exceptions.NeedStateConflict(
            Sentence(
                N_("dataset %(dataset_id)s is %(status)s: it cannot be offered"),
                dataset_id=dataset.id,
                status=dataset.status,
            )
        )
    scope = contract_scope(ctx.session, dataset)
    fields = (
        payload.fields or [field for field in need.fields if field in scope.fields] or sorted(scope.fields)
    )
    catalog_exceptions.refuse_unknown(
        fields, scope.fields, "fields", Sentence(N_("field of the dataset's contract"))
    )
    drafts, others = _prepare_drafts(
        ctx, actor, need, dataset.id, fields, payload.duration_days, "need.offer"
    )
    need.status = NeedStatus.offered.value
    need.answer = {
        "kind": "offer",
        "by": actor.id,
        "dataset_id": dataset.id,
        "fields": fields,
        "note": payload.note,
        "drafts": drafts,
        "told": others,
    }
    _changed(ctx, need, "need.offer", actor, need.answer)
    _notify(ctx, need, "answer", need.answer)
    return _reads(ctx.session, [need], ctx.clock())[0]


def _prepare_drafts(
    ctx: Collaborators,
    actor: Principal,
    need: Need,
    dataset_id: str,
    fields: list[str] | None,
    days: int,
    action: str,
) -> tuple[dict[str, str], list[str]]:
    """A draft access request for each requester that is an active scenario ({scenario: request
    id}); the others (other kinds, suspended scenarios) are listed as told only."""
    requesters = list(
        ctx.session.scalars(
            sa.select(NeedRequester).where(NeedRequester.need_id == need.id).order_by(NeedRequester.id)
        )
    )
    scenarios = {
        scenario.id: scenario
        for scenario in ctx.session.scalars(
            sa.select(Scenario).where(Scenario.id.in_([row.principal_id for row in requesters]))
        )
    }
    if fields is None:
        fields = sorted(contract_scope(ctx.session, _dataset(ctx.session, dataset_id)).fields)
    drafts: dict[str, str] = {}
    others: list[str] = []
    for requester in requesters:
        scenario = scenarios.get(requester.principal_id)
        if scenario is None or scenario.status != ScenarioStatus.active:
            others.append(requester.principal_id)
            continue
        draft = prepare_access_request(
            ctx,
            actor=actor,
            scenario_id=scenario.id,
            payload=AccessRequestCreate(
                dataset_id=dataset_id,
                purpose=requester.purpose,
                purpose_category=PurposeCategory(need.purpose_category),
                fields=fields,
                duration_days=min(days, ctx.settings.max_duration_days),
            ),
            origin=f"need:{need.id}",
        )
        drafts[scenario.id] = draft.id
    # Each draft named its own attempt; what fails from here on is the answer's.
    ctx.audit.attempting(action, "need", need.id, department_id=need.department_id)
    return drafts, others


def _dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise catalog_exceptions.DatasetNotFound(
            Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id)
        )
    return dataset


def commit_to_publish(ctx: Collaborators, *, actor: Principal, need_id: str, payload: NeedCommit) -> NeedRead:
    """Commit to register a contract for the need by a date; the need is fulfilled when a
    contract naming it under ``citybase.needs`` registers."""
    need = _answerable(ctx, actor, need_id, "need.commit")
    today = ctx.clock().date()
    if payload.commit_by < today:
        raise InvalidRequest(
            Sentence(N_("a commitment's date cannot be in the past")),
            errors=[
                FieldError(
                    path="/body/commit_by",
                    rule="minimum",
                    message=Sentence(N_("%(today)s or later"), today=today.isoformat()),
                )
            ],
        )
    need.status = NeedStatus.committed.value
    need.commit_by = datetime.combine(payload.commit_by, datetime.min.time(), tzinfo=ctx.clock().tzinfo)
    need.answer = {
        "kind": "commit",
        "by": actor.id,
        "commit_by": payload.commit_by.isoformat(),
        "dataset_id": payload.dataset_id,
        "note": payload.note,
        "how": f"register a contract with the custom property {NEEDS_PROPERTY}: {need.id}",
    }
    _changed(ctx, need, "need.commit", actor, need.answer)
    _notify(ctx, need, "answer", need.answer)
    return _reads(ctx.session, [need], ctx.clock())[0]


def decline_need(ctx: Collaborators, *, actor: Principal, need_id: str, payload: NeedDecline) -> NeedRead:
    """Decline the need, with a reason every requester sees."""
    need = _answerable(ctx, actor, need_id, "need.decline")
    need.status = NeedStatus.declined.value
    need.answer = {"kind": "decline", "by": actor.id, "reason": payload.reason}
    _changed(ctx, need, "need.decline", actor, need.answer)
    _notify(ctx, need, "answer", need.answer)
    return _reads(ctx.session, [need], ctx.clock())[0]


def referenced_needs(document: str) -> list[str]:
    """The need ids a contract names under ``citybase.needs``: a list, or a comma-separated string."""
    for custom in parse_contract(document).model.customProperties or ():
        if custom.property == NEEDS_PROPERTY:
            value = custom.value
            items = value if isinstance(value, list) else str(value or "").split(",")
            return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
    return []


def fulfil_referenced_needs(ctx: Collaborators, *, actor: Principal, version: ContractVersion) -> list[str]:
    """Called for every registered contract version: each need it names that is still waiting
    and is answered by the dataset's department is fulfilled, its scenarios get drafts for the
    dataset and its followers are told. Needs of another department, or closed, are left as
    they are (the registration itself stands). Returns the fulfilled ids."""
    if NEEDS_PROPERTY not in version.document:
        return []
    dataset = _dataset(ctx.session, version.dataset_id)
    fulfilled = []
    for need_id in referenced_needs(version.document):
        need = ctx.session.scalars(sa.select(Need).where(Need.id == need_id).with_for_update()).one_or_none()
        if need is None or NeedStatus(need.status) not in OPEN:
            continue
        if need.department_id != dataset.owner_department_id:
            continue
        drafts, others = _prepare_drafts(ctx, actor, need, dataset.id, None, 365, "contract_version.register")
        need.status = NeedStatus.fulfilled.value
        need.answer = {
            **(need.answer or {}),
            "fulfilled_by": {"dataset_id": dataset.id, "version": version.version},
            "drafts": drafts,
            "told": others,
        }
        _changed(ctx, need, "need.fulfil", actor, need.answer)
        _notify(ctx, need, "fulfilled", need.answer)
        fulfilled.append(need.id)
    return fulfilled


# --- history, audit, events -----------------------------------------------------------------


def _history(
    ctx: Collaborators, need: Need, action: str, actor: Principal | None, details: dict[str, Any]
) -> None:
    ctx.session.add(
        NeedHistory(
            need_id=need.id,
            action=action,
            actor_id=actor.id if actor else None,
            status=need.status,
            details=details,
            at=ctx.clock(),
        )
    )


def _changed(
    ctx: Collaborators, need: Need, action: str, actor: Principal | None, details: dict[str, Any]
) -> None:
    """What follows every change of a need: its history, the audit entry and its event."""
    need.updated_at = ctx.clock()
    if action != "need.join":
        need.search_text = _search_text(need)
    ctx.session.flush()
    _history(ctx, need, action, actor, details)
    ctx.audit.record(
        ctx.session,
        action=action,
        resource_type="need",
        resource_id=need.id,
        department_id=need.department_id,
        details={"status": need.status, **details},
    )
    ctx.session.flush()
    ctx.events.publish(ctx.session, catalog_events.NEED, need.id, _reads(ctx.session, [need], ctx.clock())[0])


def _notify(ctx: Collaborators, need: Need, kind: str, summary: dict[str, Any]) -> None:
    """Tell the need's followers, by a notice event on ``platform.catalog`` naming them."""
    followers = list(
        ctx.session.scalars(
            sa.select(NeedFollower.principal_id)
            .where(NeedFollower.need_id == need.id)
            .order_by(NeedFollower.id)
        )
    )
    now = ctx.clock()
    notice = NeedNotice(
        id=_new_id("nn", now),
        need_id=need.id,
        kind=kind,
        status=NeedStatus(need.status),
        followers=followers,
        summary=summary,
        at=now,
    )
    ctx.events.publish(ctx.session, catalog_events.NEED_NOTICE, notice.id, notice)


# --- searches that found nothing ------------------------------------------------------------

_EMAIL = re.compile(r"\S+@\S+")
_LONG_NUMBER = re.compile(r"^\+?[\d-]{7,}[\dxX]?$")
"""Phone numbers (7 digits and more, with + and -) and id numbers (15 to 18 digits, an X last)."""
_ID_NUMBER = re.compile(r"^\d{6,17}[\dxX]$")


def normalised_query(q: str) -> str | None:
    """A search's text as counted: lowercased, spaces collapsed, words that look like personal
    data (an e-mail address, a phone or id number) dropped; None when nothing is left."""
    words = [
        word
        for word in q.lower().split()
        if not (_EMAIL.search(word) or _LONG_NUMBER.match(word) or _ID_NUMBER.match(word))
    ]
    text = " ".join(words)[:200].strip()
    return text or None


def record_missed_search(session: Session, q: str, now: datetime) -> None:
    """Count a catalog search that found nothing: one upsert, the same on SQLite and PostgreSQL,
    in the search's autocommit session. A count that cannot be written (a locked SQLite file) is
    logged and lost: it never fails the search."""
    query = normalised_query(q)
    if query is None:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(MissedSearch).values(query=query, count=1, first_seen=now, last_seen=now)
    try:
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[MissedSearch.query],
                set_={"count": MissedSearch.count + 1, "last_seen": now},
            )
        )
    except SQLAlchemyError as error:
        log.warning("could not count a search that found nothing: %s", error)


def candidate_needs(ctx: Collaborators, *, actor: Principal, limit: int = 50) -> list[MissedSearchRead]:
    """For operators: the searches that found nothing, most asked first, as candidate needs."""
    _operator(actor, Sentence(N_("read the searches that found nothing")))
    rows = ctx.session.scalars(
        sa.select(MissedSearch)
        .order_by(MissedSearch.count.desc(), MissedSearch.last_seen.desc())
        .limit(limit)
    )
    return [MissedSearchRead.model_validate(row) for row in rows]
