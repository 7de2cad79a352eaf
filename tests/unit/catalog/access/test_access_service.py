"""The rules of authorized operation, on the service functions (SQLite, a recording audit trail)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions as catalog_exceptions
from services.catalog.access import context, exceptions, grants, requests, scenarios, terms
from services.catalog.access.models import AccessRequest, Grant
from services.catalog.access.schemas import (
    AccessRequestApproval,
    AccessRequestCreate,
    AccessRequestSubmission,
    GrantStatus,
    GrantUpdate,
    ScenarioCreate,
    ScenarioUpdate,
)
from services.catalog.access.settings import AccessSettings
from services.catalog.contracts import service as contracts_service
from services.catalog.datasets.service import change_dataset
from services.catalog.events import CatalogEvents
from services.catalog.examples import load_examples
from services.catalog.models import outbox
from services.catalog.principals import service as principals_service
from services.catalog.schemas import DatasetUpdate, PrincipalCreate
from services.common import catalog_events, db
from services.common.auth import Principal, PrincipalKind
from services.common.outbox import Outbox
from services.common.policy import GrantTerms, compile_policy, hash_key_of
from services.common.problems import Forbidden
from tests.factories import (
    EXAMPLES,
    OUTPATIENT_FIELDS,
    access_request_create,
    contract_property,
    evolve_contract,
    example_contract,
    scenario_create,
)

MIGRATIONS = Path(__file__).resolve().parents[4] / "services" / "catalog" / "migrations"
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

ADMIN = Principal("admin", PrincipalKind.admin, "Admin")
OPERATOR = Principal("ops", PrincipalKind.operator, "Operator")
MARKET_APPROVER = Principal("market-approver", PrincipalKind.approver, "M", "market-supervision")
HEALTH_APPROVER = Principal("health-approver", PrincipalKind.approver, "H", "health-commission")
DISTRICT_APPROVER = Principal("putuo-approver", PrincipalKind.approver, "P", "putuo-district")
MARKET_PUBLISHER = Principal("market-publisher", PrincipalKind.department, "MP", "market-supervision")
VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "One-stop visit")
COMMUNITY = Principal("ai-community", PrincipalKind.scenario, "AI + community")


@dataclass
class RecordingAudit:
    """The audit trail's interface, remembering what it was told."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def attempting(self, action: str, resource_type: str, resource_id: str, **scope: Any) -> None:
        self.attempts.append({"action": action, "resource_id": resource_id, **scope})

    def record(self, session: Session, *, action: str, **entry: Any) -> None:
        self.entries.append({"action": action, **entry})

    def actions(self) -> list[str]:
        return [entry["action"] for entry in self.entries]


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    session: Session
    ctx: context.Collaborators
    audit: RecordingAudit
    clock: Clock

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """The states announced of ``event_type`` so far (in the outbox, in order)."""
        rows = self.session.execute(sa.select(outbox).order_by(outbox.c.id)).all()
        found = []
        for row in rows:
            headers = dict(_decode_headers(row.headers))
            if headers.get("ce_type") == event_type.encode():
                found.append(json.loads(row.value))
        return found

    def request(self, actor: Principal = VISIT, **overrides: Any) -> Any:
        return requests.create_access_request(
            self.ctx,
            actor=actor,
            payload=AccessRequestCreate.model_validate(access_request_create(**overrides)),
        )

    def approve(self, request_id: str, actor: Principal = MARKET_APPROVER, **terms: Any) -> Grant:
        read = requests.approve_access_request(
            self.ctx,
            actor=actor,
            request_id=request_id,
            approval=AccessRequestApproval.model_validate({"reason": "fits", **terms}),
        )
        grant = self.session.get(Grant, read.grant_id)
        assert grant is not None
        return grant


def _decode_headers(text: str) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in json.loads(text)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = db.create_db_engine(url)
    db.migrate(url, MIGRATIONS, "alembic_version_catalog", engine)
    session = db.session_factory(engine)()
    events = CatalogEvents(Outbox(outbox))
    load_examples(session, events=events, directory=EXAMPLES)
    for principal in (MARKET_APPROVER, HEALTH_APPROVER, DISTRICT_APPROVER):
        principals_service.add_principal(
            session,
            events=events,
            payload=PrincipalCreate(
                id=principal.id, kind="approver", name=principal.name, department_id=principal.department_id
            ),
        )
    audit, clock = RecordingAudit(), Clock()
    ctx = context.Collaborators(session, events, audit, AccessSettings(), clock)
    for scenario in (VISIT, COMMUNITY):
        scenarios.create_scenario(ctx, payload=ScenarioCreate.model_validate(scenario_create(scenario.id)))
    audit.entries.clear()
    audit.attempts.clear()
    try:
        yield World(session, ctx, audit, clock)
    finally:
        session.close()
        engine.dispose()


