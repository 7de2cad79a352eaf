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
