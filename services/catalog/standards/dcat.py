"""The DCAT-AP 3 statements about the catalog, each dataset and each department, and their graphs.

Portals (data.europa.eu, CKAN with ckanext-dcat, national portals) harvest a catalog through
DCAT-AP, so citybase describes every dataset with the classes and controlled vocabularies the
profile asks for:

- ``dcat:Catalog``: ``dct:title``, ``dct:description``, ``dct:publisher`` (mandatory),
  ``dcat:dataset``, ``dcat:service``, ``dcat:themeTaxonomy``, ``foaf:homepage``.
- ``dcat:Dataset``: ``dct:title``, ``dct:description`` (mandatory), ``dct:identifier``,
  ``dct:publisher``, ``dcat:contactPoint``, ``dcat:theme``, ``dcat:keyword``,
  ``dct:accessRights``, ``dct:accrualPeriodicity``, ``dct:issued``, ``dct:modified``,
  ``adms:status``, ``dcat:version``, ``dct:conformsTo`` (the ODCS contract) and one
  ``dcat:distribution`` per delivery interface.
- ``dcat:Distribution``: ``dcat:accessURL`` (mandatory), ``dct:title``, ``dct:description``,
  ``dct:format``, ``dcat:mediaType``, ``dct:conformsTo``, ``adms:status``,
  ``dcat:accessService``.
- ``dcat:DataService`` for the feeds API: ``dct:title``, ``dcat:endpointURL`` (mandatory),
  ``dcat:endpointDescription`` (its OpenAPI document), ``dcat:servesDataset``.
- ``foaf:Agent`` publishers (``foaf:name``, ``dct:type``) and ``vcard:Kind`` contact points
  (``vcard:fn``, ``vcard:hasEmail``).

Every human-readable literal (title, description, name, keyword, label) carries a language tag:
``@zh`` for text with Han characters, ``@en`` otherwise. A dataset registered without a
description is described from its contract (publisher, delivery, fields), since DCAT-AP makes
``dct:description`` mandatory and an empty one tells a portal user nothing.

The statements are plain triples (:data:`~.dcat_vocabularies.Triple`) so that
:mod:`.dcat_serialization` can write them without building an rdflib graph; :func:`catalog_graph`
is the in-memory graph they are tested against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rdflib import Graph, Literal, URIRef

from services.catalog.standards import odrl
from services.catalog.standards.dcat_vocabularies import (
    ACCESS_RIGHT_VOCABULARY,
    ACCESS_RIGHTS,
    DATASET_STATUS_VOCABULARY,
    DISTRIBUTION_STATUS_VOCABULARY,
    FILE_TYPE,
    FILE_TYPE_VOCABULARY,
    FREQUENCY_VOCABULARY,
    IANA_MEDIA_TYPE,
    PREFIXES,
    PUBLISHER_TYPE_VOCABULARY,
    PUBLISHER_TYPES,
    RDF_TYPE,
    STATUSES,
    THEME_VOCABULARY,
    VOCABULARIES,
    Adms,
    Dcat,
    Dct,
    Foaf,
    Hydra,
    Triple,
    Vcard,
    Vocabulary,
    frequency_code,
    theme_code,
)
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)

_JSON_FILE_TYPE = "JSON"
_JSON_FORMAT = FILE_TYPE[_JSON_FILE_TYPE]

_JSON = "application/json"
_DELIVERIES: tuple[tuple[str, str, str], ...] = (
    ("sse", "text/event-stream", "Server-sent events"),
    ("long-poll", _JSON, "HTTP long-poll"),
    ("webhook", "application/cloudevents+json", "Webhook"),
)
"""Feeds delivery interfaces: (distribution name, media type on the wire, title)."""


# --- the statements -------------------------------------------------------------------------

# Characters rdflib refuses in an IRI when serialising; user-entered homepages and e-mail
# addresses can contain them, and one bad row must not abort a 100,000-dataset export.
_UNSAFE_IRI = re.compile(r'[<>"{}|\\^`\s]')


def _iri(text: str) -> URIRef:
    return URIRef(_UNSAFE_IRI.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text))


# Han ideographs (CJK Unified Ideographs, extension A, compatibility ideographs).
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def text(value: str) -> Literal:
    """A human-readable literal with its language: ``@zh`` if it holds Han characters, else ``@en``.

    citybase's own wording is English; a department that names its dataset in Chinese gets a
    Chinese-tagged title, so that a portal offers it to the right readers.
    """
    return Literal(value, lang="zh" if _HAN.search(value) else "en")


def _document(subject: URIRef, predicate: URIRef, page: str) -> list[Triple]:
    """A link to a web page, typed ``foaf:Document`` as the range of ``foaf:homepage`` asks."""
    document = _iri(page)
    return [(subject, predicate, document), (document, RDF_TYPE, Foaf.Document)]


def publisher_triples(publisher: PublisherDescription, agent: URIRef, contact: URIRef | None) -> list[Triple]:
    """The publisher as a ``foaf:Agent`` at ``agent``, with its ``vcard:Kind`` contact point."""
    triples: list[Triple] = [(agent, RDF_TYPE, Foaf.Agent), (agent, Foaf.name, text(publisher.name))]
    kind = PUBLISHER_TYPES.get(publisher.kind.strip().lower())
    if kind is not None:
        triples.append((agent, Dct.type, PUBLISHER_TYPE_VOCABULARY.concept(kind)))
        triples += PUBLISHER_TYPE_VOCABULARY.describe(kind)
    if publisher.homepage:
        triples += _document(agent, Foaf.homepage, publisher.homepage)
    if publisher.email:
        triples.append((agent, Foaf.mbox, _iri(f"mailto:{publisher.email}")))
    if contact is None:
        return triples
    triples += [(contact, RDF_TYPE, Vcard.Kind), (contact, Vcard.fn, text(publisher.name))]
    if publisher.email:
        triples.append((contact, Vcard.hasEmail, _iri(f"mailto:{publisher.email}")))
    if publisher.homepage:
        triples.append((contact, Vcard.hasURL, _iri(publisher.homepage)))
    return triples


def department_uris(publisher: PublisherDescription, links: PlatformLinks) -> tuple[URIRef, URIRef]:
    """A department's agent URI, which the catalog answers, and its contact point's.

    The contact is a fragment of the agent's URI: dereferencing it answers the department's
    document, which describes the contact point too.
    """
    agent = links.publisher(publisher.id)
    return URIRef(agent), URIRef(f"{agent}#contact")


def _feeds_service_triples(links: PlatformLinks) -> list[Triple]:
    service = URIRef(links.feeds)
    return [
        (service, RDF_TYPE, Dcat.DataService),
        (service, Dct.title, text("citybase feeds")),
        (
            service,
            Dct.description,
            text(
                "Granted, masked delivery of dataset records to subscriptions by server-sent "
                "events, long-poll or webhook, with replay from an offset or a time."
            ),
        ),
        (service, Dcat.endpointURL, URIRef(links.feeds)),
        (service, Dcat.endpointDescription, URIRef(links.feeds_openapi)),
    ]


def _schemes_triples() -> list[Triple]:
    return [triple for vocabulary in VOCABULARIES for triple in vocabulary.scheme_triples()]


def _value(subject: URIRef, predicate: URIRef, vocabulary: Vocabulary, code: str) -> list[Triple]:
    return [(subject, predicate, vocabulary.concept(code)), *vocabulary.describe(code)]


def _fields(dataset: DatasetDescription) -> list[str]:
    properties = (dataset.record_schema or {}).get("properties")
    return list(properties) if isinstance(properties, dict) else []


def description(dataset: DatasetDescription) -> str:
    """The dataset's description, or one derived from its contract when it was registered without.

    DCAT-AP makes ``dct:description`` mandatory, and an empty one tells a portal user nothing: the
    derived text says who publishes what, how often and with which fields.
    """
    if dataset.description.strip():
        return dataset.description
    derived = f"{dataset.title}: records of the {dataset.domain} domain published by {dataset.publisher.name}"
    frequency = FREQUENCY_VOCABULARY.labels[frequency_code(dataset.update_frequency)].lower()
    derived += f" on citybase as a live stream ({frequency})"
    if dataset.contract_version is None:
        return derived + "; no data contract is registered yet."
    derived += f" under the ODCS data contract {dataset.contract_version}"
    fields = _fields(dataset)
    if fields:
        derived += f"; each record has the fields {', '.join(fields)}"
    if dataset.primary_key:
        derived += f", keyed by {', '.join(dataset.primary_key)}"
    return derived + "."


def dataset_triples(dataset: DatasetDescription, links: PlatformLinks) -> list[Triple]:
    """Every statement of one dataset: the dataset, its publisher, contact and distributions.

    Also states that the feeds data service serves the dataset, so that a dataset's statements
    are self-contained; the statements about the service itself are those of the catalog.
    """
    ds = URIRef(links.dataset(dataset.id))
    agent, contact = department_uris(dataset.publisher, links)
    triples: list[Triple] = [
        (ds, RDF_TYPE, Dcat.Dataset),
        (ds, Dct.identifier, Literal(dataset.id)),
        (ds, Dct.title, text(dataset.title)),
        (ds, Dct.description, text(description(dataset))),
        (ds, Dct.publisher, agent),
        (ds, Dcat.contactPoint, contact),
        (ds, Dct.issued, Literal(dataset.created_at)),
        (ds, Dct.modified, Literal(dataset.updated_at)),
    ]
    theme = theme_code(dataset.domain)
    if theme is not None:
        triples += _value(ds, Dcat.theme, THEME_VOCABULARY, theme)
    triples += [(ds, Dcat.keyword, text(tag)) for tag in dataset.tags]
    triples += _value(ds, Dct.accessRights, ACCESS_RIGHT_VOCABULARY, ACCESS_RIGHTS[dataset.classification])
    triples += _value(
        ds, Dct.accrualPeriodicity, FREQUENCY_VOCABULARY, frequency_code(dataset.update_frequency)
    )
    status = STATUSES.get(dataset.status.strip().lower())
    if status is not None:
        triples += _value(ds, Adms.status, DATASET_STATUS_VOCABULARY, status)

    contract: URIRef | None = None
    if dataset.contract_version is not None:
        contract = URIRef(links.contract_version(dataset.id, dataset.contract_version))
        triples += [
            (ds, Dcat.version, Literal(dataset.contract_version)),
            (ds, Dct.conformsTo, contract),
            (contract, RDF_TYPE, Dct.Standard),
            (contract, Dct.title, text(f"ODCS data contract {dataset.id} {dataset.contract_version}")),
        ]
    triples += policy_triples(ds, dataset.id, links)
    asyncapi = URIRef(links.asyncapi(dataset.id))
    triples += [
        (asyncapi, RDF_TYPE, Dct.Standard),
        (asyncapi, Dct.title, text(f"AsyncAPI 3.0 description of {dataset.topic}")),
    ]

    feeds = URIRef(links.feeds)
    triples.append((feeds, Dcat.servesDataset, ds))
    for name, media_type, title in _DELIVERIES:
        distribution = URIRef(f"{ds}/distributions/{name}")
        triples += _distribution_triples(
            ds, distribution, status, contract, media_type, access_url=links.feeds_subscriptions
        )
        triples += [
            (distribution, Dct.title, text(f"{title} feed of {dataset.id}")),
            (
                distribution,
                Dct.description,
                text(
                    f"Records of {dataset.id} delivered by {title.lower()} to a subscription under an "
                    "active grant, with only the granted fields and sensitive ones masked."
                ),
            ),
            (distribution, Dcat.accessService, feeds),
        ]
    kafka = URIRef(f"{ds}/distributions/kafka")
    # A Kafka topic has no URL of its own; its AsyncAPI document is what gives access to it
    # (servers, topic, key, CloudEvents headers, payload schema).
    triples += _distribution_triples(ds, kafka, status, contract, _JSON, access_url=str(asyncapi))
    triples += [
        (kafka, Dct.title, text(f"Kafka topic {dataset.topic}")),
        (
            kafka,
            Dct.description,
            text(
                f"Validated records of {dataset.id} on the Kafka topic {dataset.topic} as CloudEvents "
                "1.0 in binary mode, keyed by the primary key; readable by principals with a Kafka ACL."
            ),
        ),
        (kafka, Dct.conformsTo, asyncapi),
        *FILE_TYPE_VOCABULARY.describe(_JSON_FILE_TYPE),
    ]
    if status is not None:
        triples += DISTRIBUTION_STATUS_VOCABULARY.describe(status)
    return [*triples, *publisher_triples(dataset.publisher, agent, contact)]


def policy_triples(ds: URIRef, dataset_id: str, links: PlatformLinks) -> list[Triple]:
    """``odrl:hasPolicy``: the dataset's usage terms, an ODRL offer (:mod:`.odrl`) that data-space
    connectors read; typed ``odrl:Policy`` as DCAT-AP's range shapes ask."""
    policy = URIRef(odrl.dataset_policy_uri(links, dataset_id))
    return [(ds, odrl.HAS_POLICY, policy), (policy, RDF_TYPE, odrl.POLICY), (policy, RDF_TYPE, odrl.OFFER)]


