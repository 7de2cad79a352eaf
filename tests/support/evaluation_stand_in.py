"""A stand-in for the catalog's and quality's evaluation APIs (objectives, outcomes, verdicts,
verification, the evaluation report, the indicators), answering as the shared contract
(EVAL_SPEC) says, for the console's unit tests; and factories of their answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

PERIOD_START = "2027-01-01T00:00:00Z"
PERIOD_END = "2027-02-01T00:00:00Z"
INDICATOR_NAMES = (
    "penetration.datasets",
    "penetration.scenarios",
    "quality.used",
    "value.conversion",
    "value.outcomes-per-dataset",
    "value.public-service-share",
)


def objective_read(objective_id: str = "obj_0123456789ab", **overrides: Any) -> dict[str, Any]:
    """An ObjectiveRead: every day of January 2027 with a delivery of the bus arrivals."""
    return {
        "id": objective_id,
        "scenario_id": "one-stop-visit",
        "title": "Bus arrivals every day",
        "kind": "active-days",
        "datasets": ["transport.bus-arrivals"],
        "target": 20,
        "kpi": None,
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "status": "active",
        "version": 1,
        "set_by": "one-stop-visit",
        "set_at": "2026-12-20T09:00:00Z",
        "withdrawn_at": None,
        "withdrawn_reason": None,
        **overrides,
    }


def outcome_objective_read(objective_id: str = "obj_00000000000b", **overrides: Any) -> dict[str, Any]:
    return objective_read(
        objective_id,
        title="Median wait at the clinic",
        kind="outcome",
        datasets=[],
        target=30,
        kpi={"name": "median wait", "unit": "min", "direction": "at-most"},
        **overrides,
    )


def outcome_read(outcome_id: str = "out_0123456789ab", **overrides: Any) -> dict[str, Any]:
    return {
        "id": outcome_id,
        "scenario_id": "one-stop-visit",
        "objective_id": "obj_00000000000b",
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "value": 27.5,
        "grant_ids": ["grt_1"],
        "dataset_ids": ["transport.bus-arrivals"],
        "note": "from the booking logs",
        "corrects": None,
        "superseded_by": None,
        "reported_by": "one-stop-visit",
        "reported_at": "2027-02-02T08:00:00Z",
        **overrides,
    }


def verdict_read(verdict_id: str = "ver_0123456789ab", **overrides: Any) -> dict[str, Any]:
    return {
        "id": verdict_id,
        "scenario_id": "one-stop-visit",
        "period_start": PERIOD_START,
        "period_end": PERIOD_END,
        "result": "partly",
        "reasons": [{"objective_id": "obj_0123456789ab", "result": "not-met", "reason": "12 days of 20"}],
        "report": {"checkpoint": {"seq": 41, "hash": "ab" * 32}, "digest": "cd" * 32},
        "evaluator_id": "city-evaluator",
        "recorded_at": "2027-02-03T10:00:00Z",
        **overrides,
    }


def evaluation_report(objectives: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    """The JSON of quality's evaluation report of January 2027: one delivery objective not met,
    one input dataset that is showcase-only."""
    return {
        "scenario": {"id": "one-stop-visit", "name": "One Stop Visit", "stage": "live"},
        "period": {"start": PERIOD_START, "end": PERIOD_END},
        "computed_at": "2027-02-02T09:00:00Z",
        "checkpoint": {"seq": 41, "hash": "ab" * 32, "at": "2027-02-02T08:59:00Z"},
        "objectives": objectives
        if objectives is not None
        else [
            {
                "id": "obj_0123456789ab",
                "title": "Bus arrivals every day",
                "kind": "active-days",
                "datasets": ["transport.bus-arrivals"],
                "target": 20,
                "kpi": None,
                "actual": 12,
                "status": "not-met",
                "per_dataset": [{"dataset_id": "transport.bus-arrivals", "actual": 12, "status": "not-met"}],
                "evidence": {
                    "deliveries": [
                        {
                            "dataset_id": "transport.bus-arrivals",
                            "day": "2027-01-03",
                            "records": 340,
                            "batches": 4,
                        }
                    ],
                    "windows": [],
                    "outcomes": [],
                },
            }
        ],
        "inputs": [
            {
                "dataset_id": "transport.bus-arrivals",
                "title": "Bus arrivals",
                "department_id": "transport",
                "records": 340,
                "quality": 96.5,
                "showcase_only": False,
            },
            {
                "dataset_id": "health.outpatient-visits",
                "title": "Outpatient visits",
                "department_id": "health-commission",
                "records": 0,
                "quality": None,
                "showcase_only": True,
            },
        ],
        "outcomes": {"reported": 0, "periods": [], "none_reported": True},
        "verdict": None,
        "digest": "cd" * 32,
        **overrides,
    }


def indicators_answer(
    by: str = "department", values: dict[str, float | None] | None = None
) -> dict[str, Any]:
    """Quality's indicators: the six, city-wide, a breakdown of two rows and a trend of three months."""
    values = values or {
        "penetration.datasets": 0.6,
        "penetration.scenarios": 0.5,
        "quality.used": 91.25,
        "value.conversion": 0.25,
        "value.outcomes-per-dataset": 1.5,
        "value.public-service-share": None,
    }

    def figures(scale: float = 1.0) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "value": None if value is None else value * scale,
                "numerator": 3,
                "denominator": 5,
                "formula": f"formula of {name}",
                "evidence": {"datasets": ["transport.bus-arrivals"]},
            }
            for name, value in values.items()
        ]

    keys = {"purpose": ["public_service", "research"]}.get(by, ["market-supervision", "transport"])
    return {
        "computed_at": "2027-02-02T09:00:00Z",
        "period": {"start": "2027-02-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
        "indicators": figures(),
        "breakdown": {"by": by, "rows": [{"key": key, "indicators": figures()} for key in keys]},
        "trend": [
            {
                "period_start": start,
                "period_end": end,
                "indicators": [{"name": f["name"], "value": f["value"]} for f in figures(scale)],
            }
            for start, end, scale in (
                ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", 0.5),
                ("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z", 0.8),
                ("2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z", 1.0),
            )
        ],
    }


SCENARIOS = [
    {
        "id": "one-stop-visit",
        "name": "One Stop Visit",
        "stage": "live",
        "status": "active",
        "datasets": ["transport.bus-arrivals"],
        "organisation": "SHDC",
        "contact": "team@shdc.example.cn",
    },
    {
        "id": "ai-community",
        "name": "AI Community",
        "stage": "building",
        "status": "active",
        "datasets": [],
        "organisation": "Lab",
        "contact": "lab@example.cn",
    },
    {
        "id": "new-idea",
        "name": "New Idea",
        "stage": "proposed",
        "status": "active",
        "datasets": [],
        "organisation": "Lab",
        "contact": "lab@example.cn",
    },
]


@dataclass
class Sent:
    method: str
    path: str
    params: dict[str, str]
    headers: httpx.Headers
    body: Any


@dataclass
class StandIn:
    """The platform as the console's evaluation pages call it, for one principal (``me``).
    ``answers`` overrides the answer to a ``(method, path)``; ``sent`` keeps every call."""

    me: dict[str, Any]
    objectives: list[dict[str, Any]] = field(
        default_factory=lambda: [objective_read(), outcome_objective_read()]
    )
    outcomes: list[dict[str, Any]] = field(default_factory=lambda: [outcome_read()])
    verdicts: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"ai-community": [verdict_read()]}
    )
    report: dict[str, Any] | None = field(default_factory=evaluation_report)
    answers: dict[tuple[str, str], httpx.Response | Callable[[Sent], httpx.Response]] = field(
        default_factory=dict
    )
    sent: list[Sent] = field(default_factory=list)

    def calls(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path == path]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        body = json.loads(request.content) if request.content else None
        sent = Sent(request.method, path, dict(request.url.params), request.headers, body)
        self.sent.append(sent)
        if (request.method, path) in self.answers:
            answer = self.answers[(request.method, path)]
            return answer(sent) if callable(answer) else answer
        return self._default(sent)

    def _default(self, sent: Sent) -> httpx.Response:
        method, path = sent.method, sent.path
        if path == "/catalog/v1/me":
            return httpx.Response(200, json=self.me)
        if path == "/catalog/v1/scenarios":
            return httpx.Response(200, json=SCENARIOS)
        for scenario in SCENARIOS:
            base = f"/catalog/v1/scenarios/{scenario['id']}"
            if path == base:
                return httpx.Response(200, json=scenario)
            if path == f"{base}/objectives" and method == "GET":
                mine = [o for o in self.objectives if o["scenario_id"] == scenario["id"]]
                return httpx.Response(200, json={"items": mine})
            if path == f"{base}/objectives":
                return httpx.Response(201, json=objective_read("obj_00000000000c", **sent.body))
            if path == f"{base}/outcomes" and method == "GET":
                mine = [o for o in self.outcomes if o["scenario_id"] == scenario["id"]]
                return httpx.Response(200, json={"items": mine})
            if path == f"{base}/outcomes":
                return httpx.Response(201, json=outcome_read("out_00000000000c", **sent.body))
            if path == f"{base}/verdicts" and method == "GET":
                return httpx.Response(200, json={"items": self.verdicts.get(scenario["id"], [])})
            if path == f"{base}/verdicts":
                return httpx.Response(201, json=verdict_read("ver_00000000000c", **sent.body))
        if path.startswith("/catalog/v1/objectives/") and path.endswith("/withdraw"):
            withdrawn = objective_read(
                path.split("/")[4], status="withdrawn", withdrawn_reason=sent.body["reason"]
            )
            return httpx.Response(200, json=withdrawn)
        if path == "/catalog/v1/grants":
            grant = {"id": "grt_1", "dataset_id": "transport.bus-arrivals", "status": "active"}
            return httpx.Response(200, json={"items": [grant]})
        if path == "/catalog/v1/evaluations/verify":
            return httpx.Response(
                200,
                json={
                    "ok": False,
                    "checkpoint": {"seq": 41, "hash": "ab" * 32},
                    "chain": {"ok": True, "entries": 41},
                    "mismatches": [
                        {"path": "/objectives/0/actual", "report": 25, "trail": 12},
                    ],
                    "checked": ["/objectives/0/actual", "/objectives/0/target"],
                    "not_checked": ["/inputs/0/quality"],
                },
            )
        if path.startswith("/quality/v1/scenarios/") and path.endswith("/evaluation"):
            if self.report is None:
                return httpx.Response(404, json={"title": "Not found", "detail": "no report"})
            fmt = sent.params.get("format", "json")
            if fmt == "csv":
                return httpx.Response(
                    200,
                    text="objective,status\nobj_0123456789ab,not-met\n",
                    headers={"content-type": "text/csv; charset=utf-8"},
                )
            if fmt == "html":
                return httpx.Response(
                    200,
                    text="<!doctype html><title>report</title>",
                    headers={"content-type": "text/html; charset=utf-8"},
                )
            return httpx.Response(200, json=self.report)
        if path == "/quality/v1/indicators":
            return httpx.Response(200, json=indicators_answer(sent.params.get("by", "department")))
        return httpx.Response(
            404, json={"title": "Not found", "detail": f"no {method} {path} in the stand-in"}
        )
