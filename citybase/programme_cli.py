"""The scenario programme from the command line: ``citybase lists``, ``applicants`` and
``proposals``, over the catalog's HTTP API (docs/authorization.md, "The scenario programme").

The CLI speaks HTTP and imports no catalog module (the import-linter contract of pyproject.toml).
"""

from __future__ import annotations

from typing import Annotated

import typer

from citybase.connection import segment
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _
from services.common.vocabulary import ApplicantStatus

lists = noun(N_("Opportunity lists: operators draft, fill and publish them; anyone reads them."))
applicants = noun(N_("Applicant organisations: they register themselves, operators vet them."))
proposals = noun(N_("Proposals answering openings: the owning department compares and selects them."))

ListArgument = Annotated[str, typer.Argument(metavar="LIST", help=N_("The opportunity list's id."))]
OpeningArgument = Annotated[str, typer.Argument(metavar="OPENING", help=N_("The opening's id."))]
ApplicantArgument = Annotated[str, typer.Argument(metavar="APPLICANT", help=N_("The applicant's id."))]
ProposalArgument = Annotated[str, typer.Argument(metavar="PROPOSAL", help=N_("The proposal's id."))]
Reason = Annotated[str, typer.Option(help=N_("Why: kept in the audit trail and shown to those concerned."))]


def _list_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("number", _("No.")),
        ("title", _("Title")),
        ("status", _("Status")),
        ("published_at", _("Published")),
    ]


def _opening_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("position", _("No.")),
        ("title", _("Title")),
        ("owner_department_id", _("Owner")),
        ("datasets", _("Datasets")),
        ("deadline", _("Deadline")),
        ("status", _("Status")),
    ]


def _proposal_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("applicant_id", _("Applicant")),
        ("title", _("Title")),
        ("status", _("Status")),
        ("timeline", _("Timeline")),
        ("scenario_id", _("Scenario")),
    ]


def _applicant_columns() -> list[tuple[str, str]]:
    return [("id", _("ID")), ("name", _("Name")), ("status", _("Status")), ("contact", _("Contact"))]


@verb(lists, "list", N_("List the published opportunity lists (drafts too for an operator)."))
def list_lists(call: Call) -> None:
    call.show(call.api.get("/catalog/v1/opportunity-lists")["items"], _list_columns())


@verb(lists, "show", N_("Show one opportunity list and its openings."))
def show_list(call: Call, list_id: ListArgument) -> None:
    listing = call.api.get(f"/catalog/v1/opportunity-lists/{segment(list_id)}")
    if call.as_json:
        call.show(listing, [])
        return
    call.show(listing, _list_columns())
    call.show(listing["openings"], _opening_columns())


@verb(lists, "create", N_("Draft an opportunity list (operator)."))
def create_list(
    call: Call,
    list_id: ListArgument,
    title: Annotated[
        str, typer.Option(help=N_("The release people read, e.g. 2027 Q1, transport and health."))
    ],
    summary: Annotated[str, typer.Option(help=N_("What the list is about."))] = "",
) -> None:
    body = {"id": list_id, "title": title, "summary": summary}
    call.show(call.api.post("/catalog/v1/opportunity-lists", body), _list_columns())


@verb(lists, "add-opening", N_("Add an opening to a draft list (operator)."))
def add_opening(
    call: Call,
    list_id: ListArgument,
    title: Annotated[str, typer.Option(help=N_("What the scenario should do."))],
    owner: Annotated[str, typer.Option(help=N_("The department that compares and selects proposals."))],
    deadline: Annotated[str, typer.Option(help=N_("Proposals close then (RFC 3339)."))],
    dataset: Annotated[list[str] | None, typer.Option(help=N_("A dataset offered (repeat)."))] = None,
    data_offered: Annotated[str, typer.Option(help=N_("The data offered, in words."))] = "",
    conditions: Annotated[str, typer.Option(help=N_("The conditions of the opening."))] = "",
    need: Annotated[list[str] | None, typer.Option(help=N_("A need it answers (repeat)."))] = None,
    domain: Annotated[list[str] | None, typer.Option(help=N_("A domain (repeat)."))] = None,
    description: Annotated[str, typer.Option(help=N_("More about the opening."))] = "",
    serves_residents: Annotated[bool, typer.Option(help=N_("Whether residents use it directly."))] = False,
) -> None:
    body = {
        "title": title,
        "description": description,
        "owner_department_id": owner,
        "datasets": dataset or [],
        "data_offered": data_offered,
        "conditions": conditions,
        "deadline": deadline,
        "need_ids": need or [],
        "domains": domain or [],
        "serves_residents": serves_residents,
    }
    listing = call.api.post(f"/catalog/v1/opportunity-lists/{segment(list_id)}/openings", body)
    call.show(listing if call.as_json else listing["openings"], _opening_columns())


