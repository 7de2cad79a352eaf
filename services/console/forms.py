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
from email import policy
from email.parser import BytesParser
from typing import Any

import yaml

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
    "evaluator": N_(
        "An evaluator: reads scenarios' objectives, outcomes and evaluation reports and records "
        "verdicts; never reads record data or grant terms."
    ),
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


def _unmasking(form: Form, fields: Sequence[str]) -> dict[str, str]:
    """Sensitive fields to deliver in clear, each with the reason typed for it (``unmask.<field>``)."""
    return {name: reason for name in fields if (reason := first(form, f"unmask.{name}")) is not None}


def _terms(form: Form) -> dict[str, Any]:
    """What an approval and a narrowing share: the reason, the fields kept, a mask per field where
    one was picked, and the sensitive fields to deliver in clear with their reasons."""
    fields = [name for name in form.get("field", []) if name]
    body: dict[str, Any] = {"reason": first(form, "reason") or "", "fields": fields}
    if masking := _masking(form, fields):
        body["masking"] = masking
    if unmask := _unmasking(form, fields):
        body["unmask"] = unmask
    return body


def approval(form: Form) -> dict[str, Any]:
    """The approval body (``AccessRequestApproval``): the terms (:func:`_terms`), and the optional
    row filter, duration and quota."""
    body = _terms(form)
    _optional(form, body, "row_filter")
    return _optional(form, body, "duration_days", "quota_records_per_day", numbers=True)


def grant_update(form: Form, expires_at: datetime) -> dict[str, Any]:
    """The narrowing body (``GrantUpdate``): the fields kept, masks picked, sensitive fields to
    deliver in clear with their reasons, a row filter, an earlier expiry, a smaller quota. A new expiry date keeps the time of day of the current one, so the same date
    changes nothing and an earlier date is strictly shorter."""
    body = _terms(form)
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


def multipart(content_type: str, body: bytes) -> dict[str, list[str]]:
    """The fields of a ``multipart/form-data`` body (a form with a file input), a file as its text.

    The standard library's MIME parser reads it, as the body is a MIME multipart message once its
    ``Content-Type`` header is put in front; an input with no file chosen is an empty value."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, list[str]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            fields.setdefault(name, []).append(text)
    return fields


@dataclass(frozen=True)
class ContractDocument:
    """An ODCS contract as a department pasted or uploaded it, sent to the catalog as it is."""

    text: str
    dataset_id: str | None
    version: str | None

    @property
    def content(self) -> bytes:
        return self.text.encode("utf-8")

    @property
    def media_type(self) -> str:
        return "application/json" if self.text.lstrip().startswith("{") else "application/yaml"

    def line_of(self, pointer: str) -> int | None:
        """The line of the document a problem's JSON Pointer leads to (the nearest value that is
        there, for a member that is missing), so a person finds it in what they pasted."""
        if len(self.text) > PARSED_AT_MOST:
            return None
        try:
            node: yaml.Node | None = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return None
        if node is None:
            return None
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, yaml.MappingNode):
                inner = next((value for key, value in node.value if key.value == token), None)
            elif isinstance(node, yaml.SequenceNode) and token.isdigit() and int(token) < len(node.value):
                inner = node.value[int(token)]
            else:
                inner = None
            if inner is None:
                break
            node = inner
        return int(node.start_mark.line) + 1


PARSED_AT_MOST = 1024 * 1024
"""The console reads no longer contract than the catalog accepts; a longer one goes to the catalog
unread, for it to refuse."""


def contract_document(form: Form) -> ContractDocument:
    """The uploaded file when one was chosen, else the pasted text; with the dataset id and version
    it names, when it reads as a mapping that names them (else the catalog says what is wrong)."""
    uploaded = (form.get("upload") or [""])[0]
    text = uploaded if uploaded.strip() else (form.get("document") or [""])[0]
    try:
        parsed = yaml.safe_load(text) if len(text) <= PARSED_AT_MOST else None
    except yaml.YAMLError:
        parsed = None
    named = parsed if isinstance(parsed, dict) else {}
    dataset_id, version = named.get("id"), named.get("version")
    return ContractDocument(
        text=text,
        dataset_id=dataset_id if isinstance(dataset_id, str) and dataset_id else None,
        version=str(version) if isinstance(version, (str, int, float)) else None,
    )


def webhook_create(form: Form) -> dict[str, Any]:
    """A subscription whose batches feeds pushes to ``url`` (``SubscriptionCreate`` with a webhook)."""
    return {**subscription_create(form), "webhook": {"url": first(form, "url") or ""}}
