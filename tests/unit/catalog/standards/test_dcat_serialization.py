"""The DCAT-AP 3 documents as written: the streamed catalog is the catalog graph, one dataset's
Turtle and JSON-LD are its graph, any user text survives both, and memory stays flat."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCAT

from services.catalog.standards import (
    DatasetDescription,
)
from services.catalog.standards.dcat import catalog_graph, catalog_triples, dataset_graph, dataset_triples
from services.catalog.standards.dcat_serialization import (
    catalog_jsonld,
    catalog_turtle,
    dataset_jsonld,
    dataset_turtle,
)
from tests.support.dcat import (
    CATALOG,
    LINKS,
    STREAM_FORMATS,
    dataset,
    generated_datasets,
    jsonld_parser_warning,
    parse_rdf,
    publisher,
    streamed,
)

# --- the streamed catalog is the catalog graph ---------------------------------------------


@pytest.mark.parametrize("fmt", STREAM_FORMATS)
def test_the_streamed_catalog_is_the_union_of_the_per_dataset_graphs(fmt: str) -> None:
    datasets = list(generated_datasets(25))

    text = "".join(streamed(fmt)(iter(datasets), LINKS, CATALOG))

    expected = Graph()
    for triple in catalog_triples(CATALOG, LINKS):
        expected.add(triple)
    for described in datasets:
        expected += dataset_graph(described, LINKS)
        expected.add((URIRef(LINKS.catalog), DCAT.dataset, URIRef(LINKS.dataset(described.id))))
    assert isomorphic(parse_rdf(text, fmt), expected)
    assert isomorphic(parse_rdf(text, fmt), catalog_graph(datasets, LINKS, CATALOG))


def test_turtle_prefixes_are_written_once() -> None:
    chunks = list(catalog_turtle(generated_datasets(5), LINKS, CATALOG))

    assert len(chunks) == 1 + 5
    assert chunks[0].startswith("@prefix dcat: <http://www.w3.org/ns/dcat#> .")
    assert not any("@prefix" in chunk for chunk in chunks[1:])
    # each dataset chunk is Turtle on its own once the prefixes are in front of it
    header = chunks[0].split("\n\n", 1)[0]
    assert len(parse_rdf(header + "\n" + chunks[3], "turtle")) > 50


def test_json_ld_stream_is_one_document_with_one_context() -> None:
    chunks = list(catalog_jsonld(generated_datasets(5), LINKS, CATALOG))

    document = json.loads("".join(chunks))
    assert set(document) == {"@context", "@graph"}
    assert sum("@context" in chunk for chunk in chunks) == 1
    datasets = [node for node in document["@graph"] if node.get("@type") == "dcat:Dataset"]
    assert len(datasets) == 5


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_the_stream_reads_its_input_lazily(fmt: str) -> None:
    pulled = 0

    def cursor() -> Iterator[DatasetDescription]:
        nonlocal pulled
        for described in generated_datasets(1000):
            pulled += 1
            yield described

    stream = streamed(fmt)(cursor(), LINKS, CATALOG)
    next(stream)  # prefixes / context and the catalog
    next(stream)  # the first dataset
    assert pulled == 1


# --- one dataset ----------------------------------------------------------------------------


def test_dataset_turtle_is_the_dataset_graph() -> None:
    described = dataset()

    assert isomorphic(parse_rdf(dataset_turtle(described, LINKS), "turtle"), dataset_graph(described, LINKS))


@jsonld_parser_warning
def test_dataset_jsonld_is_the_dataset_graph() -> None:
    described = dataset()
    document = dataset_jsonld(described, LINKS)

    assert document["@context"]["dcat"] == str(DCAT)
    node = next(node for node in document["@graph"] if node["@id"] == LINKS.dataset(described.id))
    assert node["@type"] == "dcat:Dataset"
    assert node["dct:title"] == {"@value": "Bus arrivals", "@language": "en"}
    assert node["dcat:keyword"] == [
        {"@value": "bus", "@language": "en"},
        {"@value": "realtime", "@language": "en"},
    ]
    assert isomorphic(parse_rdf(json.dumps(document), "json-ld"), dataset_graph(described, LINKS))


def test_dataset_triples_are_what_the_graph_holds() -> None:
    described = dataset()

    assert set(dataset_triples(described, LINKS)) <= set(dataset_graph(described, LINKS))


# --- text from users does not break the documents -------------------------------------------

# Lone surrogates cannot be encoded at all, so no database hands them over.
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@jsonld_parser_warning
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=_text,
    description=_text,
    tags=st.lists(_text, max_size=4).map(tuple),
    name=_text,
    email=_text,
    homepage=_text.map(lambda text: f"https://example.org/{text}"),
    publisher_id=_text.filter(bool),
)
def test_any_user_text_survives_both_serialisations(
    title: str,
    description: str,
    tags: tuple[str, ...],
    name: str,
    email: str,
    homepage: str,
    publisher_id: str,
) -> None:
    described = dataset(
        title=title,
        description=description,
        tags=tags,
        publisher=publisher(id=publisher_id, name=name, email=email or None, homepage=homepage),
    )
    expected = catalog_graph([described], LINKS, CATALOG)

    assert isomorphic(parse_rdf("".join(catalog_turtle([described], LINKS, CATALOG)), "turtle"), expected)
    assert isomorphic(parse_rdf("".join(catalog_jsonld([described], LINKS, CATALOG)), "json-ld"), expected)


# --- memory stays flat ----------------------------------------------------------------------


def _peak_bytes(chunks: Iterable[str]) -> int:
    tracemalloc.start()
    try:
        for _chunk in chunks:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_streaming_memory_is_flat_in_the_size_of_the_catalog(fmt: str) -> None:
    # Warm the module-level memo of vocabulary names so that it does not count as growth.
    for _chunk in streamed(fmt)(generated_datasets(10), LINKS, CATALOG):
        pass

    small = _peak_bytes(streamed(fmt)(generated_datasets(2_000), LINKS, CATALOG))
    large = _peak_bytes(streamed(fmt)(generated_datasets(20_000), LINKS, CATALOG))

    # Ten times the datasets; an export that accumulated would peak ~10x higher. One dataset's
    # statements and text are a few tens of kilobytes, so the whole stream stays well under 1 MB.
    assert large / small < 2, f"peak {small:,} B for 2,000 datasets, {large:,} B for 20,000"
    assert large < 1_000_000, f"peak {large:,} B for 20,000 datasets"
