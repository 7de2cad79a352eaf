"""Access requests: a scenario asks for fields of a dataset, with a purpose and a duration; the
owning department approves (into a grant), rejects, or the scenario withdraws.

The dataset's classification decides the default: an ``open`` dataset is granted at once; a
``conditional`` or ``restricted`` one waits for an approver of the owning department (or an
admin). Every change takes the request's
:class:`~services.catalog.access.context.Collaborators` (so the request's session, committed by
the caller), authorizes, audits and announces; reads take the caller's session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from services.catalog import exceptions as catalog_exceptions
from services.catalog.access import exceptions
from services.catalog.access.context import (
    Collaborators,
    access_request_of,
    attempt,
    audit_scope,
    page_of,
    scenario_of,
)
from services.catalog.access.grants import audit_unmasking, grant_terms, publish_grant
from services.catalog.access.models import AccessRequest, Grant
from services.catalog.access.policy import listed, may_decide, may_see
from services.catalog.access.schemas import (
    AccessRequestApproval,
    AccessRequestCreate,
    AccessRequestRead,
    AccessRequestStatus,
    AccessRequestSubmission,
    GrantStatus,
    ScenarioStatus,
)
from services.catalog.access.settings import AccessSettings
from services.catalog.access.terms import (
    ContractScope,
    check_known,
    check_row_filter,
    contract_scope,
    field_pointer,
    narrowed_fields,
    narrowed_quota,
    resolve_masking,
)
from services.catalog.audit.auditor import Auditor
from services.catalog.datasets.service import get_dataset
from services.catalog.models import Dataset
from services.catalog.schemas import Classification, DatasetStatus
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence
from services.common.policy import encode_hash_key, new_hash_key
from services.common.problems import FieldError, InvalidRequest

AUTO_APPROVER = "policy:open-classification"
"""``decided_by`` of a request granted at once because its dataset is open."""


def request_read(request: AccessRequest) -> AccessRequestRead:
    return AccessRequestRead.model_validate(request)


def _new_id(prefix: str, now: datetime) -> str:
    """Ids that sort by creation time (cursor pagination is by id)."""
    return f"{prefix}-{int(now.timestamp() * 1000):012x}{secrets.token_hex(5)}"


def create_access_request(
    ctx: Collaborators, *, actor: Principal, payload: AccessRequestCreate
) -> AccessRequestRead:
    """File a request for the actor's scenario (an admin names the scenario). An open dataset is
    granted at once; others wait for the owning department's approver."""
    ctx.audit.attempting(
        "access_request.create",
        "dataset",
        payload.dataset_id,
        dataset_id=payload.dataset_id,
        scenario_id=payload.scenario_id or (actor.id if actor.kind is PrincipalKind.scenario else None),
        purpose=payload.purpose,
        details={"purpose_category": payload.purpose_category.value, "fields": payload.fields},
    )
    scenario_id = _requesting_scenario(actor, payload.scenario_id)
    request, scope = _new_request(
        ctx,
        scenario_id=scenario_id,
        payload=payload,
        by=actor,
        status=AccessRequestStatus.pending,
        origin=None,
    )
    _audit_filed(ctx, request, scope, "access_request.create")
    _decide_or_wait(ctx, request, scope)
    return request_read(request)


def prepare_access_request(
    ctx: Collaborators, *, actor: Principal, scenario_id: str, payload: AccessRequestCreate, origin: str
) -> AccessRequestRead:
    """A draft request for ``scenario_id``, prepared by ``actor`` on behalf of ``origin`` (an offer
    answering a need, a selected proposal). The caller has authorized ``actor`` for ``origin``;
    nothing is granted until the scenario submits the draft (as it is or changed)."""
    ctx.audit.attempting(
        "access_request.prepare",
        "dataset",
        payload.dataset_id,
        dataset_id=payload.dataset_id,
        scenario_id=scenario_id,
    )
    request, scope = _new_request(
        ctx,
        scenario_id=scenario_id,
        payload=payload,
        by=actor,
        status=AccessRequestStatus.draft,
        origin=origin,
    )
    _audit_filed(ctx, request, scope, "access_request.prepare")
    _publish_request(ctx, request)
    return request_read(request)


