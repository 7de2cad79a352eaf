"""The soak's aims: CPU per record against ingest's, and quality's lag at the end of the load."""

from __future__ import annotations

from tests.soak.__main__ import aims

CPU = {"ingest": 0.080, "catalog": 0.004, "feeds": 0.050, "quality": 0.060}


def test_the_aims_hold_when_quality_and_feeds_cost_less_than_ingest_and_quality_keeps_up() -> None:
    verdicts = aims(CPU, {"feeds subscription": 0, "quality": 12_000})
    assert [aim["holds"] for aim in verdicts.values()] == [True, True, True]
    quality_cpu, feeds_cpu, lag = verdicts.values()
    assert quality_cpu["ratio"] == 0.75
    assert feeds_cpu["ratio"] == 0.625
    assert lag["windows"] == 1.2


def test_an_aim_is_missed_by_a_costlier_service_or_a_lag_of_two_windows() -> None:
    verdicts = aims({**CPU, "quality": 0.090}, {"quality": 20_000})
    assert [aim["holds"] for aim in verdicts.values()] == [False, True, False]


def test_a_figure_the_run_did_not_measure_is_not_taken_as_held() -> None:
    verdicts = aims({"ingest": None, "feeds": 0.05, "quality": 0.06}, {"quality": None})
    assert [aim["holds"] for aim in verdicts.values()] == [False, False, False]
