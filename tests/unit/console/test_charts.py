"""The quality chart's geometry: time on x, score 0-100 on y, unmeasured windows left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common import i18n
from services.console import charts, service
from services.console.deps import TEMPLATES

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_points_span_the_plot_by_time_and_score() -> None:
    chart = charts.score_chart(
        [(START, 100.0), (START + timedelta(minutes=1), None), (START + timedelta(minutes=4), 50.0)],
        width=140,
        height=134,
    )
    # plot: x from 40 to 130, y from 10 (100) to 110 (0)
    assert [(p.x, p.y) for p in chart.points] == [(40.0, 10.0), (130.0, 60.0)]
    assert chart.polyline == "40.0,10.0 130.0,60.0"
    assert chart.last is not None and chart.last.value == 50.0
    assert chart.ticks[0] == (110.0, "0")


def test_one_point_sits_in_the_middle_and_none_draws_nothing() -> None:
    single = charts.score_chart([(START, 80.0)], width=140, height=134)
    assert [(p.x, round(p.y, 1)) for p in single.points] == [(85.0, 30.0)]
    assert charts.score_chart([]).points == []
    assert charts.score_chart([]).last is None


def test_the_history_api_feeds_the_chart() -> None:
    history = {
        "points": [
            {"at": "2026-11-24T08:00:00Z", "scores": {"overall": 96.1}},
            {"at": "2026-11-24T08:00:05Z", "scores": {"overall": 25.0}},
        ]
    }
    chart = service.quality_chart(history)
    assert [p.value for p in chart.points] == [96.1, 25.0]
    assert service.quality_chart(None).points == []


def test_ingest_totals_from_prometheus_exposition() -> None:
    text = (
        "# HELP citybase_ingest_records_total Records\n"
        "# TYPE citybase_ingest_records_total counter\n"
        'citybase_ingest_records_total{dataset="a.b",outcome="accepted"} 320.0\n'
        'citybase_ingest_records_total{dataset="a.b",outcome="rejected"} 40.0\n'
    )
    assert service.ingest_totals(text) == {"a.b": {"accepted": 320.0, "rejected": 40.0}}


def test_approval_form_becomes_the_catalogs_terms() -> None:
    form = {
        "field": ["district", "inspector_phone"],
        "mask.district": ["hash"],
        "mask.inspector_phone": [""],
        "mask.result": ["redact"],  # not granted: ignored
        "reason": ["  street view "],
        "row_filter": [""],
        "duration_days": ["30"],
    }
    assert service.approval(form) == {
        "reason": "street view",
        "fields": ["district", "inspector_phone"],
        "masking": {"district": "hash"},
        "duration_days": 30,
    }


def test_the_recent_rate_is_the_one_quality_counts() -> None:
    # Not records / a fixed 300 s: the windows may cover a part of it (records_per_second, quality).
    history = {"records_per_s": 10.0, "points": [{"records": 200}, {"records": 100}, {"records": 0}]}
    assert service.recent_rate(history) == 10.0
    assert service.recent_rate({"records_per_s": 0, "points": []}) == 0.0
    assert service.recent_rate(None) is None


def test_one_point_has_one_label_and_labels_are_readable_times_in_the_language() -> None:
    single = charts.score_chart([(START, 80.0)])
    assert single.first_label == "Nov 24, 2026, 8:00:00\u202fAM UTC"
    assert single.last_label == ""
    with i18n.use("zh_CN"):
        two = charts.score_chart([(START, 80.0), (START + timedelta(hours=1), 90.0)])
    assert (two.first_label, two.last_label) == ("2026年11月24日 08:00:00 UTC", "2026年11月24日 09:00:00 UTC")


def test_the_chart_of_one_point_shows_its_moment_once() -> None:
    page = TEMPLATES.env.get_template("_chart.html").render(
        chart=charts.score_chart([(START, 80.0)]), chart_id="c", label="quality"
    )
    assert page.count("8:00:00\u202fAM UTC") == 2  # the axis label once, and the point's own title
    assert page.count('class="axis"') == 5 + 1


def test_a_rules_examples_leave_out_nulls_and_show_a_dash_for_none() -> None:
    assert service.examples([None, None]) == "—"
    assert service.examples([]) == "—"
    assert service.examples(None) == "—"
    assert service.examples(["Putuo", None, 7]) == "Putuo, 7"
    page = TEMPLATES.env.from_string("{{ r.examples|examples }}").render(r={"examples": [None, None]})
    assert page == "—"
