"""The city's indicators: penetration, quality and value conversion (数据应用渗透率、数据质量、
数据价值转化), city-wide, by department (owner of the dataset), domain, scenario and purpose
category, and over time (the last N calendar weeks or months, in UTC).

A *dataset use* is a (scenario, dataset) pair with at least one delivery in the period, from
feeds' metering (:class:`~services.quality.models.QualityUsage`); its purpose category is that of
the grant it was last delivered under. The six figures (see ``docs/indicators.md``):

- ``penetration.datasets``: active datasets delivered to a live scenario / active datasets;
- ``penetration.scenarios``: scenarios in stage live / scenarios past proposed;
- ``quality.used``: mean overall score over the period
  (:func:`services.quality.queries.period_scores`) of the datasets used, weighted by the records
  delivered;
- ``value.conversion``: dataset uses whose scenario met all its outcome objectives of the period
  (:func:`services.quality.evaluation.judge_outcome`, as the evaluation report judges them, over
  the reporting periods that meet the period; a scenario without an outcome objective converts
  nothing) / dataset uses;
- ``value.outcomes-per-dataset``: outcome values of reporting periods that meet the period (the
  latest, not superseded) / datasets used;
- ``value.public-service-share``: dataset uses under public_service grants / dataset uses.

One function computes each figure (:data:`FIGURES`), over one period's facts (:func:`period_facts`)
and a scope (:class:`Scope`); the API, the Prometheus gauges and the scorecards all call
:func:`indicators` or :func:`indicator_report`, so they show the same number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common.clock import as_utc, aware
from services.common.i18n import N_, Sentence, render
from services.quality import evaluation, queries
from services.quality.models import QualityUsage
from services.quality.projection import OUTCOME_KIND, QualityCatalog, ScenarioState

PERIOD_KINDS = ("month", "week")
BREAKDOWNS = ("department", "domain", "scenario", "purpose")
PUBLIC_SERVICE = "public_service"
UNKNOWN_PURPOSE = "other"
"""The purpose category of a use whose grant quality does not know."""
MAX_PERIODS = 36

FORMULAS: dict[str, Sentence] = {
    "penetration.datasets": Sentence(
        N_("active datasets delivered to at least one live scenario in the period / active datasets")
    ),
    "penetration.scenarios": Sentence(N_("scenarios in stage live / scenarios past the proposed stage")),
    "quality.used": Sentence(
        N_(
            "sum over the datasets used of (overall quality score of the period x records delivered) "
            "/ records delivered"
        )
    ),
    "value.conversion": Sentence(
        N_(
            "dataset uses (scenario x dataset with deliveries in the period) whose scenario met all "
            "its outcome objectives of the period / dataset uses"
        )
    ),
    "value.outcomes-per-dataset": Sentence(
        N_("outcome values reported for the period / datasets used in the period")
    ),
    "value.public-service-share": Sentence(N_("dataset uses under public-service grants / dataset uses")),
}
NAMES = tuple(FORMULAS)


# --- periods -----------------------------------------------------------------------------------


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def _previous_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year - 1, month=12)
        if start.month == 1
        else start.replace(month=start.month - 1)
    )


def periods_until(now: datetime, kind: str, count: int) -> list[tuple[datetime, datetime]]:
    """The last ``count`` calendar months (or ISO weeks, from Monday) in UTC, oldest first; the
    last one is the period ``now`` is in (its end is still to come)."""
    now = as_utc(now)
    if kind == "week":
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        return [
            (start - timedelta(weeks=back), start - timedelta(weeks=back - 1))
            for back in range(count - 1, -1, -1)
        ]
    starts = [_month_start(now)]
    while len(starts) < count:
        starts.append(_previous_month(starts[-1]))
    return [(start, _next_month(start)) for start in reversed(starts)]


# --- the facts of one period -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use:
    """A (scenario, dataset) pair with deliveries in the period."""

    scenario_id: str
    dataset_id: str
    records: int
    batches: int
    purpose: str


@dataclass
class PeriodFacts:
    """What every figure of one period is computed from, read once."""

    start: datetime
    end: datetime
    uses: list[Use]
    active_datasets: dict[str, tuple[str, str]]
    """id -> (owning department, domain) of every dataset in status active."""
    dataset_groups: dict[str, tuple[str, str]]
    """id -> (owning department, domain) of every dataset the catalog announced."""
    scenarios: list[ScenarioState]
    quality: dict[str, float | None]
    """Overall score of the period per dataset used."""
    outcome_objectives: dict[str, list[tuple[str, str]]]
    """scenario -> (objective id, status) of its outcome objectives of the period."""
    outcomes: dict[str, list[str]]
    """scenario -> ids of the outcome values in use for reporting periods inside the period."""
    grant_purposes: dict[str, set[str]] = field(default_factory=dict)
    """purpose category -> scenarios holding a grant of it."""
    grant_datasets: dict[str, set[str]] = field(default_factory=dict)
    """dataset -> scenarios holding a grant on it."""

    def converted(self, scenario_id: str) -> bool:
        judged = self.outcome_objectives.get(scenario_id) or []
        return bool(judged) and all(status == evaluation.MET for _, status in judged)


def period_facts(session: Session, catalog: QualityCatalog, start: datetime, end: datetime) -> PeriodFacts:
    """Read the period's deliveries, scores, objectives and outcomes once for all figures."""
    start, end = aware(start), aware(end)
    grants = {grant.id: grant for grant in catalog.grants()}
    rows = session.execute(
        sa.select(
            QualityUsage.scenario_id,
            QualityUsage.dataset_id,
            QualityUsage.grant_id,
            sa.func.sum(QualityUsage.records),
            sa.func.count(),
            sa.func.max(QualityUsage.delivered_at),
        )
        .where(QualityUsage.delivered_at >= start, QualityUsage.delivered_at < end)
        .group_by(QualityUsage.scenario_id, QualityUsage.dataset_id, QualityUsage.grant_id)
    ).all()
    pairs: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        pairs.setdefault((row[0], row[1]), []).append(row)
    uses = []
    for (scenario_id, dataset_id), members in sorted(pairs.items()):
        latest = max(members, key=lambda r: (aware(r[5]), r[2] or ""))
        grant = grants.get(latest[2] or "")
        if grant is None:  # metered under a grant quality has not seen: any grant of the pair
            grant = next(
                (g for g in grants.values() if (g.scenario_id, g.dataset_id) == (scenario_id, dataset_id)),
                None,
            )
        uses.append(
            Use(
                scenario_id=scenario_id,
                dataset_id=dataset_id,
                records=sum(int(r[3] or 0) for r in members),
                batches=sum(int(r[4]) for r in members),
                purpose=grant.purpose_category if grant is not None else UNKNOWN_PURPOSE,
            )
        )
    used = sorted({use.dataset_id for use in uses})
    scores = queries.period_scores(session=session, dataset_ids=used, start=start, end=end)
    datasets = catalog.datasets()
    all_outcomes = catalog.outcomes()
    objectives: dict[str, list[tuple[str, str]]] = {}
    for objective in evaluation.period_objectives(catalog, None, start, end):
        if objective.kind != OUTCOME_KIND:
            continue
        mine = [o for o in all_outcomes if o.scenario_id == objective.scenario_id]
        judged = evaluation.judge_outcome(objective, mine, start, end, overlapping=True)
        objectives.setdefault(objective.scenario_id, []).append((objective.id, judged.status))
    reported: dict[str, list[str]] = {}
    for outcome in evaluation.current_outcomes(all_outcomes, start, end, overlapping=True):
        reported.setdefault(outcome.scenario_id, []).append(outcome.id)
    grant_purposes: dict[str, set[str]] = {}
    grant_datasets: dict[str, set[str]] = {}
    for grant in grants.values():
        grant_purposes.setdefault(grant.purpose_category, set()).add(grant.scenario_id)
        grant_datasets.setdefault(grant.dataset_id, set()).add(grant.scenario_id)
    return PeriodFacts(
        start=start,
        end=end,
        uses=uses,
        active_datasets={
            d.id: (d.owner_department_id, d.domain_id) for d in datasets if d.status == "active"
        },
        dataset_groups={d.id: (d.owner_department_id, d.domain_id) for d in datasets},
        scenarios=catalog.scenarios(),
        quality={d: (scores.get(d) or {}).get("scores", {}).get("overall") for d in used},
        outcome_objectives=objectives,
        outcomes=reported,
        grant_purposes=grant_purposes,
        grant_datasets=grant_datasets,
    )


