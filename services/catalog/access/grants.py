"""Grants: what a scenario may receive, how their terms change, and their suspension and revocation.

Every change takes the request's :class:`~services.catalog.access.context.Collaborators` (so the
request's session, committed by the caller), authorizes the caller, audits and announces the
grant's new version, which feeds apply within a second; reads take the caller's session. Expiry
is never stored: a grant is expired when its ``expires_at`` has passed, wherever it is read (here)
or enforced (feeds, from the event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access import exceptions
from services.catalog.access.context import Collaborators, access_request_of, attempt, audit_scope, page_of
from services.catalog.access.models import AccessRequest, Grant
from services.catalog.access.policy import listed, may_decide, may_see
from services.catalog.access.schemas import (
    GrantRead,
    GrantStatus,
    GrantUpdate,
)
from services.catalog.access.terms import (
    STRONG_MASKS,
    check_row_filter,
    contract_scope,
    narrowed_fields,
    narrowed_quota,
    resolve_masking,
)
from services.catalog.audit.auditor import Auditor
from services.catalog.audit.service import AuditEvent, append
from services.catalog.datasets.service import get_dataset
from services.catalog.events import CatalogEvents
from services.catalog.models import Dataset
from services.catalog.schemas import Classification
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import as_utc, utcnow
from services.common.i18n import N_, Sentence
from services.common.policy import encode_hash_key, new_hash_key
from services.common.problems import FieldError


def effective_status(grant: Grant, now: datetime) -> GrantStatus:
    """The stored status, or ``expired`` once ``expires_at`` has passed (revoked stays revoked)."""
    if grant.status != GrantStatus.revoked and as_utc(grant.expires_at) <= now:
        return GrantStatus.expired
    return GrantStatus(grant.status)


def grant_read(grant: Grant, now: datetime) -> GrantRead:
    payload = grant_state(grant)
    del payload["hash_key"]  # the platform's alone: a receiver holding it could reverse its hashes
    return GrantRead.model_validate(
        {
            **payload,
            "status": effective_status(grant, now),
            "contract_version": grant.contract_version,
            "unmasked": grant.unmasked,
            "status_reason": grant.status_reason,
            "created_at": as_utc(grant.created_at),
        }
    )


def grant_state(grant: Grant) -> dict[str, Any]:
    """The grant event's payload, exactly what feeds enforce (expiry is theirs to compute).

    It carries the grant's hash key to feeds over the internal bus; :func:`grant_read`, what the
    API answers, leaves it out.
    """
    return {
        "id": grant.id,
        "version": grant.version,
        "scenario_id": grant.scenario_id,
        "dataset_id": grant.dataset_id,
        "request_id": grant.request_id,
        "status": grant.status,
        "fields": list(grant.fields),
        "masking": {path: dict(mask) for path, mask in grant.masking.items()},
        "row_filter": grant.row_filter,
        "valid_from": as_utc(grant.valid_from).isoformat(),
        "expires_at": as_utc(grant.expires_at).isoformat(),
        "quota": (
            {"records_per_day": grant.quota_records_per_day}
            if grant.quota_records_per_day is not None
            else None
        ),
        "purpose": grant.purpose,
        "purpose_category": grant.purpose_category,
        "updated_at": as_utc(grant.updated_at).isoformat(),
        "hash_key": grant.hash_key,
    }


def _grant(session: Session, grant_id: str, *, for_update: bool = False) -> Grant:
    query = sa.select(Grant).where(Grant.id == grant_id)
    if for_update:
        query = query.with_for_update()
    grant = session.scalars(query).one_or_none()
    if grant is None:
        raise exceptions.GrantNotFound(Sentence(N_("no grant %(grant_id)r"), grant_id=grant_id))
    return grant


def get_grant(
    session: Session,
    *,
    actor: Principal,
    grant_id: str,
    now: datetime | None = None,
    audit: Auditor | None = None,
) -> GrantRead:
    """One grant as of ``now`` (the clock by default), to whom may see it; audited as a read of it
    when ``audit`` is given (a refusal is then on the trail)."""
    if audit is not None:
        audit.attempting("grant.read", "grant", grant_id)
    grant = _grant(session, grant_id)
    dataset = get_dataset(session, grant.dataset_id)
    if audit is not None:
        attempt(audit, "grant.read", grant, dataset)
    may_see(actor, grant.scenario_id, dataset)
    return grant_read(grant, now or utcnow())


@dataclass(frozen=True)
class GrantFilter:
    scenario_id: str | None = None
    dataset_id: str | None = None
    status: GrantStatus | None = None


def list_grants(
    session: Session,
    *,
    actor: Principal,
    filters: GrantFilter,
    now: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    audit: Auditor | None = None,
) -> tuple[list[GrantRead], str | None]:
    """The grants the actor may see, oldest first; ``status=expired`` is a filter on the clock
    (``now``, the clock by default). With ``audit``, a listing of one scenario's grants is audited
    when refused."""
    if audit is not None and filters.scenario_id is not None:
        audit.attempting(
            "grant.list",
            "scenario",
            filters.scenario_id,
            scenario_id=filters.scenario_id,
            dataset_id=filters.dataset_id,
        )
    now = now or utcnow()
    query = listed(
        actor, Grant, filters.scenario_id, filters.dataset_id, N_("a scenario sees only its own grants")
    )
    if filters.status is GrantStatus.expired:
        query = query.where(Grant.status != GrantStatus.revoked.value, Grant.expires_at <= now)
    elif filters.status is GrantStatus.revoked:
        query = query.where(Grant.status == GrantStatus.revoked.value)
    elif filters.status is not None:
        query = query.where(Grant.status == filters.status.value, Grant.expires_at > now)
    rows, next_cursor = page_of(session, query, Grant.id, limit, cursor, "gr")
    return [grant_read(row, now) for row in rows], next_cursor


def update_grant(ctx: Collaborators, *, actor: Principal, grant_id: str, update: GrantUpdate) -> GrantRead:
    """New terms for a live grant, each within the request and the current contract."""
    ctx.audit.attempting("grant.update", "grant", grant_id)
    session, now = ctx.session, ctx.clock()
    grant = _grant(session, grant_id, for_update=True)
    dataset = get_dataset(session, grant.dataset_id)
    attempt(ctx.audit, "grant.update", grant, dataset)
    may_decide(actor, dataset)
    _live(grant, now)
    request = access_request_of(session, grant.request_id)
    scope = contract_scope(session, dataset)
    fields = (
        narrowed_fields(scope, request.fields, update.fields)
        if update.fields is not None
        else [name for name in grant.fields if name in scope.fields]
    )
    terms = resolve_masking(
        scope,
        fields,
        base_masking=grant.masking,
        base_unmasked=grant.unmasked,
        masking=update.masking,
        unmask=update.unmask,
        actor=actor,
        now=now,
    )
    set_fields = update.model_fields_set
    row_filter = (
        check_row_filter(scope, update.row_filter) if "row_filter" in set_fields else grant.row_filter
    )
    quota = (
        narrowed_quota(request.quota_records_per_day, update, "quota_records_per_day")
        if "quota_records_per_day" in set_fields
        else grant.quota_records_per_day
    )
    expires_at = as_utc(grant.expires_at)
    if update.expires_at is not None:
        latest = as_utc(grant.valid_from) + timedelta(days=request.duration_days)
        if update.expires_at > latest:
            raise exceptions.DurationTooLong(
                Sentence(
                    N_("the grant may last until %(latest)s at the latest (the requested duration)"),
                    latest=latest.isoformat(),
                ),
                errors=[
                    FieldError(
                        path="/body/expires_at",
                        rule="maximum",
                        message=Sentence(N_("at most %(latest)s"), latest=latest.isoformat()),
                    )
                ],
            )
        expires_at = update.expires_at.astimezone(UTC)
    before = grant_terms(grant)
    grant.fields = terms.fields
    grant.masking = terms.masking
    grant.unmasked = terms.unmasked
    grant.row_filter = row_filter
    grant.quota_records_per_day = quota
    grant.expires_at = expires_at
    grant.contract_version = scope.version
    after = grant_terms(grant)
    changed = after != before
    if changed:
        _bump(grant, now, update.reason)
        session.flush()
        publish_grant(ctx, grant)
    _audit_update(ctx, grant, dataset, update.reason, changed, before)
    audit_unmasking(ctx, grant, grant, dataset, update.unmask)
    return grant_read(grant, now)


CONTRACT_POLICY = Principal(id="policy:contract-sensitivity", kind=PrincipalKind.admin, name="contract")
"""Who masks a field of a live grant because a new contract version marked it sensitive."""


def apply_contract_masking(ctx: Collaborators, *, dataset_id: str) -> list[GrantRead]:
    """Mask, on every live grant of the dataset, what its current contract version makes sensitive.

    Run in the unit of work that registers a version. A field the version marks sensitive gets the
    contract's rule on each grant that delivers it (a restricted dataset's earlier un-maskings are
    withdrawn too), as :func:`resolve_masking` would give a new grant; the grant's new version
    reaches feeds with the version's own event, and says why in ``status_reason``, which the
    scenario reads on its grant (every batch names the grant version it was delivered under). On a
    restricted dataset a mask weaker than the field's new rule (one an approver could not set
    today) takes the rule. Other masks the grant already has, and fields un-masked on record on a
    conditional dataset, stay as they are.
    """
    session, now = ctx.session, ctx.clock()
    dataset = get_dataset(session, dataset_id)
    scope = contract_scope(session, dataset)
    live = session.scalars(
        sa.select(Grant)
        .where(
            Grant.dataset_id == dataset.id,
            Grant.status != GrantStatus.revoked.value,
            Grant.expires_at > now,
        )
        .order_by(Grant.id)
        .with_for_update()
    ).all()
    changed: list[GrantRead] = []
    for grant in live:
        terms = resolve_masking(
            scope,
            grant.fields,
            base_masking=grant.masking,
            base_unmasked=grant.unmasked,
            masking=None,
            unmask=None,
            actor=CONTRACT_POLICY,
            now=now,
        )
        if scope.classification is Classification.restricted:
            # What an approver could not set today does not stay: a mask weaker than the rule.
            for path, rule in scope.sensitive.items():
                mask = terms.masking.get(path)
                if mask is not None and mask["kind"] not in STRONG_MASKS and mask != rule:
                    terms.masking[path] = rule
        masked = sorted(path for path, mask in terms.masking.items() if grant.masking.get(path) != mask)
        if not masked:
            continue
        before = grant_terms(grant)
        grant.masking = terms.masking
        grant.unmasked = terms.unmasked
        grant.contract_version = scope.version
        reason = (
            f"contract version {scope.version} of {dataset.id} marks {', '.join(masked)} sensitive: "
            "the grant masks them by the contract's rule"
        )
        _bump(grant, now, reason)
        session.flush()
        publish_grant(ctx, grant)
        _audit_update(
            ctx, grant, dataset, reason, True, before, contract_version=scope.version, masked=masked
        )
        changed.append(grant_read(grant, now))
    return changed


KEYED_REASON = "the grant's hash masks are keyed by a random key of its own"


def issue_missing_hash_keys(
    session: Session, *, events: CatalogEvents, now: datetime | None = None
) -> list[str]:
    """Give each grant made before grants had hash keys its own key; run when the catalog starts.

    A live grant's next version carries the key to feeds (which, until then, withhold its hashed
    fields rather than compute a hash anyone could recompute) and is on the audit trail; a revoked
    or expired grant only gets the key. Returns the ids of the grants announced. Nothing to do, and
    one query, once every grant has a key.
    """
    now = now or utcnow()
    keyless = session.scalars(
        sa.select(Grant).where(Grant.hash_key.is_(None)).order_by(Grant.id).with_for_update()
    ).all()
    announced = []
    for grant in keyless:
        grant.hash_key = encode_hash_key(new_hash_key())
        if effective_status(grant, now) in (GrantStatus.revoked, GrantStatus.expired):
            continue
        grant.version += 1  # status_reason stays: it tells why the grant is as it is
        grant.updated_at = now
        session.flush()
        events.publish(session, catalog_events.GRANT, grant.id, grant_state(grant))
        append(
            session,
            AuditEvent(
                action="grant.update",
                resource_type="grant",
                resource_id=grant.id,
                actor_id="citybase",
                actor_kind="system",
                purpose=grant.purpose,
                dataset_id=grant.dataset_id,
                scenario_id=grant.scenario_id,
                details={"reason": KEYED_REASON, "version": grant.version, "changed": True},
            ),
        )
        announced.append(grant.id)
    session.flush()
    return announced


def suspend_grant(ctx: Collaborators, *, actor: Principal, grant_id: str, reason: str) -> GrantRead:
    return _transition(
        ctx, actor, grant_id, reason, GrantStatus.active, GrantStatus.suspended, "grant.suspend"
    )


def resume_grant(ctx: Collaborators, *, actor: Principal, grant_id: str, reason: str) -> GrantRead:
    return _transition(
        ctx, actor, grant_id, reason, GrantStatus.suspended, GrantStatus.active, "grant.resume"
    )


def revoke_grant(ctx: Collaborators, *, actor: Principal, grant_id: str, reason: str) -> GrantRead:
    """End a grant for good: feeds stop delivering as soon as the event reaches them."""
    return _transition(ctx, actor, grant_id, reason, None, GrantStatus.revoked, "grant.revoke")


def _transition(
    ctx: Collaborators,
    actor: Principal,
    grant_id: str,
    reason: str,
    source: GrantStatus | None,
    target: GrantStatus,
    action: str,
) -> GrantRead:
    ctx.audit.attempting(action, "grant", grant_id)
    session, now = ctx.session, ctx.clock()
    grant = _grant(session, grant_id, for_update=True)
    dataset = get_dataset(session, grant.dataset_id)
    attempt(ctx.audit, action, grant, dataset)
    may_decide(actor, dataset)
    if grant.status == GrantStatus.revoked:
        raise exceptions.GrantRevoked(
            Sentence(N_("grant %(id)s is revoked; nothing changes it any more"), id=grant.id)
        )
    if target is not GrantStatus.revoked:
        _live(grant, now)
    if source is not None and grant.status != source:
        raise exceptions.GrantStateConflict(
            Sentence(
                N_("grant %(id)s is %(status)s, not %(source)s"),
                id=grant.id,
                status=grant.status,
                source=source,
            )
        )
    set_status(ctx, grant, dataset, target, reason, action)
    return grant_read(grant, now)


def set_status(
    ctx: Collaborators, grant: Grant, dataset: Dataset, target: GrantStatus, reason: str, action: str
) -> None:
    before = grant.status
    grant.status = target.value
    _bump(grant, ctx.clock(), reason)
    ctx.session.flush()
    publish_grant(ctx, grant)
    ctx.audit.record(
        ctx.session,
        action=action,
        resource_type="grant",
        resource_id=grant.id,
        **audit_scope(grant, dataset),
        details={"reason": reason, "version": grant.version, "before": before, "after": grant.status},
    )


def _live(grant: Grant, now: datetime) -> None:
    status = effective_status(grant, now)
    if status is GrantStatus.revoked:
        raise exceptions.GrantRevoked(
            Sentence(N_("grant %(id)s is revoked; nothing changes it any more"), id=grant.id)
        )
    if status is GrantStatus.expired:
        raise exceptions.GrantExpired(
            Sentence(
                N_("grant %(id)s expired at %(expired)s; file a new request"),
                id=grant.id,
                expired=as_utc(grant.expires_at).isoformat(),
            )
        )


def _bump(grant: Grant, now: datetime, reason: str) -> None:
    grant.version += 1
    grant.updated_at = now
    grant.status_reason = reason


def grant_terms(grant: Grant) -> dict[str, Any]:
    return {
        "fields": list(grant.fields),
        "masking": dict(grant.masking),
        "unmasked": sorted(grant.unmasked),
        "row_filter": grant.row_filter,
        "valid_from": as_utc(grant.valid_from).isoformat(),
        "expires_at": as_utc(grant.expires_at).isoformat(),
        "quota_records_per_day": grant.quota_records_per_day,
    }


def _audit_update(
    ctx: Collaborators,
    grant: Grant,
    dataset: Dataset,
    reason: str,
    changed: bool,
    before: dict[str, Any],
    **more: Any,
) -> None:
    """The ``grant.update`` entry: why, the version, and the terms before and after."""
    ctx.audit.record(
        ctx.session,
        action="grant.update",
        resource_type="grant",
        resource_id=grant.id,
        **audit_scope(grant, dataset),
        details={
            "reason": reason,
            "version": grant.version,
            "changed": changed,
            **more,
            "before": before,
            "after": grant_terms(grant),
        },
    )


def audit_unmasking(
    ctx: Collaborators,
    grant: Grant,
    origin: AccessRequest | Grant,
    dataset: Dataset,
    unmask: Mapping[str, str] | None,
) -> None:
    for path, reason in (unmask or {}).items():
        ctx.audit.record(
            ctx.session,
            action="grant.unmask",
            resource_type="grant",
            resource_id=grant.id,
            **audit_scope(origin, dataset),
            details={"field": path, "reason": reason, "version": grant.version},
        )


def publish_grant(ctx: Collaborators, grant: Grant) -> None:
    ctx.events.publish(ctx.session, catalog_events.GRANT, grant.id, grant_state(grant))
