"""The locale of a request and the locale formats of numbers and moments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common import i18n


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("en;q=0.5, zh-CN;q=0.9", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh-TW, en;q=0.5", "en"),
        ("fr-FR, de;q=0.8", "en"),
        ("zh-CN;q=0, en", "en"),
        ("", "en"),
        (None, "en"),
        ("garbage;;q=x, ,", "en"),
    ],
)
def test_accept_language_picks_the_first_language_citybase_speaks(header: str | None, locale: str) -> None:
    assert i18n.negotiate(accept_language=header) == locale


def test_an_explicit_choice_wins_over_the_browser_and_a_bad_one_is_ignored() -> None:
    assert i18n.negotiate("en", accept_language="zh-CN") == "en"
    assert i18n.negotiate(None, "zh-CN", accept_language="en") == "zh_CN"
    assert i18n.negotiate("klingon", accept_language="zh-CN") == "zh_CN"


def test_strings_speak_the_locale_of_the_context_and_english_elsewhere() -> None:
    assert i18n.gettext("Log in") == "Log in"
    with i18n.use("zh_CN"):
        assert i18n.gettext("Log in") == "登录"
        assert i18n.tag() == "zh-CN"
        # a string without a translation falls back to its English
        assert i18n.gettext("a string no catalog has") == "a string no catalog has"
    assert i18n.gettext("Log in") == "Log in"
    assert i18n.tag() == "en"


def test_numbers_and_moments_are_formatted_for_the_locale() -> None:
    moment = datetime(2026, 12, 7, 10, 36, 4, 123456, tzinfo=UTC)
    assert i18n.format_number(1234567.891, digits=1) == "1,234,567.9"
    assert i18n.format_number(None) == "—"
    assert i18n.format_percent(0.425) == "42%"
    assert i18n.format_datetime(moment) == "Dec 7, 2026, 10:36:04\u202fAM UTC"
    # one style whatever the input spells: Z or +00:00, microseconds or not
    assert i18n.format_datetime("2026-12-07T10:36:04Z") == i18n.format_datetime(
        "2026-12-07T10:36:04.123456+00:00"
    )
    with i18n.use("zh_CN"):
        assert i18n.format_datetime(moment) == "2026年12月7日 10:36:04 UTC"
        assert i18n.format_number(1234567.891, digits=1) == "1,234,567.9"
    assert i18n.format_datetime("not a moment") == "not a moment"


def test_a_problem_answers_in_the_language_the_client_asks_for() -> None:
    import json

    from services.common.problems import CatalogNotReady, NotFound, problem_response

    english = problem_response(NotFound("no dataset x.y"), "/v1/datasets/x.y")
    chinese = problem_response(
        NotFound("no dataset x.y"), "/v1/datasets/x.y", accept_language="zh-CN,zh;q=0.9"
    )
    en, zh = json.loads(english.body), json.loads(chinese.body)
    assert (en["title"], zh["title"]) == ("Not found", "未找到")
    assert en["type"] == zh["type"] == "https://citybase.dev/problems/not-found"
    assert (english.headers["content-language"], chinese.headers["content-language"]) == ("en", "zh-CN")
    # a title with a placeholder is filled after translation
    ready = json.loads(problem_response(CatalogNotReady("ingest"), accept_language="zh-CN").body)
    assert ready["title"] == "Ingest 服务仍在读取数据目录"
    assert (
        json.loads(problem_response(CatalogNotReady("ingest")).body)["title"]
        == "Ingest is still reading the catalog"
    )


def test_every_problem_handler_speaks_the_request_language() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from services.common.problems import NotFound, install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/{n}")
    def thing(n: int) -> dict[str, int]:
        raise NotFound(f"no thing {n}")

    zh = {"Accept-Language": "zh-CN"}
    with TestClient(app, raise_server_exceptions=False) as client:
        raised = client.get("/things/1", headers=zh).json()
        invalid = client.get("/things/one", headers=zh).json()
        unrouted = client.get("/nowhere", headers=zh).json()
        english = client.get("/things/one").json()
    assert raised["title"] == "未找到" and raised["detail"] == "no thing 1"
    assert invalid["title"] == "请求无效" and invalid["errors"][0]["path"] == "/path/n"
    assert unrouted["title"] == "未找到"
    assert english["title"] == "The request is not valid"
