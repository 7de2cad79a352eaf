"""Authorized operation from the command line: ``citybase scenarios``, ``requests`` and ``grants``,
over the catalog's HTTP API (docs/authorization.md says who may call which).

The choices of ``--status`` and ``--category`` are the API's own value sets
(services.common.vocabulary): the CLI speaks HTTP and imports no catalog module (the import-linter
contract of pyproject.toml).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from citybase.connection import segment
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _
from services.common.vocabulary import (
    AccessRequestStatus,
    GrantStatus,
    PurposeCategory,
    ScenarioStage,
    ScenarioStatus,
)

scenarios = noun(
    N_("Scenarios: who asks for data, for what; admin creates, suspends, resumes and retires them.")
)
requests = noun(N_("Access requests: a scenario asks, an approver of the owning department decides."))
grants = noun(N_("Grants: what a scenario may receive; approvers suspend, resume, revoke and narrow them."))

ScenarioArgument = Annotated[str, typer.Argument(metavar="SCENARIO", help=N_("The scenario's id."))]
RequestArgument = Annotated[str, typer.Argument(metavar="REQUEST", help=N_("The access request's id."))]
GrantArgument = Annotated[str, typer.Argument(metavar="GRANT", help=N_("The grant's id."))]
Reason = Annotated[str, typer.Option(help=N_("Why: kept in the audit trail, shown to the scenario."))]
Limit = Annotated[int, typer.Option(min=1, max=500, help=N_("Most items to list."))]
Cursor = Annotated[str | None, typer.Option(help=N_("Where the previous page ended (from its last line)."))]


def _page(
    call: Call,
    path: str,
    columns: list[tuple[str, str]],
    scenario: str | None,
    dataset: str | None,
    status: StrEnum | None,
    limit: int,
    cursor: str | None,
) -> None:
    """A page of requests or grants, filtered as asked: its items, and how to ask for the next page."""
    page = call.api.get(
        path,
        scenario_id=scenario,
        dataset_id=dataset,
        status=status.value if status else None,
        limit=limit,
        cursor=cursor,
    )
    if call.as_json:
        call.show(page, columns)
        return
    call.show(page["items"], columns)
    if page.get("next_cursor"):
        call.say(_("more: add --cursor %(cursor)s") % {"cursor": page["next_cursor"]})


# --- scenarios ----------------------------------------------------------------------------------


def _scenario_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("name", _("Name")),
        ("organisation", _("Organisation")),
        ("status", _("Status")),
        ("contact", _("Contact")),
    ]


@verb(scenarios, "list", N_("List the scenarios."))
def list_scenarios(
    call: Call, status: Annotated[ScenarioStatus | None, typer.Option(help=N_("Only this status."))] = None
) -> None:
    call.show(
        call.api.get("/catalog/v1/scenarios", status=status.value if status else None), _scenario_columns()
    )


@verb(scenarios, "show", N_("Show one scenario."))
def show_scenario(call: Call, scenario_id: ScenarioArgument) -> None:
    scenario = call.api.get(f"/catalog/v1/scenarios/{segment(scenario_id)}")
    call.fields(
        scenario,
        ["id", "name", "organisation", "contact", "status", "description", "created_at", "updated_at"],
    )


@verb(scenarios, "create", N_("Register a scenario (admin); then issue its key with citybase keys issue."))
def create_scenario(
    call: Call,
    scenario_id: ScenarioArgument,
    name: Annotated[str, typer.Option(help=N_("The name people read."))],
    organisation: Annotated[str, typer.Option(help=N_("Who builds and runs it."))],
    contact: Annotated[str, typer.Option(help=N_("Who to write to about it."))],
    description: Annotated[str, typer.Option(help=N_("What it does with the data."))] = "",
) -> None:
    body = {
        "id": scenario_id,
        "name": name,
        "organisation": organisation,
        "contact": contact,
        "description": description,
    }
    call.show(call.api.post("/catalog/v1/scenarios", body), _scenario_columns())


def _set_status(call: Call, scenario_id: str, status: ScenarioStatus) -> None:
    changed = call.api.patch(f"/catalog/v1/scenarios/{segment(scenario_id)}", {"status": status.value})
    call.show(changed, _scenario_columns())


@verb(
    scenarios, "suspend", N_("Suspend a scenario (admin): its keys stop working everywhere within a second.")
)
def suspend_scenario(call: Call, scenario_id: ScenarioArgument) -> None:
    _set_status(call, scenario_id, ScenarioStatus.suspended)


@verb(scenarios, "resume", N_("Make a suspended scenario active again (admin)."))
def resume_scenario(call: Call, scenario_id: ScenarioArgument) -> None:
    _set_status(call, scenario_id, ScenarioStatus.active)


@verb(
    scenarios, "retire", N_("Retire a scenario for good (admin): revokes its grants, withdraws its requests.")
)
def retire_scenario(call: Call, scenario_id: ScenarioArgument) -> None:
    _set_status(call, scenario_id, ScenarioStatus.retired)


@verb(
    scenarios,
    "stage",
    N_("Move a scenario to its next stage, with a reason (operator; the scenario starts building)."),
)
def move_scenario(
    call: Call,
    scenario_id: ScenarioArgument,
    stage: Annotated[ScenarioStage, typer.Argument(metavar="STAGE", help=N_("The stage to move to."))],
    reason: Reason,
) -> None:
    body = {"stage": stage.value, "reason": reason}
    moved = call.api.post(f"/catalog/v1/scenarios/{segment(scenario_id)}/stage", body)
    call.show(moved, [*_scenario_columns(), ("stage", _("Stage"))])


@verb(scenarios, "stages", N_("A scenario's stage history, oldest first."))
def scenario_stages(call: Call, scenario_id: ScenarioArgument) -> None:
    history = call.api.get(f"/catalog/v1/scenarios/{segment(scenario_id)}/stages")
    columns = [
        ("changed_at", _("When")),
        ("previous_stage", _("From")),
        ("stage", _("Stage")),
        ("changed_by", _("By")),
        ("reason", _("Reason")),
    ]
    call.show(history, columns)


# --- access requests ----------------------------------------------------------------------------


def _request_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("scenario_id", _("Scenario")),
        ("dataset_id", _("Dataset")),
        ("status", _("Status")),
        ("duration_days", _("Days")),
        ("fields", _("Fields")),
    ]


REQUEST_KEYS = [
    "id",
    "scenario_id",
    "dataset_id",
    "contract_version",
    "status",
    "purpose",
    "purpose_category",
    "fields",
    "duration_days",
    "quota_records_per_day",
    "requested_by",
    "decided_by",
    "decided_at",
    "decision_reason",
    "grant_id",
    "created_at",
]


@verb(requests, "list", N_("List access requests: a scenario sees its own, an approver its department's."))
def list_requests(
    call: Call,
    scenario: Annotated[str | None, typer.Option(help=N_("Only this scenario's."))] = None,
    dataset: Annotated[str | None, typer.Option(help=N_("Only for this dataset."))] = None,
    status: Annotated[AccessRequestStatus | None, typer.Option(help=N_("Only this status."))] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    _page(call, "/catalog/v1/access-requests", _request_columns(), scenario, dataset, status, limit, cursor)


@verb(requests, "show", N_("Show one access request."))
def show_request(call: Call, request_id: RequestArgument) -> None:
    call.fields(call.api.get(f"/catalog/v1/access-requests/{segment(request_id)}"), REQUEST_KEYS)


FieldOption = Annotated[
    list[str] | None, typer.Option("--field", help=N_("A field of the contract (repeat for more)."))
]


@verb(
    requests,
    "create",
    N_("Ask for fields of a dataset, for a purpose and a number of days (a scenario's key)."),
)
def create_request(
    call: Call,
    dataset: Annotated[str, typer.Option(help=N_("The dataset, e.g. health.outpatient-visits."))],
    purpose: Annotated[str, typer.Option(help=N_("What the data is for, in a sentence the approver reads."))],
    category: Annotated[PurposeCategory, typer.Option(help=N_("The kind of purpose."))],
    field: FieldOption = None,
    duration_days: Annotated[int, typer.Option(min=1, help=N_("How many days the grant should last."))] = 90,
    quota: Annotated[int | None, typer.Option(min=1, help=N_("At most this many records a day."))] = None,
    scenario: Annotated[str | None, typer.Option(help=N_("The scenario (an admin asks for one)."))] = None,
) -> None:
    if not field:
        raise typer.BadParameter(_("name at least one --field"), param_hint="--field")
    body = {
        "scenario_id": scenario,
        "dataset_id": dataset,
        "purpose": purpose,
        "purpose_category": category.value,
        "fields": field,
        "duration_days": duration_days,
        "quota_records_per_day": quota,
    }
    created = call.api.post("/catalog/v1/access-requests", body)
    call.show(created, _request_columns())
    if created["status"] == "approved":
        call.say(_("approved at once (an open dataset): grant %(grant)s") % {"grant": created["grant_id"]})


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``field=value`` options as a dict; a value that is not a pair is a usage error."""
    pairs: dict[str, str] = {}
    for value in values or []:
        name, equals, rest = value.partition("=")
        if not equals or not name or not rest:
            raise typer.BadParameter(
                _("'%(value)s' is not field=value") % {"value": value}, param_hint=option
            )
        pairs[name.strip()] = rest.strip()
    return pairs


