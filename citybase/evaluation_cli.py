"""Scenario evaluation from the command line: ``citybase evaluation objectives set|list|withdraw``,
``citybase evaluation outcomes report|list``, ``citybase evaluation verdict`` and
``citybase evaluation verify REPORT.json``, over the catalog's HTTP API.

The choices are the API's own value sets (services.common.vocabulary): the CLI speaks HTTP and
imports no catalog module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from citybase.connection import segment
from citybase.verbs import Call, noun, verb
from services.common.i18n import N_, _
from services.common.vocabulary import KpiDirection, ObjectiveKind, VerdictResult

evaluation = noun(
    N_("Scenario evaluation: objectives, reported outcomes, evaluators' verdicts, verified reports.")
)
objectives = noun(N_("A scenario's objectives for a period: set by the scenario or an operator."))
outcomes = noun(N_("Outcomes a scenario reports for its outcome objectives; a correction is a new one."))
evaluation.add_typer(objectives, name="objectives")
evaluation.add_typer(outcomes, name="outcomes")

ScenarioArgument = Annotated[str, typer.Argument(metavar="SCENARIO", help=N_("The scenario's id."))]
ObjectiveArgument = Annotated[str, typer.Argument(metavar="OBJECTIVE", help=N_("The objective's id."))]
PeriodStart = Annotated[str, typer.Option(help=N_("Start of the period, inclusive (RFC 3339 with a zone)."))]
PeriodEnd = Annotated[str, typer.Option(help=N_("End of the period, exclusive (RFC 3339 with a zone)."))]


def _objective_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("title", _("Title")),
        ("kind", _("Kind")),
        ("datasets", _("Datasets")),
        ("target", _("Target")),
        ("period_start", _("From")),
        ("period_end", _("Until")),
        ("status", _("Status")),
    ]


def _outcome_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("objective_id", _("Objective")),
        ("period_start", _("From")),
        ("period_end", _("Until")),
        ("value", _("Value")),
        ("corrects", _("Corrects")),
        ("superseded_by", _("Corrected by")),
    ]


def _verdict_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("scenario_id", _("Scenario")),
        ("period_start", _("From")),
        ("period_end", _("Until")),
        ("result", _("Result")),
        ("evaluator_id", _("Evaluator")),
    ]


def _mismatch_columns() -> list[tuple[str, str]]:
    return [("path", _("Where")), ("report", _("The report says")), ("trail", _("The trail says"))]


@verb(objectives, "set", N_("Set an objective of a scenario for a period (the scenario itself, operator)."))
def set_objective(
    call: Call,
    scenario_id: ScenarioArgument,
    title: Annotated[str, typer.Option(help=N_("What the scenario commits to, in a sentence."))],
    kind: Annotated[ObjectiveKind, typer.Option(help=N_("How it is measured."))],
    period_start: PeriodStart,
    period_end: PeriodEnd,
    dataset: Annotated[list[str] | None, typer.Option(help=N_("A dataset it concerns (repeat)."))] = None,
    target: Annotated[
        float | None, typer.Option(help=N_("The target (none for dataset-use; 0-100 for quality-floor)."))
    ] = None,
    kpi: Annotated[str | None, typer.Option(help=N_("The KPI's name (kind outcome)."))] = None,
    unit: Annotated[str, typer.Option(help=N_("The KPI's unit (kind outcome)."))] = "",
    direction: Annotated[
        KpiDirection, typer.Option(help=N_("Whether the KPI should be at least or at most the target."))
    ] = KpiDirection.at_least,
) -> None:
    body = {
        "title": title,
        "kind": kind.value,
        "datasets": dataset or [],
        "target": target,
        "kpi": {"name": kpi, "unit": unit, "direction": direction.value} if kpi else None,
        "period_start": period_start,
        "period_end": period_end,
    }
    call.show(
        call.api.post(f"/catalog/v1/scenarios/{segment(scenario_id)}/objectives", body), _objective_columns()
    )


@verb(objectives, "list", N_("List a scenario's objectives, withdrawn ones included."))
def list_objectives(call: Call, scenario_id: ScenarioArgument) -> None:
    answer = call.api.get(f"/catalog/v1/scenarios/{segment(scenario_id)}/objectives")
    call.show(answer if call.as_json else answer["items"], _objective_columns())


@verb(objectives, "withdraw", N_("Withdraw an objective, with a reason (its scenario, operator)."))
def withdraw_objective(
    call: Call,
    objective_id: ObjectiveArgument,
    reason: Annotated[str, typer.Option(help=N_("Why: kept in the audit trail."))],
) -> None:
    body = {"reason": reason}
    call.show(
        call.api.post(f"/catalog/v1/objectives/{segment(objective_id)}/withdraw", body), _objective_columns()
    )


@verb(outcomes, "report", N_("Report an outcome of an outcome objective (the scenario itself, operator)."))
def report_outcome(
    call: Call,
    scenario_id: ScenarioArgument,
    objective: Annotated[str, typer.Option(help=N_("The outcome objective it is reported for."))],
    value: Annotated[float, typer.Option(help=N_("The KPI's value over the reporting period."))],
    period_start: PeriodStart,
    period_end: PeriodEnd,
    grant: Annotated[
        list[str] | None, typer.Option(help=N_("A grant the outcome rests on (repeat)."))
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(help=N_("A dataset it used, covered by a grant named (repeat)."))
    ] = None,
    note: Annotated[str, typer.Option(help=N_("How the value was measured."))] = "",
    corrects: Annotated[str | None, typer.Option(help=N_("The outcome this one corrects."))] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help=N_("Makes a retry safe: the same key reports once."))
    ] = None,
) -> None:
    body = {
        "objective_id": objective,
        "period_start": period_start,
        "period_end": period_end,
        "value": value,
        "grant_ids": grant or [],
        "dataset_ids": dataset or [],
        "note": note,
        "corrects": corrects,
    }
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    answer = call.api.call(
        "POST", f"/catalog/v1/scenarios/{segment(scenario_id)}/outcomes", json=body, headers=headers
    )
    call.show(answer, _outcome_columns())


@verb(outcomes, "list", N_("List a scenario's outcomes, corrected ones included."))
def list_outcomes(call: Call, scenario_id: ScenarioArgument) -> None:
    answer = call.api.get(f"/catalog/v1/scenarios/{segment(scenario_id)}/outcomes")
    call.show(answer if call.as_json else answer["items"], _outcome_columns())


def _reason(text: str) -> dict[str, str]:
    """``OBJECTIVE=RESULT:REASON`` as the API's reason."""
    head, sep, reason = text.partition(":")
    objective_id, eq, result = head.partition("=")
    if not (sep and eq and objective_id.strip() and result.strip() and reason.strip()):
        raise typer.BadParameter(_("a reason reads OBJECTIVE=met|not-met|no-data:WHY"))
    return {"objective_id": objective_id.strip(), "result": result.strip(), "reason": reason.strip()}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise typer.BadParameter(
            _("%(path)s is not a readable JSON file: %(error)s") % {"path": path, "error": error}
        ) from None
    if not isinstance(document, dict):
        raise typer.BadParameter(_("%(path)s does not hold a JSON object") % {"path": path})
    return document


