"""The HTML scorecard (services/quality/scorecards.py): the console's look, words over the columns,
counts in the right number, and Chinese or English."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.page_style import STYLESHEET
from services.quality import scorecards
from services.quality.settings import DIMENSIONS

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def card(datasets: int = 1) -> dict[str, Any]:
    rows = [
        {
            "dataset_id": f"transport.bus-arrivals-{index}",
            "title": "Bus arrivals",
            "status": "active",
            "domain_id": "transport",
            "windows": 3,
            "records": 1,
            "quality": {**dict.fromkeys(DIMENSIONS, 90.0), "overall": 91.5},
            "daily": [{"day": "2026-11-23", "overall": 91.5}],
            "sla_breaches": {"freshness": 1},
            "utilization": {
                "score": 40.0,
                "active_grants": 1,
                "active_subscribers": 1,
                "records_last_day": 1,
                "days_since_last_use": None,
            },
        }
        for index in range(datasets)
    ]
    return {
        "kind": "department",
        "id": "transport-bureau",
        "from": NOW - timedelta(days=30),
        "to": NOW,
        "summary": {
            "datasets": datasets,
            "quality": {**dict.fromkeys(DIMENSIONS, 90.0), "overall": 91.5},
            "sla_breaches": datasets,
            "utilization": 40.0,
            "records": datasets,
        },
        "datasets": rows,
        "showcase_only": {"never_delivered_datasets": [], "unused_grants": []},
    }


def headers(page: str) -> list[str]:
    return re.findall(r"<th>([^<]*)</th>", page)


def test_the_page_has_the_consoles_style_and_fits_its_window() -> None:
    page = scorecards.to_html(card())
    assert STYLESHEET in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # the wide table scrolls inside its own box instead of widening the page
    assert re.search(r'<div class="scroll">\s*<table id="datasets">', page)


def test_the_columns_are_headed_in_words_and_counts_take_their_number() -> None:
    page = scorecards.to_html(card(1))
    assert headers(page)[:4] == ["Dataset", "Status", "Windows", "Records"]
    assert "Days since last use" in headers(page)
    assert not [name for name in headers(page) if "_" in name]
    assert "1 dataset," in page and "1 datasets" not in page
    assert "1 record scored" in page and "1 SLA breach," in page
    several = scorecards.to_html(card(2))
    assert "2 datasets," in several and "2 records scored" in several and "2 SLA breaches" in several


def test_the_page_speaks_chinese_when_asked() -> None:
    page = scorecards.to_html(card(2), "zh_CN")
    assert '<html lang="zh-CN">' in page
    assert headers(page)[:4] == ["数据集", "状态", "窗口数", "记录数"]
    assert "部门 transport-bureau 的评分卡" in page
    assert "2 个数据集" in page
    assert "有效" in page  # "active", the dataset's status


def with_findings(base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a dataset never delivered though granted, and a grant unused for 20 days."""
    return {
        **base,
        "showcase_only": {
            "never_delivered_datasets": [
                {
                    "dataset_id": "transport.bus-arrivals-0",
                    "owner_department_id": "transport-bureau",
                    "published_since": NOW - timedelta(days=40),
                    "active_grants": ["grt_1", "grt_2"],
                    "evidence": "no delivery to any scenario despite 2 active grants",
                }
            ],
            "unused_grants": [
                {
                    "grant_id": "grt_1",
                    "scenario_id": "one-stop-visit",
                    "dataset_id": "transport.bus-arrivals-0",
                    "valid_from": NOW - timedelta(days=40),
                    "expires_at": None,
                    "last_use": NOW - timedelta(days=20),
                    "idle_days": 20.0,
                    "evidence": "last delivery 2026-11-04T08:00:00+00:00",
                }
            ],
        },
    }


def words(page: str) -> str:
    """What a reader reads on the page, without identifiers (``<code>``) and markup."""
    body = page.split("<body>", 1)[1]
    text = re.sub(r"<code>.*?</code>|<style>.*?</style>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def test_the_findings_give_their_evidence_in_the_pages_language() -> None:
    english = words(scorecards.to_html(with_findings(card(2))))
    assert "no delivery to any scenario despite 2 active grants" in english
    assert "last delivery Nov 4, 2026, 8:00:00 AM UTC" in english
    chinese = words(scorecards.to_html(with_findings(card(2)), "zh_CN"))
    assert "虽有 2 项有效授权，但从未向任何场景投递" in chinese
    assert "最近一次投递于 2026年11月4日 08:00:00 UTC" in chinese
    # Chinese throughout: besides the ids (of the department in the title, of the datasets in the
    # charts) only the platform's name, SLA and UTC are written in Latin letters
    latin = set(re.findall(r"[A-Za-z][A-Za-z.\-]*[A-Za-z]", chinese))
    assert latin <= {"citybase", "SLA", "UTC", "transport-bureau", "transport.bus-arrivals"}, latin
