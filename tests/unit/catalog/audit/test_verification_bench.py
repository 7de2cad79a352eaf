"""The audit verification benchmark runs (on a small chain) and measures what it says it measures."""

from __future__ import annotations

import pytest

from tests.bench import audit as bench


def test_the_benchmark_walks_the_new_entries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "ENTRIES", 3_000)
    monkeypatch.setattr(bench, "NEW_ENTRIES", 200)
    monkeypatch.setattr(bench, "CHECKPOINT_EVERY", 1_000)
    figure = bench.run()
    assert figure.value < figure.baseline_value
    assert "3,000 in the chain" in figure.name