# --- classification decides the default ----------------------------------------------------


def test_a_conditional_dataset_waits_for_its_department_and_masks_sensitive_fields(world: World) -> None:
    request = world.request()
    assert request.status == "pending" and request.grant_id is None
    assert request.contract_version == "1.1.0"
    grant = world.approve(request.id, fields=["inspection_id", "result", "inspector_phone"])
    assert grant.fields == ["inspection_id", "result", "inspector_phone"]
    assert grant.masking == {"inspector_phone": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}}
    assert grant.version == 1 and grant.status == "active"
    assert grant.expires_at.replace(tzinfo=UTC) == START + timedelta(days=90)
    decided = requests.get_access_request(world.session, actor=VISIT, request_id=request.id)
    assert (decided.status, decided.decided_by, decided.grant_id) == (
        "approved",
        MARKET_APPROVER.id,
        grant.id,
    )
    assert world.audit.actions() == ["access_request.create", "access_request.approve", "grant.create"]
    assert world.audit.entries[-1]["purpose"] == request.purpose
    [announced] = world.events(catalog_events.GRANT)
    assert announced == grants.grant_state(grant)
    assert announced["masking"]["inspector_phone"]["kind"] == "partial"


def test_an_open_dataset_is_granted_at_once_with_sensitive_fields_still_masked(world: World) -> None:
    change_dataset(
        world.session,
        events=world.ctx.events,
        dataset_id="community.service-requests",
        payload=DatasetUpdate(classification="open"),
    )
    fields = ["request_id", "category", "street", "resident_phone"]
    request = world.request(COMMUNITY, dataset_id="community.service-requests", fields=fields)
    assert request.status == "approved" and request.decided_by == requests.AUTO_APPROVER
    grant = grants.get_grant(
        world.session, actor=COMMUNITY, grant_id=request.grant_id or "", now=world.clock()
    )
    assert grant.fields == fields
    assert grant.masking == {"resident_phone": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}}
    assert "grant.create" in world.audit.actions()


def test_a_restricted_dataset_never_unmasks_and_hashes_by_default(world: World) -> None:
    request = world.request(dataset_id="health.outpatient-visits", fields=OUTPATIENT_FIELDS)
    assert request.status == "pending"
    with pytest.raises(exceptions.UnmaskingNotAllowed) as refused:
        world.approve(request.id, HEALTH_APPROVER, unmask={"patient_id": "needed to call patients"})
    assert refused.value.errors and refused.value.errors[0].path == "/body/unmask/patient_id"
    assert requests.get_access_request(world.session, actor=VISIT, request_id=request.id).status == "pending"
    weaker = {"kind": "partial", "keepPrefix": 60, "keepSuffix": 4}
    with pytest.raises(exceptions.UnmaskingNotAllowed) as weak:
        world.approve(request.id, HEALTH_APPROVER, masking={"patient_id": weaker})
    assert (weak.value.errors or [])[0].path == "/body/masking/patient_id"
    grant = world.approve(request.id, HEALTH_APPROVER, masking={"patient_id": "redact"})
    assert grant.masking == {"patient_id": {"kind": "redact"}}
    with pytest.raises(exceptions.UnmaskingNotAllowed):
        grants.update_grant(
            world.ctx,
            actor=HEALTH_APPROVER,
            grant_id=grant.id,
            update=GrantUpdate(reason="again", unmask={"patient_id": "please"}),
        )


