"""Scorecards for performance evaluation: per department and per scenario, over a period.

One builder, three renderings: the JSON document (:func:`department_scorecard`,
:func:`scenario_scorecard`), a CSV of one row per dataset (:func:`to_csv`), and a self-contained
HTML page (:func:`to_html`: inline CSS and SVG, no script, no CDN) with a trend line per dataset
(daily overall score) and ranking bars (overall quality and utilization per dataset).
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from services.common import i18n
from services.common.i18n import N_, Sentence, _
from services.common.page_style import page_environment
from services.quality import indicators, queries, utilization
from services.quality.exceptions import DepartmentNotFound, InvalidPeriod
from services.quality.projection import QualityCatalog
from services.quality.settings import DIMENSIONS, QualitySettings

_PERIOD = re.compile(r"^([1-9][0-9]{0,3})([hdw])$")
_UNIT_S = {"h": 3600, "d": 86400, "w": 7 * 86400}
MAX_PERIOD = timedelta(days=366)


def parse_period(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``: at most a year."""
    match = _PERIOD.match(text.strip())
    if match is None:
        raise InvalidPeriod(
            Sentence(N_("period %(text)r is not a number followed by h, d or w (e.g. 30d)"), text=text)
        )
    period = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    if period > MAX_PERIOD:
        raise InvalidPeriod(Sentence(N_("the period is at most 366 days")))
    return period


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(sum(present) / len(present), 3) if present else None


def _dataset_rows(
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    dataset_ids: Sequence[str],
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    quality = queries.period_scores(session=session, dataset_ids=dataset_ids, start=start, end=end)
    usage = utilization.dataset_scores(session, catalog, settings, end)
    rows = []
    for dataset_id in dataset_ids:
        dataset = catalog.dataset(dataset_id)
        scored = quality.get(dataset_id) or {}
        used = usage.get(dataset_id) or {}
        rows.append(
            {
                "dataset_id": dataset_id,
                "title": dataset.title if dataset else dataset_id,
                "status": dataset.status if dataset else None,
                "domain_id": dataset.domain_id if dataset else None,
                "windows": scored.get("windows", 0),
                "records": scored.get("records", 0),
                "quality": scored.get("scores") or dict.fromkeys([*DIMENSIONS, "overall"]),
                "daily": scored.get("daily", []),
                "sla_breaches": scored.get("sla_breaches", {}),
                "utilization": {
                    "score": used.get("score"),
                    "active_grants": used.get("active_grants", 0),
                    "active_subscribers": used.get("active_subscribers", 0),
                    "records_last_day": used.get("records_last_day", 0),
                    "days_since_last_use": used.get("days_since_last_use"),
                },
            }
        )
    return rows


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "datasets": len(rows),
        "quality": {
            name: _mean([row["quality"].get(name) for row in rows]) for name in [*DIMENSIONS, "overall"]
        },
        "sla_breaches": sum(sum(row["sla_breaches"].values()) for row in rows),
        "utilization": _mean([row["utilization"]["score"] for row in rows]),
        "records": sum(row["records"] for row in rows),
    }