def masks(values: list[str] | None) -> dict[str, Any] | None:
    """``--mask field=kind`` as the API's masking: ``hash``, ``redact``, ``partial``, ``generalize``,
    or a JSON object for a mask with options (``phone={"kind":"partial","keepPrefix":3}``)."""
    masking: dict[str, Any] = {}
    for name, mask in _pairs(values, "--mask").items():
        if mask.startswith("{"):
            try:
                masking[name] = json.loads(mask)
            except ValueError as error:
                raise typer.BadParameter(f"{name}: {error}", param_hint="--mask") from None
        else:
            masking[name] = mask
    return masking or None


MaskOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mask",
        help=N_("field=kind: hash, redact, partial or generalize, or a JSON mask (repeat for more)."),
    ),
]
RowFilterOption = Annotated[
    str | None, typer.Option(help=N_('Deliver only matching rows, e.g. district in ["Putuo", "Baoshan"].'))
]
UnmaskOption = Annotated[
    list[str] | None,
    typer.Option("--unmask", help=N_("field=reason: deliver a sensitive field in clear (never restricted).")),
]
QuotaOption = Annotated[int | None, typer.Option(min=1, help=N_("At most this many records a day."))]


def _terms(
    field: list[str] | None,
    mask: list[str] | None,
    unmask: list[str] | None,
    row_filter: str | None,
    quota: int | None,
) -> dict[str, Any]:
    """The narrowing terms named on the command line (only those given)."""
    terms: dict[str, Any] = {
        "fields": field or None,
        "masking": masks(mask),
        "unmask": _pairs(unmask, "--unmask") or None,
        "row_filter": row_filter,
        "quota_records_per_day": quota,
    }
    return {name: value for name, value in terms.items() if value is not None}