def test_unmasking_on_a_conditional_dataset_is_explicit_and_audited(world: World) -> None:
    request = world.request()
    grant = world.approve(request.id, unmask={"inspector_phone": "residents call the inspector back"})
    assert grant.masking == {}
    assert grant.unmasked["inspector_phone"]["reason"] == "residents call the inspector back"
    assert grant.unmasked["inspector_phone"]["by"] == MARKET_APPROVER.id
    unmasking = [entry for entry in world.audit.entries if entry["action"] == "grant.unmask"]
    assert unmasking and unmasking[0]["details"]["field"] == "inspector_phone"
    assert unmasking[0]["details"]["reason"] == "residents call the inspector back"
    # masking it again is a change of terms: the field leaves the un-masked list
    updated = grants.update_grant(
        world.ctx,
        actor=MARKET_APPROVER,
        grant_id=grant.id,
        update=GrantUpdate(reason="complaint", masking={"inspector_phone": "hash"}),
    )
    assert updated.masking == {"inspector_phone": {"kind": "hash"}} and updated.unmasked == {}
    assert updated.version == 2


# --- bad input: precise, nothing written -----------------------------------------------------


def _counts(world: World) -> tuple[int, int, int]:
    return (
        world.session.scalar(sa.select(sa.func.count()).select_from(AccessRequest)) or 0,
        world.session.scalar(sa.select(sa.func.count()).select_from(Grant)) or 0,
        world.session.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0,
    )


def test_unknown_fields_and_datasets_and_long_durations_are_refused_before_anything_is_written(
    world: World,
) -> None:
    before = _counts(world)
    with pytest.raises(exceptions.UnknownFields) as unknown:
        world.request(fields=["inspection_id", "owner_home_address", "result", "salary"])
    assert [error.path for error in unknown.value.errors or []] == ["/body/fields/1", "/body/fields/3"]
    with pytest.raises(catalog_exceptions.DatasetNotFound):
        world.request(dataset_id="market.nothing")
    with pytest.raises(exceptions.DurationTooLong) as too_long:
        world.request(duration_days=366)
    assert (too_long.value.errors or [])[0].path == "/body/duration_days"
    shorter = replace(world.ctx, settings=AccessSettings(max_duration_days=30))
    with pytest.raises(exceptions.DurationTooLong):
        requests.create_access_request(
            shorter,
            actor=VISIT,
            payload=AccessRequestCreate.model_validate(access_request_create(duration_days=31)),
        )
    assert _counts(world) == before
    assert world.audit.entries == []
    assert [attempt["action"] for attempt in world.audit.attempts] == ["access_request.create"] * 4


def test_a_row_filter_must_parse_and_name_fields_of_the_contract(world: World) -> None:
    request = world.request()
    with pytest.raises(exceptions.InvalidRowFilter) as broken:
        world.approve(request.id, row_filter='district in ["Putuo", ')
    assert broken.value.errors and broken.value.errors[0].path == "/body/row_filter"
    assert isinstance(broken.value.extensions["position"], int)
    with pytest.raises(exceptions.InvalidRowFilter) as unknown:
        world.approve(request.id, row_filter='postcode == "200000"')
    assert unknown.value.extensions["position"] == 0
    grant = world.approve(request.id, row_filter='district in ["Putuo", "Baoshan"]')
    assert grant.row_filter == 'district in ["Putuo", "Baoshan"]'


def test_an_approval_only_narrows_what_was_asked(world: World) -> None:
    request = world.request(fields=["inspection_id", "result"], quota_records_per_day=1000)
    with pytest.raises(exceptions.FieldsNotRequested) as wider:
        world.approve(request.id, fields=["inspection_id", "result", "district"])
    assert (wider.value.errors or [])[0].path == "/body/fields/2"
    with pytest.raises(exceptions.DurationTooLong):
        world.approve(request.id, duration_days=91)
    with pytest.raises(exceptions.InvalidTerms):
        world.approve(request.id, quota_records_per_day=5000)
    with pytest.raises(exceptions.InvalidMask):
        world.approve(request.id, masking={"district": "hash"})  # not granted
    with pytest.raises(exceptions.InvalidMask):
        world.approve(request.id, masking={"result": {"kind": "scramble"}})
    grant = world.approve(request.id, duration_days=30, quota_records_per_day=500, masking={"result": "hash"})
    assert grant.quota_records_per_day == 500
    assert grant.masking == {"result": {"kind": "hash"}}
    assert grant.expires_at.replace(tzinfo=UTC) == START + timedelta(days=30)


