"""Scoring windows with the contract's GX suite: each fault moves its dimension, evidence is
masked, and bad input is scored with what is possible and reported (never a silent 100)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from services.common.bus import Message, OutgoingRecord
from services.quality.expectations import CompiledSuite, GreatExpectations, RuleResult
from services.quality.projection import QualityCatalog
from services.quality.scorer import Scorer
from services.quality.settings import QualitySettings
from services.quality.windows import WindowScore, WindowSet
from tests.factories import (
    catalog_records,
    contract_property,
    contract_state,
    dataset_event_state,
    routed_records,
)

ENGINE = GreatExpectations()


def messages(records: list[OutgoingRecord]) -> Iterator[Message]:
    for offset, record in enumerate(records):
        yield Message(
            record.topic, 0, offset, record.key, record.value, record.headers, record.timestamp_ms or 0
        )


def catalog_of(*contracts: dict[str, Any], version: str | None = "1.0.0") -> QualityCatalog:
    catalog = QualityCatalog()
    datasets = [dataset_event_state(c["dataset_id"], current_version=version) for c in contracts]
    for message in messages(catalog_records(contracts=list(contracts) if version else [], datasets=datasets)):
        catalog.apply(message)
    return catalog


def score(
    catalog: QualityCatalog, records: list[OutgoingRecord], engine: GreatExpectations = ENGINE
) -> WindowScore:
    windows = WindowSet(lambda _dataset: (10**9, 3600.0))
    for message in messages(records):
        windows.add(message)
    windows.close_all("test")
    [window] = windows.take_closed()
    return Scorer(catalog, engine, QualitySettings()).score(window)


@pytest.mark.parametrize(
    ("faults", "dimension"),
    [
        ({"null": 0.05}, "completeness"),
        ({"bad_enum": 0.05}, "validity"),
        ({"out_of_range": 0.05}, "validity"),
        ({"duplicate": 0.05}, "uniqueness"),
        ({"late": 0.05}, "timeliness"),
    ],
)
def test_five_percent_of_a_fault_costs_its_dimension_about_five_points(
    faults: dict[str, float], dimension: str
) -> None:
    contract = contract_state("health.scored")
    records, _ = routed_records(contract, 4000, seed=5, **faults)
    scored = score(catalog_of(contract), records)
    assert scored.scores[dimension] == pytest.approx(95, abs=1.5), scored.scores
    assert scored.overall is not None and scored.overall < 100
    assert scored.problems == []


def test_a_clean_window_scores_100_everywhere() -> None:
    contract = contract_state("health.clean")
    scored = score(catalog_of(contract), routed_records(contract, 2000, seed=2)[0])
    assert scored.scores == dict.fromkeys(scored.scores, 100.0)
    assert scored.overall == 100.0
    by_rule = {(r.rule.name, r.rule.column): r for r in scored.rules}
    assert by_rule[("nullValues", "wait_minutes")].unexpected_count > 0  # within its 10 % tolerance
    assert by_rule[("nullValues", "wait_minutes")].success is True


def test_failing_values_of_a_sensitive_field_are_masked_in_the_evidence() -> None:
    def patients_start_with_p(document: dict[str, Any]) -> None:
        contract_property(document, "patient_id")["quality"] = [
            {
                "metric": "invalidValues",
                "arguments": {"pattern": "^P"},
                "mustBeLessThan": 50,
                "unit": "percent",
            }
        ]

    contract = contract_state("health.masked", change=patients_start_with_p)
    records, generated = routed_records(contract, 500, seed=3)
    scored = score(catalog_of(contract), records)
    [rule] = [r for r in scored.rules if r.rule.column == "patient_id" and r.rule.name == "invalidValues"]
    assert rule.unexpected_count and rule.examples
    clear = {item.record["patient_id"] for item in generated}
    assert all(str(example).startswith("hmac:") and example not in clear for example in rule.examples)
    assert scored.scores["conformity"] is not None and scored.scores["conformity"] < 100


def test_a_dataset_without_a_contract_gets_validity_and_timeliness_and_says_why() -> None:
    contract = contract_state("health.bare")
    scored = score(catalog_of(contract, version=None), routed_records(contract, 200, seed=4, bad_enum=0.1)[0])
    assert scored.scores["validity"] is not None and scored.scores["validity"] < 100
    assert scored.scores["completeness"] is None
    assert scored.scores["conformity"] is None
    assert scored.scores["uniqueness"] is None
    assert any("no contract version" in problem for problem in scored.problems)


def test_a_suite_gx_cannot_build_is_scored_with_the_rules_it_can() -> None:
    contract = contract_state("health.broken")
    contract["expectation_suite"] = [
        *contract["expectation_suite"],
        {"type": "expect_nothing_of_the_sort", "kwargs": {}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "wait_minutes", "bogus": 1}},
        "not an expectation",
    ]
    scored = score(catalog_of(contract), routed_records(contract, 300, seed=6)[0])
    assert sum("cannot be built" in problem for problem in scored.problems) == 3
    assert scored.scores["conformity"] == 100.0  # the other rules ran


def _ds_record(contract: dict[str, Any], offset: int, row: dict[str, Any]) -> OutgoingRecord:
    headers = (("ce_id", str(offset).encode()), ("ce_contractversion", contract["version"].encode()))
    return OutgoingRecord(f"ds.{contract['dataset_id']}", json.dumps(row).encode(), None, headers, 0)


def test_records_that_do_not_fit_the_column_types_are_reported_per_rule() -> None:
    contract = contract_state("health.mixed")
    _, generated = routed_records(contract, 200, seed=8)
    rows = [item.record for item in generated]
    for row in rows[::10]:
        row["wait_minutes"] = "forty"  # what a direct writer to ds. might do
    mixed = [_ds_record(contract, offset, row) for offset, row in enumerate(rows)]
    scored = score(catalog_of(contract), mixed)
    failed = [r for r in scored.rules if r.error is not None]
    assert failed and all(r.rule.column == "wait_minutes" for r in failed)
    assert any("could not run" in problem and "wait_minutes" in problem for problem in scored.problems)
    assert scored.scores["conformity"] is not None  # the rules that could run


class BrokenEngine(GreatExpectations):
    def validate(self, compiled: CompiledSuite, frame: pd.DataFrame, examples: int) -> list[RuleResult]:
        raise RuntimeError("GX exploded")


def test_a_gx_failure_leaves_conformity_unmeasured_not_100() -> None:
    contract = contract_state("health.gxfail")
    scored = score(catalog_of(contract), routed_records(contract, 200, seed=9)[0], BrokenEngine())
    assert scored.scores["conformity"] is None
    assert scored.scores["validity"] == 100.0
    assert any("Great Expectations failed" in problem for problem in scored.problems)
    assert "conformity" in scored.details["unmeasured"]


def test_a_suite_is_compiled_once_per_contract_version() -> None:
    contract = contract_state("health.once")
    catalog = catalog_of(contract)
    version = catalog.current_contract("health.once")
    assert version is not None
    assert version.suite(ENGINE) is version.suite(ENGINE)


def _unmarked(document: dict[str, Any]) -> None:
    for name in ("created_at", "updated_at"):
        contract_property(document, name).pop("customProperties", None)


def test_the_event_time_is_the_first_marked_field_with_a_value() -> None:
    # Status changes of requests filed up to 50 minutes ago, published as they happen: on time
    # by updated_at (rank 1); a new request has no updated_at and is timed by created_at (rank 2).
    marked = contract_state("community.timed", example="community.service-requests", version="1.1.0")
    records, _ = routed_records(marked, 400, flavour_of="community.service-requests")
    scored = score(catalog_of(marked, version="1.1.0"), records)
    assert scored.details["event_time_field"] == "updated_at or created_at"
    assert scored.details["measured"] == len(records)
    assert scored.details["on_time"] == len(records)
    assert scored.scores["timeliness"] == 100.0

    # Timed by created_at alone (the first required date-time), the same status changes look late.
    unmarked = contract_state(
        "community.untimed", example="community.service-requests", version="1.1.0", change=_unmarked
    )
    records, _ = routed_records(unmarked, 400, flavour_of="community.service-requests")
    scored = score(catalog_of(unmarked, version="1.1.0"), records)
    assert scored.details["event_time_field"] == "created_at"
    assert scored.details["on_time"] < scored.details["measured"]
