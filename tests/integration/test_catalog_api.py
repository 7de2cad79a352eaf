"""The catalog through its HTTP API, on SQLite and on PostgreSQL: contracts, compatibility,
search, keys, and the standard interfaces (DCAT-AP 3, AsyncAPI 3, ODCS as stored)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import rdflib
from jsonschema import Draft7Validator
from rdflib.namespace import DCAT, RDF

from services.catalog import examples as catalog_examples
from services.catalog.runtime import CatalogRuntime
from services.common import db
from tests.factories import EXAMPLES, contract_property, evolve_contract, example_contract
from tests.support.services import CatalogHarness

ODCS_EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "odcs" / "examples"

YAML = {"Content-Type": "application/yaml"}
BUS = "transport.bus-arrivals"


def _register(catalog: CatalogHarness, text: str, key: str | None = None) -> Any:
    return catalog.call("POST", "/v1/contracts", key, content=text.encode(), headers=YAML)


def _load_examples(catalog: CatalogHarness) -> list[str]:
    with db.unit_of_work(catalog.runtime.sessions) as session:
        return catalog_examples.load_examples(
            session, events=catalog.runtime.service_as(CatalogRuntime).events, directory=EXAMPLES
        )


def test_a_contract_creates_its_dataset_and_evolves_compatibly(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])
    first = _register(catalog, example_contract(BUS, "1.0.0"))
    assert first.status_code == 201, first.text
    assert first.json()["primary_key"] == ["arrival_id"] or first.json()["primary_key"]
    dataset = catalog.call("GET", f"/v1/datasets/{BUS}").json()
    assert dataset["owner_department_id"] == "transport-bureau"
    assert dataset["classification"] == "open"
    assert dataset["current_version"] == "1.0.0"
    assert dataset["topics"] == {"records": f"ds.{BUS}", "dead_letter": f"dlq.{BUS}", "raw": f"raw.{BUS}"}

    second = _register(catalog, example_contract(BUS, "1.1.0"))
    assert second.status_code == 201, second.text
    assert catalog.call("GET", f"/v1/datasets/{BUS}").json()["current_version"] == "1.1.0"
    versions = catalog.call("GET", f"/v1/datasets/{BUS}/contract-versions").json()
    assert [v["version"] for v in versions] == ["1.0.0", "1.1.0"]
    stored = catalog.call("GET", f"/v1/datasets/{BUS}/contract", params={"version": "1.0.0"})
    assert stored.text == example_contract(BUS, "1.0.0")
    assert stored.headers["content-type"].startswith("application/yaml")


def _drop_required_field(document: dict[str, Any]) -> None:
    document["schema"][0]["properties"].append(
        {"name": "driver_badge", "logicalType": "string", "required": True, "description": "new and required"}
    )


def test_an_incompatible_version_is_refused_with_each_breaking_change(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])
    assert _register(catalog, example_contract(BUS)).status_code == 201
    breaking = evolve_contract(example_contract(BUS), "2.0.0", _drop_required_field)

    dry_run = catalog.call(
        "POST", f"/v1/datasets/{BUS}/contract-versions/check", content=breaking, headers=YAML
    )
    assert dry_run.status_code == 200
    report = dry_run.json()
    assert report["compatible"] is False
    assert report["checked_against"] == ["1.0.0"]
    assert [(c["path"], c["rule"]) for c in report["breaking_changes"]] == [
        ("/driver_badge", "field-added-required")
    ]

    refused = _register(catalog, breaking)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/incompatible-contract")
    assert body["breaking_changes"][0]["path"] == "/driver_badge"
    # nothing partially written
    assert catalog.call("GET", f"/v1/datasets/{BUS}").json()["current_version"] == "1.0.0"

    catalog.call("PATCH", f"/v1/datasets/{BUS}", json={"compatibility_mode": "NONE"}).raise_for_status()
    assert _register(catalog, breaking).status_code == 201


def test_a_version_must_be_higher_than_the_last(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])
    assert _register(catalog, example_contract(BUS, "1.1.0")).status_code == 201
    again = _register(catalog, example_contract(BUS, "1.0.0"))
    assert again.status_code == 409
    assert again.json()["type"].endswith("/version-not-higher")


def test_bad_documents_get_a_4xx_that_names_the_place(catalog: CatalogHarness) -> None:
    malformed = _register(catalog, "apiVersion: v3.1.0\nkind: [unclosed\n")
    assert malformed.status_code == 422
    assert malformed.json()["errors"]

    not_odcs = _register(catalog, "apiVersion: v2.2.0\nkind: DataContract\nid: x.y\nversion: 1.0.0\n")
    assert not_odcs.status_code == 422

    def unknown_field(document: dict[str, Any]) -> None:
        contract_property(document, "delay_s")["colour"] = "red"

    unknown = _register(catalog, evolve_contract(example_contract(BUS), "1.0.0", unknown_field))
    assert unknown.status_code == 422
    assert any(error["path"].endswith("/colour") for error in unknown.json()["errors"])

    bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    assert _register(catalog, bomb).status_code == 422

    huge = _register(catalog, "description: " + "x" * (1024 * 1024 + 10))
    assert huge.status_code == 413
    assert catalog.call("GET", "/v1/datasets").json()["items"] == []


def test_search_filters_and_pages(catalog: CatalogHarness) -> None:
    assert len(_load_examples(catalog)) == 10
    found = catalog.call("GET", "/v1/datasets", params={"q": "wait"}).json()["items"]
    assert [d["id"] for d in found] == ["health.outpatient-visits"]
    by_domain = catalog.call("GET", "/v1/datasets", params={"domain": "market"}).json()["items"]
    assert [d["id"] for d in by_domain] == ["market.inspections"]
    open_data = catalog.call("GET", "/v1/datasets", params={"classification": "open"}).json()["items"]
    assert {d["id"] for d in open_data} == {"spatial.building-permits", "transport.bus-arrivals"}

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = catalog.call(
            "GET", "/v1/datasets", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 5

    invalid = catalog.call("GET", "/v1/datasets", params={"cursor": "%%%"})
    assert invalid.status_code == 422
    assert catalog.call("GET", "/v1/datasets", params={"limit": 1000}).status_code == 422


def test_departments_publish_only_their_own_datasets(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])
    catalog.department("health-commission", ["health"])
    transport = catalog.principal_key("transport-publisher", "department", "transport-bureau")
    health = catalog.principal_key("health-publisher", "department", "health-commission")
    assert _register(catalog, example_contract(BUS), key=health).status_code == 403
    assert _register(catalog, example_contract(BUS), key=transport).status_code == 201
    assert _register(catalog, example_contract(BUS, "1.1.0"), key=health).status_code == 403
    scenario = catalog.principal_key("one-stop-visit", "scenario")
    assert _register(catalog, example_contract(BUS, "1.1.0"), key=scenario).status_code == 403
    assert catalog.call("GET", f"/v1/datasets/{BUS}", scenario).status_code == 200


def test_keys_are_shown_once_and_a_revoked_key_stops_within_a_second(catalog: CatalogHarness) -> None:
    # A department lists its own keys; a scenario's are the admin's to manage (docs/authorization.md).
    catalog.department("transport-bureau", ["transport"])
    key = catalog.principal_key("transport-publisher", "department", "transport-bureau")
    assert catalog.call("GET", "/v1/datasets", key).status_code == 200
    listed = catalog.call("GET", "/v1/principals/transport-publisher/keys", key).json()
    assert len(listed) == 1 and "key" not in listed[0]
    assert key not in json.dumps(listed)
    other = catalog.principal_key("ai-community", "scenario")
    assert catalog.call("GET", "/v1/principals/transport-publisher/keys", other).status_code == 403
    assert catalog.call("GET", "/v1/principals/ai-community/keys", other).status_code == 403

    prefix = listed[0]["prefix"]
    revoked = catalog.call("DELETE", f"/v1/principals/transport-publisher/keys/{prefix}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    started = time.monotonic()
    while catalog.call("GET", "/v1/datasets", key).status_code != 401:
        assert time.monotonic() - started < 1.0, "a revoked key still worked after a second"
        time.sleep(0.02)


def test_an_admin_reads_any_principal_and_every_other_role_only_itself(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])
    publisher = catalog.principal_key("transport-publisher", "department", "transport-bureau")
    scenario = catalog.principal_key("one-stop-visit", "scenario")
    operator = catalog.principal_key("city-ops", "operator")
    read = catalog.call("GET", "/v1/principals/transport-publisher")
    assert read.status_code == 200, read.text
    assert {k: read.json()[k] for k in ("id", "kind", "name", "department_id", "status")} == {
        "id": "transport-publisher",
        "kind": "department",
        "name": "transport-publisher",
        "department_id": "transport-bureau",
        "status": "active",
    }
    for key, principal_id in (
        (publisher, "transport-publisher"),
        (scenario, "one-stop-visit"),
        (operator, "city-ops"),
    ):
        itself = catalog.call("GET", f"/v1/principals/{principal_id}", key)
        assert itself.status_code == 200 and itself.json()["id"] == principal_id, itself.text
    for key in (scenario, operator):
        refused = catalog.call("GET", "/v1/principals/transport-publisher", key)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    unknown = catalog.call("GET", "/v1/principals/nobody-here")
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("/principal-not-found")
    # a refusal is on the trail, naming the principal asked for
    denied = catalog.call("GET", "/v1/audit", params={"action": "principal.read"}).json()["items"]
    assert {(e["actor_id"], e["resource_id"], e["outcome"]) for e in denied} >= {
        ("one-stop-visit", "transport-publisher", "denied"),
        ("city-ops", "transport-publisher", "denied"),
    }


def test_a_key_is_issued_with_the_defaults_without_a_body(catalog: CatalogHarness) -> None:
    # Every field of the request is optional: no body and an empty body mean the same as {}.
    catalog.principal_key("ai-community", "scenario")
    path = "/v1/principals/ai-community/keys"
    issued = [
        catalog.call("POST", path),
        catalog.call("POST", path, content=b"", headers={"Content-Type": "application/json"}),
        catalog.call("POST", path, json={}),
    ]
    assert [response.status_code for response in issued] == [201, 201, 201], [r.text for r in issued]
    assert all(response.json()["key"] and response.json()["name"] == "" for response in issued)
    listed = catalog.call("GET", path).json()
    assert {response.json()["prefix"] for response in issued} <= {key["prefix"] for key in listed}


def test_no_key_or_a_forged_key_is_a_401_problem(catalog: CatalogHarness) -> None:
    # The dataset search is public (docs/authorization.md, "Public read"); grants never are.
    response = catalog.client.get("/v1/grants")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    forged = catalog.client.get("/v1/datasets", headers={"Authorization": "Bearer cbk_00000000_forged"})
    assert forged.status_code == 401
    assert catalog.call("GET", "/v1/datasets/nothing.here").status_code == 404


def test_dcat_export_parses_and_describes_every_dataset(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    turtle = catalog.call("GET", "/v1/catalog", params={"format": "turtle"})
    assert turtle.headers["content-type"].startswith("text/turtle")
    graph = rdflib.Graph().parse(data=turtle.text, format="turtle")
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 5
    jsonld = catalog.call("GET", "/v1/catalog", headers={"Accept": "application/ld+json"})
    assert (
        len(set(rdflib.Graph().parse(data=jsonld.text, format="json-ld").subjects(RDF.type, DCAT.Dataset)))
        == 5
    )
    one = catalog.call("GET", f"/v1/datasets/{BUS}/dcat", params={"format": "turtle"})
    assert (
        len(set(rdflib.Graph().parse(data=one.text, format="turtle").subjects(RDF.type, DCAT.Dataset))) == 1
    )


def test_asyncapi_documents_are_valid_asyncapi_3(
    catalog: CatalogHarness, asyncapi_3: Draft7Validator
) -> None:
    _load_examples(catalog)
    document = catalog.call("GET", f"/v1/datasets/{BUS}/asyncapi").json()
    assert not list(asyncapi_3.iter_errors(document))
    assert document["channels"][f"ds.{BUS}"]["address"] == f"ds.{BUS}"
    platform = catalog.call("GET", "/v1/asyncapi").json()
    assert not list(asyncapi_3.iter_errors(platform))
    assert "platform.catalog" in platform["channels"]


def test_an_official_odcs_example_registers_as_it_is_or_gets_every_problem_in_one_answer(
    catalog: CatalogHarness,
) -> None:
    """Issue 18: the ODCS repository's examples, posted as they are by a department of ``seller``."""
    created = catalog.call("POST", "/v1/domains", json={"id": "seller", "name": "Seller"})
    assert created.status_code == 201, created.text
    catalog.department("seller-office", ["seller"])
    key = catalog.principal_key("seller-publisher", "department", "seller-office")
    catalog.wait_for_key(key)
    yaml_body = {"Content-Type": "application/yaml"}
    kafka = (ODCS_EXAMPLES / "schema" / "kafka-schema.odcs.yaml").read_bytes()
    registered = catalog.call("POST", "/v1/contracts", key, content=kafka, headers=yaml_body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["dataset_id"] == "seller.orders-event-stream"
    several = (ODCS_EXAMPLES / "schema" / "all-schema-types.odcs.yaml").read_bytes()
    refused = catalog.call("POST", "/v1/contracts", key, content=several, headers=yaml_body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/contract-mismatch")
    [error] = refused.json()["errors"]
    assert (error["path"], error["rule"]) == ("/schema", "one-schema-object")
    assert "'tbl', 'AnObject', 'AnotherObject'" in error["message"]
    unnamed = (ODCS_EXAMPLES / "server" / "azure-server.odcs.yaml").read_bytes()
    refused = catalog.call("POST", "/v1/contracts", key, content=unnamed, headers=yaml_body)
    assert [(e["path"], e["rule"]) for e in refused.json()["errors"]] == [("/id", "dataset-id")]


def test_a_contract_whose_id_is_not_a_dataset_id_is_refused_with_its_path(catalog: CatalogHarness) -> None:
    catalog.department("transport-bureau", ["transport"])

    def rename(document: dict[str, Any]) -> None:
        document["id"] = "transport.a"

    contract = evolve_contract(example_contract("transport.bus-arrivals"), "1.0.0", rename)
    response = catalog.call("POST", "/v1/contracts", content=contract)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("/contract-mismatch")
    assert [error["path"] for error in problem["errors"]] == ["/id"]
    assert catalog.call("GET", "/v1/datasets/transport.a").status_code == 404
