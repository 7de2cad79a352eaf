"""The example contracts under contracts/datasets: real ODCS v3.1.0, derivable, and evolving compatibly."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import fastjsonschema
import jsonschema
import pytest

from services.catalog.contracts.conventions import MaskingRule
from services.catalog.contracts.expectations import expectation_class_name, expectation_suite
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import SemanticVersion
from services.catalog.contracts.policy import DatasetPolicy, dataset_policy, primary_key, sensitive_fields
from services.catalog.contracts.sla import sla_targets
from tests.support.contracts import (
    BROKEN_RECORDS,
    EXAMPLE_RECORDS,
    EXAMPLES_DIR,
    example_contract,
)

EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*/*.yaml"))
DATASETS = sorted(EXAMPLE_RECORDS)

POLICIES = {
    "transport.bus-arrivals": DatasetPolicy("open", "transport-bureau", "BACKWARD"),
    "health.outpatient-visits": DatasetPolicy("restricted", "health-commission", "BACKWARD"),
    "market.inspections": DatasetPolicy("conditional", "market-supervision", "BACKWARD"),
    "spatial.building-permits": DatasetPolicy("open", "urban-construction", "BACKWARD"),
    "community.service-requests": DatasetPolicy("conditional", "putuo-district", "BACKWARD"),
}

SENSITIVE = {
    "transport.bus-arrivals": {},
    "health.outpatient-visits": {"patient_id": MaskingRule("hash")},
    "market.inspections": {"inspector_phone": MaskingRule("partial", keep_prefix=3, keep_suffix=4)},
    "spatial.building-permits": {},
    "community.service-requests": {"resident_phone": MaskingRule("partial", keep_prefix=3, keep_suffix=4)},
}


def versions_of(dataset_id: str) -> list[str]:
    return sorted(
        (path.stem for path in (EXAMPLES_DIR / dataset_id).glob("*.yaml")),
        key=SemanticVersion.parse,
    )


def test_there_are_five_datasets_with_two_versions_each() -> None:
    assert sorted(path.name for path in EXAMPLES_DIR.iterdir() if path.is_dir()) == DATASETS
    assert all(len(versions_of(dataset_id)) == 2 for dataset_id in DATASETS)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_example_parses_and_derives(path: Path, gx: ModuleType) -> None:
    dataset_id, version = path.parent.name, path.stem

    contract = example_contract(dataset_id, version)

    assert (contract.id, contract.version, contract.api_version) == (dataset_id, version, "v3.1.0")
    assert contract.raw["status"] == "active"
    assert {"name", "domain", "dataProduct", "description", "team", "tags", "slaProperties"} <= set(
        contract.raw
    )
    assert {"purpose", "usage", "limitations"} <= set(contract.raw["description"])
    assert dataset_policy(contract) == POLICIES[dataset_id]
    assert sensitive_fields(contract) == SENSITIVE[dataset_id]
    assert len(primary_key(contract)) == 1
    targets = sla_targets(contract)
    assert None not in (targets.frequency_s, targets.latency_s, targets.retention_s)
    schema = record_schema(contract)
    jsonschema.Draft202012Validator.check_schema(schema)
    fastjsonschema.compile(schema)
    for expectation in expectation_suite(contract):
        getattr(gx.expectations, expectation_class_name(expectation["type"]))(**expectation["kwargs"])


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_example_uses_the_quality_rules_citybase_runs(path: Path) -> None:
    contract = example_contract(path.parent.name, path.stem)
    [obj] = contract.raw["schema"]
    rules = [rule for prop in obj["properties"] for rule in prop.get("quality", [])] + obj.get("quality", [])
    metrics = {rule.get("metric") for rule in rules}
    key = primary_key(contract)[0]
    key_rules = [
        rule for prop in obj["properties"] if prop["name"] == key for rule in prop.get("quality", [])
    ]
    object_duplicates = [rule for rule in obj.get("quality", []) if rule.get("metric") == "duplicateValues"]

    assert {"nullValues", "invalidValues", "rowCount"} <= metrics
    assert any(rule.get("metric") == "duplicateValues" for rule in key_rules) or any(
        key in rule.get("arguments", {}).get("properties", [key]) for rule in object_duplicates
    )
    assert any(rule.get("metric") == "rowCount" for rule in obj.get("quality", []))
    assert all(prop.get("classification") for prop in obj["properties"])
    assert obj["name"] == contract.raw["id"].split(".", 1)[1].replace("-", "_")
    sources = {item["meta"]["source"] for item in expectation_suite(contract)}
    assert sources == {"schema", "quality"}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_example_runs_a_great_expectations_rule(path: Path) -> None:
    contract = example_contract(path.parent.name, path.stem)
    [obj] = contract.raw["schema"]
    located = [(f"/schema/0/quality/{index}", rule) for index, rule in enumerate(obj.get("quality", []))]
    for position, prop in enumerate(obj["properties"]):
        located += [
            (f"/schema/0/properties/{position}/quality/{index}", rule)
            for index, rule in enumerate(prop.get("quality", []))
        ]
    custom = [where for where, rule in located if rule.get("engine") == "greatExpectations"]

    assert custom
    assert set(custom) <= {item["meta"]["path"] for item in expectation_suite(contract)}


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_the_record_schema_accepts_a_realistic_record_and_rejects_a_broken_one(dataset_id: str) -> None:
    for version in versions_of(dataset_id):
        schema = record_schema(example_contract(dataset_id, version))
        validate = fastjsonschema.compile(schema)
        strict = jsonschema.Draft202012Validator(schema)

        record = EXAMPLE_RECORDS[dataset_id]()
        assert validate(record) == record
        assert strict.is_valid(record)

        broken = BROKEN_RECORDS[dataset_id]()
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            validate(broken)
        assert not strict.is_valid(broken)


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_the_second_version_is_higher_and_reads_what_the_first_accepted(dataset_id: str) -> None:
    first, second = (example_contract(dataset_id, version) for version in versions_of(dataset_id))
    old_schema, new_schema = record_schema(first), record_schema(second)

    assert second.semantic_version > first.semantic_version
    assert first.fingerprint != second.fingerprint
    # BACKWARD: consumers on the new version read data written under the old one. Every field
    # of the old version is still there, nothing became required, and an old record validates.
    assert set(old_schema["properties"]) < set(new_schema["properties"])
    assert set(new_schema["required"]) == set(old_schema["required"])
    added = set(new_schema["properties"]) - set(old_schema["properties"])
    assert all("null" in new_schema["properties"][name]["type"] for name in added)
    assert fastjsonschema.compile(new_schema)(EXAMPLE_RECORDS[dataset_id]())
    assert primary_key(first) == primary_key(second)


def test_the_bus_arrivals_contract_fits_the_kernels_example_event() -> None:
    from tests.factories import bus_arrival_event

    event = bus_arrival_event()
    contract = example_contract("transport.bus-arrivals", "1.0.0")

    assert fastjsonschema.compile(record_schema(contract))(event.data)