def submit_access_request(
    ctx: Collaborators, *, actor: Principal, request_id: str, changes: AccessRequestSubmission
) -> AccessRequestRead:
    """The scenario submits a draft prepared for it, as it is or with its own changes: from then on
    it is an ordinary request (an open dataset is granted at once)."""
    ctx.audit.attempting("access_request.submit", "access_request", request_id)
    request = access_request_of(ctx.session, request_id, for_update=True)
    dataset = get_dataset(ctx.session, request.dataset_id)
    attempt(ctx.audit, "access_request.submit", request, dataset)
    if not actor.is_admin() and actor.id != request.scenario_id:
        raise exceptions.NotYourScenario(
            Sentence(N_("only the scenario it was prepared for may submit a draft request"))
        )
    if request.status != AccessRequestStatus.draft:
        raise exceptions.AlreadyDecided(
            Sentence(
                N_("access request %(id)s is %(status)s, not a draft"), id=request.id, status=request.status
            )
        )
    _active_scenario(ctx.session, request.scenario_id)
    dataset_row = _dataset(ctx.session, request.dataset_id)
    scope = contract_scope(ctx.session, dataset_row)
    if changes.fields is not None:
        fields = list(dict.fromkeys(changes.fields))
        check_known(scope, fields, "fields")
        request.fields = fields
    if changes.duration_days is not None:
        _check_duration(ctx.settings, changes.duration_days, "duration_days")
        request.duration_days = changes.duration_days
    if changes.purpose is not None:
        request.purpose = changes.purpose
    if changes.purpose_category is not None:
        request.purpose_category = changes.purpose_category.value
    if changes.quota_records_per_day is not None:
        request.quota_records_per_day = changes.quota_records_per_day
    request.contract_version = scope.version
    request.status = AccessRequestStatus.pending.value
    request.updated_at = ctx.clock()
    ctx.session.flush()
    _audit_filed(ctx, request, scope, "access_request.submit")
    _decide_or_wait(ctx, request, scope)
    return request_read(request)


def _new_request(
    ctx: Collaborators,
    *,
    scenario_id: str,
    payload: AccessRequestCreate,
    by: Principal,
    status: AccessRequestStatus,
    origin: str | None,
) -> tuple[AccessRequest, ContractScope]:
    session = ctx.session
    _active_scenario(session, scenario_id)
    dataset = _dataset(session, payload.dataset_id)
    if dataset.status in (DatasetStatus.retired, DatasetStatus.deprecated):
        raise exceptions.DatasetNotAvailable(
            Sentence(N_("dataset %(id)r is %(status)s"), id=dataset.id, status=dataset.status)
        )
    scope = contract_scope(session, dataset)
    fields = list(dict.fromkeys(payload.fields))
    check_known(scope, fields, "fields")
    _check_duration(ctx.settings, payload.duration_days, "duration_days")
    now = ctx.clock()
    request = AccessRequest(
        id=_new_id("ar", now),
        scenario_id=scenario_id,
        dataset_id=dataset.id,
        contract_version=scope.version,
        purpose=payload.purpose,
        purpose_category=payload.purpose_category.value,
        fields=fields,
        duration_days=payload.duration_days,
        quota_records_per_day=payload.quota_records_per_day,
        status=status.value,
        requested_by=by.id,
        origin=origin,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    return request, scope


def _active_scenario(session: Session, scenario_id: str) -> None:
    scenario = scenario_of(session, scenario_id)
    if scenario.status != ScenarioStatus.active:
        raise exceptions.ScenarioNotActive(
            Sentence(
                N_("scenario %(scenario_id)r is %(status)s"), scenario_id=scenario_id, status=scenario.status
            )
        )


def _audit_filed(ctx: Collaborators, request: AccessRequest, scope: ContractScope, action: str) -> None:
    ctx.audit.record(
        ctx.session,
        action=action,
        resource_type="access_request",
        resource_id=request.id,
        dataset_id=request.dataset_id,
        department_id=scope.dataset.owner_department_id,
        scenario_id=request.scenario_id,
        purpose=request.purpose,
        details={
            "purpose_category": request.purpose_category,
            "fields": request.fields,
            "duration_days": request.duration_days,
            "quota_records_per_day": request.quota_records_per_day,
            "classification": scope.dataset.classification,
            **({"origin": request.origin} if request.origin else {}),
        },
    )


def _decide_or_wait(ctx: Collaborators, request: AccessRequest, scope: ContractScope) -> None:
    if scope.classification is Classification.open:
        system = Principal(id=AUTO_APPROVER, kind=PrincipalKind.admin, name="open classification")
        _approve(ctx, system, request, scope, AccessRequestApproval(reason="open dataset: granted at once"))
    else:
        _publish_request(ctx, request)


def _requesting_scenario(actor: Principal, scenario_id: str | None) -> str:
    if actor.kind is PrincipalKind.scenario:
        if scenario_id not in (None, actor.id):
            raise exceptions.NotYourScenario(Sentence(N_("a scenario files access requests only for itself")))
        return actor.id
    if actor.is_admin():
        if scenario_id is None:
            raise InvalidRequest(
                Sentence(N_("an admin files a request on behalf of a scenario: name it")),
                errors=[
                    FieldError(
                        path="/body/scenario_id", rule="required", message=Sentence(N_("name the scenario"))
                    )
                ],
            )
        return scenario_id
    raise exceptions.NotYourScenario(
        Sentence(N_("a %(kind)s does not file access requests; a scenario does"), kind=actor.kind)
    )


def _dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise catalog_exceptions.DatasetNotFound(
            Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id),
            errors=[
                FieldError(
                    path="/body/dataset_id",
                    rule="exists",
                    message=Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id),
                )
            ],
        )
    return dataset


