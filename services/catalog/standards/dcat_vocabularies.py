"""The vocabularies of the DCAT-AP 3 export: namespaces, terms and the EU controlled vocabularies.

Controlled-vocabulary values (themes, access rights, frequencies, statuses, file types,
publisher types) are described in the export as the authority tables describe them: their class
(``skos:Concept``, ``dct:RightsStatement``, ...), an English ``skos:prefLabel`` and their
``skos:inScheme``, and each scheme as a ``skos:ConceptScheme`` with its ``dct:title``. So the
export conforms to the DCAT-AP 3.0.1 SHACL shapes (``shapes.ttl``, ``range.ttl`` and the
controlled-vocabulary shapes) without loading the EU tables as background knowledge.

City words map to codes here (:data:`THEMES`, :data:`ACCESS_RIGHTS`, :data:`PUBLISHER_TYPES`,
:data:`STATUSES`, :func:`frequency_code`); :mod:`.dcat` states them, :mod:`.dcat_serialization`
writes the prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rdflib import Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SKOS, XSD

from services.catalog.standards.model import Classification

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")

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

# The terms the export states, as constants: an rdflib namespace attribute costs about a microsecond
# per lookup, and the export looks up ~100 terms per dataset.


class Adms:
    status = ADMS.status


class Dcat:
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


class Dct:
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


class Foaf:
    Agent = FOAF.Agent
    Document = FOAF.Document
    homepage = FOAF.homepage
    mbox = FOAF.mbox
    name = FOAF.name


class Hydra:
    """The Hydra paging terms a harvester (CKAN's ckanext-dcat, data.europa.eu) follows."""

    first = HYDRA.first
    next = HYDRA.next
    PartialCollectionView = HYDRA.PartialCollectionView
    totalItems = HYDRA.totalItems
    view = HYDRA.view


class Skos:
    Concept = SKOS.Concept
    ConceptScheme = SKOS.ConceptScheme
    inScheme = SKOS.inScheme
    prefLabel = SKOS.prefLabel


class Vcard:
    fn = VCARD.fn
    hasEmail = VCARD.hasEmail
    hasURL = VCARD.hasURL
    Kind = VCARD.Kind


RDF_TYPE = RDF.type


PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "adms": str(ADMS),
    "skos": str(SKOS),
    "xsd": str(XSD),
    "hydra": str(HYDRA),
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
    "bureau": "LocalAuthority",
    "commission": "LocalAuthority",
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
Triple = tuple[URIRef, URIRef, URIRef | Literal]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """A controlled vocabulary as the export describes it, so that its values need no lookup.

    ``labels`` are the English preferred labels of the codes citybase uses, as the authority
    table publishes them; ``classes`` are what the DCAT-AP range shapes expect of a value besides
    ``skos:Concept`` (an access right is also a ``dct:RightsStatement``, ...).
    """

    scheme: URIRef
    title: str
    namespace: str
    labels: dict[str, str]
    classes: tuple[URIRef, ...] = ()
    _described: dict[str, list[Triple]] = field(default_factory=dict, compare=False, repr=False)

    def concept(self, code: str) -> URIRef:
        return URIRef(self.namespace + code)

    def describe(self, code: str) -> list[Triple]:
        """The concept's class(es), label and scheme: the same few statements every time, built once."""
        if code not in self._described:
            concept = self.concept(code)
            self._described[code] = [
                (concept, RDF_TYPE, Skos.Concept),
                *((concept, RDF_TYPE, cls) for cls in self.classes),
                (concept, Skos.prefLabel, Literal(self.labels[code], lang="en")),
                (concept, Skos.inScheme, self.scheme),
            ]
        return self._described[code]

    def scheme_triples(self) -> list[Triple]:
        return [
            (self.scheme, RDF_TYPE, Skos.ConceptScheme),
            (self.scheme, Dct.title, Literal(self.title, lang="en")),
        ]


_STATUS_LABELS = {
    "DEVELOP": "Under development",
    "COMPLETED": "Completed",
    "DEPRECATED": "Deprecated",
    "WITHDRAWN": "Withdrawn",
}
THEME_VOCABULARY = Vocabulary(
    DATA_THEME_SCHEME,
    "Data theme",
    str(DATA_THEME),
    {
        "AGRI": "Agriculture, fisheries, forestry and food",
        "ECON": "Economy and finance",
        "EDUC": "Education, culture and sport",
        "ENER": "Energy",
        "ENVI": "Environment",
        "GOVE": "Government and public sector",
        "HEAL": "Health",
        "INTR": "International issues",
        "JUST": "Justice, legal system and public safety",
        "REGI": "Regions and cities",
        "SOCI": "Population and society",
        "TECH": "Science and technology",
        "TRAN": "Transport",
    },
)
ACCESS_RIGHT_VOCABULARY = Vocabulary(
    URIRef(_EU_AUTHORITY + "access-right"),
    "Access right",
    str(ACCESS_RIGHT),
    {"PUBLIC": "Public", "RESTRICTED": "Restricted", "NON_PUBLIC": "Non-public"},
    (Dct.RightsStatement,),
)
FREQUENCY_VOCABULARY = Vocabulary(
    URIRef(_EU_AUTHORITY + "frequency"),
    "Frequency",
    str(FREQUENCY),
    {
        "1MIN": "Every minute",
        "5MIN": "Every five minutes",
        "10MIN": "Every ten minutes",
        "15MIN": "Every fifteen minutes",
        "30MIN": "Every thirty minutes",
        "HOURLY": "Hourly",
        "BIHOURLY": "Bihourly",
        "TRIHOURLY": "Trihourly",
        "12HRS": "Twice a day",
        "DAILY": "Daily",
        "WEEKLY": "Weekly",
        "BIWEEKLY": "Biweekly",
        "MONTHLY": "Monthly",
        "BIMONTHLY": "Bimonthly",
        "QUARTERLY": "Quarterly",
        "ANNUAL_2": "Semiannual",
        "ANNUAL": "Annual",
        "BIENNIAL": "Biennial",
        "TRIENNIAL": "Triennial",
        "UPDATE_CONT": "Continuously updated",
        "OTHER": "Other",
        "UNKNOWN": "Unknown",
    },
    (Dct.Frequency,),
)
DATASET_STATUS_VOCABULARY = Vocabulary(
    URIRef(_EU_AUTHORITY + "dataset-status"), "Dataset status", str(DATASET_STATUS), _STATUS_LABELS
)
DISTRIBUTION_STATUS_VOCABULARY = Vocabulary(
    URIRef(_EU_AUTHORITY + "distribution-status"),
    "Distribution status",
    str(DISTRIBUTION_STATUS),
    _STATUS_LABELS,
)
FILE_TYPE_VOCABULARY = Vocabulary(
    URIRef(_EU_AUTHORITY + "file-type"),
    "File type",
    str(FILE_TYPE),
    {"JSON": "JSON"},
    (Dct.MediaTypeOrExtent,),
)
PUBLISHER_TYPE_VOCABULARY = Vocabulary(
    URIRef("http://purl.org/adms/publishertype/1.0"),
    "Publisher type",
    str(PUBLISHER_TYPE),
    {
        "LocalAuthority": "Local Authority",
        "RegionalAuthority": "Regional Authority",
        "NationalAuthority": "National authority",
        "Company": "Company",
        "Academia-ScientificOrganisation": "Academia/Scientific organisation",
        "NonGovernmentalOrganisation": "Non-Governmental Organisation",
        "NonProfitOrganisation": "Non-Profit Organisation",
        "PrivateIndividual(s)": "Private Individual(s)",
        "StandardisationBody": "Standardisation body",
    },
)
VOCABULARIES: tuple[Vocabulary, ...] = (
    THEME_VOCABULARY,
    ACCESS_RIGHT_VOCABULARY,
    FREQUENCY_VOCABULARY,
    DATASET_STATUS_VOCABULARY,
    DISTRIBUTION_STATUS_VOCABULARY,
    FILE_TYPE_VOCABULARY,
    PUBLISHER_TYPE_VOCABULARY,
)
"""Every vocabulary the export draws values from; their schemes are described once per document."""


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
