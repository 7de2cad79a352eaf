"""Which dataset a contract describes (issue 18): its id when it is a dataset id, else the
citybase.datasetId custom property, else domain + name; the ODCS domain honoured; every problem
of a contract in one answer; a contract without a schema a catalog entry with a closed stream."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.contracts import service as contracts
from services.catalog.contracts.identity import dataset_identity, slug
from services.catalog.contracts.odcs import ContractInvalid
from services.catalog.exceptions import ContractMismatch, DomainNotFound, DomainOwnedByAnotherDepartment
from services.common import catalog_events
from services.common.auth import Principal
from tests.factories import evolve_contract, example_contract
from tests.support.catalog_units import HEALTH, TRANSPORT, CatalogWorld

BUS = "transport.bus-arrivals"


def _ctx(world: CatalogWorld, actor: Principal = TRANSPORT) -> Collaborators:
    return Collaborators(world.session, world.events, world.auditor(actor), AccessSettings())


def _bus_contract(change: Any) -> bytes:
    """The bus-arrivals example without its citybase.department (the publisher's is used)."""

    def edit(document: dict[str, Any]) -> None:
        document["customProperties"] = [
            custom for custom in document["customProperties"] if custom["property"] != "citybase.department"
        ]
        change(document)

    return evolve_contract(example_contract(BUS), "1.0.0", edit).encode()


def test_the_dataset_id_is_the_id_then_the_custom_property_then_domain_and_name() -> None:
    assert dataset_identity({"id": BUS}, default_domain=None)[0].dataset_id == BUS  # type: ignore[union-attr]
    uuid = "53581432-6c55-4ba2-a65f-72344a91553a"
    named = {"id": uuid, "customProperties": [{"property": "citybase.datasetId", "value": "transport.fares"}]}
    assert dataset_identity(named, default_domain=None)[0].dataset_id == "transport.fares"  # type: ignore[union-attr]
    by_name = {"id": uuid, "domain": "Transport", "name": "Bus Arrivals", "dataProduct": "buses"}
    identity, errors = dataset_identity(by_name, default_domain="health")
    assert errors == [] and identity is not None
    assert (identity.dataset_id, identity.source) == ("transport.bus-arrivals", "domain and name")
    product = dataset_identity({"id": "x", "dataProduct": "my quantum"}, default_domain="seller")[0]
    assert product is not None and product.dataset_id == "seller.my-quantum"
    assert slug("my_table") == "my-table" and slug("1st") is None and slug(None) is None


def test_when_nothing_names_a_dataset_the_error_says_the_three_ways() -> None:
    identity, errors = dataset_identity({"id": "orders"}, default_domain=None)
    assert identity is None
    [error] = errors
    assert error.path == "/id" and error.rule == "dataset-id"
    for words in (
        "'orders' is not a dataset id",
        "citybase.datasetId",
        "names no domain",
        "no name, dataProduct",
    ):
        assert words in error.message


def test_a_bad_custom_property_and_a_domain_the_id_contradicts_are_pointed_at() -> None:
    _, errors = dataset_identity(
        {"id": "x", "customProperties": [{"property": "citybase.datasetId", "value": "Fares"}]},
        default_domain="transport",
    )
    assert [(e.path, e.rule) for e in errors] == [("/customProperties/0/value", "dataset-id")]
    _, errors = dataset_identity({"id": BUS, "domain": "health"}, default_domain=None)
    assert [(e.path, e.rule) for e in errors] == [("/domain", "dataset-domain")]
    assert "in domain 'transport'" in errors[0].message


def test_a_contract_with_a_uuid_id_registers_under_its_domain_and_name(catalog: CatalogWorld) -> None:
    def rename(document: dict[str, Any]) -> None:
        document["id"] = "6aeafdc1-ed62-4c8f-bf0a-da1061c98cdb"
        document["domain"] = "transport"
        document["name"] = "Bus arrivals"

    read = contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=_bus_contract(rename))
    assert read.dataset_id == BUS
    catalog.session.commit()
    # The next version names the same dataset the same way, also at the dataset's own address.
    following = evolve_contract(_bus_contract(rename).decode(), "1.0.1").encode()
    again = contracts.register_version(_ctx(catalog), actor=TRANSPORT, dataset_id=BUS, document=following)
    assert (again.dataset_id, again.version) == (BUS, "1.0.1")