def _distribution_triples(
    ds: URIRef,
    distribution: URIRef,
    status: str | None,
    contract: URIRef | None,
    media_type: str,
    *,
    access_url: str,
) -> list[Triple]:
    media = IANA_MEDIA_TYPE[media_type]
    triples: list[Triple] = [
        (ds, Dcat.distribution, distribution),
        (distribution, RDF_TYPE, Dcat.Distribution),
        (distribution, Dcat.accessURL, URIRef(access_url)),
        # The records are JSON whichever interface carries them; the media type says how the
        # interface frames them.
        # (The concepts themselves are described once per dataset, by :func:`dataset_triples`.)
        (distribution, Dct.format, _JSON_FORMAT),
        (distribution, Dcat.mediaType, media),
        (media, RDF_TYPE, Dct.MediaType),
    ]
    if contract is not None:
        triples.append((distribution, Dct.conformsTo, contract))
    if status is not None:
        triples.append((distribution, Adms.status, DISTRIBUTION_STATUS_VOCABULARY.concept(status)))
    return triples


def catalog_triples(catalog: CatalogDescription, links: PlatformLinks) -> list[Triple]:
    """The statements about the catalog itself, its publisher, the feeds data service, and the
    concept schemes its datasets draw their controlled values from."""
    node = URIRef(links.catalog)
    triples: list[Triple] = [
        (node, RDF_TYPE, Dcat.Catalog),
        (node, Dct.title, text(catalog.title)),
        (node, Dct.description, text(catalog.description)),
        (node, Dct.publisher, URIRef(links.catalog_publisher)),
        *_document(node, Foaf.homepage, catalog.homepage or links.catalog_homepage),
        (node, Dcat.themeTaxonomy, THEME_VOCABULARY.scheme),
        (node, Dcat.service, URIRef(links.feeds)),
    ]
    return [
        *triples,
        # Described here, so that its URI (a fragment of the catalog's) answers with it.
        *publisher_triples(catalog.publisher, URIRef(links.catalog_publisher), None),
        *_feeds_service_triples(links),
        *_schemes_triples(),
    ]