def _check_duration(settings: AccessSettings, days: int, where: str) -> None:
    if days > settings.max_duration_days:
        raise exceptions.DurationTooLong(
            Sentence(
                N_("%(days)s days is beyond the maximum of %(max_duration_days)s"),
                days=days,
                max_duration_days=settings.max_duration_days,
            ),
            errors=[
                FieldError(
                    path=field_pointer("body", where),
                    rule="maximum",
                    message=Sentence(
                        N_("at most %(max_duration_days)s days"), max_duration_days=settings.max_duration_days
                    ),
                )
            ],
        )


def get_access_request(
    session: Session, *, actor: Principal, request_id: str, audit: Auditor | None = None
) -> AccessRequestRead:
    """One request, to whom may see it; audited as a read of it when ``audit`` is given (a
    refusal is then on the trail)."""
    if audit is not None:
        audit.attempting("access_request.read", "access_request", request_id)
    request = access_request_of(session, request_id)
    dataset = get_dataset(session, request.dataset_id)
    if audit is not None:
        attempt(audit, "access_request.read", request, dataset)
    may_see(actor, request.scenario_id, dataset)
    return request_read(request)


@dataclass(frozen=True)
class AccessRequestFilter:
    scenario_id: str | None = None
    dataset_id: str | None = None
    status: AccessRequestStatus | None = None


def list_access_requests(
    session: Session,
    *,
    actor: Principal,
    filters: AccessRequestFilter,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AccessRequestRead], str | None]:
    """The requests the actor may see, oldest first, one page at a time."""
    query = listed(
        actor,
        AccessRequest,
        filters.scenario_id,
        filters.dataset_id,
        N_("a scenario sees only its own access requests"),
    )
    if filters.status:
        query = query.where(AccessRequest.status == filters.status.value)
    rows, next_cursor = page_of(session, query, AccessRequest.id, limit, cursor, "ar")
    return [request_read(row) for row in rows], next_cursor


def approve_access_request(
    ctx: Collaborators, *, actor: Principal, request_id: str, approval: AccessRequestApproval
) -> AccessRequestRead:
    """Approve a pending request: its grant is created with the approver's (narrowing) terms."""
    ctx.audit.attempting("access_request.approve", "access_request", request_id)
    request = access_request_of(ctx.session, request_id, for_update=True)
    dataset = get_dataset(ctx.session, request.dataset_id)
    attempt(ctx.audit, "access_request.approve", request, dataset)
    may_decide(actor, dataset)
    _pending(request)
    _approve(ctx, actor, request, contract_scope(ctx.session, dataset), approval)
    return request_read(request)


def _pending(request: AccessRequest) -> None:
    if request.status != AccessRequestStatus.pending:
        if request.decided_by:
            raise exceptions.AlreadyDecided(
                Sentence(
                    N_("access request %(id)s is already %(status)s (by %(decided_by)s)"),
                    id=request.id,
                    status=request.status,
                    decided_by=request.decided_by,
                )
            )
        raise exceptions.AlreadyDecided(
            Sentence(N_("access request %(id)s is already %(status)s"), id=request.id, status=request.status)
        )


