"""``citybase evaluation report`` and ``citybase indicators show``: quality's evaluation figures
asked over HTTP, printed as tables, the report saved as the JSON the verdict and verify verbs read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from citybase import connection
from citybase.cli import app

KEY = "cbk_0123abcd_secret"
runner = CliRunner()
Q1 = ["--period-start", "2027-01-01T00:00:00Z", "--period-end", "2027-04-01T00:00:00Z"]
REPORT = {
    "scenario": {"id": "leak-watch", "name": "Leak watch", "stage": "live"},
    "period": {"start": "2027-01-01T00:00:00+00:00", "end": "2027-04-01T00:00:00+00:00"},
    "checkpoint": {"seq": 812, "hash": "a" * 64, "at": "2027-04-01T08:00:00Z"},
    "objectives": [
        {
            "id": "obj_0123456789ab",
            "title": "Median repair time",
            "kind": "outcome",
            "target": 48,
            "actual": 41.5,
            "status": "met",
        }
    ],
    "digest": "d" * 64,
}
FIGURE = {
    "name": "value.conversion",
    "value": 0.4,
    "numerator": 2,
    "denominator": 5,
    "formula": "…",
    "evidence": {},
}
INDICATORS = {
    "computed_at": "2027-01-20T00:00:00+00:00",
    "period": {"start": "2027-01-01T00:00:00+00:00", "end": "2027-02-01T00:00:00+00:00"},
    "indicators": [FIGURE],
    "breakdown": {
        "by": "purpose",
        "rows": [{"key": "public_service", "indicators": [{**FIGURE, "value": 1.0}]}],
    },
    "trend": [
        {
            "period_start": "2026-12-01T00:00:00+00:00",
            "period_end": "2027-01-01T00:00:00+00:00",
            "indicators": [{"name": "value.conversion", "value": 0.25}],
        }
    ],
}


@dataclass
class Platform:
    answer: Any = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.answer)


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Platform:
    scripted = Platform()
    monkeypatch.setattr(connection, "TRANSPORT", httpx.MockTransport(scripted.handle))
    return scripted


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"CITYBASE_API_KEY": KEY, "COLUMNS": "200"})


def test_the_report_is_asked_of_quality_shown_and_saved_for_the_verdict(
    platform: Platform, tmp_path: Path
) -> None:
    platform.answer = REPORT
    saved = tmp_path / "report.json"
    result = cli("evaluation", "report", "leak-watch", *Q1, "--output", str(saved))
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert sent.url.path == "/quality/v1/scenarios/leak-watch/evaluation"
    assert dict(sent.url.params) == {
        "period_start": "2027-01-01T00:00:00Z",
        "period_end": "2027-04-01T00:00:00Z",
    }
    assert "obj_0123456789ab" in result.output and "41.5" in result.output and "812" in result.output
    assert json.loads(saved.read_text(encoding="utf-8")) == REPORT
    verdict = cli(
        "evaluation",
        "verdict",
        "leak-watch",
        "--result",
        "meets",
        *Q1,
        "--reason",
        "obj_0123456789ab=met:41.5 h",
        "--report",
        str(saved),
    )
    assert verdict.exit_code == 0, verdict.output
    assert json.loads(platform.requests[-1].content)["report"] == {
        "checkpoint": {"seq": 812, "hash": "a" * 64},
        "digest": "d" * 64,
    }


def test_the_indicators_are_shown_city_wide_by_breakdown_and_over_time(platform: Platform) -> None:
    platform.answer = INDICATORS
    result = cli("indicators", "show", "--by", "purpose", "--period", "week", "--periods", "3")
    assert result.exit_code == 0, result.output
    assert dict(platform.requests[0].url.params) == {"period": "week", "periods": "3", "by": "purpose"}
    assert "value.conversion" in result.output and "public_service" in result.output
    assert "0.25" in result.output  # the trend
    as_json = cli("indicators", "show", "--json")
    assert json.loads(as_json.output) == INDICATORS
