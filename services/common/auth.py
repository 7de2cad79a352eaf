"""API keys and principals, checked by every service against its read model of ``platform.catalog``.

A key looks like ``cbk_<prefix>_<secret>``. The catalog stores and publishes only the prefix (for
lookup) and a SHA-256 of the whole key; the key itself is shown once when issued. Because every
service learns of keys and revocations from ``platform.catalog``, no service calls the catalog to
authenticate a request, and a revocation stops a key everywhere as soon as the event arrives.
SHA-256 without salt is enough here: the secret is 256 random bits, not a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from services.common import catalog_events
from services.common.bus import Message
from services.common.i18n import N_, Sentence
from services.common.problems import Forbidden, Unauthenticated

if TYPE_CHECKING:  # the app kernel imports this module for KeyRing
    from services.common.app import Runtime

KEY_PREFIX = "cbk"


class PrincipalKind(StrEnum):
    department = "department"
    scenario = "scenario"
    approver = "approver"
    operator = "operator"
    admin = "admin"
    organisation = "organisation"
    """An applicant organisation vetted to propose for the city's openings."""
    evaluator = "evaluator"
    """A third-party evaluator: reads evaluation evidence and records verdicts, never record data."""


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: PrincipalKind
    name: str
    department_id: str | None = None
    active: bool = True

    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.admin


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly issued key: ``key`` is shown to its owner once and never stored."""

    prefix: str
    key: str
    key_hash: str


def issue_key() -> IssuedKey:
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedKey(prefix=prefix, key=key, key_hash=hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8:
        return None
    return parts[1]


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    key_hash: str
    principal_id: str
    revoked: bool


class KeyRing:
    """Principals and key hashes, projected from ``platform.catalog``. Thread-safe reads."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyEntry] = {}
        self._live: dict[str, set[str]] = {}
        """principal id -> prefixes of its keys that are not revoked."""
        self._principals: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def apply(self, message: Message) -> None:
        event = catalog_events.read_catalog_event(message)
        if event is None:
            return
        event_type, payload = event
        with self._lock:
            if event_type == catalog_events.API_KEY:
                entry = _KeyEntry(
                    payload["key_hash"], payload["principal_id"], bool(payload.get("revoked_at"))
                )
                known = self._keys.get(payload["prefix"])
                if known is not None:
                    self._live.get(known.principal_id, set()).discard(payload["prefix"])
                self._keys[payload["prefix"]] = entry
                if not entry.revoked:
                    self._live.setdefault(entry.principal_id, set()).add(payload["prefix"])
            elif event_type == catalog_events.PRINCIPAL:
                self._principals[payload["id"]] = principal_from_state(payload)

    def add_principal(self, principal: Principal) -> None:
        with self._lock:
            self._principals[principal.id] = principal

    def principal(self, principal_id: str) -> Principal | None:
        return self._principals.get(principal_id)

    def key_live(self, prefix: str, principal_id: str) -> bool:
        """Whether the key ``prefix`` of ``principal_id`` still works (known, not revoked).

        Asked again by whatever outlives the request that authenticated it (an open stream, a
        waiting long-poll), so that revoking a key also ends what it opened."""
        entry = self._keys.get(prefix)
        return entry is not None and not entry.revoked and entry.principal_id == principal_id

    def has_live_key(self, principal_id: str) -> bool:
        """Whether the principal has a key that is not revoked (what a webhook delivers under)."""
        with self._lock:
            return bool(self._live.get(principal_id))

    def authenticate(self, key: str) -> Principal:
        """The principal of ``key``; raises Unauthenticated with no hint of which part failed."""
        prefix = key_prefix(key)
        entry = self._keys.get(prefix) if prefix else None
        if entry is None or entry.revoked or not hmac.compare_digest(entry.key_hash, hash_key(key)):
            raise Unauthenticated(Sentence(N_("the API key is missing, unknown or revoked")))
        principal = self._principals.get(entry.principal_id)
        if principal is None or not principal.active:
            raise Unauthenticated(Sentence(N_("the API key is missing, unknown or revoked")))
        return principal


def principal_from_state(payload: dict[str, Any]) -> Principal:
    return Principal(
        id=payload["id"],
        kind=PrincipalKind(payload["kind"]),
        name=payload["name"],
        department_id=payload.get("department_id"),
        active=payload.get("status", "active") == "active",
    )


async def get_principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <key>``, against the service's key ring.

    ``async`` although it awaits nothing: it only reads memory, and a sync dependency would cost
    every request a round trip through the worker threads.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(Sentence(N_("send an API key as 'Authorization: Bearer <key>'")))
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    keyring = runtime.service.keyring if runtime is not None and runtime.service is not None else None
    if keyring is None:
        raise Unauthenticated(Sentence(N_("this service does not accept API keys yet: it is starting")))
    principal = keyring.authenticate(token.strip())
    request.state.principal = principal  # for whoever audits the request
    request.state.key_prefix = key_prefix(token.strip())  # for what outlives the request (a stream)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*kinds: PrincipalKind) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through the given kinds of principal, and admins."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.kind not in kinds and not principal.is_admin():
            raise Forbidden(Sentence(N_("a %(kind)s may not do this"), kind=principal.kind))
        return principal

    return check
