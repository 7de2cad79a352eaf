"""The console's forms: what a person typed, turned into the request body a service reads, and a
refused submission, kept to be shown again next to the form it came from.

The console checks nothing a service checks: a body goes as the person wrote it (a number that is
not one stays text) and the service's problem+json says what is wrong, field by field
(``errors[].path``, a JSON Pointer such as ``/body/fields/2``). One rule, one place: the catalog's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.common.i18n import N_
from services.console.exceptions import ApiError

Form = Mapping[str, Sequence[str]]

MASK_CHOICES: dict[str, Any] = {
    "hash": "hash",
    "redact": "redact",
    "partial": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4},
}
"""The masks an approver picks from in the console, as the catalog's grant terms spell them."""

PRINCIPAL_KINDS: dict[str, str] = {
    "department": N_(
        "A publishing department: registers its datasets and contracts, pushes records, manages its own keys."
    ),
    "scenario": N_(
        "A scenario: asks for access and subscribes to granted data. Use “New scenario” on the "
        "Scenarios page, which also records the scenario itself."
    ),
    "approver": N_(
        "An approver of one department: approves or rejects requests for its datasets, narrows, "
        "suspends and revokes their grants."
    ),
    "operator": N_("An operator: watches ingest, quality, use and the audit trail; changes nothing."),
    "admin": N_("An administrator: may do everything, including creating principals and keys."),
}
"""The kinds of principal the catalog knows, each with what it may do (docs/authorization.md)."""

DEPARTMENT_KINDS = ("commission", "bureau", "district", "enterprise")
PURPOSE_CATEGORIES = ("public_service", "research", "city_operations", "commercial", "other")
SCENARIO_STATUSES = ("active", "suspended", "retired")
SCENARIO_STAGES = ("proposed", "approved", "building", "live", "suspended", "retired")
POSITIONS = ("earliest", "latest")


@dataclass(frozen=True)
class Failure:
    """A submission a service refused: which form, the problem, and what was typed."""

    form: str
    error: ApiError
    values: Form

    def value(self, name: str, default: Any = "") -> Any:
        values = self.values.get(name)
        return values[0] if values else default

    def chosen(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def errors_for(self, name: str) -> list[str]:
        """The messages of the errors whose path names the body member ``name`` (or an item of it)."""
        pointer = f"/body/{name}"
        return [
            str(e.get("message") or e.get("detail") or "")
            for e in self.error.field_errors
            if str(e.get("path", "")) == pointer or str(e.get("path", "")).startswith(pointer + "/")
        ]


def first(form: Form, name: str) -> str | None:
    values = form.get(name)
    value = values[0].strip() if values else None
    return value or None


def _number(value: str) -> int | str:
    """An integer when it is one; else the text, for the service to refuse with its own words."""
    return int(value) if value.isdigit() else value


def _optional(form: Form, body: dict[str, Any], *names: str, numbers: bool = False) -> dict[str, Any]:
    for name in names:
        if (value := first(form, name)) is not None:
            body[name] = _number(value) if numbers else value
    return body


def domain_create(form: Form) -> dict[str, Any]:
    body = {"id": first(form, "id") or "", "name": first(form, "name") or ""}
    return _optional(form, body, "description", "owner_department_id")


def department_create(form: Form) -> dict[str, Any]:
    domains = [d.strip() for d in (first(form, "domains") or "").replace(",", " ").split() if d.strip()]
    body = {
        "id": first(form, "id") or "",
        "name": first(form, "name") or "",
        "kind": first(form, "kind") or "",
        "domains": domains,
    }
    return _optional(form, body, "contact_email")


def principal_create(form: Form) -> dict[str, Any]:
    body = {
        "id": first(form, "id") or "",
        "kind": first(form, "kind") or "",
        "name": first(form, "name") or "",
    }
    return _optional(form, body, "department_id")


def scenario_create(form: Form) -> dict[str, Any]:
    body = {name: first(form, name) or "" for name in ("id", "name", "organisation", "contact")}
    return _optional(form, body, "description")


def stage_change(form: Form) -> dict[str, Any]:
    return {"stage": first(form, "stage") or "", "reason": first(form, "reason") or ""}


def selection(form: Form) -> dict[str, Any]:
    chosen = [value.strip() for value in form.get("proposal_ids", []) if value.strip()]
    return {"proposal_ids": chosen, "reason": first(form, "reason") or ""}


def key_create(form: Form) -> dict[str, Any]:
    return {"name": first(form, "name") or ""}


def access_request_create(dataset_id: str, form: Form) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": dataset_id,
        "fields": [name for name in form.get("fields", []) if name],
        "purpose": first(form, "purpose") or "",
        "purpose_category": first(form, "purpose_category") or "",
        "duration_days": _number(first(form, "duration_days") or ""),
    }
    return _optional(form, body, "quota_records_per_day", numbers=True)


def reason(form: Form) -> dict[str, Any]:
    return {"reason": first(form, "reason") or ""}


def _masking(form: Form, fields: Sequence[str]) -> dict[str, Any]:
    return {
        name: MASK_CHOICES[choice]
        for name in fields
        if (choice := first(form, f"mask.{name}") or "") in MASK_CHOICES
    }


def approval(form: Form) -> dict[str, Any]:
    """The approval body (``AccessRequestApproval``): the fields kept, a mask per field where one was
    picked, the reason, and the optional row filter, duration and quota."""
    fields = [name for name in form.get("field", []) if name]
    body: dict[str, Any] = {"reason": first(form, "reason") or "", "fields": fields}
    if masking := _masking(form, fields):
        body["masking"] = masking
    _optional(form, body, "row_filter")
    return _optional(form, body, "duration_days", "quota_records_per_day", numbers=True)


def grant_update(form: Form, expires_at: datetime) -> dict[str, Any]:
    """The narrowing body (``GrantUpdate``): the fields kept, masks picked, an earlier expiry, a
    smaller quota. A new expiry date keeps the time of day of the current one, so the same date
    changes nothing and an earlier date is strictly shorter."""
    fields = [name for name in form.get("field", []) if name]
    body: dict[str, Any] = {"reason": first(form, "reason") or "", "fields": fields}
    if masking := _masking(form, fields):
        body["masking"] = masking
    if (expiry := first(form, "expires_on")) is not None:
        try:
            day = date.fromisoformat(expiry)
        except ValueError:
            body["expires_at"] = expiry
        else:
            if day != expires_at.date():
                body["expires_at"] = datetime.combine(day, expires_at.timetz()).isoformat()
    _optional(form, body, "row_filter")
    return _optional(form, body, "quota_records_per_day", numbers=True)


def subscription_create(form: Form) -> dict[str, Any]:
    return {"dataset": first(form, "dataset") or "", "start": first(form, "start") or "latest"}


def replay(form: Form) -> dict[str, Any]:
    return {"to": first(form, "to") or ""}
