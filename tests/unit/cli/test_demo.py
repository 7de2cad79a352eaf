"""The demo's record generator: valid by default, faults at the chosen rates, reproducible."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from citybase.demo import (
    EXAMPLE_DATASETS,
    SHANGHAI,
    BatchFailed,
    BatchOutcome,
    Fault,
    FaultRates,
    RecordGenerator,
    example_contract_files,
    sample_pattern,
    stream,
    uscc_check_character,
)
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import primary_key
from services.ingest.validation import FORMATS, RecordValidator
from tests.factories import EXAMPLES, contract_property, evolve_contract, example_contract

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=SHANGHAI)
RECORDS = 1000
RATE = 0.05
TOLERANCE = 0.02
"""Each share is drawn from 1,000 records: 0.05 ± 0.02 is about three standard deviations."""

EXPECTED_RULES = {
    Fault.null: {"required"},
    Fault.out_of_range: {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
    },
    Fault.bad_enum: {"enum"},
    Fault.schema_break: {"type", "additionalProperties"},
}


def clock() -> datetime:
    return NOW


def format_checker() -> FormatChecker:
    """Ingest's format checks, applied to strings only (as JSON Schema's format keyword is)."""
    checker = FormatChecker()
    for name, check in FORMATS.items():
        checker.checks(name)(lambda value, check=check: not isinstance(value, str) or check(value))
    return checker


@cache
def contract_version(dataset_id: str, version: str = "1.1.0") -> tuple[dict[str, Any], tuple[str, ...]]:
    """The record schema and primary key the catalog derives from an example contract."""
    contract = parse_contract(example_contract(dataset_id, version))
    return record_schema(contract), tuple(primary_key(contract))


def generator(dataset_id: str, seed: int = 1, **rates: float) -> RecordGenerator:
    schema, key = contract_version(dataset_id)
    return RecordGenerator(
        schema, dataset_id, random.Random(seed), faults=FaultRates(**rates), primary_key=key, clock=clock
    )


def key_of(record: dict[str, Any], key: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(record.get(name) for name in key)


@pytest.mark.parametrize("dataset_id", EXAMPLE_DATASETS)
def test_every_record_is_valid_without_faults(dataset_id: str) -> None:
    schema, key = contract_version(dataset_id)
    ingest = RecordValidator(schema)
    reference = Draft202012Validator(schema, format_checker=format_checker())
    records = generator(dataset_id).records(RECORDS)
    for record in records:
        assert ingest.violations(record) == [], record
        assert not list(reference.iter_errors(record)), record
    assert len({key_of(record, key) for record in records}) == RECORDS, "keys repeat without duplicate faults"
    # optional fields are sometimes null, never all the time: the values vary like a real feed
    for name in schema["properties"]:
        assert len({repr(record.get(name)) for record in records}) > 1, name


@pytest.mark.parametrize("dataset_id", EXAMPLE_DATASETS)
@pytest.mark.parametrize("fault", sorted(EXPECTED_RULES))
def test_contract_breaking_faults_come_at_their_rate(dataset_id: str, fault: Fault) -> None:
    schema, _ = contract_version(dataset_id)
    validator = RecordValidator(schema)
    rates = {fault.name: RATE}
    generated = generator(dataset_id, **rates).generate(RECORDS)
    broken = [item for item in generated if validator.violations(item.record)]
    assert abs(len(broken) / RECORDS - RATE) <= TOLERANCE
    for item in broken:
        assert item.fault is fault
        assert {v.rule for v in validator.violations(item.record)} <= EXPECTED_RULES[fault], item
    assert all(item.fault is None for item in generated if item not in broken)


@pytest.mark.parametrize("dataset_id", EXAMPLE_DATASETS)
def test_duplicates_repeat_an_earlier_key_and_stay_valid(dataset_id: str) -> None:
    schema, key = contract_version(dataset_id)
    validator = RecordValidator(schema)
    seen: set[tuple[Any, ...]] = set()
    repeated = 0
    for item in generator(dataset_id, duplicate=RATE).generate(RECORDS):
        assert validator.violations(item.record) == []
        record_key = key_of(item.record, key)
        repeated += record_key in seen
        assert (record_key in seen) == (item.fault is Fault.duplicate)
        seen.add(record_key)
    assert abs(repeated / RECORDS - RATE) <= TOLERANCE


@pytest.mark.parametrize("dataset_id", EXAMPLE_DATASETS)
def test_late_events_are_hours_old_and_stay_valid(dataset_id: str) -> None:
    schema, _ = contract_version(dataset_id)
    validator = RecordValidator(schema)
    source = generator(dataset_id, late=RATE)
    event_time = source.event_time
    assert event_time is not None
    late = 0
    for item in source.generate(RECORDS):
        assert validator.violations(item.record) == []
        age = NOW - datetime.fromisoformat(item.record[event_time])
        assert (age > timedelta(hours=1)) == (item.fault is Fault.late), item
        late += age > timedelta(hours=1)
    assert abs(late / RECORDS - RATE) <= TOLERANCE


def test_faults_add_up_one_per_record() -> None:
    schema, _ = contract_version("market.inspections")
    validator = RecordValidator(schema)
    rates = {"null": 0.1, "out_of_range": 0.05, "bad_enum": 0.05, "schema_break": 0.05, "late": 0.05}
    generated = generator("market.inspections", **rates).generate(2000)
    rejected = sum(bool(validator.violations(item.record)) for item in generated)
    assert abs(rejected / 2000 - FaultRates(**rates).rejected_share) <= TOLERANCE
    with pytest.raises(ValueError, match=r"add up to 1\.2"):
        FaultRates(null=0.6, late=0.6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultRates(bad_enum=-0.1)


def test_the_same_seed_gives_the_same_records() -> None:
    for dataset_id in EXAMPLE_DATASETS:
        rates = {"null": 0.1, "duplicate": 0.1, "late": 0.1, "schema_break": 0.1}
        first = generator(dataset_id, seed=7, **rates).generate(300)
        assert generator(dataset_id, seed=7, **rates).generate(300) == first
        assert generator(dataset_id, seed=8, **rates).generate(300) != first


def test_records_look_like_shanghai() -> None:
    visits = generator("health.outpatient-visits").records(50)
    assert all(re.fullmatch(r"OV-20261124-\d{6}", v["visit_id"]) for v in visits)
    assert all(v["registered_at"].endswith("+08:00") for v in visits)
    inspections = generator("market.inspections").records(200)
    for inspection in inspections:
        code = inspection["licence_number"]
        assert code.startswith("91310") and uscc_check_character(code[:17]) == code[17]
        phone = inspection.get("inspector_phone")
        assert phone is None or re.fullmatch(r"1[3-9]\d{9}", phone)
    permits = generator("spatial.building-permits").records(200)
    pudong = [p for p in permits if p["district"] == "Pudong"]
    assert pudong and all(abs(p["longitude"] - 121.5447) < 0.05 for p in pudong)
    assert len(pudong) > len([p for p in permits if p["district"] == "Huangpu"])


def test_unified_social_credit_check_characters() -> None:
    for code in ("9144030071526726XG", "91330100716105852F", "91110000802100433B"):
        assert uscc_check_character(code[:17]) == code[17]


def test_a_new_contract_version_or_dataset_needs_no_code() -> None:
    """A field the flavours do not know is generated from its schema; a narrowed one still fits."""

    def change(document: dict[str, Any]) -> None:
        contract_property(document, "delay_s")["logicalTypeOptions"] = {"minimum": 0, "maximum": 30}
        contract_property(document, "route_id")["logicalTypeOptions"] = {"pattern": "^(N|Y)[0-9]{2,3}$"}
        document["schema"][0]["properties"].append(
            {
                "name": "platform_code",
                "logicalType": "string",
                "logicalTypeOptions": {"pattern": "^P[0-9]{2}[A-HJ-N]$"},
                "required": True,
            }
        )
        document["schema"][0]["properties"].append(
            {"name": "service_date", "logicalType": "date", "required": False}
        )

    contract = parse_contract(
        evolve_contract(example_contract("transport.bus-arrivals", "1.1.0"), "2.0.0", change)
    )
    schema = record_schema(contract)
    validator = RecordValidator(schema)
    for dataset_id in ("transport.bus-arrivals", "transport.tram-arrivals"):  # flavoured, and not
        source = RecordGenerator(schema, dataset_id, random.Random(3), clock=clock)
        for record in source.records(300):
            assert validator.violations(record) == [], record
            assert re.fullmatch(r"P\d{2}[A-HJ-N]", record["platform_code"])


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$",
        r"^1[3-9][0-9]{9}$",
        r"^(?:INSP|BP)-\d{4}-[0-9]{5,6}$",
        r"[a-z]+(-[a-z]+)*",
        r"^[^,;]{3}\.x?$",
        r"^(N|Y)[0-9]{2,}$",
    ],
)
def test_pattern_samples_match(pattern: str) -> None:
    rng = random.Random(5)
    for _ in range(200):
        assert re.search(pattern, sample_pattern(pattern, rng))


def test_example_contracts_come_oldest_version_first() -> None:
    files = example_contract_files(EXAMPLES, ["market.inspections", "transport.bus-arrivals"])
    assert [(f.parent.name, f.stem) for f in files] == [
        ("market.inspections", "1.0.0"),
        ("market.inspections", "1.1.0"),
        ("transport.bus-arrivals", "1.0.0"),
        ("transport.bus-arrivals", "1.1.0"),
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_stream_sends_rate_times_duration_spread_over_datasets() -> None:
    fake = FakeClock()
    batches: list[tuple[str, int]] = []

    def publish(dataset_id: str, records: list[dict[str, Any]]) -> BatchOutcome:
        fake.now += 0.01  # an answer takes a while
        batches.append((dataset_id, len(records)))
        return BatchOutcome(accepted=len(records), rejected=0, duplicates=0)

    sources = {name: generator(name) for name in ("transport.bus-arrivals", "market.inspections")}
    stats = stream(
        sources, publish, rate=40, duration_s=3, tick_s=0.5, monotonic=fake.monotonic, sleep=fake.sleep
    )
    assert stats.total("sent") == stats.total("accepted") == 120
    assert {name: s.sent for name, s in stats.datasets.items()} == {name: 60 for name in sources}
    assert max(size for _, size in batches) <= 11  # one tick's worth, never a burst
    assert 2.9 <= stats.elapsed_s <= 3.2


def test_stream_leaves_out_a_dataset_that_refuses_and_counts_lost_batches() -> None:
    fake = FakeClock()
    calls = {"market.inspections": 0}

    def publish(dataset_id: str, records: list[dict[str, Any]]) -> BatchOutcome:
        if dataset_id == "health.outpatient-visits":
            raise BatchFailed("403 not the owner", stop=True)
        calls["market.inspections"] += 1
        if calls["market.inspections"] == 1:
            raise BatchFailed("503 bus unavailable", stop=False)
        return BatchOutcome(accepted=len(records) - 1, rejected=1, duplicates=0, rules=["enum"])

    sources = {name: generator(name) for name in ("health.outpatient-visits", "market.inspections")}
    stats = stream(sources, publish, rate=20, duration_s=2, monotonic=fake.monotonic, sleep=fake.sleep)
    health, market = stats.datasets["health.outpatient-visits"], stats.datasets["market.inspections"]
    assert health.stopped == "403 not the owner" and health.sent == 0 and health.batches == 0
    assert market.failed_batches == 1 and market.lost > 0 and market.stopped is None
    assert market.sent + market.lost == market.generated == 20
    assert market.rules["enum"] == market.rejected == market.batches
    summary = stats.summary()
    assert summary["sent"] == market.sent and summary["datasets"]["health.outpatient-visits"]["stopped"]