# --- scopes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a figure is restricted to: the city (nothing), the datasets of a department or a
    domain, one scenario, or the uses of one purpose category."""

    key: str = "city"
    department: str | None = None
    domain: str | None = None
    scenario: str | None = None
    purpose: str | None = None

    def holds_dataset(self, facts: PeriodFacts, dataset_id: str) -> bool:
        department, domain = facts.dataset_groups.get(dataset_id, ("", ""))
        if self.department is not None and department != self.department:
            return False
        return self.domain is None or domain == self.domain

    def holds_use(self, facts: PeriodFacts, use: Use) -> bool:
        if self.scenario is not None and use.scenario_id != self.scenario:
            return False
        if self.purpose is not None and use.purpose != self.purpose:
            return False
        return self.holds_dataset(facts, use.dataset_id)

    def uses(self, facts: PeriodFacts) -> list[Use]:
        return [use for use in facts.uses if self.holds_use(facts, use)]

    def scenario_ids(self, facts: PeriodFacts) -> set[str]:
        """The scenarios the scope counts: one, or those that use or hold a grant on its datasets
        or of its purpose; every scenario city-wide."""
        every = {scenario.id for scenario in facts.scenarios}
        if self.scenario is not None:
            return {self.scenario} & every
        if self.department is None and self.domain is None and self.purpose is None:
            return every
        found = {use.scenario_id for use in self.uses(facts)}
        if self.purpose is not None:
            found |= facts.grant_purposes.get(self.purpose, set())
        else:
            for dataset_id, holders in facts.grant_datasets.items():
                if self.holds_dataset(facts, dataset_id):
                    found |= holders
        return found & every


CITY = Scope()


# --- one function per figure -------------------------------------------------------------------


def _ratio(numerator: float, denominator: float, digits: int = 4) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def _figure(
    name: str, numerator: float, denominator: float, evidence: dict[str, Any], digits: int = 4
) -> dict[str, Any]:
    return {
        "name": name,
        "value": _ratio(numerator, denominator, digits),
        "numerator": numerator,
        "denominator": denominator,
        "formula": FORMULAS[name],
        "evidence": evidence,
    }


def _live(facts: PeriodFacts) -> set[str]:
    return {scenario.id for scenario in facts.scenarios if scenario.stage == "live"}


def penetration_datasets(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    active = sorted(d for d in facts.active_datasets if scope.holds_dataset(facts, d))
    live = _live(facts)
    delivered = sorted({use.dataset_id for use in scope.uses(facts) if use.scenario_id in live} & set(active))
    return _figure(
        "penetration.datasets",
        len(delivered),
        len(active),
        {"delivered_to_live_scenarios": delivered, "active_datasets": active},
    )


def penetration_scenarios(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    mine = scope.scenario_ids(facts)
    past = sorted(s.id for s in facts.scenarios if s.id in mine and s.past_proposed)
    live = sorted(s.id for s in facts.scenarios if s.id in mine and s.stage == "live")
    return _figure("penetration.scenarios", len(live), len(past), {"live": live, "past_proposed": past})


def quality_used(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    records: dict[str, int] = {}
    for use in scope.uses(facts):
        records[use.dataset_id] = records.get(use.dataset_id, 0) + use.records
    weighted, weight = 0.0, 0
    datasets = []
    for dataset_id, delivered in sorted(records.items()):
        overall = facts.quality.get(dataset_id)
        datasets.append({"dataset_id": dataset_id, "records": delivered, "overall": overall})
        if overall is not None and delivered > 0:
            weighted += overall * delivered
            weight += delivered
    return _figure("quality.used", round(weighted, 3), weight, {"datasets": datasets}, digits=3)


def value_conversion(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    uses = scope.uses(facts)
    converted = [use for use in uses if facts.converted(use.scenario_id)]
    scenarios = sorted({use.scenario_id for use in uses})
    return _figure(
        "value.conversion",
        len(converted),
        len(uses),
        {
            "uses": [
                {
                    "scenario_id": use.scenario_id,
                    "dataset_id": use.dataset_id,
                    "converted": facts.converted(use.scenario_id),
                }
                for use in uses
            ],
            "outcome_objectives": {
                scenario_id: [
                    {"objective_id": objective_id, "status": status}
                    for objective_id, status in facts.outcome_objectives.get(scenario_id, [])
                ]
                for scenario_id in scenarios
            },
        },
    )


def value_outcomes_per_dataset(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    if scope == CITY:
        scenarios = set(facts.outcomes)
    elif scope.scenario is not None:
        scenarios = {scope.scenario}
    else:
        scenarios = {use.scenario_id for use in scope.uses(facts)}
    outcomes = sorted(o for s in scenarios for o in facts.outcomes.get(s, []))
    datasets = sorted({use.dataset_id for use in scope.uses(facts)})
    return _figure(
        "value.outcomes-per-dataset",
        len(outcomes),
        len(datasets),
        {"outcomes": outcomes, "datasets_used": datasets},
    )


def value_public_service_share(facts: PeriodFacts, scope: Scope) -> dict[str, Any]:
    uses = scope.uses(facts)
    public = [use for use in uses if use.purpose == PUBLIC_SERVICE]
    return _figure(
        "value.public-service-share",
        len(public),
        len(uses),
        {
            "public_service_uses": [
                {"scenario_id": use.scenario_id, "dataset_id": use.dataset_id} for use in public
            ],
            "uses": len(uses),
        },
    )


FIGURES: dict[str, Callable[[PeriodFacts, Scope], dict[str, Any]]] = {
    "penetration.datasets": penetration_datasets,
    "penetration.scenarios": penetration_scenarios,
    "quality.used": quality_used,
    "value.conversion": value_conversion,
    "value.outcomes-per-dataset": value_outcomes_per_dataset,
    "value.public-service-share": value_public_service_share,
}


def figures(facts: PeriodFacts, scope: Scope = CITY) -> list[dict[str, Any]]:
    """The six indicators of ``scope`` over the facts' period; ``formula`` in the current locale."""
    out = []
    for name in NAMES:
        figure = FIGURES[name](facts, scope)
        figure["formula"] = render(figure["formula"])
        out.append(figure)
    return out


