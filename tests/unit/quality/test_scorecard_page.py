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
