"""The rules of authorized operation: who may ask for which data, who decides, what a grant allows.

A scenario (a principal of kind ``scenario`` with its own keys) files an access request for
fields of a dataset, with a purpose and a duration. The dataset's classification decides the
default: an ``open`` dataset is granted at once; a ``conditional`` or ``restricted`` one waits for
an approver of the owning department (or an admin). An approval becomes a grant, whose terms
(fields, masking, row filter, expiry, quota) only ever narrow what was asked and what the current
contract has. Sensitive fields of the contract are masked in every grant by their contract rule;
an approver may deliver one in clear on a non-restricted dataset only, with a reason, on record.

Every function takes its collaborators (session, events, audit trail) and flushes; the request's
unit of work commits, so a change, its event on ``platform.catalog`` and its audit entry are
committed together or not at all. Expiry is never stored: a grant is expired when its
``expires_at`` has passed, wherever it is read (here) or enforced (feeds, from the event).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions as catalog_exceptions
from services.catalog import service as catalog_service
from services.catalog.access import exceptions
from services.catalog.access.models import AccessRequest, Grant, Scenario
from services.catalog.access.schemas import (
    AccessRequestApproval,
    AccessRequestCreate,
    AccessRequestRead,
    AccessRequestStatus,
    GrantRead,
    GrantStatus,
    GrantTerms,
    GrantUpdate,
    MaskValue,
    ScenarioCreate,
    ScenarioRead,
    ScenarioStatus,
    ScenarioUpdate,
)
from services.catalog.access.settings import AccessSettings
from services.catalog.audit.service import AuditEvent, Auditor, append
from services.catalog.models import Dataset
from services.catalog.schemas import ApiKeyIssued, Classification, DatasetStatus, PrincipalCreate
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import as_utc, utcnow
from services.common.policy import FieldMask, RowFilterError, encode_hash_key, new_hash_key, parse_row_filter
from services.common.problems import FieldError, Forbidden, InvalidRequest

AUTO_APPROVER = "policy:open-classification"
"""``decided_by`` of a request granted at once because its dataset is open."""

Clock = Callable[[], datetime]

STRONG_MASKS = frozenset({"hash", "redact"})
"""Masks that reveal nothing of a value, whatever their options: any restricted field may take them."""


@dataclass(frozen=True)
class Collaborators:
    """What every change needs: the session, the event outbox, the audit trail, the limits, a clock."""

    session: Session
    events: catalog_service.CatalogEvents
    audit: Auditor
    settings: AccessSettings
    clock: Clock = utcnow


# --- who may do what ------------------------------------------------------------------------


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
        f"only an approver of {dataset.owner_department_id!r} (or an admin) may decide on {dataset.id!r}"
    )


def may_see(actor: Principal, scenario_id: str, dataset: Dataset) -> None:
    """A scenario sees its own requests and grants; a department (publisher or approver) those of
    its datasets; operators and admins everything."""
    if _is_staff(actor):
        return
    if actor.kind is PrincipalKind.scenario:
        if actor.id == scenario_id:
            return
        raise exceptions.NotYourScenario("a scenario sees only its own access requests and grants")
    if _of_department(actor, dataset):
        return
    raise exceptions.NotTheOwningDepartment(
        f"only the owning department {dataset.owner_department_id!r} sees access to {dataset.id!r}"
    )


def _visible(
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


# --- scenarios ------------------------------------------------------------------------------


def scenario_read(scenario: Scenario) -> ScenarioRead:
    return ScenarioRead.model_validate(scenario)


def create_scenario(ctx: Collaborators, payload: ScenarioCreate) -> ScenarioRead:
    """A scenario and its principal (kind ``scenario``), which receives the scenario's keys."""
    session = ctx.session
    catalog_service.create_principal(
        session, ctx.events, PrincipalCreate(id=payload.id, kind="scenario", name=payload.name)
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


def get_scenario(session: Session, scenario_id: str) -> Scenario:
    scenario = session.get(Scenario, scenario_id)
    if scenario is None:
        raise exceptions.ScenarioNotFound(f"no scenario {scenario_id!r}")
    return scenario


def list_scenarios(session: Session, status: ScenarioStatus | None = None) -> list[ScenarioRead]:
    query = sa.select(Scenario).order_by(Scenario.id)
    if status is not None:
        query = query.where(Scenario.status == status.value)
    return [scenario_read(row) for row in session.scalars(query)]


def update_scenario(
    ctx: Collaborators, actor: Principal, scenario_id: str, payload: ScenarioUpdate
) -> ScenarioRead:
    """Change a scenario's description or status; a suspended or retired scenario's keys stop.

    Retiring a scenario also revokes its grants and withdraws its pending requests, so that no
    grant of a scenario that no longer exists counts as live (in feeds or in utilization scores).
    """
    session = ctx.session
    scenario = get_scenario(session, scenario_id)
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
        catalog_service.set_principal_status(session, ctx.events, scenario.id, principal_status)
    session.flush()
    read = scenario_read(scenario)
    ctx.events.publish(session, catalog_events.SCENARIO, scenario.id, read)
    ctx.audit.record(
        session,
        action="scenario.update",
        resource_type="scenario",
        resource_id=scenario.id,
        scenario_id=scenario.id,
        details={"before": _plain(before), "after": _plain(changes)},
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
        _set_status(
            ctx, grant, _dataset_of(session, grant.dataset_id), GrantStatus.revoked, reason, "grant.revoke"
        )
    pending = session.scalars(
        sa.select(AccessRequest)
        .where(
            AccessRequest.scenario_id == scenario.id,
            AccessRequest.status == AccessRequestStatus.pending.value,
        )
        .order_by(AccessRequest.id)
    ).all()
    for request in pending:
        dataset = _dataset_of(session, request.dataset_id)
        _close(ctx, actor, request, dataset, AccessRequestStatus.withdrawn, reason, "access_request.withdraw")


def issue_scenario_key(ctx: Collaborators, actor: Principal, scenario_id: str, name: str) -> ApiKeyIssued:
    """A key for the scenario (shown once), through the catalog's principal keys.

    Only an admin issues them: a scenario that could mint its own keys would let a stolen key
    leave behind a sibling that outlives the stolen one's revocation.
    """
    if not actor.is_admin():
        raise Forbidden(f"a scenario's keys are issued by an admin, not by {actor.kind} {actor.id!r}")
    get_scenario(ctx.session, scenario_id)
    issued = catalog_service.issue_api_key(ctx.session, ctx.events, scenario_id, name)
    ctx.audit.record(
        ctx.session,
        action="api_key.issue",
        resource_type="api_key",
        resource_id=issued.prefix,
        scenario_id=scenario_id,
        details={"principal_id": scenario_id, "name": name},
    )
    return issued


# --- the contract a request is checked against ---------------------------------------------


@dataclass(frozen=True)
class ContractScope:
    """The fields of a dataset's current contract and the default mask of each sensitive one.

    A grant lists top-level ``fields`` (what feeds keep of a record); masks and row filters may
    reach into them by ``paths`` (``a.b``, ``a[].b``).
    """

    dataset: Dataset
    version: str
    fields: frozenset[str]
    paths: frozenset[str]
    sensitive: Mapping[str, dict[str, Any]]

    @property
    def classification(self) -> Classification:
        return Classification(self.dataset.classification)


def contract_scope(session: Session, dataset: Dataset) -> ContractScope:
    try:
        version = catalog_service.get_version(session, dataset.id)
    except catalog_exceptions.ContractVersionNotFound as error:
        raise exceptions.DatasetNotAvailable(f"dataset {dataset.id!r} has no contract yet") from error
    return ContractScope(
        dataset=dataset,
        version=version.version,
        fields=frozenset((version.record_schema.get("properties") or {}).keys()),
        paths=frozenset(field_paths(version.record_schema)),
        sensitive={path: contract_mask(rule) for path, rule in version.sensitive_fields.items()},
    )


def field_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    """Every field path of a record schema: ``a``, ``a.b`` inside objects, ``a[].b`` inside arrays."""
    for name, prop in (schema.get("properties") or {}).items():
        path = prefix + name
        yield path
        if not isinstance(prop, dict):
            continue
        if prop.get("properties"):
            yield from field_paths(prop, path + ".")
        items = prop.get("items")
        if isinstance(items, dict) and items.get("properties"):
            yield from field_paths(items, path + "[].")


def contract_mask(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A contract's stored masking rule (``keep_prefix``...) as the policy module's mask value."""
    names = {"keep_prefix": "keepPrefix", "keep_suffix": "keepSuffix", "precision": "precision"}
    value: dict[str, Any] = {"kind": rule["kind"]}
    value.update({names[key]: item for key, item in rule.items() if key in names and item is not None})
    return mask_json(_parse_mask(value, "/sensitive_fields"))


def mask_json(mask: FieldMask) -> dict[str, Any]:
    """A mask as grants store and publish it: always an object with ``kind``."""
    value = mask.to_value()
    return {"kind": value} if isinstance(value, str) else dict(value)


def _parse_mask(value: MaskValue, pointer: str) -> FieldMask:
    try:
        return FieldMask.from_value(value)
    except ValueError as error:
        raise exceptions.InvalidMask(
            str(error), errors=[FieldError(path=pointer, rule="mask", message=str(error))]
        ) from error


def _pointer(*parts: str | int) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _check_known(scope: ContractScope, fields: Sequence[str], where: str) -> None:
    unknown = [(index, name) for index, name in enumerate(fields) if name not in scope.fields]
    if unknown:
        raise exceptions.UnknownFields(
            f"{', '.join(repr(name) for _, name in unknown)} not in {scope.dataset.id} {scope.version}",
            errors=[
                FieldError(
                    path=_pointer("body", where, index),
                    rule="unknown-field",
                    message=f"{name!r} is not a top-level field of the current contract ({scope.version})",
                )
                for index, name in unknown
            ],
        )


def _check_row_filter(scope: ContractScope, text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        parse_row_filter(text, sorted(path for path in scope.paths if "[]" not in path))
    except RowFilterError as error:
        raise exceptions.InvalidRowFilter(
            f"{error.message} (at character {error.position})",
            errors=[
                FieldError(
                    path="/body/row_filter",
                    rule="row-filter",
                    message=f"{error.message} (at character {error.position})",
                )
            ],
            position=error.position,
        ) from error
    return text


def _covered(path: str, fields: Iterable[str]) -> bool:
    """Whether ``path`` is a granted field or inside one (``a.b`` is inside ``a``)."""
    return any(path == field or path.startswith((field + ".", field + "[].")) for field in fields)


@dataclass(frozen=True)
class Terms:
    fields: list[str]
    masking: dict[str, dict[str, Any]]
    unmasked: dict[str, dict[str, Any]]


def resolve_masking(
    scope: ContractScope,
    fields: Sequence[str],
    *,
    base_masking: Mapping[str, dict[str, Any]],
    base_unmasked: Mapping[str, dict[str, Any]],
    masking: Mapping[str, MaskValue] | None,
    unmask: Mapping[str, str] | None,
    actor: Principal,
    now: datetime,
) -> Terms:
    """The masks of a grant of ``fields``: kept from before, the contract's default on every
    sensitive field, then the approver's added or changed masks, then its un-maskings.

    An un-masked sensitive field stays in clear until a mask is set on it again. A restricted
    dataset never delivers a sensitive field in clear.
    """
    result = {path: mask for path, mask in base_masking.items() if _covered(path, fields)}
    unmasked = {path: entry for path, entry in base_unmasked.items() if _covered(path, fields)}
    for path, mask in scope.sensitive.items():
        if _covered(path, fields) and path not in result and path not in unmasked:
            result[path] = mask
    for path, value in (masking or {}).items():
        pointer = _pointer("body", "masking", path)
        if path not in scope.paths or not _covered(path, fields):
            raise exceptions.InvalidMask(
                f"{path!r} is not a granted field",
                errors=[FieldError(path=pointer, rule="granted-field", message=f"{path!r} is not granted")],
            )
        if unmask and path in unmask:
            raise exceptions.InvalidTerms(
                f"{path!r} cannot be both masked and un-masked",
                errors=[FieldError(path=pointer, rule="mask-or-unmask", message="choose one")],
            )
        mask = mask_json(_parse_mask(value, pointer))
        if (
            scope.classification is Classification.restricted
            and path in scope.sensitive
            and mask["kind"] not in STRONG_MASKS
            and mask != scope.sensitive[path]
        ):
            raise exceptions.UnmaskingNotAllowed(
                f"{scope.dataset.id} is restricted: {path!r} takes hash, redact or its contract rule",
                errors=[
                    FieldError(
                        path=pointer,
                        rule="restricted",
                        message="a weaker mask than the contract's could reveal the value",
                    )
                ],
            )
        result[path] = mask
        unmasked.pop(path, None)
    for path, reason in (unmask or {}).items():
        pointer = _pointer("body", "unmask", path)
        if path not in scope.sensitive or not _covered(path, fields):
            raise exceptions.UnmaskingNotAllowed(
                f"{path!r} is not a granted sensitive field",
                errors=[FieldError(path=pointer, rule="sensitive-field", message="nothing to un-mask")],
            )
        if scope.classification is Classification.restricted:
            raise exceptions.UnmaskingNotAllowed(
                f"{scope.dataset.id} is restricted: {path!r} is always masked",
                errors=[
                    FieldError(
                        path=pointer,
                        rule="restricted",
                        message="a restricted dataset never leaves the platform unmasked",
                    )
                ],
            )
        result.pop(path, None)
        unmasked[path] = {"reason": reason, "by": actor.id, "at": now.isoformat()}
    if scope.classification is Classification.restricted:
        # A restricted dataset may have been conditional when an earlier un-masking was granted.
        for path in [path for path in unmasked if path in scope.sensitive]:
            result[path] = scope.sensitive[path]
            del unmasked[path]
    return Terms(fields=list(fields), masking=result, unmasked=unmasked)


# --- access requests ------------------------------------------------------------------------


def request_read(request: AccessRequest) -> AccessRequestRead:
    return AccessRequestRead.model_validate(request)


def _new_id(prefix: str, now: datetime) -> str:
    """Ids that sort by creation time (cursor pagination is by id)."""
    return f"{prefix}-{int(now.timestamp() * 1000):012x}{secrets.token_hex(5)}"


def create_access_request(
    ctx: Collaborators, actor: Principal, payload: AccessRequestCreate
) -> AccessRequestRead:
    """File a request for the actor's scenario (an admin names the scenario). An open dataset is
    granted at once; others wait for the owning department's approver."""
    session = ctx.session
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
    scenario = get_scenario(session, scenario_id)
    if scenario.status != ScenarioStatus.active:
        raise exceptions.ScenarioNotActive(f"scenario {scenario_id!r} is {scenario.status}")
    dataset = _dataset(session, payload.dataset_id)
    if dataset.status in (DatasetStatus.retired, DatasetStatus.deprecated):
        raise exceptions.DatasetNotAvailable(f"dataset {dataset.id!r} is {dataset.status}")
    scope = contract_scope(session, dataset)
    fields = list(dict.fromkeys(payload.fields))
    _check_known(scope, fields, "fields")
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
        status=AccessRequestStatus.pending.value,
        requested_by=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    ctx.audit.record(
        session,
        action="access_request.create",
        resource_type="access_request",
        resource_id=request.id,
        dataset_id=dataset.id,
        department_id=dataset.owner_department_id,
        scenario_id=scenario_id,
        purpose=request.purpose,
        details={
            "purpose_category": request.purpose_category,
            "fields": fields,
            "duration_days": request.duration_days,
            "quota_records_per_day": request.quota_records_per_day,
            "classification": dataset.classification,
        },
    )
    if scope.classification is Classification.open:
        system = Principal(id=AUTO_APPROVER, kind=PrincipalKind.admin, name="open classification")
        _approve(ctx, system, request, scope, AccessRequestApproval(reason="open dataset: granted at once"))
    else:
        _publish_request(ctx, request)
    return request_read(request)


def _requesting_scenario(actor: Principal, scenario_id: str | None) -> str:
    if actor.kind is PrincipalKind.scenario:
        if scenario_id not in (None, actor.id):
            raise exceptions.NotYourScenario("a scenario files access requests only for itself")
        return actor.id
    if actor.is_admin():
        if scenario_id is None:
            raise InvalidRequest(
                "an admin files a request on behalf of a scenario: name it",
                errors=[FieldError(path="/body/scenario_id", rule="required", message="name the scenario")],
            )
        return scenario_id
    raise exceptions.NotYourScenario(f"a {actor.kind} does not file access requests; a scenario does")


def _dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise catalog_exceptions.DatasetNotFound(
            f"no dataset {dataset_id!r}",
            errors=[FieldError(path="/body/dataset_id", rule="exists", message=f"no dataset {dataset_id!r}")],
        )
    return dataset


def _check_duration(settings: AccessSettings, days: int, where: str) -> None:
    if days > settings.max_duration_days:
        raise exceptions.DurationTooLong(
            f"{days} days is beyond the maximum of {settings.max_duration_days}",
            errors=[
                FieldError(
                    path=_pointer("body", where),
                    rule="maximum",
                    message=f"at most {settings.max_duration_days} days",
                )
            ],
        )


def get_access_request(
    session: Session, actor: Principal, request_id: str, audit: Auditor | None = None
) -> AccessRequestRead:
    request = _request(session, request_id)
    dataset = _dataset_of(session, request.dataset_id)
    if audit is not None:
        _attempt(audit, "access_request.read", request, dataset)
    may_see(actor, request.scenario_id, dataset)
    return request_read(request)


def _request(session: Session, request_id: str, *, for_update: bool = False) -> AccessRequest:
    query = sa.select(AccessRequest).where(AccessRequest.id == request_id)
    if for_update:
        # Two approvers deciding at once: the second waits, then sees the request decided.
        query = query.with_for_update()
    request = session.scalars(query).one_or_none()
    if request is None:
        raise exceptions.AccessRequestNotFound(f"no access request {request_id!r}")
    return request


def _dataset_of(session: Session, dataset_id: str) -> Dataset:
    return catalog_service.get_dataset(session, dataset_id)


@dataclass(frozen=True)
class AccessRequestFilter:
    scenario_id: str | None = None
    dataset_id: str | None = None
    status: AccessRequestStatus | None = None


def list_access_requests(
    session: Session,
    actor: Principal,
    filters: AccessRequestFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AccessRequestRead], str | None]:
    """The requests the actor may see, oldest first, one page at a time."""
    query = _listed(actor, AccessRequest, filters.scenario_id, filters.dataset_id, "access requests")
    if filters.status:
        query = query.where(AccessRequest.status == filters.status.value)
    rows, next_cursor = _page(session, query, AccessRequest.id, limit, cursor, "ar")
    return [request_read(row) for row in rows], next_cursor


def _listed(
    actor: Principal,
    model: type[AccessRequest] | type[Grant],
    scenario_id: str | None,
    dataset_id: str | None,
    noun: str,
) -> Any:
    """The rows of ``model`` the actor may see, oldest first, narrowed by scenario and dataset."""
    if actor.kind is PrincipalKind.scenario and scenario_id not in (None, actor.id):
        raise exceptions.NotYourScenario(f"a scenario sees only its own {noun}")
    query = _visible(actor, sa.select(model), model.scenario_id, model.dataset_id).order_by(model.id)
    if scenario_id:
        query = query.where(model.scenario_id == scenario_id)
    if dataset_id:
        query = query.where(model.dataset_id == dataset_id)
    return query


def approve_access_request(
    ctx: Collaborators, actor: Principal, request_id: str, approval: AccessRequestApproval
) -> AccessRequestRead:
    """Approve a pending request: its grant is created with the approver's (narrowing) terms."""
    request = _request(ctx.session, request_id, for_update=True)
    dataset = _dataset_of(ctx.session, request.dataset_id)
    _attempt(ctx.audit, "access_request.approve", request, dataset)
    may_decide(actor, dataset)
    _pending(request)
    _approve(ctx, actor, request, contract_scope(ctx.session, dataset), approval)
    return request_read(request)


def _pending(request: AccessRequest) -> None:
    if request.status != AccessRequestStatus.pending:
        raise exceptions.AlreadyDecided(
            f"access request {request.id} is already {request.status}"
            + (f" (by {request.decided_by})" if request.decided_by else "")
        )


def _approve(
    ctx: Collaborators,
    actor: Principal,
    request: AccessRequest,
    scope: ContractScope,
    approval: AccessRequestApproval,
) -> Grant:
    session, now = ctx.session, ctx.clock()
    fields = _narrowed_fields(scope, request.fields, approval.fields)
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
    row_filter = _check_row_filter(scope, approval.row_filter)
    days = approval.duration_days or request.duration_days
    if days > request.duration_days:
        raise exceptions.DurationTooLong(
            f"{days} days is more than the {request.duration_days} requested",
            errors=[
                FieldError(path="/body/duration_days", rule="maximum", message="at most what was requested")
            ],
        )
    valid_from = approval.valid_from.astimezone(UTC) if approval.valid_from else now
    if valid_from < now - timedelta(minutes=5):
        raise exceptions.InvalidTerms(
            "a grant cannot start in the past",
            errors=[FieldError(path="/body/valid_from", rule="minimum", message="now or later")],
        )
    quota = _narrowed_quota(request.quota_records_per_day, approval, "quota_records_per_day")
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
    _publish_grant(ctx, grant)
    common = _audit_scope(request, scope.dataset)
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
        details={"version": grant.version, **_grant_terms(grant)},
    )
    _audit_unmasking(ctx, grant, request, scope.dataset, approval.unmask)
    return grant


def _narrowed_fields(
    scope: ContractScope, requested: Sequence[str], chosen: Sequence[str] | None
) -> list[str]:
    if chosen is None:
        fields = [name for name in requested if name in scope.fields]
    else:
        fields = list(dict.fromkeys(chosen))
        beyond = [(index, name) for index, name in enumerate(fields) if name not in requested]
        if beyond:
            raise exceptions.FieldsNotRequested(
                f"{', '.join(repr(name) for _, name in beyond)} were not requested",
                errors=[
                    FieldError(
                        path=_pointer("body", "fields", index),
                        rule="requested",
                        message=f"{name!r} was not requested",
                    )
                    for index, name in beyond
                ],
            )
        _check_known(scope, fields, "fields")
    if not fields:
        raise exceptions.InvalidTerms(
            "a grant needs at least one field of the current contract",
            errors=[FieldError(path="/body/fields", rule="minItems", message="at least one field")],
        )
    return fields


def _narrowed_quota(requested: int | None, terms: GrantTerms, where: str) -> int | None:
    quota = terms.quota_records_per_day if "quota_records_per_day" in terms.model_fields_set else requested
    if requested is not None and (quota is None or quota > requested):
        raise exceptions.InvalidTerms(
            f"the quota may not exceed the {requested} records/day requested",
            errors=[FieldError(path=_pointer("body", where), rule="maximum", message=f"at most {requested}")],
        )
    return quota


def reject_access_request(
    ctx: Collaborators, actor: Principal, request_id: str, reason: str
) -> AccessRequestRead:
    request = _request(ctx.session, request_id, for_update=True)
    dataset = _dataset_of(ctx.session, request.dataset_id)
    _attempt(ctx.audit, "access_request.reject", request, dataset)
    may_decide(actor, dataset)
    _pending(request)
    return _close(ctx, actor, request, dataset, AccessRequestStatus.rejected, reason, "access_request.reject")


def withdraw_access_request(
    ctx: Collaborators, actor: Principal, request_id: str, reason: str | None
) -> AccessRequestRead:
    """The requesting scenario (or an admin) takes back a request that is still pending."""
    request = _request(ctx.session, request_id, for_update=True)
    dataset = _dataset_of(ctx.session, request.dataset_id)
    _attempt(ctx.audit, "access_request.withdraw", request, dataset)
    if not actor.is_admin() and actor.id != request.scenario_id:
        raise exceptions.NotYourScenario("only the requesting scenario may withdraw its request")
    _pending(request)
    return _close(
        ctx, actor, request, dataset, AccessRequestStatus.withdrawn, reason, "access_request.withdraw"
    )


def _close(
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
        **_audit_scope(request, dataset),
        details={"reason": reason, "decided_by": actor.id},
    )
    return request_read(request)


# --- grants ---------------------------------------------------------------------------------


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
        raise exceptions.GrantNotFound(f"no grant {grant_id!r}")
    return grant


def get_grant(
    session: Session, actor: Principal, grant_id: str, now: datetime, audit: Auditor | None = None
) -> GrantRead:
    grant = _grant(session, grant_id)
    dataset = _dataset_of(session, grant.dataset_id)
    if audit is not None:
        _attempt(audit, "grant.read", grant, dataset)
    may_see(actor, grant.scenario_id, dataset)
    return grant_read(grant, now)


@dataclass(frozen=True)
class GrantFilter:
    scenario_id: str | None = None
    dataset_id: str | None = None
    status: GrantStatus | None = None


def list_grants(
    session: Session,
    actor: Principal,
    filters: GrantFilter,
    now: datetime,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[GrantRead], str | None]:
    """The grants the actor may see, oldest first; ``status=expired`` is a filter on the clock."""
    query = _listed(actor, Grant, filters.scenario_id, filters.dataset_id, "grants")
    if filters.status is GrantStatus.expired:
        query = query.where(Grant.status != GrantStatus.revoked.value, Grant.expires_at <= now)
    elif filters.status is GrantStatus.revoked:
        query = query.where(Grant.status == GrantStatus.revoked.value)
    elif filters.status is not None:
        query = query.where(Grant.status == filters.status.value, Grant.expires_at > now)
    rows, next_cursor = _page(session, query, Grant.id, limit, cursor, "gr")
    return [grant_read(row, now) for row in rows], next_cursor


def update_grant(ctx: Collaborators, actor: Principal, grant_id: str, update: GrantUpdate) -> GrantRead:
    """New terms for a live grant, each within the request and the current contract."""
    session, now = ctx.session, ctx.clock()
    grant = _grant(session, grant_id, for_update=True)
    dataset = _dataset_of(session, grant.dataset_id)
    _attempt(ctx.audit, "grant.update", grant, dataset)
    may_decide(actor, dataset)
    _live(grant, now)
    request = _request(session, grant.request_id)
    scope = contract_scope(session, dataset)
    fields = (
        _narrowed_fields(scope, request.fields, update.fields)
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
        _check_row_filter(scope, update.row_filter) if "row_filter" in set_fields else grant.row_filter
    )
    quota = (
        _narrowed_quota(request.quota_records_per_day, update, "quota_records_per_day")
        if "quota_records_per_day" in set_fields
        else grant.quota_records_per_day
    )
    expires_at = as_utc(grant.expires_at)
    if update.expires_at is not None:
        latest = as_utc(grant.valid_from) + timedelta(days=request.duration_days)
        if update.expires_at > latest:
            raise exceptions.DurationTooLong(
                f"the grant may last until {latest.isoformat()} at the latest (the requested duration)",
                errors=[
                    FieldError(
                        path="/body/expires_at", rule="maximum", message=f"at most {latest.isoformat()}"
                    )
                ],
            )
        expires_at = update.expires_at.astimezone(UTC)
    before = _grant_terms(grant)
    grant.fields = terms.fields
    grant.masking = terms.masking
    grant.unmasked = terms.unmasked
    grant.row_filter = row_filter
    grant.quota_records_per_day = quota
    grant.expires_at = expires_at
    grant.contract_version = scope.version
    after = _grant_terms(grant)
    changed = after != before
    if changed:
        _bump(grant, now, update.reason)
        session.flush()
        _publish_grant(ctx, grant)
    _audit_update(ctx, grant, dataset, update.reason, changed, before)
    _audit_unmasking(ctx, grant, grant, dataset, update.unmask)
    return grant_read(grant, now)


CONTRACT_POLICY = Principal(id="policy:contract-sensitivity", kind=PrincipalKind.admin, name="contract")
"""Who masks a field of a live grant because a new contract version marked it sensitive."""


def apply_contract_masking(ctx: Collaborators, dataset_id: str) -> list[GrantRead]:
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
    dataset = _dataset_of(session, dataset_id)
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
        before = _grant_terms(grant)
        grant.masking = terms.masking
        grant.unmasked = terms.unmasked
        grant.contract_version = scope.version
        reason = (
            f"contract version {scope.version} of {dataset.id} marks {', '.join(masked)} sensitive: "
            "the grant masks them by the contract's rule"
        )
        _bump(grant, now, reason)
        session.flush()
        _publish_grant(ctx, grant)
        _audit_update(
            ctx, grant, dataset, reason, True, before, contract_version=scope.version, masked=masked
        )
        changed.append(grant_read(grant, now))
    return changed


KEYED_REASON = "the grant's hash masks are keyed by a random key of its own"


def issue_missing_hash_keys(
    session: Session, events: catalog_service.CatalogEvents, now: datetime | None = None
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


def suspend_grant(ctx: Collaborators, actor: Principal, grant_id: str, reason: str) -> GrantRead:
    return _transition(
        ctx, actor, grant_id, reason, GrantStatus.active, GrantStatus.suspended, "grant.suspend"
    )


def resume_grant(ctx: Collaborators, actor: Principal, grant_id: str, reason: str) -> GrantRead:
    return _transition(
        ctx, actor, grant_id, reason, GrantStatus.suspended, GrantStatus.active, "grant.resume"
    )


def revoke_grant(ctx: Collaborators, actor: Principal, grant_id: str, reason: str) -> GrantRead:
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
    session, now = ctx.session, ctx.clock()
    grant = _grant(session, grant_id, for_update=True)
    dataset = _dataset_of(session, grant.dataset_id)
    _attempt(ctx.audit, action, grant, dataset)
    may_decide(actor, dataset)
    if grant.status == GrantStatus.revoked:
        raise exceptions.GrantRevoked(f"grant {grant.id} is revoked; nothing changes it any more")
    if target is not GrantStatus.revoked:
        _live(grant, now)
    if source is not None and grant.status != source:
        raise exceptions.GrantStateConflict(f"grant {grant.id} is {grant.status}, not {source}")
    _set_status(ctx, grant, dataset, target, reason, action)
    return grant_read(grant, now)


def _set_status(
    ctx: Collaborators, grant: Grant, dataset: Dataset, target: GrantStatus, reason: str, action: str
) -> None:
    before = grant.status
    grant.status = target.value
    _bump(grant, ctx.clock(), reason)
    ctx.session.flush()
    _publish_grant(ctx, grant)
    ctx.audit.record(
        ctx.session,
        action=action,
        resource_type="grant",
        resource_id=grant.id,
        **_audit_scope(grant, dataset),
        details={"reason": reason, "version": grant.version, "before": before, "after": grant.status},
    )


def _live(grant: Grant, now: datetime) -> None:
    status = effective_status(grant, now)
    if status is GrantStatus.revoked:
        raise exceptions.GrantRevoked(f"grant {grant.id} is revoked; nothing changes it any more")
    if status is GrantStatus.expired:
        raise exceptions.GrantExpired(
            f"grant {grant.id} expired at {as_utc(grant.expires_at).isoformat()}; file a new request"
        )


def _bump(grant: Grant, now: datetime, reason: str) -> None:
    grant.version += 1
    grant.updated_at = now
    grant.status_reason = reason


def _grant_terms(grant: Grant) -> dict[str, Any]:
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
        **_audit_scope(grant, dataset),
        details={
            "reason": reason,
            "version": grant.version,
            "changed": changed,
            **more,
            "before": before,
            "after": _grant_terms(grant),
        },
    )


def _audit_unmasking(
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
            **_audit_scope(origin, dataset),
            details={"field": path, "reason": reason, "version": grant.version},
        )


def _attempt(audit: Auditor, action: str, entity: AccessRequest | Grant, dataset: Dataset) -> None:
    """Refine what the request attempts, now that the entity (and so its scope) is known."""
    resource_type = "grant" if isinstance(entity, Grant) else "access_request"
    audit.attempting(action, resource_type, entity.id, **_audit_scope(entity, dataset))


def _audit_scope(entity: AccessRequest | Grant, dataset: Dataset) -> dict[str, Any]:
    return {
        "dataset_id": dataset.id,
        "department_id": dataset.owner_department_id,
        "scenario_id": entity.scenario_id,
        "purpose": entity.purpose,
    }


# --- events, pages, values ------------------------------------------------------------------


def _publish_request(ctx: Collaborators, request: AccessRequest) -> None:
    ctx.events.publish(ctx.session, catalog_events.ACCESS_REQUEST, request.id, request_read(request))


def _publish_grant(ctx: Collaborators, grant: Grant) -> None:
    ctx.events.publish(ctx.session, catalog_events.GRANT, grant.id, grant_state(grant))


_ID = re.compile(r"^(ar|gr)-[0-9a-f]{22}$")


def _page(
    session: Session, query: sa.Select[Any], column: Any, limit: int, cursor: str | None, prefix: str
) -> tuple[list[Any], str | None]:
    if cursor:
        if not _ID.match(cursor) or not cursor.startswith(prefix + "-"):
            raise catalog_exceptions.InvalidCursor("the cursor was not issued by this API")
        query = query.where(column > cursor)
    rows = list(session.scalars(query.limit(limit + 1)))
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit and page else None)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value.value if hasattr(value, "value") else value for name, value in values.items()}
