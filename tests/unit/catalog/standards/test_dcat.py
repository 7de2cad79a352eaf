"""The DCAT-AP 3 export: what portals harvest must parse, carry the mandatory properties, map to
the EU vocabularies, and stream a catalog of any size in flat memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from services.catalog.standards import (
    DatasetDescription,
)
from services.catalog.standards.dcat import (
    ADMS,
    VCARD,
    catalog_graph,
    catalog_jsonld,
    catalog_triples,
    catalog_turtle,
    dataset_graph,
    dataset_jsonld,
    dataset_triples,
    dataset_turtle,
    frequency_code,
)
from tests.support.dcat import (
    CATALOG,
    LINKS,
    dataset,
    generated_datasets,
    publisher,
)

# rdflib's own JSON-LD parser builds a ConjunctiveGraph, which rdflib 7 deprecates.
jsonld_parser_warning = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

EU = "http://publications.europa.eu/resource/authority/"


def parse(text: str, fmt: str) -> Graph:
    return Graph().parse(data=text, format=fmt)


def streamed(fmt: str) -> Callable[..., Iterator[str]]:
    return catalog_turtle if fmt == "turtle" else catalog_jsonld


def one(graph: Graph, subject: URIRef, predicate: URIRef) -> Any:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, f"{subject} {predicate}: {values}"
    return values[0]


STREAM_FORMATS = [
    pytest.param("turtle", id="turtle"),
    pytest.param("json-ld", id="json-ld", marks=jsonld_parser_warning),
]

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
    assert isomorphic(parse(text, fmt), expected)
    assert isomorphic(parse(text, fmt), catalog_graph(datasets, LINKS, CATALOG))


def test_turtle_prefixes_are_written_once() -> None:
    chunks = list(catalog_turtle(generated_datasets(5), LINKS, CATALOG))

    assert len(chunks) == 1 + 5
    assert chunks[0].startswith("@prefix dcat: <http://www.w3.org/ns/dcat#> .")
    assert not any("@prefix" in chunk for chunk in chunks[1:])
    # each dataset chunk is Turtle on its own once the prefixes are in front of it
    header = chunks[0].split("\n\n", 1)[0]
    assert len(parse(header + "\n" + chunks[3], "turtle")) > 50


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


# --- what DCAT-AP 3 asks of every dataset ---------------------------------------------------


@pytest.mark.parametrize("fmt", STREAM_FORMATS)
def test_every_dataset_carries_the_dcat_ap_properties(fmt: str) -> None:
    count = 12
    graph = parse("".join(streamed(fmt)(generated_datasets(count), LINKS, CATALOG)), fmt)

    catalog = URIRef(LINKS.catalog)
    assert (catalog, RDF.type, DCAT.Catalog) in graph
    for predicate in (DCTERMS.title, DCTERMS.description, DCTERMS.publisher):
        one(graph, catalog, predicate)
    assert (catalog, DCAT.themeTaxonomy, URIRef(EU + "data-theme")) in graph

    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == count
    assert set(graph.objects(catalog, DCAT.dataset)) == datasets
    for ds in datasets:
        assert str(one(graph, ds, DCTERMS.identifier)) in str(ds)
        for predicate in (
            DCTERMS.title,
            DCTERMS.description,
            DCTERMS.accessRights,
            DCTERMS.accrualPeriodicity,
        ):
            one(graph, ds, predicate)
        assert set(graph.objects(ds, DCAT.keyword))
        assert str(one(graph, ds, DCAT.theme)).startswith(EU + "data-theme/")
        for predicate in (DCTERMS.issued, DCTERMS.modified):
            assert one(graph, ds, predicate).datatype == XSD.dateTime

        agent = one(graph, ds, DCTERMS.publisher)
        assert (agent, RDF.type, FOAF.Agent) in graph
        one(graph, agent, FOAF.name)
        assert str(one(graph, agent, DCTERMS.type)) == "http://purl.org/adms/publishertype/LocalAuthority"

        contact = one(graph, ds, DCAT.contactPoint)
        assert (contact, RDF.type, VCARD.Kind) in graph
        one(graph, contact, VCARD.fn)
        assert str(one(graph, contact, VCARD.hasEmail)).startswith("mailto:")

        assert str(one(graph, ds, ADMS.status)) == EU + "dataset-status/COMPLETED"
        distributions = set(graph.objects(ds, DCAT.distribution))
        assert len(distributions) == 4
        for distribution in distributions:
            assert (distribution, RDF.type, DCAT.Distribution) in graph
            one(graph, distribution, DCAT.accessURL)
            one(graph, distribution, DCTERMS.title)
            assert one(graph, distribution, DCTERMS["format"]) == URIRef(EU + "file-type/JSON")
            assert str(one(graph, distribution, DCAT.mediaType)).startswith(
                "http://www.iana.org/assignments/media-types/"
            )


@pytest.mark.parametrize(
    ("classification", "access_right"),
    [("open", "PUBLIC"), ("conditional", "RESTRICTED"), ("restricted", "NON_PUBLIC")],
)
def test_classification_maps_to_the_eu_access_right(classification: str, access_right: str) -> None:
    graph = dataset_graph(dataset(classification=classification), LINKS)

    ds = URIRef(LINKS.dataset("transport.bus-arrivals"))
    assert one(graph, ds, DCTERMS.accessRights) == URIRef(f"{EU}access-right/{access_right}")
    assert (URIRef(f"{EU}access-right/{access_right}"), RDF.type, DCTERMS.RightsStatement) in graph


@pytest.mark.parametrize(
    ("domain", "theme"),
    [
        ("transport", "TRAN"),
        ("health", "HEAL"),
        ("market", "ECON"),
        ("spatial", "REGI"),
        ("urban construction", "REGI"),
        ("community", "SOCI"),
        ("education", "EDUC"),
        ("Culture", "EDUC"),
        ("environment", "ENVI"),
    ],
)
def test_domain_maps_to_the_eu_data_theme(domain: str, theme: str) -> None:
    graph = dataset_graph(dataset(domain=domain), LINKS)

    assert one(graph, URIRef(LINKS.dataset("transport.bus-arrivals")), DCAT.theme) == URIRef(
        f"{EU}data-theme/{theme}"
    )


def test_a_domain_without_a_theme_gets_none_rather_than_a_wrong_one() -> None:
    graph = dataset_graph(dataset(domain="astrology"), LINKS)

    assert not list(graph.objects(URIRef(LINKS.dataset("transport.bus-arrivals")), DCAT.theme))


@pytest.mark.parametrize(
    ("duration", "code"),
    [
        (None, "UPDATE_CONT"),
        ("PT5S", "UPDATE_CONT"),
        ("PT1M", "1MIN"),
        ("PT15M", "15MIN"),
        ("PT1H", "HOURLY"),
        ("PT60M", "HOURLY"),
        ("PT12H", "12HRS"),
        ("P1D", "DAILY"),
        ("PT24H", "DAILY"),
        ("P1W", "WEEKLY"),
        ("P7D", "WEEKLY"),
        ("P1M", "MONTHLY"),
        ("P3M", "QUARTERLY"),
        ("P1Y", "ANNUAL"),
        ("PT7M", "OTHER"),
        ("P1DT1H", "OTHER"),
        ("P1M1D", "OTHER"),
        ("daily", "UNKNOWN"),
        ("P", "UNKNOWN"),
        ("PT", "UNKNOWN"),
    ],
)
def test_update_frequency_maps_to_the_eu_frequency(duration: str | None, code: str) -> None:
    assert frequency_code(duration) == code
    graph = dataset_graph(dataset(update_frequency=duration), LINKS)
    assert one(graph, URIRef(LINKS.dataset("transport.bus-arrivals")), DCTERMS.accrualPeriodicity) == URIRef(
        f"{EU}frequency/{code}"
    )


def test_one_distribution_per_delivery_interface() -> None:
    graph = dataset_graph(dataset(), LINKS)
    ds = URIRef(LINKS.dataset("transport.bus-arrivals"))
    contract = URIRef(LINKS.contract_version("transport.bus-arrivals", "1.2.0"))
    asyncapi = URIRef(LINKS.asyncapi("transport.bus-arrivals"))
    feeds = URIRef(LINKS.feeds)

    media_types = {
        str(distribution).rsplit("/", 1)[1]: str(one(graph, distribution, DCAT.mediaType)).split(
            "media-types/"
        )[1]
        for distribution in graph.objects(ds, DCAT.distribution)
    }
    assert media_types == {
        "sse": "text/event-stream",
        "long-poll": "application/json",
        "webhook": "application/cloudevents+json",
        "kafka": "application/json",
    }
    for name in ("sse", "long-poll", "webhook"):
        distribution = URIRef(f"{ds}/distributions/{name}")
        assert one(graph, distribution, DCAT.accessURL) == URIRef(
            "https://data.city.example/feeds/v1/subscriptions"
        )
        assert one(graph, distribution, DCAT.accessService) == feeds
        assert one(graph, distribution, DCTERMS.conformsTo) == contract
    kafka = URIRef(f"{ds}/distributions/kafka")
    assert one(graph, kafka, DCAT.accessURL) == asyncapi
    assert set(graph.objects(kafka, DCTERMS.conformsTo)) == {contract, asyncapi}
    assert one(graph, ds, DCTERMS.conformsTo) == contract

    assert (feeds, RDF.type, DCAT.DataService) in graph
    assert one(graph, feeds, DCAT.endpointURL) == feeds
    assert one(graph, feeds, DCAT.endpointDescription) == URIRef(LINKS.feeds_openapi)
    assert (feeds, DCAT.servesDataset, ds) in graph


def test_a_dataset_without_contract_has_no_version_and_conforms_only_to_its_asyncapi() -> None:
    graph = dataset_graph(dataset(contract_version=None, record_schema=None, status="draft"), LINKS)
    ds = URIRef(LINKS.dataset("transport.bus-arrivals"))

    assert not list(graph.objects(ds, DCTERMS.conformsTo))
    assert not list(graph.objects(ds, URIRef("http://www.w3.org/ns/dcat#version")))
    assert one(graph, ds, ADMS.status) == URIRef(EU + "dataset-status/DEVELOP")
    kafka = URIRef(f"{ds}/distributions/kafka")
    assert one(graph, kafka, DCTERMS.conformsTo) == URIRef(LINKS.asyncapi("transport.bus-arrivals"))


def test_timestamps_are_typed_xsd_datetime_with_their_offset() -> None:
    graph = dataset_graph(dataset(), LINKS)

    issued = one(graph, URIRef(LINKS.dataset("transport.bus-arrivals")), DCTERMS.issued)
    assert issued == Literal("2026-01-05T08:00:00+00:00", datatype=XSD.dateTime)


# --- one dataset ----------------------------------------------------------------------------


def test_dataset_turtle_is_the_dataset_graph() -> None:
    described = dataset()

    assert isomorphic(parse(dataset_turtle(described, LINKS), "turtle"), dataset_graph(described, LINKS))


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
    assert isomorphic(parse(json.dumps(document), "json-ld"), dataset_graph(described, LINKS))


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

    assert isomorphic(parse("".join(catalog_turtle([described], LINKS, CATALOG)), "turtle"), expected)
    assert isomorphic(parse("".join(catalog_jsonld([described], LINKS, CATALOG)), "json-ld"), expected)


# --- the descriptions refuse what would break a URI or a topic -----------------------------


@pytest.mark.parametrize("dataset_id", ["bus-arrivals", "transport.bus arrivals", "transport.", "交通.公交"])
def test_a_dataset_id_must_be_a_topic_and_path_safe_domain_and_name(dataset_id: str) -> None:
    with pytest.raises(ValueError, match="dataset id"):
        dataset(id=dataset_id)


def test_timestamps_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dataset(created_at=datetime(2026, 1, 1))


def test_classification_must_be_known() -> None:
    with pytest.raises(ValueError, match="classification"):
        dataset(classification="secret")


def test_topics_derive_from_the_id() -> None:
    described = dataset()

    assert (described.topic, described.raw_topic, described.dlq_topic) == (
        "ds.transport.bus-arrivals",
        "raw.transport.bus-arrivals",
        "dlq.transport.bus-arrivals",
    )


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
