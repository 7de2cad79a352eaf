"""Principals and their API keys: who calls the platform, with which keys, and their revocation.

Keys are stored hashed and shown once. A key a department mints with its own key dies with it:
revoking a key revokes every key minted from it. Every function works in the caller's session
and flushes; the caller's unit of work commits, so a change, its event on ``platform.catalog``
(which every service's key ring follows) and its audit entry are committed together or not at
all. :func:`create_principal`, :func:`issue_api_key`, :func:`list_api_keys` and
:func:`revoke_api_key` are an actor's requests: they authorize and audit; :func:`add_principal`
and :func:`add_api_key` are the writes alone, for the bootstrap, scenarios and loaders.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.audit.auditor import Auditor
from services.catalog.domains.service import ensure_city_domains, get_department
from services.catalog.events import CatalogEvents
from services.catalog.models import ApiKey, Principal
from services.catalog.schemas import ApiKeyIssued, ApiKeyRead, PrincipalCreate, PrincipalRead
from services.common import catalog_events
from services.common.auth import Principal as Actor
from services.common.auth import PrincipalKind, issue_key
from services.common.clock import utcnow
from services.common.i18n import N_, Sentence
from services.common.problems import Forbidden

# --- principals ----------------------------------------------------------------------------


def create_principal(
    session: Session, *, events: CatalogEvents, audit: Auditor, payload: PrincipalCreate
) -> PrincipalRead:
    """Add a principal (an admin's request, audited)."""
    principal = add_principal(session, events=events, payload=payload)
    audit.record(
        session,
        "principal.create",
        "principal",
        principal.id,
        department_id=principal.department_id,
        details={"kind": principal.kind},
    )
    return principal


def add_principal(session: Session, *, events: CatalogEvents, payload: PrincipalCreate) -> PrincipalRead:
    """Add a principal and announce it, in the caller's session; no audit entry of its own."""
    if session.get(Principal, payload.id) is not None:
        raise exceptions.AlreadyExists(Sentence(N_("principal %(id)r exists"), id=payload.id))
    if payload.department_id is not None:
        get_department(session, payload.department_id)
    principal = Principal(**payload.model_dump())
    session.add(principal)
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def set_principal_status(
    session: Session, *, events: CatalogEvents, principal_id: str, status: str
) -> PrincipalRead:
    """Suspend (``suspended``) or reactivate (``active``) a principal: its keys stop or work again
    everywhere as soon as the event reaches each service's key ring."""
    principal = get_principal(session, principal_id)
    principal.status = status
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def get_principal(session: Session, principal_id: str) -> Principal:
    principal = session.get(Principal, principal_id)
    if principal is None:
        raise exceptions.PrincipalNotFound(
            Sentence(N_("no principal %(principal_id)r"), principal_id=principal_id)
        )
    return principal


def read_principal(session: Session, *, actor: Actor, audit: Auditor, principal_id: str) -> PrincipalRead:
    """One principal as the catalog knows it: an admin reads any, every other role only itself
    (docs/authorization.md), so a key cannot learn who else holds keys on the platform. Audited as
    a read, so a refusal is on the trail."""
    audit.attempting("principal.read", "principal", principal_id)
    if not actor.is_admin() and actor.id != principal_id:
        raise Forbidden(Sentence(N_("a principal other than an admin reads only itself")))
    return PrincipalRead.model_validate(get_principal(session, principal_id))


def list_principals(session: Session, *, kind: str | None = None) -> Sequence[Principal]:
    query = sa.select(Principal).order_by(Principal.id)
    if kind:
        query = query.where(Principal.kind == kind)
    return session.scalars(query).all()


# --- API keys ------------------------------------------------------------------------------


def _may_manage_keys(actor: Actor, principal_id: str) -> None:
    """An admin manages every principal's keys, a department its own, no other role any
    (docs/authorization.md): the keys of a scenario, an approver or an operator come from an admin."""
    if actor.is_admin():
        return
    if actor.kind is not PrincipalKind.department:
        raise Forbidden(
            Sentence(N_("a %(kind)s's keys are issued, listed and revoked by an admin"), kind=actor.kind)
        )
    if actor.id != principal_id:
        raise Forbidden(Sentence(N_("only the principal itself or an admin may manage its keys")))


def issue_api_key(
    session: Session,
    *,
    events: CatalogEvents,
    audit: Auditor,
    actor: Actor,
    principal_id: str,
    name: str = "",
    calling_key: str | None = None,
) -> ApiKeyIssued:
    """A new key for the principal, asked for by ``actor`` with its key ``calling_key`` (a prefix).

    A department's own key mints a child that dies with it; an admin's keys are the root of trust.
    """
    audit.attempting("api_key.issue", "principal", principal_id)
    _may_manage_keys(actor, principal_id)
    parent = None if actor.is_admin() else calling_key
    issued = add_api_key(session, events=events, principal_id=principal_id, name=name, issued_by=parent)
    audit.record(
        session,
        "api_key.issue",
        "api_key",
        issued.prefix,
        details={"principal_id": principal_id, "issued_by": parent},
    )
    return issued


def add_api_key(
    session: Session,
    *,
    events: CatalogEvents,
    principal_id: str,
    name: str = "",
    issued_by: str | None = None,
) -> ApiKeyIssued:
    """A new key for the principal; the returned ``key`` is the only time it is ever shown.

    ``issued_by`` is the prefix of the principal's own key that asked for this one: the new key is
    revoked whenever that one is, so that a stolen key cannot leave behind a sibling that outlives
    its revocation. In the caller's session; no authorization or audit of its own.
    """
    get_principal(session, principal_id)
    issued = issue_key()
    api_key = ApiKey(
        prefix=issued.prefix,
        principal_id=principal_id,
        key_hash=issued.key_hash,
        name=name,
        issued_by=issued_by,
    )
    session.add(api_key)
    session.flush()
    events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))
    return ApiKeyIssued.model_validate({**ApiKeyRead.model_validate(api_key).model_dump(), "key": issued.key})