@verb(
    requests,
    "approve",
    N_("Approve a request (approver of the owning department, or admin), narrowing it if you wish."),
)
def approve_request(
    call: Call,
    request_id: RequestArgument,
    reason: Reason,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help=N_("Grant only these of the requested fields (repeat).")),
    ] = None,
    mask: MaskOption = None,
    unmask: UnmaskOption = None,
    row_filter: RowFilterOption = None,
    duration_days: Annotated[int | None, typer.Option(min=1, help=N_("Fewer days than requested."))] = None,
    quota: QuotaOption = None,
) -> None:
    body = {"reason": reason, **_terms(field, mask, unmask, row_filter, quota)}
    if duration_days is not None:
        body["duration_days"] = duration_days
    decided = call.api.post(f"/catalog/v1/access-requests/{segment(request_id)}/approve", body)
    if call.as_json:
        call.show(decided, [])
        return
    # What was granted, as narrowed, rather than what was asked for.
    call.say(_("approved %(request)s; the grant:") % {"request": request_id})
    call.show(call.api.get(f"/catalog/v1/grants/{segment(decided['grant_id'])}"), _grant_columns())
    call.say(_("details: citybase grants show %(grant)s") % {"grant": decided["grant_id"]})


@verb(requests, "reject", N_("Reject a request with a reason (approver of the owning department, or admin)."))
def reject_request(call: Call, request_id: RequestArgument, reason: Reason) -> None:
    decided = call.api.post(f"/catalog/v1/access-requests/{segment(request_id)}/reject", {"reason": reason})
    call.show(decided, _request_columns())