def _approve(
    ctx: Collaborators,
    actor: Principal,
    request: AccessRequest,
    scope: ContractScope,
    approval: AccessRequestApproval,
) -> Grant:
    session, now = ctx.session, ctx.clock()
    fields = narrowed_fields(scope, request.fields, approval.fields)
    terms = resolve_masking(
        scope,
        fields,
        base_masking={},
        base_unmasked={},
        masking=approval.masking,
        unmask=approval.unmask,
        actor=actor,
        now=now,
    )
    row_filter = check_row_filter(scope, approval.row_filter)
    days = approval.duration_days or request.duration_days
    if days > request.duration_days:
        raise exceptions.DurationTooLong(
            Sentence(
                N_("%(days)s days is more than the %(duration_days)s requested"),
                days=days,
                duration_days=request.duration_days,
            ),
            errors=[
                FieldError(
                    path="/body/duration_days",
                    rule="maximum",
                    message=Sentence(N_("at most what was requested")),
                )
            ],
        )
    valid_from = approval.valid_from.astimezone(UTC) if approval.valid_from else now
    if valid_from < now - timedelta(minutes=5):
        raise exceptions.InvalidTerms(
            Sentence(N_("a grant cannot start in the past")),
            errors=[
                FieldError(path="/body/valid_from", rule="minimum", message=Sentence(N_("now or later")))
            ],
        )
    quota = narrowed_quota(request.quota_records_per_day, approval, "quota_records_per_day")
    grant = Grant(
        id=_new_id("gr", now),
        version=1,
        scenario_id=request.scenario_id,
        dataset_id=request.dataset_id,
        request_id=request.id,
        contract_version=scope.version,
        status=GrantStatus.active.value,
        fields=terms.fields,
        masking=terms.masking,
        unmasked=terms.unmasked,
        row_filter=row_filter,
        valid_from=valid_from,
        expires_at=valid_from + timedelta(days=days),
        quota_records_per_day=quota,
        purpose=request.purpose,
        purpose_category=request.purpose_category,
        hash_key=encode_hash_key(new_hash_key()),
        created_at=now,
        updated_at=now,
    )
    session.add(grant)
    request.status = AccessRequestStatus.approved.value
    request.decided_by = actor.id
    request.decided_at = now
    request.decision_reason = approval.reason
    request.grant_id = grant.id
    request.updated_at = now
    session.flush()
    _publish_request(ctx, request)
    publish_grant(ctx, grant)
    common = audit_scope(request, scope.dataset)
    ctx.audit.record(
        session,
        action="access_request.approve",
        resource_type="access_request",
        resource_id=request.id,
        **common,
        details={"reason": approval.reason, "grant_id": grant.id, "decided_by": actor.id},
    )
    ctx.audit.record(
        session,
        action="grant.create",
        resource_type="grant",
        resource_id=grant.id,
        **common,
        details={"version": grant.version, **grant_terms(grant)},
    )
    audit_unmasking(ctx, grant, request, scope.dataset, approval.unmask)
    return grant


def reject_access_request(
    ctx: Collaborators, *, actor: Principal, request_id: str, reason: str
) -> AccessRequestRead:
    """The owning department's approver (or an admin) turns down a pending request, with a reason."""
    ctx.audit.attempting("access_request.reject", "access_request", request_id)
    request = access_request_of(ctx.session, request_id, for_update=True)
    dataset = get_dataset(ctx.session, request.dataset_id)
    attempt(ctx.audit, "access_request.reject", request, dataset)
    may_decide(actor, dataset)
    _pending(request)
    return close_request(
        ctx, actor, request, dataset, AccessRequestStatus.rejected, reason, "access_request.reject"
    )


def withdraw_access_request(
    ctx: Collaborators, *, actor: Principal, request_id: str, reason: str | None
) -> AccessRequestRead:
    """The requesting scenario (or an admin) takes back a request that is still pending, or declines
    a draft prepared for it."""
    ctx.audit.attempting("access_request.withdraw", "access_request", request_id)
    request = access_request_of(ctx.session, request_id, for_update=True)
    dataset = get_dataset(ctx.session, request.dataset_id)
    attempt(ctx.audit, "access_request.withdraw", request, dataset)
    if not actor.is_admin() and actor.id != request.scenario_id:
        raise exceptions.NotYourScenario(
            Sentence(N_("only the requesting scenario may withdraw its request"))
        )
    if request.status != AccessRequestStatus.draft:
        _pending(request)
    return close_request(
        ctx, actor, request, dataset, AccessRequestStatus.withdrawn, reason, "access_request.withdraw"
    )


def close_request(
    ctx: Collaborators,
    actor: Principal,
    request: AccessRequest,
    dataset: Dataset,
    status: AccessRequestStatus,
    reason: str | None,
    action: str,
) -> AccessRequestRead:
    now = ctx.clock()
    request.status = status.value
    request.decided_by = actor.id
    request.decided_at = now
    request.decision_reason = reason
    request.updated_at = now
    ctx.session.flush()
    _publish_request(ctx, request)
    ctx.audit.record(
        ctx.session,
        action=action,
        resource_type="access_request",
        resource_id=request.id,
        **audit_scope(request, dataset),
        details={"reason": reason, "decided_by": actor.id},
    )
    return request_read(request)


def _publish_request(ctx: Collaborators, request: AccessRequest) -> None:
    ctx.events.publish(ctx.session, catalog_events.ACCESS_REQUEST, request.id, request_read(request))
