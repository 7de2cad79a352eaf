"""The DCAT-AP export of a running catalog: the example catalog conforms to the DCAT-AP 3.0.1
SHACL shapes, and the URIs it names for its publishers and homepage answer."""

from __future__ import annotations

from typing import Any

import rdflib
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from services.catalog import examples as catalog_examples
from services.catalog.runtime import CatalogRuntime
from services.catalog.standards.dcat_vocabularies import VCARD
from services.common import db
from tests.factories import EXAMPLES, evolve_contract, example_contract
from tests.support.dcat import SHAPE_FILES, SHAPES_DIR, violations
from tests.support.services import CatalogHarness

YAML = {"Content-Type": "application/yaml"}
UNDESCRIBED = "transport.tram-arrivals"


def _load_examples(catalog: CatalogHarness) -> None:
    with db.unit_of_work(catalog.runtime.sessions) as session:
        catalog_examples.load_examples(
            session, events=catalog.runtime.service_as(CatalogRuntime).events, directory=EXAMPLES
        )


def _register_without_description(catalog: CatalogHarness) -> None:
    """A contract with no description at all: the dataset is stored with an empty one."""

    def strip(document: dict[str, Any]) -> None:
        document["id"] = UNDESCRIBED
        document.pop("description", None)
        for schema_object in document.get("schema") or []:
            schema_object["physicalName"] = f"ds.{UNDESCRIBED}"

    text = evolve_contract(example_contract("transport.bus-arrivals"), "1.0.0", strip)
    answer = catalog.call("POST", "/v1/contracts", content=text.encode(), headers=YAML)
    assert answer.status_code == 201, answer.text
    assert catalog.call("GET", f"/v1/datasets/{UNDESCRIBED}").json()["description"] == ""


def _export(catalog: CatalogHarness) -> rdflib.Graph:
    turtle = catalog.call("GET", "/v1/catalog", params={"format": "turtle"})
    assert turtle.status_code == 200, turtle.text
    return rdflib.Graph().parse(data=turtle.text, format="turtle")


def _path(catalog: CatalogHarness, uri: str) -> str:
    """The catalog app's path of a URI the export names (its links are below ``/catalog``)."""
    prefix = "http://testserver/catalog"
    assert uri.startswith(prefix + "/"), uri
    return uri.removeprefix(prefix)


def test_the_example_catalog_has_no_dcat_ap_violation(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    _register_without_description(catalog)
    graph = _export(catalog)
    shapes = rdflib.Graph()
    for name in SHAPE_FILES:
        shapes.parse(SHAPES_DIR / name, format="turtle")

    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 6
    assert violations(graph, shapes) == []
    for ds in graph.subjects(RDF.type, DCAT.Dataset):
        for predicate in (DCTERMS.title, DCTERMS.description):
            value = graph.value(ds, predicate)
            assert isinstance(value, rdflib.Literal) and str(value).strip() and value.language == "en", ds
    derived = str(
        graph.value(
            rdflib.URIRef(f"http://testserver/catalog/v1/datasets/{UNDESCRIBED}"), DCTERMS.description
        )
    )
    assert "published by Municipal Transport Bureau" in derived
    assert "arrival_id" in derived


def test_the_publishers_and_the_homepage_the_export_names_answer(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    graph = _export(catalog)
    publishers = set(graph.objects(None, DCTERMS.publisher))
    homepages = set(graph.objects(None, FOAF.homepage))
    # The city (the catalog's publisher, a fragment of the catalog's URI) and the five example
    # departments (their department URIs).
    assert len(publishers) == 6
    assert len(homepages) == 1

    for agent in publishers:
        document, _, fragment = str(agent).partition("#")
        for accept, fmt in (("text/turtle", "turtle"), ("application/ld+json", "json-ld")):
            answer = catalog.call("GET", _path(catalog, document), headers={"Accept": accept})
            assert answer.status_code == 200, (agent, answer.text)
            assert answer.headers["content-type"].startswith(accept)
            described = rdflib.Graph().parse(data=answer.text, format=fmt)
            assert (agent, RDF.type, FOAF.Agent) in described
            assert described.value(agent, FOAF.name) == graph.value(agent, FOAF.name)
            if not fragment:
                assert (rdflib.URIRef(f"{agent}#contact"), RDF.type, VCARD.Kind) in described
    for page in homepages:
        answer = catalog.call("GET", _path(catalog, str(page)))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")


def test_a_department_is_json_unless_rdf_is_asked_for(catalog: CatalogHarness) -> None:
    _load_examples(catalog)

    plain = catalog.call("GET", "/v1/departments/putuo-district")
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["name"] == "Putuo District"
    missing = catalog.call("GET", "/v1/departments/nobody", headers={"Accept": "text/turtle"})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