def department_scorecard(
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    department_id: str,
    period: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """A department's datasets over the period: quality per dimension, SLA breaches, utilization.
    Reads in the caller's session."""
    owned = [
        d.id for d in catalog.datasets() if d.owner_department_id == department_id and d.status != "draft"
    ]
    if not owned:
        raise DepartmentNotFound(
            Sentence(
                N_("department %(department_id)r owns no published dataset"), department_id=department_id
            )
        )
    start = now - period
    rows = _dataset_rows(session, catalog, settings, owned, start, now)
    findings = utilization.idle(session, catalog, now, settings.idle_days)
    scope = indicators.Scope(key=department_id, department=department_id)
    return {
        "kind": "department",
        "id": department_id,
        "from": start,
        "to": now,
        "summary": _summary(rows),
        "indicators": indicators.indicators(session, catalog, start, now, scope),
        "datasets": rows,
        "showcase_only": {
            "never_delivered_datasets": [
                f for f in findings["never_delivered_datasets"] if f["dataset_id"] in owned
            ],
            "unused_grants": [f for f in findings["unused_grants"] if f["dataset_id"] in owned],
        },
    }


def scenario_scorecard(
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    scenario_id: str,
    period: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """A scenario's use of data over the period and the quality of the datasets it relies on.
    Reads in the caller's session."""
    days = max(1, round(period.total_seconds() / 86400))
    usage = utilization.scenario_utilization(
        session=session, catalog=catalog, settings=settings, scenario_id=scenario_id, now=now, days=days
    )
    dataset_ids = sorted(
        {g["dataset_id"] for g in usage["grants"]} | {d["dataset_id"] for d in usage["datasets"]}
    )
    rows = _dataset_rows(session, catalog, settings, dataset_ids, now - period, now)
    consumed = {d["dataset_id"]: d for d in usage["datasets"]}
    for row in rows:
        row["consumed_records"] = consumed.get(row["dataset_id"], {}).get("records", 0)
    findings = utilization.idle(session, catalog, now, settings.idle_days)
    return {
        "kind": "scenario",
        "id": scenario_id,
        "from": now - period,
        "to": now,
        "summary": {
            **_summary(rows),
            "active_grants": usage["active_grants"],
            "datasets_used": usage["datasets_used"],
            "records_consumed": usage["records_consumed"],
            "last_activity": usage["last_activity"],
        },
        "indicators": indicators.indicators(
            session, catalog, now - period, now, indicators.Scope(key=scenario_id, scenario=scenario_id)
        ),
        "datasets": rows,
        "daily_consumption": usage["daily"],
        "showcase_only": {
            "idle": [f for f in findings["idle_scenarios"] if f["scenario_id"] == scenario_id],
            "unused_grants": [f for f in findings["unused_grants"] if f["scenario_id"] == scenario_id],
        },
    }


CSV_COLUMNS = [
    "dataset_id",
    "status",
    "windows",
    "records",
    *DIMENSIONS,
    "overall",
    "sla_breaches_freshness",
    "sla_breaches_latency",
    "utilization_score",
    "active_grants",
    "active_subscribers",
    "days_since_last_use",
]


def to_csv(card: dict[str, Any]) -> str:
    """One row per dataset of the scorecard."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in card["datasets"]:
        writer.writerow(
            {
                "dataset_id": row["dataset_id"],
                "status": row["status"],
                "windows": row["windows"],
                "records": row["records"],
                **{name: _cell(row["quality"].get(name)) for name in [*DIMENSIONS, "overall"]},
                "sla_breaches_freshness": row["sla_breaches"].get("freshness", 0),
                "sla_breaches_latency": row["sla_breaches"].get("latency", 0),
                "utilization_score": _cell(row["utilization"]["score"]),
                "active_grants": row["utilization"]["active_grants"],
                "active_subscribers": row["utilization"]["active_subscribers"],
                "days_since_last_use": _cell(row["utilization"]["days_since_last_use"]),
            }
        )
    return out.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


# --- HTML ---------------------------------------------------------------------------------------

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def _trend_svg(rows: Sequence[dict[str, Any]], start: datetime, end: datetime) -> str:
    width, height, pad = 640, 220, 36
    span = max((end - start).total_seconds(), 1.0)
    described = _("Daily overall quality per dataset")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{html.escape(described)}" class="chart">',
        f'<rect x="{pad}" y="10" width="{width - 2 * pad}" height="{height - pad - 10}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for level in (0, 50, 100):
        y = 10 + (height - pad - 10) * (1 - level / 100)
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="10">{level}</text>')
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for index, row in enumerate(rows):
        points = []
        for entry in row["daily"]:
            if entry.get("overall") is None:
                continue
            day = datetime.fromisoformat(entry["day"]).replace(tzinfo=start.tzinfo) + timedelta(hours=12)
            x = pad + (width - 2 * pad) * min(1.0, max(0.0, (day - start).total_seconds() / span))
            y = 10 + (height - pad - 10) * (1 - entry["overall"] / 100)
            points.append(f"{x:.1f},{y:.1f}")
        if not points:
            continue
        colour = _COLOURS[index % len(_COLOURS)]
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        else:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'
            )
        parts.append(
            f'<text x="{pad + 4}" y="{height - 20 + 0 * index}" font-size="10" fill="{colour}" '
            f'transform="translate({index * 150} 16)">{html.escape(row["dataset_id"])}</text>'
        )
    parts.append(
        f'<text x="{pad}" y="{height - 22}" font-size="10">{html.escape(start.date().isoformat())}</text>'
    )
    parts.append(
        f'<text x="{width - pad}" y="{height - 22}" font-size="10" text-anchor="end">{html.escape(end.date().isoformat())}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _bars_svg(rows: Sequence[dict[str, Any]], label: str, value_of: Any) -> str:
    ranked = sorted(rows, key=lambda row: (value_of(row) is not None, value_of(row) or 0.0))
    bar, gap, left, width = 18, 6, 230, 640
    unscored = _("no score")
    height = max(1, len(ranked)) * (bar + gap) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{html.escape(label)}" class="chart">'
    ]
    for index, row in enumerate(ranked):
        value = value_of(row)
        y = 5 + index * (bar + gap)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar - 5}" font-size="11" text-anchor="end">{html.escape(row["dataset_id"])}</text>'
        )
        if value is None:
            parts.append(
                f'<text x="{left + 4}" y="{y + bar - 5}" font-size="11" fill="#a00">{html.escape(unscored)}</text>'
            )
            continue
        length = (width - left - 50) * value / 100
        colour = "#2ca02c" if value >= 90 else "#ff7f0e" if value >= 70 else "#d62728"
        parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colour}"/>')
        parts.append(f'<text x="{left + length + 4:.1f}" y="{y + bar - 5}" font-size="11">{value:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


DIMENSION_WORDS = {
    "validity": N_("validity"),
    "completeness": N_("completeness"),
    "uniqueness": N_("uniqueness"),
    "conformity": N_("conformity"),
    "timeliness": N_("timeliness"),
    "overall": N_("overall"),
}
HEADERS = {
    "dataset_id": N_("Dataset"),
    "status": N_("Status"),
    "windows": N_("Windows"),
    "records": N_("Records"),
    **DIMENSION_WORDS,
    "sla_breaches_freshness": N_("Freshness breaches"),
    "sla_breaches_latency": N_("Latency breaches"),
    "utilization_score": N_("Utilization"),
    "active_grants": N_("Active grants"),
    "active_subscribers": N_("Active subscribers"),
    "days_since_last_use": N_("Days since last use"),
}
"""The words over each column of the HTML table (the CSV keeps its machine names)."""
FINDINGS = {
    "never_delivered_datasets": N_("Datasets never delivered"),
    "unused_grants": N_("Unused grants"),
    "idle": N_("Idle"),
}
INDICATOR_WORDS = {
    "penetration.datasets": N_("Datasets used by live scenarios"),
    "penetration.scenarios": N_("Scenarios live"),
    "quality.used": N_("Quality of the data used"),
    "value.conversion": N_("Value conversion"),
    "value.outcomes-per-dataset": N_("Outcomes per dataset used"),
    "value.public-service-share": N_("Public-service share"),
}
"""Each indicator named for people (the JSON keeps its machine name)."""
STATUS_WORDS = {"active": N_("active"), "deprecated": N_("deprecated"), "retired": N_("retired")}
_PAGES = page_environment(Path(__file__).resolve().parent / "templates")


def to_html(card: dict[str, Any], locale: str = i18n.DEFAULT_LOCALE) -> str:
    """The scorecard as one self-contained page in ``locale`` (Chinese or English), in the
    console's style: inline CSS and SVG, nothing loaded from elsewhere."""
    with i18n.use(locale):
        title = (
            _("Scorecard of department %(id)s")
            if card["kind"] == "department"
            else _("Scorecard of scenario %(id)s")
        ) % {"id": card["id"]}
        rows = []
        for line in to_csv(card).splitlines()[1:]:
            cells = next(csv.reader([line]))
            rows.append([cells[0], label_status(cells[1]), *cells[2:]])
        findings = [
            (FINDINGS.get(kind, kind), [_finding(kind, item) for item in items])
            for kind, items in (card.get("showcase_only") or {}).items()
        ]
        return _PAGES.get_template("scorecard.html").render(
            title=title,
            lang_tag=i18n.tag(),
            card=card,
            summary=card["summary"],
            dimensions=[(name, DIMENSION_WORDS[name]) for name in [*DIMENSIONS, "overall"]],
            trend=Markup(_trend_svg(card["datasets"], card["from"], card["to"])),
            quality_ranking=Markup(
                _bars_svg(card["datasets"], _("overall quality"), lambda r: r["quality"].get("overall"))
            ),
            utilization_ranking=Markup(
                _bars_svg(card["datasets"], _("utilization"), lambda r: r["utilization"]["score"])
            ),
            findings=findings,
            indicators=[
                {
                    **figure,
                    "words": _(INDICATOR_WORDS.get(figure["name"], figure["name"])),
                    "formula": i18n.render(indicators.FORMULAS.get(figure["name"], figure["formula"])),
                }
                for figure in card.get("indicators") or []
            ],
            headers=[HEADERS[name] for name in CSV_COLUMNS],
            rows=rows,
        )


def label_status(status: str) -> str:
    return _(STATUS_WORDS[status]) if status in STATUS_WORDS else status


def _finding(kind: str, item: dict[str, Any]) -> dict[str, str]:
    subject = item.get("scenario_id") or item.get("grant_id") or item.get("dataset_id") or ""
    if item.get("grant_id"):
        subject = _("grant %(grant)s (%(scenario)s on %(dataset)s)") % {
            "grant": item["grant_id"],
            "scenario": item.get("scenario_id"),
            "dataset": item.get("dataset_id"),
        }
    evidence = utilization.evidence(kind, item, moment=i18n.format_datetime)
    return {"subject": subject, "evidence": evidence.render()}
