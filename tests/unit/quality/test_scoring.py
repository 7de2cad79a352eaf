"""The formulas of the quality dimensions and of utilization (services/quality/scoring.py)."""

from __future__ import annotations

import pytest

from services.quality import scoring
from services.quality.settings import DEFAULT_WEIGHTS, QualitySettings


def test_validity_is_the_accepted_share_and_none_without_records() -> None:
    assert scoring.validity(95, 5) == 95.0
    assert scoring.validity(0, 10) == 0.0
    assert scoring.validity(10, 0) == 100.0
    assert scoring.validity(0, 0) is None


def test_completeness_multiplies_the_required_share_by_the_important_fields_factor() -> None:
    assert scoring.completeness(100, 5) == 95.0
    assert scoring.completeness(0, 0) is None
    within = scoring.ImportantField("wait_minutes", non_null_share=0.93, tolerated_share=0.9)
    assert within.factor == 1.0
    assert scoring.completeness(100, 5, [within]) == 95.0
    short = scoring.ImportantField("wait_minutes", non_null_share=0.45, tolerated_share=0.9)
    assert short.factor == pytest.approx(0.5)
    assert scoring.completeness(100, 0, [short, within]) == pytest.approx(75.0)
    assert scoring.completeness(10, 50) == 0.0  # never below 0


def test_uniqueness_counts_duplicates_against_accepted_records() -> None:
    assert scoring.uniqueness(200, 10) == 95.0
    assert scoring.uniqueness(0, 0) is None
    assert scoring.uniqueness(5, 9) == 0.0


def test_conformity_sums_unexpected_rows_and_charges_failed_aggregates_a_share() -> None:
    map_rule = scoring.RuleOutcome(unexpected=50)
    passing = scoring.RuleOutcome(unexpected=0)
    assert scoring.conformity(1000, [map_rule, passing]) == 95.0
    median_failed = scoring.RuleOutcome(aggregate=True, success=False)
    median_ok = scoring.RuleOutcome(aggregate=True, success=True)
    # 4 value rules: a failed aggregate costs a quarter of the window.
    assert scoring.conformity(1000, [passing, passing, median_ok, median_failed]) == 75.0
    assert scoring.conformity(1000, []) is None  # no rule: not measurable, not 100
    assert scoring.conformity(10, [scoring.RuleOutcome(unexpected=30)]) == 0.0


def test_freshness_factor_is_full_within_the_frequency_then_falls_to_zero_at_twice_it() -> None:
    assert scoring.freshness_factor(30, 60) == 1.0
    assert scoring.freshness_factor(60, 60) == 1.0
    assert scoring.freshness_factor(90, 60) == pytest.approx(0.5)
    assert scoring.freshness_factor(120, 60) == 0.0
    assert scoring.freshness_factor(1000, 60) == 0.0
    assert scoring.freshness_factor(None, 60) == 0.0


def test_timeliness_is_the_on_time_share_times_freshness() -> None:
    assert scoring.timeliness(on_time=95, measured=100, freshness_s=1, frequency_s=60) == 95.0
    assert scoring.timeliness(on_time=100, measured=100, freshness_s=90, frequency_s=60) == 50.0
    assert scoring.timeliness(on_time=0, measured=0, freshness_s=90, frequency_s=60) == 50.0
    assert scoring.timeliness(on_time=0, measured=0, freshness_s=None, frequency_s=60) is None


def test_overall_weighs_the_measured_dimensions_only() -> None:
    scores = {
        "validity": 90.0,
        "completeness": 100.0,
        "uniqueness": None,
        "conformity": 80.0,
        "timeliness": 100.0,
    }
    expected = (0.25 * 90 + 0.20 * 100 + 0.25 * 80 + 0.15 * 100) / (0.25 + 0.20 + 0.25 + 0.15)
    assert scoring.overall(scores, DEFAULT_WEIGHTS) == pytest.approx(expected, abs=1e-3)
    assert scoring.overall(dict.fromkeys(scores), DEFAULT_WEIGHTS) is None
    assert sum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)


def test_weights_and_windows_can_be_set_per_dataset() -> None:
    settings = QualitySettings(
        weights={"transport.bus-arrivals": {"timeliness": 0.6}},
        windows={"transport.bus-arrivals": {"records": 500, "seconds": 5}},
    )
    assert settings.weights_of("transport.bus-arrivals")["timeliness"] == 0.6
    assert settings.weights_of("transport.bus-arrivals")["validity"] == DEFAULT_WEIGHTS["validity"]
    assert settings.weights_of("health.outpatient-visits") == DEFAULT_WEIGHTS
    assert settings.window_of("transport.bus-arrivals").records == 500
    assert settings.window_of("health.outpatient-visits").records == 10_000
    assert settings.window_of("health.outpatient-visits").seconds == 60.0


def test_utilization_weighs_reach_recency_and_grant_use() -> None:
    full = scoring.utilization(
        active_subscribers=3,
        target_subscribers=3,
        days_since_use=0.1,
        idle_days=14,
        grants_active=2,
        grants_used=2,
    )
    assert full == 100.0
    never = scoring.utilization(
        active_subscribers=0,
        target_subscribers=3,
        days_since_use=None,
        idle_days=14,
        grants_active=2,
        grants_used=0,
    )
    assert never == 0.0
    half = scoring.utilization(
        active_subscribers=1,
        target_subscribers=2,
        days_since_use=7.5,
        idle_days=14,
        grants_active=2,
        grants_used=1,
    )
    assert half == pytest.approx(100 * (0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 0.5))
    open_dataset = scoring.utilization(
        active_subscribers=0,
        target_subscribers=3,
        days_since_use=None,
        idle_days=14,
        grants_active=0,
        grants_used=0,
    )
    assert open_dataset == 0.0  # no grant to use is no excuse