def indicators(
    session: Session, catalog: QualityCatalog, start: datetime, end: datetime, scope: Scope = CITY
) -> list[dict[str, Any]]:
    """The six indicators of ``scope`` over ``[start, end)``. Reads in the caller's session."""
    return figures(period_facts(session, catalog, start, end), scope)


def scopes(facts: PeriodFacts, by: str) -> list[Scope]:
    """One scope per department, domain, scenario or purpose category the period knows."""
    keys: Iterable[str]
    if by == "department":
        keys = sorted(
            {group[0] for group in facts.active_datasets.values()}
            | {facts.dataset_groups.get(use.dataset_id, ("", ""))[0] for use in facts.uses}
        )
        return [Scope(key=key, department=key) for key in keys if key]
    if by == "domain":
        keys = sorted(
            {group[1] for group in facts.active_datasets.values()}
            | {facts.dataset_groups.get(use.dataset_id, ("", ""))[1] for use in facts.uses}
        )
        return [Scope(key=key, domain=key) for key in keys if key]
    if by == "scenario":
        keys = sorted(
            {s.id for s in facts.scenarios if s.past_proposed} | {use.scenario_id for use in facts.uses}
        )
        return [Scope(key=key, scenario=key) for key in keys]
    keys = sorted({use.purpose for use in facts.uses} | set(facts.grant_purposes))
    return [Scope(key=key, purpose=key) for key in keys]


