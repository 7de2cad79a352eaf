"""Scenario evaluation and the city's indicators in the console: the indicators page (value,
formula, trend, breakdown), a scenario's evaluation page (objectives, outcomes, the evaluation
report of a period, the evaluator's verdict, the verification of a saved report) and the
evaluators' work list.

Each function takes the :class:`PlatformApi` of the person logged in and returns what its template
renders. The catalog keeps objectives, outcomes and verdicts and decides who may set them; quality
computes the report and the indicators. The console offers each form to the roles the catalog
lets use it, and sends what was typed as it was typed.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from services.common import i18n
from services.common.i18n import N_
from services.console import charts
from services.console.exceptions import ApiError, NotForYourRole
from services.console.forms import Form, first
from services.console.gateway import PlatformApi, api_path
from services.console.service import Caller, overview, require_operator, require_own_scenario

# --- indicators ----------------------------------------------------------------------------------

SHARE, SCORE, COUNT = "share", "score", "count"


@dataclass(frozen=True)
class Indicator:
    """How the console names and reads one of quality's indicators; how it is computed (its
    formula, in the reader's language) is quality's to say, with the figure."""

    name: str
    title: str
    scale: str
    """``share`` (a fraction 0-1, shown as a percentage), ``score`` (0-100) or ``count``."""


INDICATORS: tuple[Indicator, ...] = (
    Indicator("penetration.datasets", N_("Datasets in use"), SHARE),
    Indicator("penetration.scenarios", N_("Scenarios live"), SHARE),
    Indicator("quality.used", N_("Quality of the data used"), SCORE),
    Indicator("value.conversion", N_("Value conversion"), SHARE),
    Indicator("value.outcomes-per-dataset", N_("Outcomes per dataset used"), COUNT),
    Indicator("value.public-service-share", N_("Public-service share"), SHARE),
)
BY_NAME = {indicator.name: indicator for indicator in INDICATORS}
BREAKDOWNS = ("department", "domain", "scenario", "purpose")
PERIODS = ("month", "week")
PERIODS_SHOWN = 6


def indicator_of(name: str) -> Indicator:
    """The console's words for an indicator; one it does not know yet is shown by its name."""
    return BY_NAME.get(name) or Indicator(name, name, COUNT)


def indicator_value(name: str, value: float | None) -> str:
    """An indicator's value as a page shows it: a share as a percentage, a score to one decimal,
    a count to two; "—" where the period has nothing to divide by."""
    scale = indicator_of(name).scale
    if value is None:
        return "—"
    if scale == SHARE:
        return i18n.format_percent(value)
    return i18n.format_number(value, digits=1 if scale == SCORE else 2)


