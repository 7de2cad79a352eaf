"""Quality's evaluation figures from the command line: ``citybase evaluation report SCENARIO``
(the evaluation report of a period, saved as JSON for ``citybase evaluation verdict --report`` and
``citybase evaluation verify``) and ``citybase indicators`` (the city's indicators), over quality's
HTTP API like every other verb.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from citybase.connection import segment
from citybase.evaluation_cli import PeriodEnd, PeriodStart, ScenarioArgument, evaluation
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _

indicators = noun(
    N_("The city's indicators: penetration, quality of the data used and value conversion, over time.")
)


class PeriodKind(StrEnum):
    month = "month"
    week = "week"


class Breakdown(StrEnum):
    department = "department"
    domain = "domain"
    scenario = "scenario"
    purpose = "purpose"


def _objective_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("title", _("Title")),
        ("kind", _("Kind")),
        ("target", _("Target")),
        ("actual", _("Actual")),
        ("status", _("Status")),
    ]


def _indicator_columns() -> list[tuple[str, str]]:
    return [
        ("name", _("Indicator")),
        ("value", _("Value")),
        ("numerator", _("Numerator")),
        ("denominator", _("Denominator")),
    ]


@verb(
    evaluation,
    "report",
    N_("A scenario's evaluation report over a period: each objective's target and actual (quality)."),
)
def evaluation_report(
    call: Call,
    scenario_id: ScenarioArgument,
    period_start: PeriodStart,
    period_end: PeriodEnd,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help=N_("Save the report's JSON here (to verify it later).")
        ),
    ] = None,
) -> None:
    report: dict[str, Any] = call.api.get(
        f"/quality/v1/scenarios/{segment(scenario_id)}/evaluation",
        period_start=period_start,
        period_end=period_end,
    )
    if output is not None:
        output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if call.as_json:
        call.show(report, [])
        return
    checkpoint = report.get("checkpoint")
    call.show(report["objectives"], _objective_columns())
    call.console.print(
        _("checkpoint %(seq)s; digest %(digest)s")
        % {"seq": checkpoint["seq"] if checkpoint else "—", "digest": report["digest"]}
    )


@verb(indicators, "show", N_("The city's indicators of the current period, with a breakdown and the trend."))
def show_indicators(
    call: Call,
    period: Annotated[
        PeriodKind, typer.Option(help=N_("Calendar months or ISO weeks (UTC)."))
    ] = PeriodKind.month,
    periods: Annotated[int, typer.Option(min=1, max=36, help=N_("Periods in the trend."))] = 6,
    by: Annotated[Breakdown, typer.Option(help=N_("What the breakdown is by."))] = Breakdown.department,
) -> None:
    answer: dict[str, Any] = call.api.get(
        "/quality/v1/indicators", period=period.value, periods=periods, by=by.value
    )
    if call.as_json:
        call.show(answer, [])
        return
    call.show(answer["indicators"], _indicator_columns(), title=_("City-wide"))
    for row in answer["breakdown"]["rows"]:
        call.show(row["indicators"], _indicator_columns(), title=f"{answer['breakdown']['by']}: {row['key']}")
    names = [figure["name"] for figure in answer["indicators"]]
    # A table's key is a path (``a.b``): the trend's columns are keyed by the name without its dots.
    trend = [
        {
            "period_start": point["period_start"],
            **{f["name"].replace(".", "_"): f["value"] for f in point["indicators"]},
        }
        for point in answer["trend"]
    ]
    columns = [("period_start", _("From")), *((name.replace(".", "_"), name) for name in names)]
    call.show(trend, columns, title=_("Trend"))
