"""DCAT-AP 3 export of the catalog, as Turtle or JSON-LD, for one dataset or streamed for all.

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

Controlled-vocabulary values (themes, access rights, frequencies, statuses, file types) carry
their class (``skos:Concept``, ``dct:RightsStatement``, ...) in the export, so that the DCAT-AP
SHACL range shapes pass without loading the EU authority tables as background knowledge.

Streaming: a catalog has up to ~10^5 datasets read from a database cursor. The streamed
serialisers write the prefixes (Turtle) or ``@context`` (JSON-LD) once, then each dataset's
statements on their own, so memory stays flat whatever the size of the catalog. They write the
statements themselves from rdflib terms instead of serialising one rdflib ``Graph`` per dataset:
rdflib's Turtle serialiser spends ~2.5 ms on a 60-triple graph and building the graph ~1.2 ms,
which would make a 100,000-dataset export take minutes. The tests prove the streamed output is
the same RDF graph as :func:`catalog_graph`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD

from services.catalog.standards.model import (
    CatalogDescription,
    Classification,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
ADMS = Namespace("http://www.w3.org/ns/adms#")

_EU_AUTHORITY = "http://publications.europa.eu/resource/authority/"
DATA_THEME = Namespace(_EU_AUTHORITY + "data-theme/")
DATA_THEME_SCHEME = URIRef(_EU_AUTHORITY + "data-theme")
ACCESS_RIGHT = Namespace(_EU_AUTHORITY + "access-right/")
FREQUENCY = Namespace(_EU_AUTHORITY + "frequency/")
DATASET_STATUS = Namespace(_EU_AUTHORITY + "dataset-status/")
DISTRIBUTION_STATUS = Namespace(_EU_AUTHORITY + "distribution-status/")
FILE_TYPE = Namespace(_EU_AUTHORITY + "file-type/")
PUBLISHER_TYPE = Namespace("http://purl.org/adms/publishertype/")
IANA_MEDIA_TYPE = Namespace("http://www.iana.org/assignments/media-types/")
_JSON_FILE_TYPE = FILE_TYPE.JSON

# The terms used below, as constants: an rdflib namespace attribute costs about a microsecond
# per lookup, and the export looks up ~100 terms per dataset.


class _Adms:
    status = ADMS.status


class _Dcat:
    accessService = DCAT.accessService
    accessURL = DCAT.accessURL
    Catalog = DCAT.Catalog
    contactPoint = DCAT.contactPoint
    DataService = DCAT.DataService
    Dataset = DCAT.Dataset
    dataset = DCAT.dataset
    distribution = DCAT.distribution
    Distribution = DCAT.Distribution
    endpointDescription = DCAT.endpointDescription
    endpointURL = DCAT.endpointURL
    keyword = DCAT.keyword
    mediaType = DCAT.mediaType
    servesDataset = DCAT.servesDataset
    service = DCAT.service
    theme = DCAT.theme
    themeTaxonomy = DCAT.themeTaxonomy
    # rdflib's DCAT namespace predates DCAT 3 and warns on ``dcat:version``.
    version = URIRef(f"{DCAT}version")


class _Dct:
    accessRights = DCTERMS.accessRights
    accrualPeriodicity = DCTERMS.accrualPeriodicity
    conformsTo = DCTERMS.conformsTo
    description = DCTERMS.description
    # ``DCTERMS.format`` would be ``str.format`` to a type checker.
    format = URIRef("http://purl.org/dc/terms/format")
    Frequency = DCTERMS.Frequency
    identifier = DCTERMS.identifier
    issued = DCTERMS.issued
    MediaType = DCTERMS.MediaType
    MediaTypeOrExtent = DCTERMS.MediaTypeOrExtent
    modified = DCTERMS.modified
    publisher = DCTERMS.publisher
    RightsStatement = DCTERMS.RightsStatement
    Standard = DCTERMS.Standard
    title = DCTERMS.title
    type = DCTERMS.type


class _Foaf:
    Agent = FOAF.Agent
    homepage = FOAF.homepage
    mbox = FOAF.mbox
    name = FOAF.name


class _Skos:
    Concept = SKOS.Concept
    ConceptScheme = SKOS.ConceptScheme
    inScheme = SKOS.inScheme


class _Vcard:
    fn = VCARD.fn
    hasEmail = VCARD.hasEmail
    hasURL = VCARD.hasURL
    Kind = VCARD.Kind


RDF_TYPE = RDF.type
_RDF_TYPE_IRI = str(RDF.type)
_XSD_STRING_IRI = str(XSD.string)


PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "adms": str(ADMS),
    "skos": str(SKOS),
    "xsd": str(XSD),
}
"""The prefixes of both serialisations; the JSON-LD ``@context`` is exactly these."""

JSONLD_CONTEXT: dict[str, str] = dict(PREFIXES)

THEMES: dict[str, str] = {
    "transport": "TRAN",
    "traffic": "TRAN",
    "mobility": "TRAN",
    "health": "HEAL",
    "market": "ECON",
    "economy": "ECON",
    "finance": "ECON",
    "spatial": "REGI",
    "urban-construction": "REGI",
    "construction": "REGI",
    "housing": "REGI",
    "planning": "REGI",
    "district": "REGI",
    "community": "SOCI",
    "population": "SOCI",
    "social": "SOCI",
    "education": "EDUC",
    "culture": "EDUC",
    "sport": "EDUC",
    "tourism": "EDUC",
    "environment": "ENVI",
    "weather": "ENVI",
    "energy": "ENER",
    "agriculture": "AGRI",
    "food": "AGRI",
    "government": "GOVE",
    "justice": "JUST",
    "public-safety": "JUST",
    "science": "TECH",
    "technology": "TECH",
    "international": "INTR",
}
"""City domain → EU data theme (Publications Office ``data-theme`` authority table).