def test_only_the_owning_departments_approver_or_an_admin_decides(world: World) -> None:
    request = world.request()
    for outsider in (HEALTH_APPROVER, DISTRICT_APPROVER, MARKET_PUBLISHER, VISIT, OPERATOR):
        with pytest.raises((exceptions.NotTheOwningDepartment, exceptions.NotYourScenario)):
            world.approve(request.id, outsider)
    assert world.audit.attempts[-1]["department_id"] == "market-supervision"
    assert requests.get_access_request(world.session, actor=ADMIN, request_id=request.id).status == "pending"
    world.approve(request.id, ADMIN)


def test_a_decided_request_cannot_be_decided_again(world: World) -> None:
    request = world.request()
    requests.reject_access_request(
        world.ctx, actor=MARKET_APPROVER, request_id=request.id, reason="not needed for that purpose"
    )
    with pytest.raises(exceptions.AlreadyDecided):
        world.approve(request.id)
    with pytest.raises(exceptions.AlreadyDecided):
        requests.withdraw_access_request(world.ctx, actor=VISIT, request_id=request.id, reason=None)
    other = world.request()
    with pytest.raises(exceptions.NotYourScenario):
        requests.withdraw_access_request(world.ctx, actor=COMMUNITY, request_id=other.id, reason=None)
    withdrawn = requests.withdraw_access_request(
        world.ctx, actor=VISIT, request_id=other.id, reason="found another source"
    )
    assert withdrawn.status == "withdrawn"
    with pytest.raises(exceptions.AlreadyDecided):
        world.approve(other.id)
    states = [request["status"] for request in world.events(catalog_events.ACCESS_REQUEST)]
    assert states == ["pending", "rejected", "pending", "withdrawn"]


# --- who sees what -------------------------------------------------------------------------


def test_a_scenario_sees_only_its_own_requests_and_grants(world: World) -> None:
    mine = world.approve(world.request().id)
    theirs = world.approve(world.request(COMMUNITY).id)
    with pytest.raises(exceptions.NotYourScenario):
        grants.get_grant(world.session, actor=VISIT, grant_id=theirs.id, now=world.clock())
    with pytest.raises(exceptions.NotYourScenario):
        requests.get_access_request(world.session, actor=VISIT, request_id=theirs.request_id)
    with pytest.raises(exceptions.NotYourScenario):
        grants.list_grants(
            world.session,
            actor=VISIT,
            filters=grants.GrantFilter(scenario_id=COMMUNITY.id),
            now=world.clock(),
        )
    filters = grants.GrantFilter()
    assert [
        g.id for g in grants.list_grants(world.session, actor=VISIT, filters=filters, now=world.clock())[0]
    ] == [mine.id]
    assert (
        len(grants.list_grants(world.session, actor=MARKET_APPROVER, filters=filters, now=world.clock())[0])
        == 2
    )
    assert (
        grants.list_grants(world.session, actor=HEALTH_APPROVER, filters=filters, now=world.clock())[0] == []
    )
    assert len(grants.list_grants(world.session, actor=OPERATOR, filters=filters, now=world.clock())[0]) == 2
    assert (
        len(grants.list_grants(world.session, actor=MARKET_PUBLISHER, filters=filters, now=world.clock())[0])
        == 2
    )
    with pytest.raises(exceptions.NotTheOwningDepartment):
        grants.get_grant(world.session, actor=HEALTH_APPROVER, grant_id=mine.id, now=world.clock())
    page, cursor = requests.list_access_requests(
        world.session, actor=ADMIN, filters=requests.AccessRequestFilter(), limit=1
    )
    assert len(page) == 1 and cursor is not None
    rest, end = requests.list_access_requests(
        world.session, actor=ADMIN, filters=requests.AccessRequestFilter(), limit=1, cursor=cursor
    )
    assert len(rest) == 1 and rest[0].id != page[0].id and end is None
    with pytest.raises(catalog_exceptions.InvalidCursor):
        requests.list_access_requests(
            world.session, actor=ADMIN, filters=requests.AccessRequestFilter(), cursor="gr-x"
        )


# --- a grant's life ---------------------------------------------------------------------------