def list_api_keys(session: Session, *, actor: Actor, principal_id: str) -> list[ApiKeyRead]:
    """The principal's keys, oldest first (the principal itself if a department, or an admin)."""
    _may_manage_keys(actor, principal_id)
    get_principal(session, principal_id)
    keys = session.scalars(
        sa.select(ApiKey).where(ApiKey.principal_id == principal_id).order_by(ApiKey.created_at)
    ).all()
    return [ApiKeyRead.model_validate(api_key) for api_key in keys]


def revoke_api_key(
    session: Session,
    *,
    events: CatalogEvents,
    audit: Auditor,
    actor: Actor,
    principal_id: str,
    prefix: str,
) -> ApiKeyRead:
    """Revoke the key and every key minted from it, directly or through another (audited, with
    the prefixes revoked with it)."""
    audit.attempting("api_key.revoke", "api_key", prefix, details={"principal_id": principal_id})
    _may_manage_keys(actor, principal_id)
    api_key = session.get(ApiKey, prefix)
    if api_key is None or api_key.principal_id != principal_id:
        raise exceptions.ApiKeyNotFound(
            Sentence(
                N_("no key %(prefix)r for principal %(principal_id)r"),
                prefix=prefix,
                principal_id=principal_id,
            )
        )
    now = utcnow()
    _revoke(session, events, api_key, now)
    with_it: list[str] = []
    parents = [api_key.prefix]
    while parents:  # a key is minted after its parent, so the lineage has no cycle
        minted = session.scalars(
            sa.select(ApiKey)
            .where(ApiKey.issued_by.in_(parents), ApiKey.principal_id == principal_id)
            .order_by(ApiKey.created_at)
        ).all()
        for child in minted:
            _revoke(session, events, child, now)
        parents = [child.prefix for child in minted]
        with_it.extend(parents)
    revoked = ApiKeyRead.model_validate(api_key)
    audit.record(
        session,
        "api_key.revoke",
        "api_key",
        prefix,
        details={"principal_id": principal_id, "revoked_with_it": with_it},
    )
    return revoked


def _revoke(session: Session, events: CatalogEvents, api_key: ApiKey, now: datetime) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = now
        session.flush()
        events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))


def _key_state(api_key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": api_key.prefix,
        "principal_id": api_key.principal_id,
        "key_hash": api_key.key_hash,
        "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
    }


def bootstrap_admin(session: Session, *, events: CatalogEvents) -> ApiKeyIssued | None:
    """On an empty catalog, create the admin principal and its first key (shown once), in the
    caller's session."""
    ensure_city_domains(session)
    if session.scalar(sa.select(sa.func.count()).select_from(Principal)):
        return None
    add_principal(
        session,
        events=events,
        payload=PrincipalCreate(id="admin", kind="admin", name="Platform administrator"),
    )
    return add_api_key(session, events=events, principal_id="admin", name="bootstrap")
