"""The request-scoped auditor: what a request did goes on the audit trail, and so does what it tried.

A request that fails is audited too. The :class:`Auditor` sees the failure, rolls the request's
work back and writes a ``denied`` (4xx) or ``failed`` entry in its place, in its own transaction,
so that an attempt is on record even though nothing it tried was written. Entries are appended to
the chain by :mod:`.service`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from services.catalog.audit.models import AuditEntry
from services.catalog.audit.refusals import RefusalWindows, refusal_key
from services.catalog.audit.service import DENIED, FAILED, SUCCESS, AuditEvent, append
from services.common import db
from services.common.auth import Principal
from services.common.problems import Problem

log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Auditor:
    """Audits one request: what it did (:meth:`record`) or, when it fails, what it tried.

    Route handlers and service functions call :meth:`record` for each change they make, in the
    request's unit of work. :meth:`attempting` names what the request is about before anything can
    fail, so that a failure is audited with the right action and resource; without it, a failed
    write (POST, PUT, PATCH, DELETE) is still audited under its route's name and path parameters.
    """

    def __init__(self, request: Request, session: Session, refusals: RefusalWindows | None = None) -> None:
        self._request = request
        self._session = session
        self._refusals = refusals
        self._attempt: dict[str, Any] | None = None

    @property
    def actor(self) -> Principal | None:
        principal: Principal | None = getattr(self._request.state, "principal", None)
        return principal

    def _who(self) -> dict[str, Any]:
        actor = self.actor
        return {"actor_id": actor.id, "actor_kind": actor.kind.value} if actor else {}

    def attempting(
        self,
        action: str,
        resource_type: str,
        resource_id: str,
        *,
        purpose: str | None = None,
        dataset_id: str | None = None,
        department_id: str | None = None,
        scenario_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Name what this request tries, for the entry written if it fails."""
        self._attempt = {
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "purpose": purpose,
            "dataset_id": dataset_id,
            "department_id": department_id,
            "scenario_id": scenario_id,
            "details": dict(details or {}),
        }

    def record(
        self,
        session: Session,
        action: str,
        resource_type: str,
        resource_id: str,
        *,
        outcome: str = SUCCESS,
        purpose: str | None = None,
        dataset_id: str | None = None,
        department_id: str | None = None,
        scenario_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Append an entry for what the request did, in its unit of work."""
        return append(
            session,
            AuditEvent(
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                outcome=outcome,
                purpose=purpose,
                dataset_id=dataset_id,
                department_id=department_id,
                scenario_id=scenario_id,
                details=details or {},
                **self._who(),
            ),
        )

    def failed(self, error: BaseException) -> None:
        """Replace the request's rolled-back work by an entry saying what it tried and why it failed."""
        status, reason = _failure(error)
        if self._attempt is None and self._request.method in _READ_METHODS:
            return
        attempt = dict(self._attempt or self._route_attempt())
        details = {
            **attempt.pop("details", {}),
            "method": self._request.method,
            "path": self._request.url.path,
            "status": status,
            "reason": reason,
        }
        if isinstance(error, Problem):
            details["problem"] = error.type
        event = AuditEvent(
            outcome=DENIED if status < 500 else FAILED, details=details, **attempt, **self._who()
        )
        session = self._session
        session.rollback()
        session.info.pop(db.AFTER_COMMIT, None)
        repeat = (
            event.outcome == DENIED
            and self._refusals is not None
            and not self._refusals.admit(refusal_key(event), event)
        )
        if repeat:
            return  # counted, and appended with its count when its window closes
        try:
            append(session, event)
            session.commit()
        except Exception:
            # Auditing a failure must not hide the failure itself from the caller.
            session.rollback()
            log.exception(
                "could not audit the failed request %s %s", self._request.method, self._request.url.path
            )
        finally:
            session.info.pop(db.AFTER_COMMIT, None)

    def _route_attempt(self) -> dict[str, Any]:
        route = self._request.scope.get("route")
        name = getattr(route, "name", None) or "request"
        params = self._request.path_params
        resource_type = next((key.removesuffix("_id") for key in params), "platform")
        resource_id = "/".join(str(value) for value in params.values()) or self._request.url.path
        return {
            "action": f"http.{name}",
            "resource_type": resource_type,
            "resource_id": resource_id[:300],
            "dataset_id": params.get("dataset_id"),
        }


def _failure(error: BaseException) -> tuple[int, str]:
    if isinstance(error, Problem):
        return error.status, str(error.detail or error.title)
    if isinstance(error, RequestValidationError):
        return 422, "the request is not valid"
    if isinstance(error, HTTPException):
        return error.status_code, str(error.detail)
    return 500, type(error).__name__


def audit_request(
    request: Request, session: Session, refusals: RefusalWindows | None = None
) -> Iterator[Auditor]:
    """The body of the auditor dependency: hands out an :class:`Auditor`, audits a failure
    (identical refusals within a window of ``refusals`` as one entry with a count)."""
    auditor = Auditor(request, session, refusals)
    try:
        yield auditor
    except Exception as error:
        auditor.failed(error)
        raise