def test_every_change_of_a_grant_increments_its_version_and_is_announced(world: World) -> None:
    grant = world.approve(world.request().id)
    update = GrantUpdate(reason="narrow", fields=["inspection_id", "result"], row_filter='result == "pass"')
    updated = grants.update_grant(world.ctx, actor=MARKET_APPROVER, grant_id=grant.id, update=update)
    assert (updated.version, updated.fields, updated.masking) == (2, ["inspection_id", "result"], {})
    same = grants.update_grant(world.ctx, actor=MARKET_APPROVER, grant_id=grant.id, update=update)
    assert same.version == 2  # nothing changed, nothing announced
    assert (
        grants.suspend_grant(world.ctx, actor=MARKET_APPROVER, grant_id=grant.id, reason="quota abuse").status
        == "suspended"
    )
    with pytest.raises(exceptions.GrantStateConflict):
        grants.suspend_grant(world.ctx, actor=MARKET_APPROVER, grant_id=grant.id, reason="again")
    assert grants.resume_grant(world.ctx, actor=ADMIN, grant_id=grant.id, reason="cleared").status == "active"
    revoked = grants.revoke_grant(
        world.ctx, actor=MARKET_APPROVER, grant_id=grant.id, reason="scenario closed"
    )
    assert (revoked.status, revoked.version, revoked.status_reason) == ("revoked", 5, "scenario closed")
    for change in (
        lambda: grants.resume_grant(world.ctx, actor=ADMIN, grant_id=grant.id, reason="no"),
        lambda: grants.revoke_grant(world.ctx, actor=ADMIN, grant_id=grant.id, reason="no"),
        lambda: grants.update_grant(
            world.ctx, actor=ADMIN, grant_id=grant.id, update=GrantUpdate(reason="no", row_filter=None)
        ),
    ):
        with pytest.raises(exceptions.GrantRevoked):
            change()
    with pytest.raises(exceptions.NotTheOwningDepartment):
        grants.suspend_grant(world.ctx, actor=HEALTH_APPROVER, grant_id=grant.id, reason="not mine")
    announced = [(payload["version"], payload["status"]) for payload in world.events(catalog_events.GRANT)]
    assert announced == [(1, "active"), (2, "active"), (3, "suspended"), (4, "active"), (5, "revoked")]
    assert world.audit.actions().count("grant.update") == 2


def test_expiry_is_read_from_the_clock_and_ends_every_change_but_revocation(world: World) -> None:
    grant = world.approve(world.request(duration_days=10).id)
    filters = grants.GrantFilter(status=GrantStatus.expired)
    assert grants.list_grants(world.session, actor=ADMIN, filters=filters, now=world.clock())[0] == []
    world.clock.now = START + timedelta(days=10)
    assert (
        grants.get_grant(world.session, actor=VISIT, grant_id=grant.id, now=world.clock()).status == "expired"
    )
    assert [
        g.id for g in grants.list_grants(world.session, actor=ADMIN, filters=filters, now=world.clock())[0]
    ] == [grant.id]
    active = grants.GrantFilter(status=GrantStatus.active)
    assert grants.list_grants(world.session, actor=ADMIN, filters=active, now=world.clock())[0] == []
    assert world.session.get(Grant, grant.id).status == "active"  # type: ignore[union-attr]  # never stored
    with pytest.raises(exceptions.GrantExpired):
        grants.resume_grant(world.ctx, actor=ADMIN, grant_id=grant.id, reason="x")
    with pytest.raises(exceptions.GrantExpired):
        grants.update_grant(
            world.ctx,
            actor=ADMIN,
            grant_id=grant.id,
            update=GrantUpdate(reason="x", fields=["inspection_id"]),
        )
    assert grants.revoke_grant(world.ctx, actor=ADMIN, grant_id=grant.id, reason="tidy").status == "revoked"


def test_an_expiry_may_be_shortened_or_extended_up_to_the_requested_duration(world: World) -> None:
    grant = world.approve(world.request(duration_days=90).id, duration_days=30)
    latest = START + timedelta(days=90)
    extended = grants.update_grant(
        world.ctx,
        actor=MARKET_APPROVER,
        grant_id=grant.id,
        update=GrantUpdate(reason="pilot extended", expires_at=latest),
    )
    assert extended.expires_at == latest
    with pytest.raises(exceptions.DurationTooLong):
        grants.update_grant(
            world.ctx,
            actor=MARKET_APPROVER,
            grant_id=grant.id,
            update=GrantUpdate(reason="more", expires_at=latest + timedelta(seconds=1)),
        )


# --- scenarios -------------------------------------------------------------------------------


