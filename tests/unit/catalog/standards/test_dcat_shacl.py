"""The DCAT-AP export conforms to the official DCAT-AP 3.0.1 SHACL shapes.

The shapes are the release's own files (tests/data/dcat-ap-3.0.1, source in its README):
``shapes.ttl`` (mandatory and recommended properties, cardinalities), ``range.ttl`` (the class of
every property's value) and ``mdr-vocabularies.shape.ttl`` (values drawn from the EU controlled
vocabularies). Validation is plain SHACL, without inference and without the EU authority tables
as background knowledge: the export describes the concepts it uses itself.

Warnings are allowed: the only one the export raises is the recommendation to name publishers
from the EU corporate-bodies table, which a city department is not in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS

# The module, not its names: on an export without them, the tests fail rather than not load.
from services.catalog.standards import DatasetDescription, dcat, dcat_vocabularies
from services.catalog.standards.dcat import catalog_graph
from services.catalog.standards.dcat_serialization import catalog_turtle
from services.catalog.standards.dcat_vocabularies import VCARD, frequency_code
from tests.support.dcat import (
    CATALOG,
    CLASSIFICATIONS,
    DOMAINS,
    FREQUENCIES,
    LINKS,
    SHAPE_FILES,
    SHAPES_DIR,
    dataset,
    generated_datasets,
    publisher,
    violations,
)

STATUS_WORDS = ("active", "draft", "deprecated", "retired", "paused")
PUBLISHER_KINDS = ("department", "bureau", "district", "company", "research", "consortium")


@pytest.fixture(scope="module")
def shapes() -> Graph:
    graph = Graph()
    for name in SHAPE_FILES:
        graph.parse(SHAPES_DIR / name, format="turtle")
    return graph


def varied_datasets(count: int) -> Iterable[DatasetDescription]:
    """Datasets that between them use every value the export maps: statuses, frequencies,
    classifications, publisher kinds, Chinese titles, and descriptions left empty."""
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for i in range(count):
        domain = DOMAINS[i % len(DOMAINS)]
        kind = PUBLISHER_KINDS[i % len(PUBLISHER_KINDS)]
        yield dataset(
            id=f"{domain}.varied-{i}",
            title=f"公交到站 {i}" if i % 3 == 0 else f"Varied dataset {i}",
            description="" if i % 2 == 0 else ("   " if i % 5 == 0 else f"Dataset {i} of {domain}."),
            publisher=publisher(id=f"{kind}-{i % 4}", name=f"{kind} {i % 4}", kind=kind),
            domain=domain if i % 7 else "unmapped-domain",
            classification=CLASSIFICATIONS[i % len(CLASSIFICATIONS)],
            status=STATUS_WORDS[i % len(STATUS_WORDS)],
            created_at=start + timedelta(hours=i),
            updated_at=start + timedelta(days=2, hours=i),
            update_frequency=(*FREQUENCIES, "P3M", "PT90M", "nonsense")[i % (len(FREQUENCIES) + 3)],
            contract_version=None if i % 4 == 0 else f"2.{i}.0",
        )


def test_a_catalog_using_every_mapped_value_has_no_violation(shapes: Graph) -> None:
    graph = catalog_graph(varied_datasets(48), LINKS, CATALOG)

    assert violations(graph, shapes) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_generated_catalog_of_1000_datasets_has_no_violation(shapes: Graph) -> None:
    """The streamed Turtle a harvester reads, parsed back and validated as a whole."""
    data = Graph().parse(
        data="".join(catalog_turtle(generated_datasets(1000), LINKS, CATALOG)), format="turtle"
    )
    assert len(set(data.subjects(RDF.type, DCAT.Dataset))) == 1000

    started = time.perf_counter()
    found = violations(data, shapes)
    elapsed = time.perf_counter() - started

    assert found == [], f"{len(found)} violations, first: {found[:5]}"
    print(f"DCAT-AP 3.0.1 SHACL on 1,000 datasets ({len(data)} triples): {elapsed:.1f} s")


def test_the_shapes_catch_what_the_export_used_to_omit(shapes: Graph) -> None:
    """The validation can fail: the same catalog without concept labels, scheme titles and the
    homepage's class violates the shapes, once per concept and scheme."""
    graph = catalog_graph(varied_datasets(12), LINKS, CATALOG)
    graph.remove((None, SKOS.prefLabel, None))
    graph.remove((None, RDF.type, FOAF.Document))
    graph.remove((dcat_vocabularies.DATA_THEME_SCHEME, DCTERMS.title, None))

    found = violations(graph, shapes)

    concepts = set(graph.subjects(RDF.type, SKOS.Concept))
    assert len([line for line in found if str(SKOS.prefLabel) in line]) == len(concepts) > 10
    assert (
        len([line for line in found if f"{dcat_vocabularies.DATA_THEME_SCHEME} {DCTERMS.title}" in line]) == 1
    )
    assert f"{LINKS.catalog} {FOAF.homepage}: Value does not have class foaf:Document" in found


