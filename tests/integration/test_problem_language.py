"""A refusal speaks the language the client asks for, in every service: the ``title``, the
``detail`` and each field error's ``message`` follow ``Accept-Language`` while the ``type`` URI,
the status and the field paths stay the same (the whole platform in this process: SQLite and the
embedded bus)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import access_request_create, evaluation_report, need_create
from tests.support.platform import Platform, in_process

TYPE = "https://citybase.dev/problems/"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(Path(tmp_path_factory.mktemp("problem-language"))) as running:
        yield running


def refusal(platform: Platform, language: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = platform.call(method, path, headers={"Accept-Language": language}, **kwargs)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["content-language"] == language
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    return problem


CASES = [
    pytest.param(
        ("GET", "/catalog/v1/datasets/water.meters", {}),
        404,
        "dataset-not-found",
        ("no dataset 'water.meters'", "没有数据集 'water.meters'"),
        None,
        id="catalog",
    ),
    pytest.param(
        ("POST", "/catalog/v1/access-requests", {"json": access_request_create()}),
        422,
        "validation-error",
        (
            "an admin files a request on behalf of a scenario: name it",
            "管理员代场景提交申请时，须指明是哪个场景",
        ),
        ("/body/scenario_id", "name the scenario", "请指明场景"),
        id="catalog-field-error",
    ),
    pytest.param(
        ("POST", "/catalog/v1/needs", {"json": need_create(domains=["health", "nowhere"])}),
        422,
        "validation-error",
        ("not every domain named exists", "所列领域并非全部存在"),
        ("/body/domains/1", "no domain 'nowhere'", "没有领域 'nowhere'"),
        id="catalog-needs-nested-noun",
    ),
    pytest.param(
        ("GET", "/catalog/v1/opportunity-lists/no-such-list", {}),
        404,
        "opportunity-list-not-found",
        ("no published opportunity list 'no-such-list'", "没有已发布的机会清单 'no-such-list'"),
        None,
        id="catalog-programme",
    ),
    pytest.param(
        ("POST", "/catalog/v1/evaluations/verify", {"json": evaluation_report("one-stop-visit", None, [])}),
        422,
        "invalid-evaluation-report",
        ("the evaluation report cannot be verified", "无法核验该评估报告"),
        (
            "/body/checkpoint",
            "the report names no audit checkpoint, so nothing on the trail vouches for it",
            "报告未指明审计检查点，审计记录无法为其作证",
        ),
        id="catalog-evaluation-report",
    ),
    pytest.param(
        ("POST", "/ingest/v1/datasets/transport.bus-arrivals/records", {"content": b"[]"}),
        415,
        "unsupported-media-type",
        (
            "the request has no Content-Type; send application/json (an array), "
            "application/x-ndjson or text/csv",
            "请求没有 Content-Type；请发送 application/json（数组）、application/x-ndjson 或 text/csv",
        ),
        None,
        id="ingest",
    ),
    pytest.param(
        ("GET", "/feeds/v1/subscriptions/sub_missing/records", {}),
        404,
        "subscription-not-found",
        ("no subscription 'sub_missing'", "没有订阅 'sub_missing'"),
        None,
        id="feeds",
    ),
    pytest.param(
        ("GET", "/quality/v1/scorecards/departments/transport?period=a+month", {}),
        422,
        "invalid-period",
        (
            "period 'a month' is not a number followed by h, d or w (e.g. 30d)",
            "周期 'a month' 不是数字加 h、d 或 w 的形式（例如 30d）",
        ),
        (
            "/query/period",
            "period 'a month' is not a number followed by h, d or w (e.g. 30d)",
            "周期 'a month' 不是数字加 h、d 或 w 的形式（例如 30d）",
        ),
        id="quality-field-error",
    ),
]


@pytest.mark.parametrize(("call", "status", "slug", "details", "field_error"), CASES)
def test_a_refusal_reads_in_chinese_or_english_as_asked(
    platform: Platform,
    call: tuple[str, str, dict[str, Any]],
    status: int,
    slug: str,
    details: tuple[str, str],
    field_error: tuple[str, str, str] | None,
) -> None:
    method, path, kwargs = call
    english = refusal(platform, "en", method, path, **kwargs)
    chinese = refusal(platform, "zh-CN", method, path, **kwargs)
    for problem in (english, chinese):
        assert (problem["type"], problem["status"]) == (TYPE + slug, status)
    assert english["detail"] == details[0]
    assert chinese["detail"] == details[1]
    assert english["title"] != chinese["title"]
    if field_error is not None:
        where, in_english, in_chinese = field_error
        assert [(e["path"], e["message"]) for e in english["errors"]] == [(where, in_english)]
        assert [(e["path"], e["message"]) for e in chinese["errors"]] == [(where, in_chinese)]
        assert [e["rule"] for e in english["errors"]] == [e["rule"] for e in chinese["errors"]]
