"""The needs board from the command line: ``citybase needs list|show|file|join|comment|follow|answer``,
over the catalog's HTTP API (docs/authorization.md says who may call which).

The choices are the API's own value sets (services.common.vocabulary): the CLI speaks HTTP and
imports no catalog module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from citybase.connection import segment
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _
from services.common.vocabulary import Frequency, NeedStatus, PurposeCategory, Urgency

needs = noun(
    N_("Needs: what scenario builders, departments and residents want of the city's data, and the answers.")
)

NeedArgument = Annotated[str, typer.Argument(metavar="NEED", help=N_("The need's id."))]


class AnswerKind(StrEnum):
    offer = "offer"
    commit = "commit"
    decline = "decline"


def _need_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("title", _("Title")),
        ("status", _("Status")),
        ("department_id", _("Department")),
        ("urgency", _("Urgency")),
        ("overdue", _("Overdue")),
    ]


def _path(need_id: str, tail: str = "") -> str:
    return f"/catalog/v1/needs/{segment(need_id)}{tail}"


@verb(needs, "list", N_("List the needs board, newest first."))
def list_needs(
    call: Call,
    status: Annotated[NeedStatus | None, typer.Option(help=N_("Only this status."))] = None,
    domain: Annotated[str | None, typer.Option(help=N_("Only needs of this domain."))] = None,
    department: Annotated[str | None, typer.Option(help=N_("Only needs this department answers."))] = None,
    q: Annotated[str | None, typer.Option(help=N_("Words the need contains."))] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help=N_("Most items to list."))] = 50,
) -> None:
    page = call.api.get(
        "/catalog/v1/needs",
        status=status.value if status else None,
        domain=domain,
        department=department,
        q=q,
        limit=limit,
    )
    call.show(page if call.as_json else page["items"], _need_columns())


@verb(needs, "show", N_("Show one need with its answer and history."))
def show_need(call: Call, need_id: NeedArgument) -> None:
    need = call.api.get(_path(need_id))
    if call.as_json:
        call.show(need, [])
        return
    shown = ["id", "title", "status", "department_id", "domains", "data_wanted", "serves", "frequency"]
    call.fields(need, [*shown, "urgency", "commit_by", "overdue", "answer", "created_at"])
    call.show(
        need["requesters"],
        [("principal_id", _("Requester")), ("purpose", _("Purpose"))],
        title=_("Requesters"),
    )
    call.show(
        call.api.get(_path(need_id, "/history")),
        [("at", _("When")), ("action", _("Action")), ("actor_id", _("By")), ("status", _("Status"))],
        title=_("History"),
    )


@verb(needs, "file", N_("File a need; similar open needs are shown: join one instead of filing a copy."))
def file_need(
    call: Call,
    title: Annotated[str, typer.Option(help=N_("What is needed, in one line."))],
    domain: Annotated[list[str], typer.Option(help=N_("A domain of the need (repeat for more)."))],
    data_wanted: Annotated[str, typer.Option(help=N_("The data wanted, in words."))],
    purpose: Annotated[str, typer.Option(help=N_("What you will do with it."))],
    serves: Annotated[str, typer.Option(help=N_("Who it serves."))],
    category: Annotated[PurposeCategory, typer.Option(help=N_("The purpose's category."))] = (
        PurposeCategory.public_service
    ),
    frequency: Annotated[Frequency, typer.Option(help=N_("How often the need arises."))] = Frequency.medium,
    urgency: Annotated[Urgency, typer.Option(help=N_("How pressing it is."))] = Urgency.normal,
    dataset: Annotated[
        list[str] | None, typer.Option(help=N_("A dataset that may hold it (repeat)."))
    ] = None,
    description: Annotated[str, typer.Option(help=N_("More about the need."))] = "",
) -> None:
    body: dict[str, Any] = {
        "title": title,
        "description": description,
        "domains": domain,
        "data_wanted": data_wanted,
        "dataset_ids": dataset or [],
        "purpose": purpose,
        "purpose_category": category.value,
        "serves": serves,
        "frequency": frequency.value,
        "urgency": urgency.value,
    }
    filed = call.api.post("/catalog/v1/needs", body)
    if call.as_json:
        call.show(filed, [])
        return
    call.show(filed["need"], _need_columns())
    if filed["similar"]:
        call.show(
            filed["similar"],
            [("id", _("ID")), ("title", _("Title")), ("requesters", _("Requesters"))],
            title=_("Similar open needs: join one with citybase needs join"),
        )


@verb(needs, "join", N_("Add your demand, with your own purpose, to a need."))
def join_need(
    call: Call,
    need_id: NeedArgument,
    purpose: Annotated[str, typer.Option(help=N_("What you will do with it."))],
) -> None:
    call.show(call.api.post(_path(need_id, "/join"), {"purpose": purpose}), _need_columns())


@verb(needs, "comment", N_("Comment on a need; its followers are told."))
def comment_need(
    call: Call, need_id: NeedArgument, body: Annotated[str, typer.Option(help=N_("The comment."))]
) -> None:
    call.show(
        call.api.post(_path(need_id, "/comments"), {"body": body}),
        [("id", _("ID")), ("author_id", _("By")), ("body", _("Comment"))],
    )


@verb(needs, "follow", N_("Be told of a need's answers and comments (--stop to stop)."))
def follow_need(
    call: Call,
    need_id: NeedArgument,
    stop: Annotated[bool, typer.Option("--stop", help=N_("Stop following."))] = False,
) -> None:
    answer = call.api.post(_path(need_id, "/unfollow" if stop else "/follow"), {})
    call.show(answer, [("need_id", _("Need")), ("following", _("Following"))])


@verb(
    needs,
    "answer",
    N_(
        "Answer a need (its department or an operator): offer a dataset, commit to publish by a date, or decline."
    ),
)
def answer_need(
    call: Call,
    need_id: NeedArgument,
    kind: Annotated[AnswerKind, typer.Argument(help=N_("offer, commit or decline."))],
    dataset: Annotated[str | None, typer.Option(help=N_("The dataset offered, or planned."))] = None,
    by: Annotated[str | None, typer.Option(help=N_("The date a commitment is due (YYYY-MM-DD)."))] = None,
    reason: Annotated[str | None, typer.Option(help=N_("Why it is declined; a note otherwise."))] = None,
) -> None:
    if kind is AnswerKind.offer:
        body: dict[str, Any] = {"dataset_id": dataset, "note": reason}
    elif kind is AnswerKind.commit:
        body = {"commit_by": by, "dataset_id": dataset, "note": reason}
    else:
        body = {"reason": reason}
    call.show(call.api.post(_path(need_id, f"/{kind.value}"), body), _need_columns())
