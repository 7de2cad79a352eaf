"""DCAT-AP descriptions to export in tests, the two streamed formats to read them back from, and the
DCAT-AP 3.0.1 SHACL shapes to check an export against (tests/data/dcat-ap-3.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyshacl import validate
from rdflib import Graph
from rdflib.namespace import SH

from services.catalog.standards import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)
from services.catalog.standards.dcat_serialization import catalog_jsonld, catalog_turtle

LINKS = PlatformLinks("https://data.city.example/")
CATALOG = CatalogDescription(
    title="City data catalog",
    description="Every dataset the city's departments publish on citybase.",
    publisher=PublisherDescription("city-data-office", "City data office", "city", email="data@city.example"),
)
DOMAINS = ("transport", "health", "market", "spatial", "community")
CLASSIFICATIONS = ("open", "conditional", "restricted")
FREQUENCIES = ("PT1M", "P1D", None, "PT1H", "PT5S")


def publisher(**overrides: Any) -> PublisherDescription:
    fields: dict[str, Any] = {
        "id": "transport-bureau",
        "name": "Municipal Transport Bureau",
        "kind": "department",
        "homepage": "https://jtw.city.example",
        "email": "open-data@jtw.city.example",
    }
    fields.update(overrides)
    return PublisherDescription(**fields)


def dataset(**overrides: Any) -> DatasetDescription:
    fields: dict[str, Any] = {
        "id": "transport.bus-arrivals",
        "title": "Bus arrivals",
        "description": "Every arrival of a bus at a stop, with its delay and occupancy.",
        "publisher": publisher(),
        "domain": "transport",
        "classification": "open",
        "status": "active",
        "created_at": datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        "updated_at": datetime(2026, 11, 24, 8, 15, 30, 250000, tzinfo=UTC),
        "tags": ("bus", "realtime"),
        "update_frequency": "PT1M",
        "contract_version": "1.2.0",
        "record_schema": {"type": "object", "properties": {"arrival_id": {"type": "string"}}},
        "primary_key": ("arrival_id",),
    }
    fields.update(overrides)
    return DatasetDescription(**fields)


def generated_datasets(count: int) -> Iterator[DatasetDescription]:
    """A lazy stream of varied datasets, as a database cursor would yield them."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(count):
        domain = DOMAINS[i % len(DOMAINS)]
        yield dataset(
            id=f"{domain}.dataset-{i}",
            title=f"Dataset {i}",
            description=f"Generated dataset {i} of the {domain} domain.",
            publisher=publisher(
                id=f"{domain}-dept", name=f"{domain} department", email=f"data@{domain}.example"
            ),
            domain=domain,
            classification=CLASSIFICATIONS[i % len(CLASSIFICATIONS)],
            created_at=start + timedelta(minutes=i),
            updated_at=start + timedelta(days=1, minutes=i),
            tags=(domain, f"tag-{i % 7}"),
            update_frequency=FREQUENCIES[i % len(FREQUENCIES)],
            contract_version=None if i % 4 == 0 else f"1.{i % 5}.0",
        )


# rdflib's own JSON-LD parser builds a ConjunctiveGraph, which rdflib 7 deprecates.
jsonld_parser_warning = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

STREAM_FORMATS = [
    pytest.param("turtle", id="turtle"),
    pytest.param("json-ld", id="json-ld", marks=jsonld_parser_warning),
]
"""The two formats the catalog streams in, as test parameters."""


def parse_rdf(text: str, fmt: str) -> Graph:
    return Graph().parse(data=text, format=fmt)


def streamed(fmt: str) -> Callable[..., Iterator[str]]:
    """The function that streams the whole catalog in ``fmt``."""
    return catalog_turtle if fmt == "turtle" else catalog_jsonld


SHAPES_DIR = Path(__file__).resolve().parents[1] / "data" / "dcat-ap-3.0.1"
SHAPE_FILES = ("shapes.ttl", "range.ttl", "mdr-vocabularies.shape.ttl")


def violations(data: Graph, shapes: Graph) -> list[str]:
    """Each sh:Violation of the report, as 'focus path: message' (warnings are not counted)."""
    _, report, _ = validate(data, shacl_graph=shapes, inference="none", allow_warnings=True)
    found = []
    for result in report.objects(None, SH.result):
        if (result, SH.resultSeverity, SH.Violation) in report:
            found.append(
                f"{report.value(result, SH.focusNode)} {report.value(result, SH.resultPath)}: "
                f"{report.value(result, SH.resultMessage)}"
            )
    return found
