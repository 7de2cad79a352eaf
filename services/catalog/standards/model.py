"""What the standards exporters read: plain, immutable descriptions of publishers and datasets.

The catalog's service layer builds these from its rows (or from a cursor, one at a time) and hands
them to :mod:`.dcat` and :mod:`.asyncapi`. Keeping the exporters on these small values, rather than
on ORM objects, keeps them pure: no session, no lazy loads, and a test builds one in a line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from urllib.parse import quote

from services.common.topics import dead_letter_topic, raw_topic, records_topic

Classification = Literal["open", "conditional", "restricted"]

# A dataset id becomes a Kafka topic name (``ds.<id>``) and a URI path segment, so it is held to
# the characters both accept unescaped: Kafka's legal topic characters, all URI-unreserved.
_DATASET_ID = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")
_BASE_URL = re.compile(r'^https?://[^\s<>"{}|\\^`/]+(/[^\s<>"{}|\\^`]*)?$')


@dataclass(frozen=True, slots=True)
class PublisherDescription:
    """The department (or other principal) that publishes datasets.

    ``kind`` is the catalog's word for the principal (``department``, ``district``, ``company``,
    ...); the DCAT export maps it to an ADMS publisher type.
    """

    id: str
    name: str
    kind: str
    homepage: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogDescription:
    """The catalog as a whole: DCAT-AP makes title, description and publisher mandatory."""

    title: str
    description: str
    publisher: PublisherDescription
    homepage: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetDescription:
    """One registered dataset, as the standards exporters need it.

    ``record_schema`` is the JSON Schema (draft 2020-12) of one record, compiled from the current
    contract version; ``None`` while no contract is registered. ``update_frequency`` is an ISO 8601
    duration (``PT1M``, ``P1D``) from the contract's SLA, or ``None`` for a stream without a
    declared cadence.
    """

    id: str
    title: str
    description: str
    publisher: PublisherDescription
    domain: str
    classification: Classification
    status: str
    created_at: datetime
    updated_at: datetime
    tags: tuple[str, ...] = ()
    update_frequency: str | None = None
    contract_version: str | None = None
    record_schema: Mapping[str, Any] | None = None
    primary_key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Fail at construction rather than emit a URI or topic that no consumer can use.
        if not _DATASET_ID.match(self.id):
            raise ValueError(
                f"dataset id {self.id!r} must be '<domain>.<name>' in letters, digits, '-', '_' and '.'"
            )
        if self.classification not in get_args(Classification):
            raise ValueError(f"unknown classification {self.classification!r}")
        for name in ("created_at", "updated_at"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")

    @property
    def topic(self) -> str:
        """The topic of validated records, which ingest writes and feeds read."""
        return records_topic(self.id)

    @property
    def raw_topic(self) -> str:
        """The topic publishers that speak Kafka write unvalidated records to."""
        return raw_topic(self.id)

    @property
    def dlq_topic(self) -> str:
        """The dead-letter topic of records ingest rejected."""
        return dead_letter_topic(self.id)


@dataclass(frozen=True, slots=True)
class PlatformLinks:
    """Where the platform is reachable, so that exports carry absolute, dereferenceable URIs.

    ``base_url`` is the public root (``https://data.city.example``); every service is below it
    at its own prefix. ``feeds_openapi_path`` is where the feeds service serves its OpenAPI
    description, linked from the DCAT data service.
    """

    base_url: str
    feeds_openapi_path: str = "/feeds/openapi.json"

    def __post_init__(self) -> None:
        # The exporters write these URIs verbatim into Turtle and AsyncAPI; refuse a base that
        # is not an absolute http(s) URL without characters an IRI cannot hold.
        if not _BASE_URL.match(self.base_url):
            raise ValueError(f"base_url {self.base_url!r} must be an absolute http(s) URL")
        # One trailing slash would double every path below; normalise once here.
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def catalog(self) -> str:
        return f"{self.base_url}/catalog/v1/catalog"

    def dataset(self, dataset_id: str) -> str:
        return f"{self.base_url}/catalog/v1/datasets/{dataset_id}"

    def asyncapi(self, dataset_id: str) -> str:
        return f"{self.dataset(dataset_id)}/asyncapi"

    def contract(self, dataset_id: str) -> str:
        return f"{self.dataset(dataset_id)}/contract"

    def contract_version(self, dataset_id: str, version: str) -> str:
        return f"{self.dataset(dataset_id)}/contract-versions/{quote(version, safe='')}"

    def publisher(self, publisher_id: str) -> str:
        # Publisher ids are the catalog's principal ids, not held to the dataset-id alphabet.
        # The catalog answers this URI with the department, as a foaf:Agent to a client that
        # asks for Turtle or JSON-LD.
        return f"{self.base_url}/catalog/v1/departments/{quote(publisher_id, safe='')}"

    @property
    def catalog_publisher(self) -> str:
        """The catalog's own publisher, described in the catalog document itself."""
        return f"{self.catalog}#publisher"

    @property
    def catalog_homepage(self) -> str:
        """The catalog's human-readable page: its API documentation, with the DCAT export in it."""
        return f"{self.base_url}/catalog/docs"

    @property
    def platform_asyncapi(self) -> str:
        return f"{self.base_url}/catalog/v1/asyncapi"

    @property
    def feeds(self) -> str:
        return f"{self.base_url}/feeds/v1"

    @property
    def feeds_subscriptions(self) -> str:
        return f"{self.feeds}/subscriptions"

    @property
    def feeds_openapi(self) -> str:
        return f"{self.base_url}{self.feeds_openapi_path}"
