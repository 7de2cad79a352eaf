"""A scenario's subscriptions from the command line: ``citybase subscriptions`` (pulled) and
``citybase webhooks`` (pushed to an https URL), over feeds' HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from citybase.connection import segment
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _

subscriptions = noun(N_("Subscriptions of a scenario to the datasets it holds grants for."))
webhooks = noun(N_("Webhooks: subscriptions whose batches feeds pushes to an https URL."))

SubscriptionArgument = Annotated[
    str, typer.Argument(metavar="SUBSCRIPTION", help=N_("The subscription's id."))
]
DatasetOption = Annotated[str, typer.Option(help=N_("A dataset the scenario holds an active grant for."))]
StartOption = Annotated[
    str,
    typer.Option(help=N_("Where delivery starts: latest, earliest, or a time (RFC 3339).")),
]


def start_position(start: str) -> str | dict[str, str]:
    """``--start`` as feeds reads it: ``earliest``, ``latest`` or ``{"timestamp": ...}``."""
    return start if start in ("earliest", "latest") else {"timestamp": start}


def _columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("dataset", _("Dataset")),
        ("scenario_id", _("Scenario")),
        ("grant_id", _("Grant")),
        ("status", _("Status")),
        ("status_reason", _("Why")),
        ("mode", _("Mode")),
    ]


def _path(subscription_id: str, action: str = "") -> str:
    return f"/feeds/v1/subscriptions/{segment(subscription_id)}" + (f"/{action}" if action else "")


def _create(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = call.api.post("/feeds/v1/subscriptions", body)
    call.show(created, _columns())
    return created


@verb(subscriptions, "list", N_("List the scenario's subscriptions (admin: every scenario's)."))
def list_subscriptions(call: Call) -> None:
    page = call.api.get("/feeds/v1/subscriptions")
    call.show(page if call.as_json else page["items"], _columns())


@verb(subscriptions, "create", N_("Subscribe the key's scenario to a dataset it holds a grant for."))
def create_subscription(call: Call, dataset: DatasetOption, start: StartOption = "latest") -> None:
    created = _create(call, {"dataset": dataset, "start": start_position(start)})
    if not call.as_json:
        call.say(_("read it: GET %(url)s") % {"url": call.api.url + _path(created["id"], "records")})


@verb(subscriptions, "pause", N_("Stop delivery until resumed."))
def pause_subscription(call: Call, subscription_id: SubscriptionArgument) -> None:
    call.show(call.api.post(_path(subscription_id, "pause")), _columns())


@verb(subscriptions, "resume", N_("Deliver again from where it was."))
def resume_subscription(call: Call, subscription_id: SubscriptionArgument) -> None:
    call.show(call.api.post(_path(subscription_id, "resume")), _columns())


@verb(subscriptions, "delete", N_("Delete a subscription and its committed positions."))
def delete_subscription(call: Call, subscription_id: SubscriptionArgument) -> None:
    call.api.delete(_path(subscription_id))
    call.say(_("deleted %(id)s") % {"id": subscription_id})


@verb(
    subscriptions,
    "position",
    N_("Whether it delivers now and why not, its grant, and per partition the committed offset and lag."),
)
def position(call: Call, subscription_id: SubscriptionArgument) -> None:
    detail = call.api.get(_path(subscription_id))
    if call.as_json:
        call.show(detail, [])
        return
    call.fields(
        detail,
        ["id", "dataset", "status", "status_reason", "grant.id", "grant.status", "grant.expires_at", "lag"],
    )
    call.show(
        detail.get("positions") or [],
        [
            ("partition", _("Partition")),
            ("committed", _("Committed")),
            ("end", _("End")),
            ("lag", _("Lag")),
        ],
    )


@verb(webhooks, "list", N_("List the scenario's webhook subscriptions."))
def list_webhooks(call: Call) -> None:
    items = [item for item in call.api.get("/feeds/v1/subscriptions")["items"] if item["mode"] == "webhook"]
    call.show(items, [*_columns(), ("webhook_url", _("Webhook URL"))])


@verb(webhooks, "create", N_("Push a dataset's batches to an https URL; prints the signing secret once."))
def create_webhook(
    call: Call,
    dataset: DatasetOption,
    target: Annotated[str, typer.Option("--target", help=N_("The https URL that receives the batches."))],
    start: StartOption = "latest",
) -> None:
    created = _create(call, {"dataset": dataset, "start": start_position(start), "webhook": {"url": target}})
    if not call.as_json and created.get("webhook_secret"):
        call.say(_("signing secret (shown once; checks the CityBase-Signature of each batch):"))
        call.console.print(created["webhook_secret"], soft_wrap=True)


@verb(webhooks, "deliveries", N_("What the receiver answered to each push, newest first."))
def deliveries(
    call: Call,
    subscription_id: SubscriptionArgument,
    limit: Annotated[int, typer.Option(min=1, max=1000, help=N_("Most items to list."))] = 20,
) -> None:
    page = call.api.get(_path(subscription_id, "deliveries"), limit=limit)
    call.show(
        page if call.as_json else page["items"],
        [
            ("attempted_at", _("When")),
            ("outcome", _("Outcome")),
            ("http_status", _("HTTP")),
            ("records", _("Records")),
            ("error", _("Error")),
        ],
    )
