"""HTTP routes of the needs board under ``/v1/needs``. Each parses the request, calls one service
function (which authorizes, audits and writes) and answers. Who may call which route is in
docs/authorization.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from services.catalog.access.deps import AccessDep
from services.catalog.deps import OperatorDep, OptionalPrincipalDep, ReaderDep
from services.catalog.needs import service
from services.catalog.needs.deps import ClientAddressDep, NeedsSettingsDep, NeedWebhookTargetsDep
from services.catalog.needs.schemas import (
    CommentCreate,
    CommentHide,
    CommentRead,
    FollowCreate,
    FollowRead,
    HistoryRead,
    MissedSearchRead,
    NeedCommit,
    NeedCreate,
    NeedDecline,
    NeedFiled,
    NeedJoin,
    NeedModeration,
    NeedOffer,
    NeedPage,
    NeedRead,
    NeedRejection,
    NeedRoute,
    NeedStatus,
    PushRead,
    ResidentNeedCreate,
)

router = APIRouter(prefix="/v1", tags=["needs"])

Short = Annotated[str | None, Query(max_length=64)]


@router.post(
    "/needs",
    response_model=NeedFiled,
    status_code=status.HTTP_201_CREATED,
    summary="File a need (any key); the answer suggests similar open needs to join instead",
)
def file_need(
    payload: NeedCreate, ctx: AccessDep, caller: ReaderDep, settings: NeedsSettingsDep
) -> NeedFiled:
    return service.file_need(ctx, actor=caller, payload=payload, settings=settings)


@router.post(
    "/needs/residents",
    response_model=NeedRead,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A resident's need, without a key: rate-limited per client address (429 with "
    "Retry-After), held until an operator accepts it",
)
def post_resident_need(
    payload: ResidentNeedCreate,
    ctx: AccessDep,
    settings: NeedsSettingsDep,
    address: ClientAddressDep,
    _: OptionalPrincipalDep,
) -> NeedRead:
    return service.post_resident_need(ctx, settings=settings, client_address=address, payload=payload)


@router.get("/needs", response_model=NeedPage, summary="The needs board, newest first")
def list_needs(
    ctx: AccessDep,
    caller: ReaderDep,
    status_: Annotated[NeedStatus | None, Query(alias="status")] = None,
    domain: Short = None,
    department: Short = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Short = None,
) -> NeedPage:
    filters = service.NeedFilter(status=status_, domain=domain, department=department, q=q, overdue=overdue)
    items, next_cursor = service.list_needs(ctx, actor=caller, filters=filters, limit=limit, cursor=cursor)
    return NeedPage(items=items, next_cursor=next_cursor)


@router.get(
    "/needs/candidates",
    response_model=list[MissedSearchRead],
    summary="Catalog searches that found nothing, most asked first: candidate needs (operators)",
)
def candidate_needs(
    ctx: AccessDep, caller: OperatorDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[MissedSearchRead]:
    return service.candidate_needs(ctx, actor=caller, limit=limit)


@router.get("/needs/{need_id}", response_model=NeedRead, summary="One need, its requesters and answer")
def get_need(need_id: str, ctx: AccessDep, caller: ReaderDep) -> NeedRead:
    return service.get_need(ctx, actor=caller, need_id=need_id)


@router.get("/needs/{need_id}/history", response_model=list[HistoryRead], summary="Every step of a need")
def need_history(need_id: str, ctx: AccessDep, caller: ReaderDep) -> list[HistoryRead]:
    return service.history(ctx, actor=caller, need_id=need_id)


@router.post("/needs/{need_id}/join", response_model=NeedRead, summary="Add your demand, with your purpose")
def join_need(need_id: str, payload: NeedJoin, ctx: AccessDep, caller: ReaderDep) -> NeedRead:
    return service.join_need(ctx, actor=caller, need_id=need_id, payload=payload)


@router.post(
    "/needs/{need_id}/follow",
    response_model=FollowRead,
    summary="Be told of answers and comments, on platform.catalog and, with a webhook, by a signed "
    "POST (the secret is shown in this answer only); following without a webhook removes it",
)
def follow_need(
    need_id: str,
    ctx: AccessDep,
    caller: ReaderDep,
    targets: NeedWebhookTargetsDep,
    payload: Annotated[FollowCreate, Body(default_factory=FollowCreate)],
) -> FollowRead:
    return service.follow_need(
        ctx, actor=caller, need_id=need_id, follow=True, webhook=payload.webhook, targets=targets
    )


@router.get(
    "/needs/{need_id}/follow",
    response_model=FollowRead,
    summary="Whether you follow a need, and where its notices are pushed (never the secret)",
)
def following(need_id: str, ctx: AccessDep, caller: ReaderDep) -> FollowRead:
    return service.following(ctx, actor=caller, need_id=need_id)


@router.delete(
    "/needs/{need_id}/follow", response_model=FollowRead, summary="Stop following a need (and its webhook)"
)
def delete_follow(need_id: str, ctx: AccessDep, caller: ReaderDep) -> FollowRead:
    return service.follow_need(ctx, actor=caller, need_id=need_id, follow=False)


@router.post("/needs/{need_id}/unfollow", response_model=FollowRead, summary="Stop following a need")
def unfollow_need(need_id: str, ctx: AccessDep, caller: ReaderDep) -> FollowRead:
    return service.follow_need(ctx, actor=caller, need_id=need_id, follow=False)


@router.get(
    "/needs/{need_id}/follow/deliveries",
    response_model=list[PushRead],
    summary="Your latest pushes of the need's notices to your webhook, newest first: status, attempts, "
    "last error",
)
def follow_deliveries(
    need_id: str, ctx: AccessDep, caller: ReaderDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[PushRead]:
    return service.follow_deliveries(ctx, actor=caller, need_id=need_id, limit=limit)


@router.get("/needs/{need_id}/comments", response_model=list[CommentRead], summary="A need's thread")
def list_comments(need_id: str, ctx: AccessDep, caller: ReaderDep) -> list[CommentRead]:
    return service.list_comments(ctx, actor=caller, need_id=need_id)


@router.post(
    "/needs/{need_id}/comments",
    response_model=CommentRead,
    status_code=status.HTTP_201_CREATED,
    summary="Comment on a need (any key); its followers are told",
)
def add_comment(need_id: str, payload: CommentCreate, ctx: AccessDep, caller: ReaderDep) -> CommentRead:
    return service.add_comment(ctx, actor=caller, need_id=need_id, payload=payload)


@router.post(
    "/needs/{need_id}/comments/{comment_id}/hide",
    response_model=CommentRead,
    summary="Hide a comment, with a reason shown in its place (operators)",
)
def hide_comment(
    need_id: str, comment_id: str, payload: CommentHide, ctx: AccessDep, caller: OperatorDep
) -> CommentRead:
    return service.hide_comment(
        ctx, actor=caller, need_id=need_id, comment_id=comment_id, reason=payload.reason
    )


@router.post(
    "/needs/{need_id}/accept", response_model=NeedRead, summary="Accept a held resident's need (operators)"
)
def accept_need(
    need_id: str,
    ctx: AccessDep,
    caller: OperatorDep,
    payload: Annotated[NeedModeration, Body(default_factory=NeedModeration)],
) -> NeedRead:
    return service.moderate_need(ctx, actor=caller, need_id=need_id, accept=True, reason=payload.reason)


@router.post(
    "/needs/{need_id}/reject", response_model=NeedRead, summary="Reject a held resident's need (operators)"
)
def reject_need(need_id: str, payload: NeedRejection, ctx: AccessDep, caller: OperatorDep) -> NeedRead:
    return service.moderate_need(ctx, actor=caller, need_id=need_id, accept=False, reason=payload.reason)


@router.post(
    "/needs/{need_id}/route",
    response_model=NeedRead,
    summary="Send a need to the department to answer it (operators)",
)
def route_need(need_id: str, payload: NeedRoute, ctx: AccessDep, caller: OperatorDep) -> NeedRead:
    return service.route_need(ctx, actor=caller, need_id=need_id, payload=payload)


@router.post(
    "/needs/{need_id}/offer",
    response_model=NeedRead,
    summary="Offer an existing dataset (the answering department or an operator): each scenario "
    "among the requesters gets a draft access request",
)
def offer_dataset(need_id: str, payload: NeedOffer, ctx: AccessDep, caller: ReaderDep) -> NeedRead:
    return service.offer_dataset(ctx, actor=caller, need_id=need_id, payload=payload)


@router.post(
    "/needs/{need_id}/commit",
    response_model=NeedRead,
    summary="Commit to publish by a date (the answering department or an operator); fulfilled when a "
    "contract naming the need under citybase.needs registers",
)
def commit_to_publish(need_id: str, payload: NeedCommit, ctx: AccessDep, caller: ReaderDep) -> NeedRead:
    return service.commit_to_publish(ctx, actor=caller, need_id=need_id, payload=payload)


@router.post(
    "/needs/{need_id}/decline",
    response_model=NeedRead,
    summary="Decline, with a reason the requesters see (the answering department or an operator)",
)
def decline_need(need_id: str, payload: NeedDecline, ctx: AccessDep, caller: ReaderDep) -> NeedRead:
    return service.decline_need(ctx, actor=caller, need_id=need_id, payload=payload)