def test_the_odcs_domain_must_be_one_the_department_may_publish_to(catalog: CatalogWorld) -> None:
    def to_health(document: dict[str, Any]) -> None:
        document["id"] = "arrivals"
        document["domain"] = "health"

    with pytest.raises(DomainOwnedByAnotherDepartment):
        contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=_bus_contract(to_health))
    catalog.session.rollback()

    def to_nowhere(document: dict[str, Any]) -> None:
        document["id"] = "arrivals"
        document["domain"] = "weather"

    with pytest.raises(DomainNotFound) as missing:
        contracts.register_contract(_ctx(catalog), actor=HEALTH, document=_bus_contract(to_nowhere))
    assert missing.value.body()["domain_id"] == "weather"
    assert missing.value.body()["dataset_id"] == "weather.bus-arrivals"  # domain and name


def test_an_id_that_reads_as_a_dataset_id_but_does_not_fit_is_refused_not_replaced(
    catalog: CatalogWorld,
) -> None:
    def misspelt(document: dict[str, Any]) -> None:
        document["id"] = "Transport.Bus-Arrivals"

    with pytest.raises(ContractMismatch) as refused:
        contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=_bus_contract(misspelt))
    assert [(e.path, e.rule) for e in refused.value.errors or []] == [("/id", "dataset-id")]
    assert "reads as a dataset id but is not one" in (refused.value.errors or [])[0].message


def test_every_problem_of_a_contract_comes_in_one_answer(catalog: CatalogWorld) -> None:
    def break_everything(document: dict[str, Any]) -> None:
        document["id"] = "orders"
        del document["name"]
        document["domain"] = "42nd street"
        document["schema"][0]["properties"][0]["logicalType"] = "decimal-ish"
        document["schema"].append(
            {"name": "stops", "properties": [{"name": "stop_id", "logicalType": "string"}]}
        )

    with pytest.raises(ContractInvalid) as refused:
        contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=_bus_contract(break_everything))
    rules = {(e.path, e.rule) for e in refused.value.errors or []}
    assert ("/domain", "dataset-domain") in rules  # the domain cannot be a citybase domain
    assert ("/schema", "one-schema-object") in rules  # two objects, named
    assert any(path.startswith("/schema/0/properties/0") for path, _ in rules)  # the ODCS schema's error
    named = next(e for e in refused.value.errors or [] if e.rule == "one-schema-object")
    assert "'stops'" in named.message


def test_a_contract_without_a_schema_is_a_catalog_entry_until_a_version_has_one(
    catalog: CatalogWorld,
) -> None:
    def without_schema(document: dict[str, Any]) -> None:
        del document["schema"]

    first = _bus_contract(without_schema)
    read = contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=first)
    catalog.session.commit()
    stored = contracts.get_version(catalog.session, dataset_id=BUS)
    assert (read.dataset_id, stored.record_schema, stored.primary_key) == (BUS, {}, [])
    announced = catalog.announced(catalog_events.CONTRACT_VERSION)
    assert announced[-1]["record_schema"] == {}
    with_schema = _bus_contract(lambda document: document.update(version="1.1.0"))
    contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=with_schema)
    assert contracts.get_version(catalog.session, dataset_id=BUS).record_schema["properties"]
    # Once the stream has a schema, a later version keeps one.
    dropped = yaml.safe_load(with_schema)
    dropped["version"] = "1.2.0"
    del dropped["schema"]
    with pytest.raises(Exception, match="keeps a schema"):
        contracts.register_contract(
            _ctx(catalog), actor=TRANSPORT, document=yaml.safe_dump(dropped, sort_keys=False).encode()
        )