def page_triples(
    links: PlatformLinks, page: str, first: str, following: str | None, total: int
) -> list[Triple]:
    """The Hydra view that makes one page of the catalog a page: where the walk starts, where it
    goes next (absent on the last page) and how many datasets the whole walk holds."""
    catalog, view = URIRef(links.catalog), _iri(page)
    triples: list[Triple] = [
        (catalog, Hydra.view, view),
        (catalog, Hydra.totalItems, Literal(total)),
        (view, RDF_TYPE, Hydra.PartialCollectionView),
        (view, Hydra.first, _iri(first)),
    ]
    if following is not None:
        triples.append((view, Hydra.next, _iri(following)))
    return triples


def catalog_link(dataset: DatasetDescription, links: PlatformLinks) -> Triple:
    """The statement that lists the dataset in the catalog (``dcat:dataset``)."""
    return (URIRef(links.catalog), Dcat.dataset, URIRef(links.dataset(dataset.id)))


# --- graphs ---------------------------------------------------------------------------------


def _graph(triples: Iterable[Triple]) -> Graph:
    graph = Graph(bind_namespaces="none")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    for triple in triples:
        graph.add(triple)
    return graph


def dataset_document(dataset: DatasetDescription, links: PlatformLinks) -> list[Triple]:
    """A dataset on its own: its statements, the feeds service and the concept schemes."""
    return [*dataset_triples(dataset, links), *_feeds_service_triples(links), *_schemes_triples()]


def publisher_document(publisher: PublisherDescription, links: PlatformLinks) -> list[Triple]:
    """A department on its own: the agent, its contact point and the publisher-type scheme."""
    return [
        *publisher_triples(publisher, *department_uris(publisher, links)),
        *PUBLISHER_TYPE_VOCABULARY.scheme_triples(),
    ]


def dataset_graph(dataset: DatasetDescription, links: PlatformLinks) -> Graph:
    """One dataset as an rdflib graph (with the feeds service that serves it and the schemes)."""
    return _graph(dataset_document(dataset, links))


def catalog_graph(
    datasets: Iterable[DatasetDescription], links: PlatformLinks, catalog: CatalogDescription
) -> Graph:
    """The whole catalog in one in-memory graph: for small catalogs and as the streams' reference."""
    triples = catalog_triples(catalog, links)
    for dataset in datasets:
        triples += dataset_triples(dataset, links)
        triples.append(catalog_link(dataset, links))
    return _graph(triples)