@verb(requests, "withdraw", N_("Withdraw a pending request (the scenario that asked, or admin)."))
def withdraw_request(
    call: Call,
    request_id: RequestArgument,
    reason: Annotated[str | None, typer.Option(help=N_("Why, if you wish to say."))] = None,
) -> None:
    withdrawn = call.api.post(
        f"/catalog/v1/access-requests/{segment(request_id)}/withdraw", {"reason": reason}
    )
    call.show(withdrawn, _request_columns())


# --- grants -------------------------------------------------------------------------------------


def _grant_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("scenario_id", _("Scenario")),
        ("dataset_id", _("Dataset")),
        ("status", _("Status")),
        ("expires_at", _("Expires")),
        ("fields", _("Fields")),
    ]


GRANT_KEYS = [
    "id",
    "version",
    "scenario_id",
    "dataset_id",
    "request_id",
    "contract_version",
    "status",
    "status_reason",
    "fields",
    "masking",
    "unmasked",
    "row_filter",
    "valid_from",
    "expires_at",
    "quota",
    "purpose",
    "purpose_category",
]


@verb(grants, "list", N_("List grants: a scenario sees its own, an approver its department's."))
def list_grants(
    call: Call,
    scenario: Annotated[str | None, typer.Option(help=N_("Only this scenario's."))] = None,
    dataset: Annotated[str | None, typer.Option(help=N_("Only for this dataset."))] = None,
    status: Annotated[GrantStatus | None, typer.Option(help=N_("Only this status."))] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> None:
    _page(call, "/catalog/v1/grants", _grant_columns(), scenario, dataset, status, limit, cursor)


@verb(grants, "show", N_("Show one grant: its fields, masks, row filter and validity."))
def show_grant(call: Call, grant_id: GrantArgument) -> None:
    call.fields(call.api.get(f"/catalog/v1/grants/{segment(grant_id)}"), GRANT_KEYS)


def _change(call: Call, grant_id: str, action: str, reason: str) -> None:
    changed = call.api.post(f"/catalog/v1/grants/{segment(grant_id)}/{action}", {"reason": reason})
    call.show(changed, _grant_columns())


@verb(grants, "suspend", N_("Stop delivery under a grant until it is resumed."))
def suspend_grant(call: Call, grant_id: GrantArgument, reason: Reason) -> None:
    _change(call, grant_id, "suspend", reason)


@verb(grants, "resume", N_("Deliver again under a suspended grant."))
def resume_grant(call: Call, grant_id: GrantArgument, reason: Reason) -> None:
    _change(call, grant_id, "resume", reason)


@verb(grants, "revoke", N_("Revoke a grant for good; feeds stop delivering within a second."))
def revoke_grant(call: Call, grant_id: GrantArgument, reason: Reason) -> None:
    _change(call, grant_id, "revoke", reason)


@verb(
    grants,
    "narrow",
    N_("Change a grant's terms: fewer fields, stronger masks, a row filter, an earlier end."),
)
def narrow_grant(
    call: Call,
    grant_id: GrantArgument,
    reason: Reason,
    field: Annotated[
        list[str] | None, typer.Option("--field", help=N_("Keep only these fields (repeat)."))
    ] = None,
    mask: MaskOption = None,
    unmask: UnmaskOption = None,
    row_filter: RowFilterOption = None,
    expires_at: Annotated[
        str | None, typer.Option(help=N_("An earlier end, RFC 3339: 2026-12-31T00:00:00Z."))
    ] = None,
    quota: QuotaOption = None,
) -> None:
    body = {"reason": reason, **_terms(field, mask, unmask, row_filter, quota)}
    if expires_at is not None:
        body["expires_at"] = expires_at
    call.show(call.api.patch(f"/catalog/v1/grants/{segment(grant_id)}", body), _grant_columns())