def test_a_scenario_is_a_principal_whose_keys_stop_when_it_is_suspended(world: World) -> None:
    principal = principals_service.get_principal(world.session, VISIT.id)
    assert (principal.kind, principal.status) == ("scenario", "active")
    issued = scenarios.issue_scenario_key(world.ctx, actor=ADMIN, scenario_id=VISIT.id, name="laptop")
    assert issued.principal_id == VISIT.id and issued.key.startswith("cbk_")
    # Only an admin issues a scenario's keys: neither another scenario nor the scenario itself.
    for actor in (COMMUNITY, VISIT):
        with pytest.raises(Forbidden):
            scenarios.issue_scenario_key(world.ctx, actor=actor, scenario_id=VISIT.id, name="stolen")
    scenarios.update_scenario(
        world.ctx, actor=ADMIN, scenario_id=VISIT.id, payload=ScenarioUpdate(status="suspended")
    )
    assert principals_service.get_principal(world.session, VISIT.id).status == "suspended"
    with pytest.raises(exceptions.ScenarioNotActive):
        world.request()
    scenarios.update_scenario(
        world.ctx,
        actor=ADMIN,
        scenario_id=VISIT.id,
        payload=ScenarioUpdate(status="active", contact="new@x.cn"),
    )
    assert principals_service.get_principal(world.session, VISIT.id).status == "active"
    states = world.events(catalog_events.SCENARIO)
    assert [scenario["status"] for scenario in states if scenario["id"] == VISIT.id] == [
        "active",
        "suspended",
        "active",
    ]


def test_contract_masks_translate_to_the_policy_modules_values() -> None:
    rule: Mapping[str, Any] = {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4, "precision": None}
    assert terms.contract_mask(rule) == {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}
    assert terms.contract_mask({"kind": "hash", "keep_prefix": None}) == {"kind": "hash"}
    schema = {
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "c": {"type": "array", "items": {"type": "object", "properties": {"d": {}}}},
        }
    }
    assert sorted(terms.field_paths(schema)) == ["a", "a.b", "c", "c[].d"]


def test_the_grant_event_is_what_the_policy_enforces(world: World) -> None:
    request = world.request(fields=["inspection_id", "district", "result", "inspector_phone"])
    grant = world.approve(request.id, row_filter='district == "Putuo"')
    [announced] = world.events(catalog_events.GRANT)
    policy = compile_policy(GrantTerms.from_event(announced), hash_key=hash_key_of(announced))
    record = {
        "inspection_id": "INS-1",
        "licence_number": "91310000MA1FL0000X",
        "district": "Putuo",
        "result": "pass",
        "inspected_at": "2026-11-24T08:00:00+08:00",
        "inspector_phone": "13812345678",
    }
    assert policy.apply(record) == {
        "inspection_id": "INS-1",
        "district": "Putuo",
        "result": "pass",
        "inspector_phone": "138****5678",
    }
    assert policy.apply({**record, "district": "Baoshan"}) is None
    assert grant.fields == list(policy.terms.fields)


def test_a_request_names_top_level_fields_of_the_contract(world: World) -> None:
    with pytest.raises(exceptions.UnknownFields):
        world.request(fields=["inspection_id", "inspection_id.part"])


def test_retiring_a_scenario_revokes_its_grants_and_withdraws_its_pending_requests(world: World) -> None:
    grant = world.approve(world.request().id)
    pending = world.request()
    theirs = world.approve(world.request(COMMUNITY).id)
    scenarios.update_scenario(
        world.ctx, actor=ADMIN, scenario_id=VISIT.id, payload=ScenarioUpdate(status="retired")
    )
    assert (
        grants.get_grant(world.session, actor=ADMIN, grant_id=grant.id, now=world.clock()).status == "revoked"
    )
    assert (
        requests.get_access_request(world.session, actor=ADMIN, request_id=pending.id).status == "withdrawn"
    )
    assert (
        grants.get_grant(world.session, actor=ADMIN, grant_id=theirs.id, now=world.clock()).status == "active"
    )
    assert principals_service.get_principal(world.session, VISIT.id).status == "suspended"
    revoked = [payload for payload in world.events(catalog_events.GRANT) if payload["id"] == grant.id]
    assert (revoked[-1]["status"], revoked[-1]["version"]) == ("revoked", 2)


# --- a contract version that marks a granted field sensitive ---------------------------------


