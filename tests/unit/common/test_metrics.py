"""observe_many counts exactly what observing one value at a time counts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from services.common.metrics import LATENCY_BUCKETS, ServiceMetrics, observe_many
from services.feeds.metrics import FeedsMetrics
from services.ingest.metrics import IngestMetrics
from services.quality.metrics import QualityMetrics


def _samples(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every sample but the creation time, NaN written as a string so that it equals itself."""
    return [
        (sample.name, tuple(sorted(sample.labels.items())), repr(sample.value))
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def _pair(labelled: bool) -> tuple[Histogram, Histogram, CollectorRegistry, CollectorRegistry]:
    one, many = CollectorRegistry(), CollectorRegistry()
    labels = ["mode"] if labelled else []
    a = Histogram("citybase_test_seconds", "test", labels, registry=one, buckets=LATENCY_BUCKETS)
    b = Histogram("citybase_test_seconds", "test", labels, registry=many, buckets=LATENCY_BUCKETS)
    return a, b, one, many


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=20),
            st.sampled_from([*LATENCY_BUCKETS, 0.0, math.inf, -1.0]),
        ),
        max_size=200,
    )
)
def test_the_same_exposition_as_observing_each_value(values: list[float]) -> None:
    for labelled in (False, True):
        a, b, one, many = _pair(labelled)
        target_a = a.labels("poll") if labelled else a
        target_b = b.labels("poll") if labelled else b
        for value in values:
            target_a.observe(value)
        observe_many(target_b, values)
        assert _samples(many) == _samples(one)


def test_nan_is_summed_but_in_no_bucket_as_observe_does() -> None:
    a, b, one, many = _pair(False)
    a.observe(math.nan)
    a.observe(0.2)
    observe_many(b, [math.nan, 0.2])
    assert _samples(many) == _samples(one)


def test_a_histogram_with_labels_must_be_given_its_child() -> None:
    _a, b, _one, _many = _pair(True)
    with pytest.raises(ValueError):
        observe_many(b, [0.1])


def test_a_service_family_is_built_once_per_registry() -> None:
    first, second = ServiceMetrics("one"), ServiceMetrics("two")
    for family in (IngestMetrics, FeedsMetrics, QualityMetrics):
        # A second build on the same registry would raise: "Duplicated timeseries in CollectorRegistry".
        assert family.of(first) is family.of(first)
        assert family.of(second) is not family.of(first)