@verb(
    lists, "publish", N_("Publish a draft list: it gets its number and date and becomes public (operator).")
)
def publish_list(call: Call, list_id: ListArgument) -> None:
    call.show(call.api.post(f"/catalog/v1/opportunity-lists/{segment(list_id)}/publish"), _list_columns())


@verb(applicants, "list", N_("List the applicant organisations (operator)."))
def list_applicants(
    call: Call, status: Annotated[ApplicantStatus | None, typer.Option(help=N_("Only this status."))] = None
) -> None:
    answer = call.api.get("/catalog/v1/applicants", status=status.value if status else None)
    call.show(answer, _applicant_columns())


@verb(applicants, "vet", N_("Vet an applicant (its first key is shown once) or refuse it (operator)."))
def vet_applicant(
    call: Call,
    applicant_id: ApplicantArgument,
    reason: Reason,
    refuse: Annotated[bool, typer.Option(help=N_("Refuse it instead of vetting it."))] = False,
) -> None:
    body = {"decision": "refused" if refuse else "vetted", "reason": reason}
    answer = call.api.post(f"/catalog/v1/applicants/{segment(applicant_id)}/vetting", body)
    if call.as_json:
        call.show(answer, [])
        return
    call.show(answer["applicant"], _applicant_columns())
    if answer.get("key"):
        call.say(_("its key, shown this once: %(key)s") % {"key": answer["key"]["key"]})


@verb(proposals, "compare", N_("The proposals of an opening side by side (its owning department)."))
def compare_proposals(call: Call, opening_id: OpeningArgument) -> None:
    comparison = call.api.get(f"/catalog/v1/openings/{segment(opening_id)}/proposals")
    if call.as_json:
        call.show(comparison, [])
        return
    call.show(comparison["proposals"], _proposal_columns())
    for dataset_id, fields in comparison["fields_asked"].items():
        rows = [{"field": name, "proposals": ids} for name, ids in fields.items()]
        call.show(rows, [("field", _("Field")), ("proposals", _("Asked by"))], title=dataset_id)


@verb(proposals, "select", N_("Select proposals: each becomes an approved scenario; the others are told."))
def select_proposals(
    call: Call,
    opening_id: OpeningArgument,
    proposal: Annotated[list[str], typer.Option(help=N_("A proposal to select (repeat)."))],
    reason: Reason,
) -> None:
    body = {"proposal_ids": proposal, "reason": reason}
    answer = call.api.post(f"/catalog/v1/openings/{segment(opening_id)}/selection", body)
    if call.as_json:
        call.show(answer, [])
        return
    call.show(answer["selected"] + answer["not_selected"], _proposal_columns())
    call.show(
        answer["access_requests"],
        [
            ("id", _("ID")),
            ("scenario_id", _("Scenario")),
            ("dataset_id", _("Dataset")),
            ("status", _("Status")),
        ],
    )


@verb(proposals, "show", N_("Show one proposal and its status."))
def show_proposal(call: Call, proposal_id: ProposalArgument) -> None:
    call.show(call.api.get(f"/catalog/v1/proposals/{segment(proposal_id)}"), _proposal_columns())


@verb(proposals, "mine", N_("The caller's own proposals and their status (an organisation)."))
def my_proposals(call: Call) -> None:
    call.show(call.api.get("/catalog/v1/proposals"), _proposal_columns())