def indicator_report(
    session: Session,
    catalog: QualityCatalog,
    now: datetime,
    *,
    period: str = "month",
    periods: int = 6,
    by: str = "department",
) -> dict[str, Any]:
    """The city's indicators over the current period with their formula and evidence, a breakdown
    ``by`` department, domain, scenario or purpose, and the city-wide trend over the last
    ``periods`` periods (oldest first, the current one last). Reads in the caller's session."""
    bounds = periods_until(now, period, periods)
    history = [(start, end, period_facts(session, catalog, start, end)) for start, end in bounds]
    start, end, current = history[-1]
    return {
        "computed_at": now,
        "period": {"start": start, "end": end},
        "indicators": figures(current),
        "breakdown": {
            "by": by,
            "rows": [
                {"key": scope.key, "indicators": figures(current, scope)} for scope in scopes(current, by)
            ],
        },
        "trend": [
            {
                "period_start": s,
                "period_end": e,
                "indicators": [{"name": f["name"], "value": f["value"]} for f in figures(facts)],
            }
            for s, e, facts in history
        ],
    }


def current_city_indicators(
    session: Session, catalog: QualityCatalog, now: datetime, period: str = "month"
) -> list[dict[str, Any]]:
    """City-wide indicators of the period ``now`` is in: what the gauges show, and the
    ``indicators`` of :func:`indicator_report` for the same ``period``."""
    start, end = periods_until(now, period, 1)[-1]
    return indicators(session, catalog, start, end)
