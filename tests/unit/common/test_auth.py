"""API keys: issued once, stored as hashes, checked against the catalog's events, revocable."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from services.common import catalog_events
from services.common.app import ServiceRuntime
from services.common.auth import (
    KeyRing,
    Principal,
    PrincipalDep,
    PrincipalKind,
    hash_key,
    issue_key,
    key_prefix,
    require,
)
from services.common.bus import Message, OutgoingRecord
from services.common.problems import Unauthenticated, install_problem_handlers


def _message(record: OutgoingRecord) -> Message:
    return Message(record.topic, 0, 0, record.key, record.value, record.headers, 0)


def _principal(pid: str, kind: str, status: str = "active") -> Message:
    state = {"id": pid, "kind": kind, "name": pid.title(), "department_id": None, "status": status}
    return _message(catalog_events.catalog_record(catalog_events.PRINCIPAL, pid, state))


def _key(prefix: str, key_hash: str, principal_id: str, revoked: bool = False) -> Message:
    state = {
        "prefix": prefix,
        "principal_id": principal_id,
        "key_hash": key_hash,
        "revoked_at": "2026-11-24T00:00:00+00:00" if revoked else None,
    }
    return _message(catalog_events.catalog_record(catalog_events.API_KEY, prefix, state))


def test_an_issued_key_has_a_lookup_prefix_and_only_its_hash_is_published() -> None:
    issued = issue_key()
    assert key_prefix(issued.key) == issued.prefix
    assert issued.key_hash == hash_key(issued.key)
    assert issued.key not in _key(issued.prefix, issued.key_hash, "p").value.decode()


def test_the_key_ring_authenticates_and_forgets_revoked_keys() -> None:
    ring = KeyRing()
    issued = issue_key()
    ring.apply(_principal("ops", "operator"))
    ring.apply(_key(issued.prefix, issued.key_hash, "ops"))
    principal = ring.authenticate(issued.key)
    assert (principal.id, principal.kind) == ("ops", PrincipalKind.operator)
    ring.apply(_key(issued.prefix, issued.key_hash, "ops", revoked=True))
    with pytest.raises(Unauthenticated):
        ring.authenticate(issued.key)


@pytest.mark.parametrize(
    "token",
    ["", "nonsense", "cbk_deadbeef_forged", "cbk_short_x", "Bearer cbk_00000000_x"],
)
def test_forged_and_malformed_keys_are_refused(token: str) -> None:
    ring = KeyRing()
    issued = issue_key()
    ring.apply(_principal("ops", "operator"))
    ring.apply(_key(issued.prefix, issued.key_hash, "ops"))
    with pytest.raises(Unauthenticated):
        ring.authenticate(token)
    with pytest.raises(Unauthenticated):
        ring.authenticate(f"cbk_{issued.prefix}_not-the-secret")


def test_a_suspended_principal_cannot_authenticate() -> None:
    ring = KeyRing()
    issued = issue_key()
    ring.apply(_principal("s1", "scenario", status="suspended"))
    ring.apply(_key(issued.prefix, issued.key_hash, "s1"))
    with pytest.raises(Unauthenticated):
        ring.authenticate(issued.key)


def _app(ring: KeyRing) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    class _Runtime:
        service = ServiceRuntime(keyring=ring)

    app.state.runtime = _Runtime()

    @app.get("/me")
    def me(principal: PrincipalDep) -> str:
        return principal.id

    @app.get("/ops-only")
    def ops_only(principal: Annotated[Principal, Depends(require(PrincipalKind.operator))]) -> str:
        return "ok"

    return app


def test_role_checks_as_dependencies() -> None:
    ring = KeyRing()
    keys = {}
    for pid, kind in [("ops", "operator"), ("s1", "scenario"), ("root", "admin")]:
        issued = issue_key()
        ring.apply(_principal(pid, kind))
        ring.apply(_key(issued.prefix, issued.key_hash, pid))
        keys[pid] = issued.key
    client = TestClient(_app(ring))
    assert client.get("/me").status_code == 401
    assert client.get("/me").headers["www-authenticate"] == "Bearer"
    assert client.get("/me", headers={"Authorization": f"Bearer {keys['s1']}"}).json() == "s1"
    assert client.get("/ops-only", headers={"Authorization": f"Bearer {keys['ops']}"}).status_code == 200
    assert client.get("/ops-only", headers={"Authorization": f"Bearer {keys['root']}"}).status_code == 200
    denied = client.get("/ops-only", headers={"Authorization": f"Bearer {keys['s1']}"})
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