def test_a_new_contract_version_masks_a_newly_sensitive_field_on_live_grants_only(world: World) -> None:
    fields = ["inspection_id", "district", "result", "inspector_phone"]
    live = world.approve(world.request(fields=fields).id)
    in_clear = world.approve(
        world.request(fields=fields).id, unmask={"inspector_phone": "residents call the inspector"}
    )
    ended = world.approve(world.request(fields=fields).id)
    grants.revoke_grant(world.ctx, actor=MARKET_APPROVER, grant_id=ended.id, reason="scenario ended")
    before = {grant.id: grant.version for grant in (live, in_clear, ended)}
    world.audit.entries.clear()

    def district_is_personal(document: dict[str, Any]) -> None:
        district = contract_property(document, "district")
        district["classification"] = "personal"
        district["customProperties"] = [{"property": "citybase.masking", "value": "hash"}]

    current = contracts_service.get_version(world.session, dataset_id="market.inspections").version
    major, minor, _ = current.split(".")
    version = f"{major}.{int(minor) + 1}.0"
    contracts_service.add_version(
        world.session,
        events=world.ctx.events,
        dataset_id="market.inspections",
        document=evolve_contract(
            example_contract("market.inspections", current), version, district_is_personal
        ),
        created_by="market-publisher",
    )
    changed = grants.apply_contract_masking(world.ctx, dataset_id="market.inspections")

    assert {grant.id for grant in changed} == {live.id, in_clear.id}
    for grant in (live, in_clear):
        assert grant.masking["district"] == {"kind": "hash"}
        assert grant.version == before[grant.id] + 1 and grant.contract_version == version
        assert grant.status_reason is not None and "district" in grant.status_reason
        assert version in grant.status_reason
    assert "inspector_phone" not in in_clear.masking  # un-masked on record: stays so
    assert ended.version == before[ended.id] and "district" not in ended.masking
    announced = {payload["id"]: payload for payload in world.events(catalog_events.GRANT)}
    assert announced[live.id]["masking"]["district"] == {"kind": "hash"}
    assert announced[live.id]["version"] == live.version
    assert world.audit.actions() == ["grant.update", "grant.update"]
    assert grants.apply_contract_masking(world.ctx, dataset_id="market.inspections") == []  # once only


def test_on_a_restricted_dataset_a_mask_weaker_than_the_new_rule_takes_the_rule(world: World) -> None:
    visits = "health.outpatient-visits"
    current = contracts_service.get_version(world.session, dataset_id=visits).version
    major, minor, _ = current.split(".")

    def rule(kind: Any) -> Any:
        def change(document: dict[str, Any]) -> None:
            contract_property(document, "patient_id")["customProperties"] = [
                {"property": "citybase.masking", "value": kind}
            ]

        return change

    def register(version: str, kind: Any) -> None:
        text = evolve_contract(example_contract(visits, current), version, rule(kind))
        contracts_service.add_version(
            world.session, events=world.ctx.events, dataset_id=visits, document=text, created_by="h"
        )

    partial = {"kind": "partial", "keepPrefix": 4, "keepSuffix": 0}
    register(f"{major}.{int(minor) + 1}.0", partial)
    grants.apply_contract_masking(world.ctx, dataset_id=visits)
    grant = world.approve(world.request(dataset_id=visits, fields=OUTPATIENT_FIELDS).id, HEALTH_APPROVER)
    assert grant.masking["patient_id"] == partial  # the rule of its day
    register(f"{major}.{int(minor) + 2}.0", "hash")
    [changed] = grants.apply_contract_masking(world.ctx, dataset_id=visits)
    assert changed.id == grant.id and grant.masking["patient_id"] == {"kind": "hash"}