def indicator_cards(answer: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each indicator of quality's answer, city-wide for the current period, with its words, its
    figures and its trend over the last periods as a chart."""
    if not answer:
        return []
    trend: dict[str, list[tuple[datetime, float | None]]] = {}
    for period in answer.get("trend") or []:
        start = i18n.parse_datetime(period.get("period_start"))
        if start is None:
            continue
        for figure in period.get("indicators") or []:
            trend.setdefault(str(figure["name"]), []).append((start, figure.get("value")))
    cards = []
    for figure in _in_order(answer.get("indicators") or []):
        name = str(figure["name"])
        indicator = indicator_of(name)
        series = sorted(trend.get(name, []), key=lambda point: point[0])
        cards.append(
            {
                "name": name,
                "id": name.replace(".", "-"),
                "title": i18n.gettext(indicator.title) if name in BY_NAME else name,
                "formula": figure.get("formula") or "",
                "value": figure.get("value"),
                "shown": indicator_value(name, figure.get("value")),
                "numerator": figure.get("numerator"),
                "denominator": figure.get("denominator"),
                "evidence": figure.get("evidence"),
                "chart": charts.trend_chart(
                    series, share=indicator.scale == SHARE, high=100.0 if indicator.scale == SCORE else None
                ),
            }
        )
    return cards


def _in_order(figures: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The six in the order of the city's indicator system, any other after them."""
    known = [indicator.name for indicator in INDICATORS]
    return sorted(figures, key=lambda f: known.index(f["name"]) if f["name"] in known else len(known))


async def indicators(api: PlatformApi, period: str = "month", by: str = "department") -> Any | None:
    """Quality's indicators (any principal reads them: aggregate figures only); ``None`` where
    quality does not compute them."""
    return await api.optional("quality", "/v1/indicators", periods=PERIODS_SHOWN, period=period, by=by)


async def overview_page(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    """The operator's overview with the city's indicators and their trend on top."""
    require_operator(caller)
    page, answer = await asyncio.gather(overview(api, caller), indicators(api))
    return {**page, "indicators": answer, "cards": indicator_cards(answer)}


async def indicators_page(api: PlatformApi, form: Form) -> dict[str, Any]:
    """The indicators, their trend, and a breakdown by department, domain, scenario or purpose."""
    by = first(form, "by")
    by = by if by in BREAKDOWNS else BREAKDOWNS[0]
    period = first(form, "period")
    period = period if period in PERIODS else PERIODS[0]
    answer = await indicators(api, period, by)
    cards = indicator_cards(answer)
    names = [card["name"] for card in cards]
    rows = []
    for row in ((answer or {}).get("breakdown") or {}).get("rows") or []:
        figures = {str(f["name"]): f for f in row.get("indicators") or []}
        rows.append(
            {
                "key": row.get("key"),
                "cells": [
                    {
                        "shown": indicator_value(name, (figures.get(name) or {}).get("value")),
                        "numerator": (figures.get(name) or {}).get("numerator"),
                        "denominator": (figures.get(name) or {}).get("denominator"),
                    }
                    for name in names
                ],
            }
        )
    return {
        "answer": answer,
        "cards": cards,
        "by": by,
        "period": period,
        "breakdowns": BREAKDOWNS,
        "periods": PERIODS,
        "rows": rows,
    }


# --- periods --------------------------------------------------------------------------------------


def as_moment(text: str | None) -> str | None:
    """A period bound as the APIs read it: a day (a date field) is its midnight UTC, a moment
    is written in UTC with ``Z``; anything else goes as it was typed, for the service to refuse."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat() + "T00:00:00Z"
    except ValueError:
        pass
    moment = i18n.parse_datetime(text)
    if moment is None:
        return text
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day_of(moment: str | None) -> str:
    """The day of a period bound, for a date field ("" when it is not a moment)."""
    parsed = i18n.parse_datetime(moment)
    return parsed.astimezone(UTC).date().isoformat() if parsed else ""


def shown_day(moment: str | None) -> str:
    """A period bound as a page shows it: its day, in the current language."""
    parsed = i18n.parse_datetime(moment)
    return charts.format_day(parsed) if parsed else (moment or "—")


def this_month(now: datetime | None = None) -> tuple[str, str]:
    """The calendar month (UTC) that ``now`` is in, start inclusive and end exclusive."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    start = date(now.year, now.month, 1)
    end = date(now.year + (now.month == 12), now.month % 12 + 1, 1)
    return start.isoformat() + "T00:00:00Z", end.isoformat() + "T00:00:00Z"


def _same_moment(a: str | None, b: str | None) -> bool:
    return i18n.parse_datetime(a) == i18n.parse_datetime(b)


def objective_periods(objectives: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The periods of the scenario's objectives, the latest first, active ones before withdrawn."""
    seen: dict[tuple[datetime | None, datetime | None], tuple[str, str]] = {}
    for objective in sorted(objectives, key=lambda o: o.get("status") != "active"):
        start, end = str(objective["period_start"]), str(objective["period_end"])
        seen.setdefault((i18n.parse_datetime(start), i18n.parse_datetime(end)), (start, end))
    return [
        seen[key]
        for key in sorted(seen, key=lambda k: k[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    ]


def chosen_period(form: Form, objectives: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The period asked for on the URL; else the latest period of an objective; else this month."""
    start, end = as_moment(first(form, "period_start")), as_moment(first(form, "period_end"))
    if start and end:
        return start, end
    periods = objective_periods(objectives)
    return periods[0] if periods else this_month()


# --- a scenario's evaluation -----------------------------------------------------------------------

OBJECTIVE_KINDS = ("dataset-use", "delivered-records", "active-days", "quality-floor", "outcome")
DIRECTIONS = ("at-least", "at-most")
VERDICTS = ("meets", "partly", "does-not-meet")
REASON_RESULTS = ("met", "not-met", "no-data")
REPORT_FORMATS = {"json": "application/json", "csv": "text/csv", "html": "text/html"}


def _scenario_path(scenario_id: str, tail: str = "") -> str:
    return api_path("/v1/scenarios/{scenario_id}", scenario_id=scenario_id) + tail


def report_path(scenario_id: str) -> str:
    return _scenario_path(scenario_id, "/evaluation")


def may_set_objectives(caller: Caller, scenario_id: str) -> bool:
    return caller.id == scenario_id or caller.operates


def may_report_outcomes(caller: Caller, scenario_id: str) -> bool:
    return caller.id == scenario_id or caller.operates


def require_evaluation_of(caller: Caller, scenario_id: str) -> None:
    """A scenario reads its own evaluation; departments and approvers read none (they have the
    scorecards); the evaluator, operators and administrators read every one."""
    require_own_scenario(caller, scenario_id)
    if not (caller.is_scenario or caller.reads_evaluations):
        raise NotForYourRole(
            i18n._(
                "A scenario's evaluation is for the scenario itself, evaluators, operators and administrators."
            )
        )


def require_evaluation_reader(caller: Caller) -> None:
    if not caller.reads_evaluations:
        raise NotForYourRole(
            i18n._("The evaluations work list is for evaluators, operators and administrators.")
        )


def _latest(items: Sequence[Mapping[str, Any]], field: str) -> Mapping[str, Any] | None:
    return max(items, key=lambda item: str(item.get(field) or ""), default=None)


async def evaluation_page(
    api: PlatformApi, caller: Caller, scenario_id: str, form: Form, verification: Any = None
) -> dict[str, Any]:
    """A scenario's objectives and outcomes, the evaluation report of the period asked for (the
    latest period of its objectives by default) with its verdict, and the forms the caller's role
    may use. ``verification``: what the catalog answered to a saved report just sent."""
    require_evaluation_of(caller, scenario_id)
    scenario, objectives, outcomes, verdicts = await asyncio.gather(
        api.get("catalog", _scenario_path(scenario_id)),
        api.get("catalog", _scenario_path(scenario_id, "/objectives")),
        api.get("catalog", _scenario_path(scenario_id, "/outcomes")),
        api.get("catalog", _scenario_path(scenario_id, "/verdicts")),
    )
    objectives, outcomes, verdicts = objectives["items"], outcomes["items"], verdicts["items"]
    start, end = chosen_period(form, objectives)
    report, report_error = None, None
    try:
        report = await api.optional("quality", report_path(scenario_id), period_start=start, period_end=end)
    except ApiError as error:
        if error.status not in (400, 422):
            raise
        report_error = error
    may_report = may_report_outcomes(caller, scenario_id)
    granted: list[dict[str, Any]] = []
    if may_report:
        # An outcome names the grants it used, and a dataset only under one of them (the catalog's rule).
        listed = await api.optional("catalog", "/v1/grants", scenario_id=scenario_id, limit=100)
        granted = [g for g in (listed or {}).get("items", []) if g.get("status") == "active"]
    titles = {o["id"]: o["title"] for o in objectives}
    active = [o for o in objectives if o.get("status") == "active"]
    datasets = sorted(
        {
            *(scenario.get("datasets") or []),
            *(d for o in objectives for d in o.get("datasets") or []),
            *(g["dataset_id"] for g in granted),
        }
    )
    period_verdicts = [
        v for v in verdicts if _same_moment(v["period_start"], start) and _same_moment(v["period_end"], end)
    ]
    return {
        "scenario": scenario,
        "objectives": objectives,
        "outcomes": sorted(outcomes, key=lambda o: str(o.get("reported_at") or ""), reverse=True),
        "titles": titles,
        "verdicts": sorted(verdicts, key=lambda v: str(v.get("recorded_at") or ""), reverse=True),
        "period_verdict": _latest(period_verdicts, "recorded_at"),
        "period": {"start": start, "end": end, "start_day": day_of(start), "end_day": day_of(end)},
        "periods": [
            {"start": s, "end": e, "start_day": day_of(s), "end_day": day_of(e)}
            for s, e in objective_periods(objectives)
        ],
        "report": report,
        "report_error": report_error,
        "report_formats": tuple(REPORT_FORMATS),
        "verification": verification,
        "may_set": may_set_objectives(caller, scenario_id),
        "may_report": may_report,
        "may_judge": caller.is_evaluator and report is not None,
        "may_verify": caller.reads_evaluations,
        "outcome_objectives": [o for o in active if o.get("kind") == "outcome"],
        "datasets": datasets,
        "grants": granted,
        "kinds": OBJECTIVE_KINDS,
        "directions": DIRECTIONS,
        "verdict_results": VERDICTS,
        "reason_results": REASON_RESULTS,
        # A form sent twice (a double click, a reload of the answer) reports one outcome.
        "idempotency_key": uuid.uuid4().hex,
    }


def _number(text: str | None) -> float | int | str | None:
    """A number when it reads as one, None when empty; else the text, for the catalog to refuse."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan" and "inf" read as floats, but are no number a JSON body can carry
    return number if math.isfinite(number) else text


def _ids(form: Form, *names: str) -> list[str]:
    """Ids checked in a list of boxes or typed in a text field (commas or spaces between them),
    each once, in the order of ``names``."""
    found: list[str] = []
    for name in names:
        for value in form.get(name, []):
            for part in value.replace(",", " ").split():
                if part not in found:
                    found.append(part)
    return found


def objective_create(form: Form) -> dict[str, Any]:
    """The body of ``POST /scenarios/{id}/objectives`` from the form: a KPI only for an outcome
    objective whose KPI was named, the period's days as midnights UTC."""
    kind = first(form, "kind") or ""
    kpi = None
    if kind == "outcome" and first(form, "kpi_name"):
        kpi = {
            "name": first(form, "kpi_name"),
            "unit": first(form, "kpi_unit") or "",
            "direction": first(form, "kpi_direction") or "at-least",
        }
    return {
        "title": first(form, "title") or "",
        "kind": kind,
        "datasets": _ids(form, "datasets", "other_datasets"),
        "target": _number(first(form, "target")),
        "kpi": kpi,
        "period_start": as_moment(first(form, "period_start")) or "",
        "period_end": as_moment(first(form, "period_end")) or "",
    }


def outcome_create(form: Form) -> dict[str, Any]:
    """The body of ``POST /scenarios/{id}/outcomes``: a new outcome, or a correction of one
    (``corrects``), never an edit."""
    value = _number(first(form, "value"))
    return {
        "objective_id": first(form, "objective_id") or "",
        "period_start": as_moment(first(form, "period_start")) or "",
        "period_end": as_moment(first(form, "period_end")) or "",
        "value": "" if value is None else value,
        "grant_ids": _ids(form, "grant_ids"),
        "dataset_ids": _ids(form, "dataset_ids"),
        "note": first(form, "note") or "",
        "corrects": first(form, "corrects"),
    }


def verdict_create(form: Form) -> dict[str, Any]:
    """The body of ``POST /scenarios/{id}/verdicts``: the result, one reason per objective of the
    report (``result.<id>``, ``reason.<id>``), and the report it was judged on (checkpoint, digest)."""
    seq, hash_ = first(form, "checkpoint_seq"), first(form, "checkpoint_hash")
    checkpoint = {"seq": _number(seq), "hash": hash_} if seq is not None and hash_ is not None else None
    return {
        "period_start": first(form, "period_start") or "",
        "period_end": first(form, "period_end") or "",
        "result": first(form, "result") or "",
        "reasons": [
            {
                "objective_id": objective_id,
                "result": first(form, f"result.{objective_id}") or "",
                "reason": first(form, f"reason.{objective_id}") or "",
            }
            for objective_id in form.get("objective", [])
            if objective_id
        ],
        "report": {"checkpoint": checkpoint, "digest": first(form, "digest") or ""},
    }


def require_objective_setter(caller: Caller, scenario_id: str) -> None:
    if not may_set_objectives(caller, scenario_id):
        raise NotForYourRole(
            i18n._("A scenario's objectives are set by the scenario itself, operators and administrators.")
        )


def require_outcome_reporter(caller: Caller, scenario_id: str) -> None:
    if not may_report_outcomes(caller, scenario_id):
        raise NotForYourRole(
            i18n._("A scenario's outcomes are reported by the scenario itself, operators and administrators.")
        )


def require_evaluator(caller: Caller) -> None:
    if not caller.is_evaluator:
        raise NotForYourRole(i18n._("Verdicts are recorded by evaluators."))


async def set_objective(api: PlatformApi, caller: Caller, scenario_id: str, form: Form) -> dict[str, Any]:
    require_objective_setter(caller, scenario_id)
    path = _scenario_path(scenario_id, "/objectives")
    set_: dict[str, Any] = await api.post("catalog", path, objective_create(form))
    return set_


async def withdraw_objective(
    api: PlatformApi, caller: Caller, scenario_id: str, objective_id: str, form: Form
) -> dict[str, Any]:
    require_objective_setter(caller, scenario_id)
    path = api_path("/v1/objectives/{objective_id}/withdraw", objective_id=objective_id)
    withdrawn: dict[str, Any] = await api.post("catalog", path, {"reason": first(form, "reason") or ""})
    return withdrawn


async def report_outcome(api: PlatformApi, caller: Caller, scenario_id: str, form: Form) -> dict[str, Any]:
    """Report (or correct) an outcome under the form's idempotency key: the same form sent twice
    reports it once."""
    require_outcome_reporter(caller, scenario_id)
    key = first(form, "idempotency_key")
    reported: dict[str, Any] = await api.post(
        "catalog",
        _scenario_path(scenario_id, "/outcomes"),
        outcome_create(form),
        headers={"Idempotency-Key": key} if key else None,
    )
    return reported


async def record_verdict(api: PlatformApi, caller: Caller, scenario_id: str, form: Form) -> dict[str, Any]:
    require_evaluator(caller)
    path = _scenario_path(scenario_id, "/verdicts")
    recorded: dict[str, Any] = await api.post("catalog", path, verdict_create(form))
    return recorded


def saved_report(form: Form) -> dict[str, Any]:
    """The saved report sent to be verified, uploaded or pasted; a refusal in the catalog's shape
    when it is not a JSON object, so the page shows it next to the form like any other."""
    uploaded = (form.get("upload") or [""])[0]
    text = uploaded if uploaded.strip() else (form.get("document") or [""])[0]
    try:
        document = json.loads(text)
    except ValueError as error:
        detail = i18n._("The saved report is not JSON: %(error)s") % {"error": error}
        raise ApiError("console", 422, {"title": i18n._("Not a saved report"), "detail": detail}) from error
    if not isinstance(document, dict):
        detail = i18n._("A saved evaluation report is a JSON object, as the JSON link of a report gives it.")
        raise ApiError("console", 422, {"title": i18n._("Not a saved report"), "detail": detail})
    return document


async def verify(api: PlatformApi, caller: Caller, form: Form) -> dict[str, Any]:
    """The catalog's check of a saved report against the audit trail up to the checkpoint it names."""
    require_evaluation_reader(caller)
    checked: dict[str, Any] = await api.post("catalog", "/v1/evaluations/verify", saved_report(form))
    return checked


async def report_document(
    api: PlatformApi, caller: Caller, scenario_id: str, fmt: str, form: Form
) -> tuple[bytes, str]:
    """The evaluation report of a period as quality renders it (JSON, CSV or HTML), to save."""
    require_evaluation_of(caller, scenario_id)
    return await api.document(
        "quality",
        report_path(scenario_id),
        period_start=as_moment(first(form, "period_start")),
        period_end=as_moment(first(form, "period_end")),
        format=fmt,
    )


# --- the evaluators' work list -----------------------------------------------------------------


async def evaluations_page(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    """Every scenario past proposed with its stage, its active objectives and its latest verdict,
    those never judged first."""
    require_evaluation_reader(caller)
    listed = [s for s in await api.get("catalog", "/v1/scenarios") if s.get("stage") != "proposed"]
    verdicts, objectives = await asyncio.gather(
        asyncio.gather(*(api.optional("catalog", _scenario_path(s["id"], "/verdicts")) for s in listed)),
        asyncio.gather(*(api.optional("catalog", _scenario_path(s["id"], "/objectives")) for s in listed)),
    )
    rows = []
    for scenario, judged, set_ in zip(listed, verdicts, objectives, strict=True):
        rows.append(
            {
                "scenario": scenario,
                "latest": _latest((judged or {}).get("items", []), "recorded_at"),
                "active": sum(1 for o in (set_ or {}).get("items", []) if o.get("status") == "active"),
            }
        )
    rows.sort(key=lambda row: (row["latest"] is not None, str(row["scenario"].get("name") or "")))
    return {"rows": rows}
