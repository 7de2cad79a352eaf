"""Principals and keys: who may issue, list and revoke which keys, and a revocation takes the keys
minted from the revoked one with it."""

from __future__ import annotations

import pytest

from services.catalog import exceptions
from services.catalog.models import ApiKey
from services.catalog.principals import service as principals
from services.catalog.schemas import ApiKeyIssued, PrincipalCreate
from services.common import catalog_events
from services.common.auth import Principal, hash_key
from services.common.problems import Forbidden
from tests.support.catalog_units import ADMIN, APPROVER, HEALTH, TRANSPORT, CatalogWorld


@pytest.fixture
def world(catalog: CatalogWorld) -> CatalogWorld:
    for actor in (TRANSPORT, HEALTH):
        principals.add_principal(
            catalog.session,
            events=catalog.events,
            payload=PrincipalCreate(
                id=actor.id, kind="department", name=actor.name, department_id=actor.department_id
            ),
        )
    return catalog


def _issue(
    world: CatalogWorld,
    actor: Principal = TRANSPORT,
    principal_id: str = TRANSPORT.id,
    calling_key: str | None = None,
) -> ApiKeyIssued:
    return principals.issue_api_key(
        world.session,
        events=world.events,
        audit=world.auditor(actor),
        actor=actor,
        principal_id=principal_id,
        name="laptop",
        calling_key=calling_key,
    )


def test_an_admin_creates_a_principal_once_and_the_creation_is_audited(world: CatalogWorld) -> None:
    read = principals.create_principal(
        world.session,
        events=world.events,
        audit=world.auditor(ADMIN),
        payload=PrincipalCreate(id="ops", kind="operator", name="Operations"),
    )
    assert (read.id, read.kind, read.status) == ("ops", "operator", "active")
    [entry] = world.audit_entries()
    assert (entry.action, entry.resource_id, entry.details) == (
        "principal.create",
        "ops",
        {"kind": "operator"},
    )
    with pytest.raises(exceptions.AlreadyExists):
        principals.add_principal(
            world.session, events=world.events, payload=PrincipalCreate(id="ops", kind="operator", name="x")
        )
    with pytest.raises(exceptions.DepartmentNotFound):
        principals.add_principal(
            world.session,
            events=world.events,
            payload=PrincipalCreate(id="lost", kind="department", name="x", department_id="nowhere"),
        )


def test_a_key_is_shown_once_stored_hashed_and_announced_with_its_parent(world: CatalogWorld) -> None:
    issued = _issue(world, calling_key="parentkey")
    stored = world.session.get(ApiKey, issued.prefix)
    assert (
        stored is not None and stored.key_hash == hash_key(issued.key) and issued.key not in stored.key_hash
    )
    assert stored.issued_by == "parentkey"
    [announced] = world.announced(catalog_events.API_KEY)
    assert announced == {
        "prefix": issued.prefix,
        "principal_id": TRANSPORT.id,
        "key_hash": stored.key_hash,
        "revoked_at": None,
    }
    [entry] = world.audit_entries()
    assert entry.action == "api_key.issue" and entry.details == {
        "principal_id": TRANSPORT.id,
        "issued_by": "parentkey",
    }
    # An admin's keys are the root of trust: what it issues has no parent.
    by_admin = _issue(world, actor=ADMIN, calling_key="adminkey")
    admins = world.session.get(ApiKey, by_admin.prefix)
    assert admins is not None and admins.issued_by is None


@pytest.mark.parametrize(
    ("actor", "principal_id"), [(HEALTH, TRANSPORT.id), (APPROVER, APPROVER.id), (APPROVER, TRANSPORT.id)]
)
def test_only_the_department_itself_or_an_admin_manages_its_keys(
    world: CatalogWorld, actor, principal_id
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Forbidden):
        _issue(world, actor=actor, principal_id=principal_id)
    with pytest.raises(Forbidden):
        principals.list_api_keys(world.session, actor=actor, principal_id=principal_id)
    assert principals.list_api_keys(world.session, actor=ADMIN, principal_id=TRANSPORT.id) == []


def test_revoking_a_key_revokes_every_key_minted_from_it_and_nothing_else(world: CatalogWorld) -> None:
    root = _issue(world)
    child = _issue(world, calling_key=root.prefix)
    grandchild = _issue(world, calling_key=child.prefix)
    sibling = _issue(world)
    revoked = principals.revoke_api_key(
        world.session,
        events=world.events,
        audit=world.auditor(TRANSPORT, method="DELETE"),
        actor=TRANSPORT,
        principal_id=TRANSPORT.id,
        prefix=root.prefix,
    )
    assert revoked.prefix == root.prefix and revoked.revoked_at is not None
    keys = {
        key.prefix: key
        for key in principals.list_api_keys(world.session, actor=TRANSPORT, principal_id=TRANSPORT.id)
    }
    assert [
        keys[p].revoked_at is not None for p in (root.prefix, child.prefix, grandchild.prefix, sibling.prefix)
    ] == [
        True,
        True,
        True,
        False,
    ]
    entry = world.audit_entries()[-1]
    assert entry.action == "api_key.revoke"
    assert entry.details == {
        "principal_id": TRANSPORT.id,
        "revoked_with_it": [child.prefix, grandchild.prefix],
    }
    revocations = [payload for payload in world.announced(catalog_events.API_KEY) if payload["revoked_at"]]
    assert [payload["prefix"] for payload in revocations] == [root.prefix, child.prefix, grandchild.prefix]
    with pytest.raises(exceptions.ApiKeyNotFound):
        principals.revoke_api_key(
            world.session,
            events=world.events,
            audit=world.auditor(ADMIN, method="DELETE"),
            actor=ADMIN,
            principal_id=HEALTH.id,
            prefix=sibling.prefix,
        )


def test_suspending_a_principal_announces_its_new_status(world: CatalogWorld) -> None:
    principals.set_principal_status(
        world.session, events=world.events, principal_id=HEALTH.id, status="suspended"
    )
    assert principals.get_principal(world.session, HEALTH.id).status == "suspended"
    assert world.announced(catalog_events.PRINCIPAL)[-1]["status"] == "suspended"
    assert [p.id for p in principals.list_principals(world.session, kind="department")] == [
        HEALTH.id,
        TRANSPORT.id,
    ]
    with pytest.raises(exceptions.PrincipalNotFound):
        principals.get_principal(world.session, "nobody")


def test_the_admin_is_bootstrapped_on_an_empty_catalog_only(catalog: CatalogWorld) -> None:
    issued = principals.bootstrap_admin(catalog.session, events=catalog.events)
    assert issued is not None and issued.principal_id == "admin"
    assert principals.bootstrap_admin(catalog.session, events=catalog.events) is None