# --- language tags ---------------------------------------------------------------------------

TEXT_PREDICATES = (
    DCTERMS.title,
    DCTERMS.description,
    DCAT.keyword,
    FOAF.name,
    VCARD.fn,
    SKOS.prefLabel,
)


def test_every_title_description_name_and_label_carries_a_language_tag() -> None:
    graph = catalog_graph(varied_datasets(24), LINKS, CATALOG)

    texts = [obj for predicate in TEXT_PREDICATES for obj in graph.objects(None, predicate)]
    assert len(texts) > 24 * 4
    untagged = [obj for obj in texts if not isinstance(obj, Literal) or obj.language is None]
    assert untagged == []
    languages = {obj.language for obj in texts if isinstance(obj, Literal)}
    assert languages == {"en", "zh"}


def test_chinese_text_is_tagged_zh_and_english_text_en() -> None:
    graph = catalog_graph(
        [
            dataset(title="公交到站", tags=("公交", "bus")),
            dataset(id="transport.trams", title="Tram arrivals"),
        ],
        LINKS,
        CATALOG,
    )

    def title(dataset_id: str) -> Literal:
        value = graph.value(URIRef(LINKS.dataset(dataset_id)), DCTERMS.title)
        assert isinstance(value, Literal)
        return value

    assert title("transport.bus-arrivals").language == "zh"
    assert title("transport.trams").language == "en"
    keywords = graph.objects(URIRef(LINKS.dataset("transport.bus-arrivals")), DCAT.keyword)
    assert {(str(k), k.language) for k in keywords if isinstance(k, Literal)} == {
        ("公交", "zh"),
        ("bus", "en"),
    }


# --- descriptions ----------------------------------------------------------------------------


def test_no_dataset_is_exported_with_an_empty_description() -> None:
    graph = catalog_graph(varied_datasets(24), LINKS, CATALOG)

    for ds in graph.subjects(RDF.type, DCAT.Dataset):
        assert str(graph.value(ds, DCTERMS.description)).strip(), ds


def test_an_empty_description_is_derived_from_the_contract() -> None:
    derived = dcat.description(
        dataset(
            description=" ",
            record_schema={"type": "object", "properties": {"arrival_id": {}, "stop_id": {}, "delay_s": {}}},
        )
    )

    assert derived.startswith(
        "Bus arrivals: records of the transport domain published by Municipal Transport Bureau"
    )
    assert "(every minute)" in derived
    assert "ODCS data contract 1.2.0" in derived
    assert "arrival_id, stop_id, delay_s" in derived
    assert "keyed by arrival_id" in derived
    assert dcat.description(dataset(description="", contract_version=None)).endswith(
        "no data contract is registered yet."
    )
    assert dcat.description(dataset(description="Given.")) == "Given."


# --- the vocabulary tables -------------------------------------------------------------------


def test_every_code_the_export_can_emit_has_a_label() -> None:
    assert set(dcat_vocabularies.THEMES.values()) <= set(dcat_vocabularies.THEME_VOCABULARY.labels)
    assert set(dcat_vocabularies.ACCESS_RIGHTS.values()) <= set(
        dcat_vocabularies.ACCESS_RIGHT_VOCABULARY.labels
    )
    assert set(dcat_vocabularies.STATUSES.values()) <= set(dcat_vocabularies.DATASET_STATUS_VOCABULARY.labels)
    assert set(dcat_vocabularies.STATUSES.values()) <= set(
        dcat_vocabularies.DISTRIBUTION_STATUS_VOCABULARY.labels
    )
    assert set(dcat_vocabularies.PUBLISHER_TYPES.values()) <= set(
        dcat_vocabularies.PUBLISHER_TYPE_VOCABULARY.labels
    )
    durations = [None, "PT1S", "PT1M", "PT5M", "PT10M", "PT15M", "PT30M", "PT1H", "PT2H", "PT3H"]
    durations += ["PT12H", "P1D", "P1W", "P2W", "P1M", "P2M", "P3M", "P6M", "P1Y", "P2Y", "P3Y"]
    durations += ["PT7M", "garbage"]
    assert {frequency_code(d) for d in durations} == set(dcat_vocabularies.FREQUENCY_VOCABULARY.labels)