Each domain maps to the one theme a portal user would browse for it: the city's market
supervision is economic regulation (ECON); spatial data and building permits are urban
development (REGI, "Regions and cities"); community services are SOCI ("Population and
society"); culture, sport and tourism fall under EDUC ("Education, culture and sport"). A domain
outside the table gets no ``dcat:theme`` (recommended, not mandatory) rather than a wrong one.
"""

ACCESS_RIGHTS: dict[Classification, str] = {
    "open": "PUBLIC",
    "conditional": "RESTRICTED",
    "restricted": "NON_PUBLIC",
}
"""Classification → EU ``access-right``: conditional data is granted on approval (RESTRICTED);
restricted data never leaves the platform unmasked (NON_PUBLIC)."""

PUBLISHER_TYPES: dict[str, str] = {
    "department": "LocalAuthority",
    "district": "LocalAuthority",
    "city": "LocalAuthority",
    "municipality": "LocalAuthority",
    "province": "RegionalAuthority",
    "region": "RegionalAuthority",
    "national": "NationalAuthority",
    "ministry": "NationalAuthority",
    "company": "Company",
    "enterprise": "Company",
    "research": "Academia-ScientificOrganisation",
    "university": "Academia-ScientificOrganisation",
    "ngo": "NonGovernmentalOrganisation",
    "nonprofit": "NonProfitOrganisation",
    "individual": "PrivateIndividual(s)",
    "standards-body": "StandardisationBody",
}
"""Principal kind → ADMS publisher type; a city department or district is a local authority."""

STATUSES: dict[str, str] = {
    "draft": "DEVELOP",
    "proposed": "DEVELOP",
    "development": "DEVELOP",
    "active": "COMPLETED",
    "published": "COMPLETED",
    "live": "COMPLETED",
    "deprecated": "DEPRECATED",
    "retired": "WITHDRAWN",
    "withdrawn": "WITHDRAWN",
    "archived": "WITHDRAWN",
    "deleted": "WITHDRAWN",
}
"""Catalog status → code shared by the EU ``dataset-status`` and ``distribution-status`` tables."""

CONTINUOUS = "UPDATE_CONT"
_SECONDS_FREQUENCIES: dict[float, str] = {
    60: "1MIN",
    300: "5MIN",
    600: "10MIN",
    900: "15MIN",
    1800: "30MIN",
    3600: "HOURLY",
    7200: "BIHOURLY",
    10800: "TRIHOURLY",
    43200: "12HRS",
    86400: "DAILY",
    604800: "WEEKLY",
    1209600: "BIWEEKLY",
}
_MONTHS_FREQUENCIES: dict[float, str] = {
    1: "MONTHLY",
    2: "BIMONTHLY",
    3: "QUARTERLY",
    6: "ANNUAL_2",
    12: "ANNUAL",
    24: "BIENNIAL",
    36: "TRIENNIAL",
}
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?(?:(?P<weeks>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)

_JSON = "application/json"
_DELIVERIES: tuple[tuple[str, str, str], ...] = (
    ("sse", "text/event-stream", "Server-sent events"),
    ("long-poll", _JSON, "HTTP long-poll"),
    ("webhook", "application/cloudevents+json", "Webhook"),
)
"""Feeds delivery interfaces: (distribution name, media type on the wire, title)."""

Triple = tuple[URIRef, URIRef, URIRef | Literal]


def frequency_code(update_frequency: str | None) -> str:
    """The EU ``frequency`` code for an ISO 8601 duration from a contract's SLA.

    A stream without a declared cadence, or with one under a minute, is continuously updated
    (UPDATE_CONT). Durations with a code of their own map to it (PT1M → 1MIN, P1D → DAILY,
    P3M → QUARTERLY); any other valid duration is OTHER, an unreadable one UNKNOWN.
    """
    if update_frequency is None:
        return CONTINUOUS
    match = _DURATION.match(update_frequency.strip().upper())
    if match is None:
        return "UNKNOWN"
    part = {name: float(value) if value else 0.0 for name, value in match.groupdict().items()}
    months = part["years"] * 12 + part["months"]
    seconds = (
        (part["weeks"] * 7 + part["days"]) * 86400
        + part["hours"] * 3600
        + part["minutes"] * 60
        + part["seconds"]
    )
    if months == 0:
        if seconds < 60:
            return CONTINUOUS
        return _SECONDS_FREQUENCIES.get(seconds, "OTHER")
    if seconds == 0:
        return _MONTHS_FREQUENCIES.get(months, "OTHER")
    return "OTHER"


def theme_code(domain: str) -> str | None:
    """The EU data theme of a city domain (see :data:`THEMES`), or None if it has none."""
    return THEMES.get(domain.strip().lower().replace("_", "-").replace(" ", "-"))


# --- the statements -------------------------------------------------------------------------

# Characters rdflib refuses in an IRI when serialising; user-entered homepages and e-mail
# addresses can contain them, and one bad row must not abort a 100,000-dataset export.
_UNSAFE_IRI = re.compile(r'[<>"{}|\\^`\s]')


def _iri(text: str) -> URIRef:
    return URIRef(_UNSAFE_IRI.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text))


def _publisher_triples(publisher: PublisherDescription, links: PlatformLinks) -> list[Triple]:
    agent = URIRef(links.publisher(publisher.id))
    triples: list[Triple] = [(agent, RDF_TYPE, _Foaf.Agent), (agent, _Foaf.name, Literal(publisher.name))]
    kind = PUBLISHER_TYPES.get(publisher.kind.strip().lower())
    if kind is not None:
        triples += [(agent, _Dct.type, PUBLISHER_TYPE[kind]), (PUBLISHER_TYPE[kind], RDF_TYPE, _Skos.Concept)]
    if publisher.homepage:
        triples.append((agent, _Foaf.homepage, _iri(publisher.homepage)))
    if publisher.email:
        triples.append((agent, _Foaf.mbox, _iri(f"mailto:{publisher.email}")))
    return triples


def _contact_triples(publisher: PublisherDescription, links: PlatformLinks) -> tuple[URIRef, list[Triple]]:
    contact = URIRef(f"{links.publisher(publisher.id)}/contact")
    triples: list[Triple] = [(contact, RDF_TYPE, _Vcard.Kind), (contact, _Vcard.fn, Literal(publisher.name))]
    if publisher.email:
        triples.append((contact, _Vcard.hasEmail, _iri(f"mailto:{publisher.email}")))
    if publisher.homepage:
        triples.append((contact, _Vcard.hasURL, _iri(publisher.homepage)))
    return contact, triples


def _feeds_service_triples(links: PlatformLinks) -> list[Triple]:
    service = URIRef(links.feeds)
    return [
        (service, RDF_TYPE, _Dcat.DataService),
        (service, _Dct.title, Literal("citybase feeds")),
        (
            service,
            _Dct.description,
            Literal(
                "Granted, masked delivery of dataset records to subscriptions by server-sent "
                "events, long-poll or webhook, with replay from an offset or a time."
            ),
        ),
        (service, _Dcat.endpointURL, URIRef(links.feeds)),
        (service, _Dcat.endpointDescription, URIRef(links.feeds_openapi)),
    ]


def _concept(subject: URIRef, predicate: URIRef, concept: URIRef, cls: URIRef) -> list[Triple]:
    return [(subject, predicate, concept), (concept, RDF_TYPE, cls)]


def dataset_triples(dataset: DatasetDescription, links: PlatformLinks) -> list[Triple]:
    """Every statement of one dataset: the dataset, its publisher, contact and distributions.

    Also states that the feeds data service serves the dataset, so that a dataset's statements
    are self-contained; the statements about the service itself are those of the catalog.
    """
    ds = URIRef(links.dataset(dataset.id))
    contact, contact_triples = _contact_triples(dataset.publisher, links)
    triples: list[Triple] = [
        (ds, RDF_TYPE, _Dcat.Dataset),
        (ds, _Dct.identifier, Literal(dataset.id)),
        (ds, _Dct.title, Literal(dataset.title)),
        (ds, _Dct.description, Literal(dataset.description)),
        (ds, _Dct.publisher, URIRef(links.publisher(dataset.publisher.id))),
        (ds, _Dcat.contactPoint, contact),
        (ds, _Dct.issued, Literal(dataset.created_at)),
        (ds, _Dct.modified, Literal(dataset.updated_at)),
    ]
    theme = theme_code(dataset.domain)
    if theme is not None:
        triples += _concept(ds, _Dcat.theme, DATA_THEME[theme], _Skos.Concept)
        triples.append((DATA_THEME[theme], _Skos.inScheme, DATA_THEME_SCHEME))
    triples += [(ds, _Dcat.keyword, Literal(tag)) for tag in dataset.tags]
    triples += _concept(
        ds, _Dct.accessRights, ACCESS_RIGHT[ACCESS_RIGHTS[dataset.classification]], _Dct.RightsStatement
    )
    triples += _concept(
        ds, _Dct.accrualPeriodicity, FREQUENCY[frequency_code(dataset.update_frequency)], _Dct.Frequency
    )
    status = STATUSES.get(dataset.status.strip().lower())
    if status is not None:
        triples += _concept(ds, _Adms.status, DATASET_STATUS[status], _Skos.Concept)

    contract: URIRef | None = None
    if dataset.contract_version is not None:
        contract = URIRef(links.contract_version(dataset.id, dataset.contract_version))
        triples.append((ds, _Dcat.version, Literal(dataset.contract_version)))
        triples += _concept(ds, _Dct.conformsTo, contract, _Dct.Standard)
        triples.append(
            (contract, _Dct.title, Literal(f"ODCS data contract {dataset.id} {dataset.contract_version}"))
        )
    asyncapi = URIRef(links.asyncapi(dataset.id))
    triples += [
        (asyncapi, RDF_TYPE, _Dct.Standard),
        (asyncapi, _Dct.title, Literal(f"AsyncAPI 3.0 description of {dataset.topic}")),
    ]

    feeds = URIRef(links.feeds)
    triples.append((feeds, _Dcat.servesDataset, ds))
    for name, media_type, title in _DELIVERIES:
        distribution = URIRef(f"{ds}/distributions/{name}")
        triples += _distribution_triples(
            ds, distribution, dataset, status, contract, media_type, access_url=links.feeds_subscriptions
        )
        triples += [
            (distribution, _Dct.title, Literal(f"{title} feed of {dataset.id}")),
            (
                distribution,
                _Dct.description,
                Literal(
                    f"Records of {dataset.id} delivered by {title.lower()} to a subscription under an "
                    "active grant, with only the granted fields and sensitive ones masked."
                ),
            ),
            (distribution, _Dcat.accessService, feeds),
        ]
    kafka = URIRef(f"{ds}/distributions/kafka")
    # A Kafka topic has no URL of its own; its AsyncAPI document is what gives access to it
    # (servers, topic, key, CloudEvents headers, payload schema).
    triples += _distribution_triples(ds, kafka, dataset, status, contract, _JSON, access_url=str(asyncapi))
    triples += [
        (kafka, _Dct.title, Literal(f"Kafka topic {dataset.topic}")),
        (
            kafka,
            _Dct.description,
            Literal(
                f"Validated records of {dataset.id} on the Kafka topic {dataset.topic} as CloudEvents "
                "1.0 in binary mode, keyed by the primary key; readable by principals with a Kafka ACL."
            ),
        ),
        (kafka, _Dct.conformsTo, asyncapi),
    ]
    return [*triples, *_publisher_triples(dataset.publisher, links), *contact_triples]


def _distribution_triples(
    ds: URIRef,
    distribution: URIRef,
    dataset: DatasetDescription,
    status: str | None,
    contract: URIRef | None,
    media_type: str,
    *,
    access_url: str,
) -> list[Triple]:
    triples: list[Triple] = [
        (ds, _Dcat.distribution, distribution),
        (distribution, RDF_TYPE, _Dcat.Distribution),
        (distribution, _Dcat.accessURL, URIRef(access_url)),
        # The records are JSON whichever interface carries them; the media type says how the
        # interface frames them.
        *_concept(distribution, _Dct.format, _JSON_FILE_TYPE, _Dct.MediaTypeOrExtent),
        *_concept(distribution, _Dcat.mediaType, IANA_MEDIA_TYPE[media_type], _Dct.MediaType),
    ]
    if contract is not None:
        triples.append((distribution, _Dct.conformsTo, contract))
    if status is not None:
        triples += _concept(distribution, _Adms.status, DISTRIBUTION_STATUS[status], _Skos.Concept)
    return triples


def catalog_triples(catalog: CatalogDescription, links: PlatformLinks) -> list[Triple]:
    """The statements about the catalog itself, its publisher and the feeds data service."""
    node = URIRef(links.catalog)
    triples: list[Triple] = [
        (node, RDF_TYPE, _Dcat.Catalog),
        (node, _Dct.title, Literal(catalog.title)),
        (node, _Dct.description, Literal(catalog.description)),
        (node, _Dct.publisher, URIRef(links.publisher(catalog.publisher.id))),
        (node, _Foaf.homepage, _iri(catalog.homepage or links.base_url)),
        (node, _Dcat.themeTaxonomy, DATA_THEME_SCHEME),
        (DATA_THEME_SCHEME, RDF_TYPE, _Skos.ConceptScheme),
        (node, _Dcat.service, URIRef(links.feeds)),
    ]
    return [*triples, *_publisher_triples(catalog.publisher, links), *_feeds_service_triples(links)]


def _catalog_link(dataset: DatasetDescription, links: PlatformLinks) -> Triple:
    return (URIRef(links.catalog), _Dcat.dataset, URIRef(links.dataset(dataset.id)))


# --- graphs ---------------------------------------------------------------------------------


def _graph(triples: Iterable[Triple]) -> Graph:
    graph = Graph(bind_namespaces="none")
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace)
    for triple in triples:
        graph.add(triple)
    return graph


def dataset_graph(dataset: DatasetDescription, links: PlatformLinks) -> Graph:
    """One dataset as an rdflib graph (with the feeds service that serves it)."""
    return _graph([*dataset_triples(dataset, links), *_feeds_service_triples(links)])


def catalog_graph(
    datasets: Iterable[DatasetDescription], links: PlatformLinks, catalog: CatalogDescription
) -> Graph:
    """The whole catalog in one in-memory graph: for small catalogs and as the streams' reference."""
    triples = catalog_triples(catalog, links)
    for dataset in datasets:
        triples += dataset_triples(dataset, links)
        triples.append(_catalog_link(dataset, links))
    return _graph(triples)


# --- Turtle ---------------------------------------------------------------------------------

_TURTLE_PREFIXES = "".join(f"@prefix {prefix}: <{namespace}> .\n" for prefix, namespace in PREFIXES.items())
# A compacted name is used only when the local part is a plain Turtle PN_LOCAL; anything else
# is written as a full IRI.
_PLAIN_LOCAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_VOCABULARY_NAMES: dict[str, str | None] = {}


def _compact(iri: str) -> str | None:
    """``dct:title`` for a term of a prefixed vocabulary, else None.

    Only vocabulary terms (predicates, classes, datatypes) are compacted, so the memo holds a
    few dozen entries however many datasets are exported.
    """
    if iri not in _VOCABULARY_NAMES:
        _VOCABULARY_NAMES[iri] = None
        for prefix, namespace in PREFIXES.items():
            if iri.startswith(namespace) and _PLAIN_LOCAL.match(iri[len(namespace) :]):
                _VOCABULARY_NAMES[iri] = f"{prefix}:{iri[len(namespace) :]}"
    return _VOCABULARY_NAMES[iri]


def _turtle_vocabulary(iri: str) -> str:
    return _compact(iri) or f"<{iri}>"


def _turtle_term(term: URIRef | Literal) -> str:
    """An instance IRI or a literal in Turtle.

    IRIs are written as they are: the ones built here are valid by construction (dataset ids
    and the base URL are validated, user-entered ones go through :func:`_iri`). A JSON string
    is a valid Turtle string (the same escapes, ``\\uXXXX`` included), and ``json.dumps`` is
    much faster than rdflib's ``n3()``.
    """
    if isinstance(term, Literal):
        text = json.dumps(str(term), ensure_ascii=False)
        if term.language is not None:
            return f"{text}@{term.language}"
        if term.datatype is not None:
            return f"{text}^^{_turtle_vocabulary(str(term.datatype))}"
        return text
    return f"<{term}>"


def _turtle_statements(triples: Iterable[Triple]) -> str:
    """Turtle for the statements, grouped by subject and predicate, without prefixes.

    Terms are grouped by their rendered text (plain ``str`` keys): rdflib terms hash and compare
    in Python, and this loop runs ~100 times per dataset.
    """
    by_subject: dict[str, dict[str, dict[str, None]]] = {}
    for subject, predicate, obj in triples:
        iri = str(predicate)
        if iri == _RDF_TYPE_IRI:
            verb, text = "a", _turtle_vocabulary(str(obj))
        else:
            verb, text = _turtle_vocabulary(iri), _turtle_term(obj)
        by_subject.setdefault(str(subject), {}).setdefault(verb, {})[text] = None
    return "\n".join(
        f"<{subject}>\n"
        + " ;\n".join(f"    {verb} {', '.join(objects)}" for verb, objects in predicates.items())
        + " .\n"
        for subject, predicates in by_subject.items()
    )


def dataset_turtle(dataset: DatasetDescription, links: PlatformLinks) -> str:
    """One dataset as a Turtle document."""
    return (
        _TURTLE_PREFIXES
        + "\n"
        + _turtle_statements([*dataset_triples(dataset, links), *_feeds_service_triples(links)])
    )


def catalog_turtle(
    datasets: Iterable[DatasetDescription], links: PlatformLinks, catalog: CatalogDescription
) -> Iterator[str]:
    """The catalog as Turtle, in chunks: prefixes and catalog first, then one chunk per dataset.

    Consumes ``datasets`` lazily and keeps nothing of a dataset once its chunk is yielded, so a
    cursor over 100,000 rows streams in constant memory. The chunks concatenated are one
    Turtle document.
    """
    yield _TURTLE_PREFIXES + "\n" + _turtle_statements(catalog_triples(catalog, links))
    for dataset in datasets:
        yield "\n" + _turtle_statements([_catalog_link(dataset, links), *dataset_triples(dataset, links)])


# --- JSON-LD --------------------------------------------------------------------------------


def _jsonld_value(term: URIRef | Literal) -> Any:
    if isinstance(term, Literal):
        if term.language is not None:
            return {"@value": str(term), "@language": term.language}
        if term.datatype is not None and str(term.datatype) != _XSD_STRING_IRI:
            return {"@value": str(term), "@type": _compact(term.datatype) or str(term.datatype)}
        return str(term)
    return {"@id": str(term)}


def _jsonld_nodes(triples: Iterable[Triple]) -> list[dict[str, Any]]:
    """Node objects (one per subject) under :data:`JSONLD_CONTEXT`, without the context.

    Written directly from the statements rather than through rdflib's JSON-LD serialiser, for
    the same speed reason as the Turtle; the context only declares prefixes, so compaction is
    a prefix lookup.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for subject, predicate, obj in triples:
        node = nodes.setdefault(str(subject), {"@id": str(subject)})
        iri = str(predicate)
        if iri == _RDF_TYPE_IRI:
            key, value = "@type", _compact(str(obj)) or str(obj)
        else:
            key, value = _compact(iri) or iri, _jsonld_value(obj)
        values = node.setdefault(key, [])
        if value not in values:
            values.append(value)
    # Single values unwrapped, as a compacting JSON-LD processor writes them.
    return [
        {
            key: values[0] if isinstance(values, list) and len(values) == 1 else values
            for key, values in node.items()
        }
        for node in nodes.values()
    ]


def dataset_jsonld(dataset: DatasetDescription, links: PlatformLinks) -> dict[str, Any]:
    """One dataset as a JSON-LD document (``@context`` and ``@graph``)."""
    return {
        "@context": JSONLD_CONTEXT,
        "@graph": _jsonld_nodes([*dataset_triples(dataset, links), *_feeds_service_triples(links)]),
    }


def _dumps(node: dict[str, Any]) -> str:
    return json.dumps(node, ensure_ascii=False, separators=(",", ":"))


def catalog_jsonld(
    datasets: Iterable[DatasetDescription], links: PlatformLinks, catalog: CatalogDescription
) -> Iterator[str]:
    """The catalog as one JSON-LD document, in chunks: ``@context`` once, then node objects.

    Each dataset contributes its node objects to the single ``@graph`` array, plus a small node
    adding it to the catalog's ``dcat:dataset`` (JSON-LD merges node objects with the same
    ``@id``). Constant memory, as :func:`catalog_turtle`.
    """
    header = _jsonld_nodes(catalog_triples(catalog, links))
    yield '{"@context":' + _dumps(JSONLD_CONTEXT) + ',"@graph":[\n' + ",\n".join(map(_dumps, header))
    for dataset in datasets:
        nodes = _jsonld_nodes([_catalog_link(dataset, links), *dataset_triples(dataset, links)])
        yield ",\n" + ",\n".join(map(_dumps, nodes))
    yield "\n]}\n"
