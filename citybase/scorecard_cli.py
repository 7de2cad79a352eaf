"""``citybase scorecard``: a department's or a scenario's scorecard, as JSON, CSV or HTML.

Asks a running quality service (``GET /v1/scorecards/...``) with an API key, like every other
command that reads the platform: ``--url`` (quality's base URL) and ``--key`` (or
``CITYBASE_API_KEY``). The page is rendered by quality, so the command shows exactly what the API
and the console show, wherever it is run from.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from citybase.publish_cli import UNAVAILABLE, USAGE, need_key
from services.common import i18n
from services.common.i18n import N_, _

console = Console(stderr=True)

REFUSED = 1
"""Exit code when quality answered with a problem: an unknown department or scenario, say."""


class CardFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


def card_path(department: str | None, scenario: str | None) -> str:
    """The API path of the scorecard asked for (exactly one of ``department`` and ``scenario``)."""
    if (department is None) == (scenario is None):
        raise typer.BadParameter(_("give exactly one of --department and --scenario"))
    if department is not None:
        return f"/v1/scorecards/departments/{department}"
    return f"/v1/scorecards/scenarios/{scenario}"


def _problem_text(response: httpx.Response) -> str:
    problem: dict[str, Any] = {}
    if "json" in response.headers.get("content-type", ""):
        problem = response.json()
    return str(problem.get("detail") or problem.get("title") or response.reason_phrase)


def render(response: httpx.Response, format: CardFormat) -> str:
    """The card as quality rendered it; JSON indented for a reader."""
    if format is CardFormat.json:
        return json.dumps(response.json(), indent=2, ensure_ascii=False) + "\n"
    return response.text


SCORECARD_HELP = N_(
    "Quality per dimension, SLA breaches and utilization of a department's datasets or of a "
    "scenario, over a period.\n\n"
    "Exit code 0 with the card, 1 when quality refused it (unknown department or scenario), 2 on a "
    "usage or key problem, 3 when quality could not be reached."
)


def scorecard(
    department: Annotated[
        str | None, typer.Option(help=N_("A department id, e.g. health-commission."))
    ] = None,
    scenario: Annotated[str | None, typer.Option(help=N_("A scenario id (instead of --department)."))] = None,
    period: Annotated[str, typer.Option(help=N_("How far back: 30d, 12h, 2w (at most a year)."))] = "30d",
    format: Annotated[
        CardFormat, typer.Option(help=N_("json, csv or html (one self-contained page)."))
    ] = CardFormat.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help=N_("Write here instead of stdout."))
    ] = None,
    url: Annotated[str, typer.Option(help=N_("Quality's base URL."))] = "http://127.0.0.1:8000/quality",
    key: Annotated[
        str | None,
        typer.Option(
            envvar="CITYBASE_API_KEY", help=N_("API key of the department, an operator or an admin.")
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help=N_("Seconds to wait for the answer."))] = 30.0,
) -> None:
    """``citybase scorecard`` (:data:`SCORECARD_HELP`)."""
    path = card_path(department, scenario)
    api_key = need_key(key)
    try:
        response = httpx.get(
            f"{url.rstrip('/')}{path}",
            params={"period": period, "format": format.value},
            # the page and the problem in the command's language
            headers={"Authorization": f"Bearer {api_key}", "Accept-Language": i18n.tag()},
            timeout=timeout,
        )
    except httpx.HTTPError as error:
        console.print(
            "[red]"
            + _("quality did not answer at %(url)s: %(error)s") % {"url": url, "error": error}
            + "[/red]"
        )
        raise typer.Exit(UNAVAILABLE) from None
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}: {_problem_text(response)}[/red]")
        usage = response.status_code in (401, 403, 422)
        raise typer.Exit(USAGE if usage else UNAVAILABLE if response.status_code >= 500 else REFUSED)
    text = render(response, format)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(_("scorecard written to %(path)s") % {"path": output})
