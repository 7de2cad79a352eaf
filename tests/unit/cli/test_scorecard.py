"""``citybase scorecard`` against a scripted quality API on 127.0.0.1: what it asks, what it prints,
and its exit code for each answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typer.testing import CliRunner

from citybase.cli import app as cli
from tests.support.http import free_port, serve

KEY = "cbk_0123abcd_secret"
CARD = {"summary": {"datasets": 1}, "datasets": [{"dataset_id": "health.visits", "records": 3}]}
runner = CliRunner()


def _problem(status: int, detail: str) -> JSONResponse:
    body = {"type": "https://citybase.dev/problems/x", "title": "x", "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _quality(asked: list[dict[str, Any]]) -> FastAPI:
    quality = FastAPI()

    @quality.get("/v1/scorecards/{kind}/{owner}")
    def scorecard(kind: str, owner: str, request: Request) -> Any:
        asked.append(
            {
                "path": request.url.path,
                **request.query_params,
                "auth": request.headers.get("authorization"),
                "language": request.headers.get("accept-language"),
            }
        )
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return _problem(401, "the API key is missing, unknown or revoked")
        if request.query_params.get("period") == "forever":
            return _problem(422, "period 'forever' is not a number followed by h, d or w (e.g. 30d)")
        if owner == "nobody":
            return _problem(404, "no department nobody")
        if owner == "broken":
            return _problem(500, "the database went away")
        format = request.query_params.get("format", "json")
        if format == "csv":
            return Response("dataset_id,records\nhealth.visits,3\n", media_type="text/csv")
        if format == "html":
            return Response("<html><svg></svg></html>", media_type="text/html")
        return CARD

    return quality


@pytest.fixture
def quality() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    asked: list[dict[str, Any]] = []
    with serve(_quality(asked)) as url:
        yield url, asked


def test_it_asks_the_api_with_the_key_and_prints_the_card(quality: tuple[str, list[dict[str, Any]]]) -> None:
    url, asked = quality
    result = runner.invoke(
        cli,
        ["scorecard", "--scenario", "one-stop", "--period", "2w", "--url", url],
        env={"CITYBASE_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    assert asked == [
        {
            "path": "/v1/scorecards/scenarios/one-stop",
            "period": "2w",
            "format": "json",
            "auth": f"Bearer {KEY}",
            "language": "en",
        }
    ]
    assert result.stdout.startswith('{\n  "summary"')
    assert '"dataset_id": "health.visits"' in result.stdout


def test_csv_and_html_are_written_as_quality_renders_them(
    quality: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, _ = quality
    common = ["scorecard", "--department", "health", "--url", url, "--key", KEY]
    csv = runner.invoke(cli, [*common, "--format", "csv"])
    assert csv.exit_code == 0, csv.output
    assert csv.stdout == "dataset_id,records\nhealth.visits,3\n"
    page = tmp_path / "card.html"
    html = runner.invoke(cli, [*common, "--format", "html", "-o", str(page)])
    assert html.exit_code == 0, html.output
    assert page.read_text(encoding="utf-8") == "<html><svg></svg></html>"


@pytest.mark.parametrize(
    ("owner", "arguments", "code", "said"),
    [
        ("nobody", [], 1, "no department nobody"),
        ("health", ["--period", "forever"], 2, "period 'forever'"),
        ("health", ["--key", "cbk_wrong"], 2, "missing, unknown or revoked"),
        ("broken", [], 3, "the database went away"),
    ],
)
def test_each_refusal_has_its_exit_code_and_says_why(
    quality: tuple[str, list[dict[str, Any]]], owner: str, arguments: list[str], code: int, said: str
) -> None:
    url, _ = quality
    result = runner.invoke(cli, ["scorecard", "--department", owner, "--url", url, "--key", KEY, *arguments])
    assert result.exit_code == code, result.output
    assert said in " ".join(result.output.split())


def test_without_a_key_or_a_quality_it_says_so() -> None:
    keyless = runner.invoke(cli, ["scorecard", "--department", "health"], env={"CITYBASE_API_KEY": ""})
    assert keyless.exit_code == 2
    assert "API key" in keyless.output
    nowhere = f"http://127.0.0.1:{free_port()}/quality"
    unreachable = runner.invoke(cli, ["scorecard", "--department", "health", "--url", nowhere, "--key", KEY])
    assert unreachable.exit_code == 3
    assert "did not answer" in unreachable.output


def test_exactly_one_of_department_and_scenario() -> None:
    both = runner.invoke(cli, ["scorecard", "--department", "a", "--scenario", "b", "--key", KEY])
    assert both.exit_code == 2
    assert "exactly one of --department and --scenario" in " ".join(both.output.split())


def test_a_chinese_environment_asks_for_the_card_in_chinese_and_says_so_in_chinese(
    quality: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, asked = quality
    page = tmp_path / "card.html"
    arguments = ["scorecard", "--department", "health", "--url", url, "--key", KEY, "-o", str(page)]
    result = runner.invoke(cli, [*arguments, "--format", "html"], env={"LANG": "zh_CN.UTF-8"})
    assert result.exit_code == 0, result.output
    assert asked[-1]["language"] == "zh-CN"
    assert "评分卡已写入" in result.output
    flagged = runner.invoke(cli, ["--lang", "zh-CN", *arguments], env={"LANG": "C"})
    assert flagged.exit_code == 0, flagged.output
    assert asked[-1]["language"] == "zh-CN"
