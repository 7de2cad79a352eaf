"""Official ODCS v3 contracts register as they are (issue 18): the standard's own examples, each
checked against the standard's JSON Schema, and the rules that name a contract's dataset."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from services.catalog.contracts.syntax import load_yaml
from tests.support.catalog_units import CatalogWorld, new_catalog_world
from tests.support.odcs_examples import (
    ODCS_DATA,
    ODCS_EXAMPLES,
    ODCS_SCHEMAS,
    register_every_example,
)

REGISTERED_BEFORE = 0
"""Measured on commit 53a4136 (before the ODCS identity rules) with tests/support/odcs_examples.py: every example was refused (the
dataset id had to be the ODCS id; no schema-less contract was accepted)."""

REFUSED = {
    # Several schema objects: refused, naming them, rather than cut to the first.
    "all/full-example.odcs.yaml": ("one-schema-object", "('tbl', 'receivers')"),
    "schema/all-schema-types.odcs.yaml": ("one-schema-object", "('tbl', 'AnObject', 'AnotherObject')"),
    "all/postgresql-adventureworks-contract.odcs.yaml": ("one-schema-object", "68 schema objects"),
    # A UUID or a plain word for id, and nothing else to name the dataset by.
    "server/azure-server.odcs.yaml": ("dataset-id", "id 'abc123' is not a dataset id"),
}


@pytest.fixture
def new_world(tmp_path: Path) -> Callable[[], CatalogWorld]:
    counter = itertools.count()

    def make() -> CatalogWorld:
        directory = tmp_path / str(next(counter))
        directory.mkdir()
        return new_catalog_world(directory)

    return make


def _name(path: Path) -> str:
    return str(path.relative_to(ODCS_DATA / "examples"))


def test_the_examples_are_the_eighteen_of_the_odcs_repository() -> None:
    assert len(ODCS_EXAMPLES) == 18
    assert set(ODCS_SCHEMAS) == {"v3.1.0"}


def _odcs_json_schema() -> jsonschema.Draft201909Validator:
    return jsonschema.Draft201909Validator(json.loads(ODCS_SCHEMAS["v3.1.0"].read_text()))


@pytest.mark.parametrize("path", ODCS_EXAMPLES, ids=_name)
def test_every_example_read_the_yaml_1_2_way_follows_the_odcs_json_schema(path: Path) -> None:
    document = load_yaml(path.read_text())
    assert [error.message for error in _odcs_json_schema().iter_errors(document)] == []


def test_a_date_in_examples_stays_a_string_as_yaml_1_2_reads_it() -> None:
    text = (ODCS_DATA / "examples" / "fundamentals" / "table-column-description.odcs.yaml").read_text()
    assert "- 2022-10-03" in text
    examples = load_yaml(text)["schema"][0]["properties"][0]["examples"]
    assert examples[0] == "2022-10-03"
    # Read the YAML 1.1 way (PyYAML's default), the same document fails the official schema.
    assert list(_odcs_json_schema().iter_errors(yaml.safe_load(text)))


def test_every_example_registers_or_is_refused_saying_exactly_why(
    new_world: Callable[[], CatalogWorld],
) -> None:
    outcomes = {outcome.example: outcome for outcome in register_every_example(new_world)}
    registered = sorted(name for name, outcome in outcomes.items() if outcome.dataset_id is not None)
    print(
        f"ODCS examples registered: {REGISTERED_BEFORE} of {len(outcomes)} before the identity rules, "
        f"{len(registered)} of {len(outcomes)} now"
    )
    assert len(registered) == len(ODCS_EXAMPLES) - len(REFUSED) == 14
    for name, (rule, words) in REFUSED.items():
        problem = outcomes[name].problem or ""
        assert rule in problem and words in problem, (name, problem)
    ids = {name: outcomes[name].dataset_id for name in registered}
    assert ids["schema/kafka-schema.odcs.yaml"] == "seller.orders-event-stream"  # domain + name
    assert ids["server/kafka-server.odcs.yaml"] == "seller.orders"  # domain + its one object
    assert ids["data-types/all-data-types.odcs.yaml"] == "seller.my-table"  # name before dataProduct
