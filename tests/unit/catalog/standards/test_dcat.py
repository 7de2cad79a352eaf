"""The DCAT-AP 3 statements: what portals harvest carries the mandatory properties and maps to
the EU vocabularies; the descriptions refuse what would break a URI or a topic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from services.catalog.standards.dcat import dataset_graph
from services.catalog.standards.dcat_vocabularies import ADMS, VCARD, frequency_code
from tests.support.dcat import (
    CATALOG,
    LINKS,
    STREAM_FORMATS,
    dataset,
    generated_datasets,
    parse_rdf,
    streamed,
)

EU = "http://publications.europa.eu/resource/authority/"


def one(graph: Graph, subject: URIRef, predicate: URIRef) -> Any:
    values = list(graph.objects(subject, predicate))
    assert len(values) == 1, f"{subject} {predicate}: {values}"
    return values[0]


# --- what DCAT-AP 3 asks of every dataset ---------------------------------------------------


@pytest.mark.parametrize("fmt", STREAM_FORMATS)
def test_every_dataset_carries_the_dcat_ap_properties(fmt: str) -> None:
    count = 12
    graph = parse_rdf("".join(streamed(fmt)(generated_datasets(count), LINKS, CATALOG)), fmt)

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
