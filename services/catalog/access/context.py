"""What every change of authorized operation works with: its collaborators, the rows it acts
on, its audit scope and its pages.

A change takes a :class:`Collaborators` (the request's session, the event outbox, the audit
trail, the limits, a clock), flushes, and leaves the commit to the request's unit of work, so a
change, its event on ``platform.catalog`` and its audit entry are committed together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions as catalog_exceptions
from services.catalog.access import exceptions
from services.catalog.access.models import AccessRequest, Grant, Scenario
from services.catalog.access.settings import AccessSettings
from services.catalog.audit.auditor import Auditor
from services.catalog.events import CatalogEvents
from services.catalog.models import Dataset
from services.common.clock import utcnow
from services.common.i18n import N_, Sentence

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Collaborators:
    """What every change needs: the session, the event outbox, the audit trail, the limits, a clock."""

    session: Session
    events: CatalogEvents
    audit: Auditor
    settings: AccessSettings
    clock: Clock = utcnow


def access_request_of(session: Session, request_id: str, *, for_update: bool = False) -> AccessRequest:
    query = sa.select(AccessRequest).where(AccessRequest.id == request_id)
    if for_update:
        # Two approvers deciding at once: the second waits, then sees the request decided.
        query = query.with_for_update()
    request = session.scalars(query).one_or_none()
    if request is None:
        raise exceptions.AccessRequestNotFound(
            Sentence(N_("no access request %(request_id)r"), request_id=request_id)
        )
    return request


def attempt(audit: Auditor, action: str, entity: AccessRequest | Grant, dataset: Dataset) -> None:
    """Refine what the request attempts, now that the entity (and so its scope) is known."""
    resource_type = "grant" if isinstance(entity, Grant) else "access_request"
    audit.attempting(action, resource_type, entity.id, **audit_scope(entity, dataset))


def audit_scope(entity: AccessRequest | Grant, dataset: Dataset) -> dict[str, Any]:
    return {
        "dataset_id": dataset.id,
        "department_id": dataset.owner_department_id,
        "scenario_id": entity.scenario_id,
        "purpose": entity.purpose,
    }


_ID = re.compile(r"^(ar|gr)-[0-9a-f]{22}$")


def page_of(
    session: Session, query: sa.Select[Any], column: Any, limit: int, cursor: str | None, prefix: str
) -> tuple[list[Any], str | None]:
    if cursor:
        if not _ID.match(cursor) or not cursor.startswith(prefix + "-"):
            raise catalog_exceptions.InvalidCursor(Sentence(N_("the cursor was not issued by this API")))
        query = query.where(column > cursor)
    rows = list(session.scalars(query.limit(limit + 1)))
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit and page else None)


def plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value.value if hasattr(value, "value") else value for name, value in values.items()}


def scenario_of(session: Session, scenario_id: str) -> Scenario:
    scenario = session.get(Scenario, scenario_id)
    if scenario is None:
        raise exceptions.ScenarioNotFound(
            Sentence(N_("no scenario %(scenario_id)r"), scenario_id=scenario_id)
        )
    return scenario