def test_grants_made_before_hash_keys_get_theirs_once_and_live_ones_are_announced(world: World) -> None:
    live = world.approve(world.request().id)
    ended = world.approve(world.request().id)
    grants.revoke_grant(world.ctx, actor=MARKET_APPROVER, grant_id=ended.id, reason="scenario ended")
    assert live.hash_key is not None and len(live.hash_key) == 43
    for grant in (live, ended):
        grant.hash_key = None  # as catalog_0007 leaves the grants that exist
    versions = {grant.id: grant.version for grant in (live, ended)}
    world.session.flush()

    assert grants.issue_missing_hash_keys(world.session, events=world.ctx.events) == [live.id]
    assert live.hash_key is not None and ended.hash_key is not None and live.hash_key != ended.hash_key
    assert (live.version, ended.version) == (versions[live.id] + 1, versions[ended.id])
    announced = [payload for payload in world.events(catalog_events.GRANT) if payload["id"] == live.id][-1]
    assert announced["version"] == live.version and announced["hash_key"] == live.hash_key
    assert "hash_key" not in grants.grant_read(live, world.clock()).model_dump()
    assert grants.issue_missing_hash_keys(world.session, events=world.ctx.events) == []


# --- draft requests, prepared for a scenario by an answer or a selection -------------------


def _draft(world: World, scenario: Principal = VISIT, **overrides: Any) -> Any:
    return requests.prepare_access_request(
        world.ctx,
        actor=MARKET_PUBLISHER,
        scenario_id=scenario.id,
        payload=AccessRequestCreate.model_validate(access_request_create(**overrides)),
        origin="need:nd-1",
    )


def test_a_draft_waits_for_its_scenario_and_grants_nothing_until_submitted(world: World) -> None:
    draft = _draft(world)
    assert (draft.status, draft.origin, draft.requested_by, draft.grant_id) == (
        "draft",
        "need:nd-1",
        MARKET_PUBLISHER.id,
        None,
    )
    with pytest.raises(exceptions.AlreadyDecided):
        world.approve(draft.id)
    with pytest.raises(exceptions.NotYourScenario):
        requests.submit_access_request(
            world.ctx, actor=COMMUNITY, request_id=draft.id, changes=AccessRequestSubmission()
        )
    submitted = requests.submit_access_request(
        world.ctx,
        actor=VISIT,
        request_id=draft.id,
        changes=AccessRequestSubmission(fields=["inspection_id", "result"], purpose="Our own words"),
    )
    assert (submitted.status, submitted.fields, submitted.purpose, submitted.origin) == (
        "pending",
        ["inspection_id", "result"],
        "Our own words",
        "need:nd-1",
    )
    assert world.audit.actions() == ["access_request.prepare", "access_request.submit"]
    assert world.audit.entries[0]["details"]["origin"] == "need:nd-1"
    with pytest.raises(exceptions.AlreadyDecided):
        requests.submit_access_request(
            world.ctx, actor=VISIT, request_id=draft.id, changes=AccessRequestSubmission()
        )
    assert world.approve(submitted.id).fields == ["inspection_id", "result"]


def test_a_submitted_draft_is_checked_like_a_new_request(world: World) -> None:
    draft = _draft(world)
    with pytest.raises(exceptions.UnknownFields) as refused:
        requests.submit_access_request(
            world.ctx,
            actor=VISIT,
            request_id=draft.id,
            changes=AccessRequestSubmission(fields=["no_such_field"]),
        )
    assert [error.path for error in refused.value.errors] == ["/body/fields/0"]
    assert requests.get_access_request(world.session, actor=VISIT, request_id=draft.id).status == "draft"


def test_a_draft_on_an_open_dataset_is_granted_when_submitted_and_can_be_declined(world: World) -> None:
    change_dataset(
        world.session,
        events=world.ctx.events,
        dataset_id="community.service-requests",
        payload=DatasetUpdate(classification="open"),
    )
    fields = ["request_id", "category"]
    draft = _draft(world, COMMUNITY, dataset_id="community.service-requests", fields=fields)
    assert draft.status == "draft" and not world.events(catalog_events.GRANT)
    granted = requests.submit_access_request(
        world.ctx, actor=COMMUNITY, request_id=draft.id, changes=AccessRequestSubmission()
    )
    assert granted.status == "approved" and granted.grant_id
    declined = requests.withdraw_access_request(
        world.ctx, actor=VISIT, request_id=_draft(world).id, reason="not what we need"
    )
    assert declined.status == "withdrawn"


def test_retiring_a_scenario_withdraws_the_drafts_prepared_for_it(world: World) -> None:
    draft = _draft(world)
    scenarios.update_scenario(
        world.ctx, actor=ADMIN, scenario_id=VISIT.id, payload=ScenarioUpdate(status="retired")
    )
    assert requests.get_access_request(world.session, actor=ADMIN, request_id=draft.id).status == "withdrawn"
