"""SLA targets and the durations they are written in."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog.contracts.sla import SlaTargets, duration_s, sla_targets
from tests.support.contracts import (
    KEY_PROPERTY,
    contract_with,
)


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [
        (250, "ms", 0.25),
        (30, "s", 30),
        (2, "seconds", 2),
        (15, "m", 900),
        (1, "minute", 60),
        (10, "min", 600),
        (4, "h", 14400),
        (1, "hour", 3600),
        (2, "hours", 7200),
        (1, "d", 86400),
        (1, "day", 86400),
        (3, "days", 259200),
        (1, "w", 604800),
        (1, "month", 2592000),
        (3, "y", 94608000),
        (1, "yr", 31536000),
        ("1.5", "h", 5400),
        (2, "Days", 172800),
        ("PT15M", None, 900),
        ("PT1H30M", None, 5400),
        ("P1D", None, 86400),
        ("P1W", None, 604800),
        ("P1Y2M", None, 365 * 86400 + 60 * 86400),
        ("PT0.5S", None, 0.5),
        ("pt10s", None, 10),
    ],
)
def test_durations_in_every_unit(value: Any, unit: str | None, seconds: float) -> None:
    assert duration_s(value, unit) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (5, None),
        (5, "fortnight"),
        ("soon", "d"),
        (True, "d"),
        (None, "d"),
        ("P", None),
        ("PT", None),
        ("P1D", "d"),
        (0, "s"),
        (-1, "h"),
        ("P1H", None),
    ],
)
def test_what_is_not_a_duration(value: Any, unit: str | None) -> None:
    with pytest.raises(ValueError):
        duration_s(value, unit)


def test_sla_targets_from_sla_properties() -> None:
    contract = contract_with(
        KEY_PROPERTY,
        slaProperties=[
            {"property": "frequency", "value": 1, "unit": "m"},
            {"property": "latency", "value": 30, "unit": "s"},
            {"property": "retention", "value": 90, "unit": "d"},
            {"property": "generalAvailability", "value": "2026-01-01T00:00:00+08:00"},
        ],
    )

    assert sla_targets(contract) == SlaTargets(frequency_s=60, latency_s=30, retention_s=90 * 86400)


def test_sla_names_are_case_insensitive_and_synonyms_count() -> None:
    contract = contract_with(
        KEY_PROPERTY,
        slaProperties=[
            {"property": "FY", "value": "PT5M"},
            {"property": "freshness", "value": 2, "unit": "h"},
            {"property": "re", "value": 1, "unit": "y"},
            {"property": "latency", "value": 9, "unit": "h"},
        ],
    )

    assert sla_targets(contract) == SlaTargets(frequency_s=300, latency_s=7200, retention_s=365 * 86400)


def test_absent_sla_targets_are_none() -> None:
    assert sla_targets(contract_with(KEY_PROPERTY)) == SlaTargets(None, None, None)


@pytest.mark.parametrize(
    ("custom", "rate", "partitions"),
    [
        ([], None, None),
        ([{"property": "citybase.expectedRate", "value": 1}], 1.0, 1),
        ([{"property": "citybase.expectedRate", "value": 1000}], 1000.0, 1),
        ([{"property": "citybase.expectedRate", "value": 5500}], 5500.0, 6),
        ([{"property": "citybase.expectedRate", "value": 10_000_000}], 10_000_000.0, 64),
        ([{"property": "citybase.partitions", "value": 12}], None, 12),
        (
            [
                {"property": "citybase.expectedRate", "value": 5500},
                {"property": "citybase.partitions", "value": 2},
            ],
            5500.0,
            2,
        ),
    ],
)
def test_a_datasets_partitions_follow_its_contract(
    custom: list[dict[str, Any]], rate: float | None, partitions: int | None
) -> None:
    targets = sla_targets(contract_with(KEY_PROPERTY, customProperties=custom))
    assert (targets.expected_rate, targets.partitions) == (rate, partitions)