@verb(
    evaluation,
    "verdict",
    N_("Record a verdict on a scenario's period, one --reason per active objective (evaluator)."),
)
def record_verdict(
    call: Call,
    scenario_id: ScenarioArgument,
    result: Annotated[VerdictResult, typer.Option(help=N_("The verdict."))],
    period_start: PeriodStart,
    period_end: PeriodEnd,
    reason: Annotated[
        list[str],
        typer.Option(help=N_("OBJECTIVE=met|not-met|no-data:WHY, one per active objective (repeat).")),
    ],
    report: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help=N_("The evaluation report (JSON) the verdict rests on.")
        ),
    ] = None,
    digest: Annotated[str | None, typer.Option(help=N_("The report's digest, without --report."))] = None,
) -> None:
    if report is not None:
        document = _read_json(report)
        checkpoint = document.get("checkpoint")
        reference = {
            "checkpoint": {"seq": checkpoint["seq"], "hash": checkpoint["hash"]}
            if isinstance(checkpoint, dict)
            else None,
            "digest": document.get("digest") or "",
        }
    elif digest:
        reference = {"checkpoint": None, "digest": digest}
    else:
        raise typer.BadParameter(_("name the evaluation report: --report REPORT.json or --digest"))
    body = {
        "period_start": period_start,
        "period_end": period_end,
        "result": result.value,
        "reasons": [_reason(text) for text in reason],
        "report": reference,
    }
    call.show(
        call.api.post(f"/catalog/v1/scenarios/{segment(scenario_id)}/verdicts", body), _verdict_columns()
    )


@verb(
    evaluation,
    "verify",
    N_("Verify a saved evaluation report against the audit trail; exits 1 when it does not hold."),
)
def verify_report(
    call: Call,
    report: Annotated[
        Path, typer.Argument(metavar="REPORT.json", exists=True, dir_okay=False, help=N_("The saved report."))
    ],
) -> None:
    answer = call.api.post("/catalog/v1/evaluations/verify", _read_json(report))
    if call.as_json:
        call.show(answer, [])
    else:
        chain = answer["chain"]
        call.console.print(
            _(
                "chain: %(state)s, %(entries)s entries checked; checkpoint %(seq)s; %(checked)s figures checked"
            )
            % {
                "state": _("holds") if chain["ok"] else _("broken"),
                "entries": chain["entries_checked"],
                "seq": answer["checkpoint"]["seq"],
                "checked": len(answer["checked"]),
            }
        )
        if answer["mismatches"]:
            call.show(answer["mismatches"], _mismatch_columns())
        if answer.get("not_checked"):
            call.console.print(
                _("not on the trail, not checked: %(paths)s") % {"paths": ", ".join(answer["not_checked"])}
            )
        call.console.print(_("the report holds") if answer["ok"] else _("the report does not hold"))
    if not answer["ok"]:
        raise typer.Exit(1)
