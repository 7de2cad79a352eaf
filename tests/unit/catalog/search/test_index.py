"""What the full-text index holds of a dataset: its words, and its contract's field names whole and in parts."""

from __future__ import annotations

import sqlalchemy as sa

from services.catalog.contracts.service import add_contract
from services.catalog.models import ContractVersion, Dataset
from services.catalog.search.index import search_text
from tests.factories import example_contract
from tests.support.catalog_units import CatalogWorld


def test_the_search_text_holds_the_descriptive_words_and_the_field_names_split_at_underscores() -> None:
    dataset = Dataset(
        id="health.outpatient-visits", title="Outpatient visits", description="", tags=["queue", "wait"]
    )
    version = ContractVersion(record_schema={"properties": {"wait_minutes": {}, "clinic-id": {}}})
    lines = search_text(dataset, version).split("\n")
    assert lines == [
        "health.outpatient-visits",
        "Outpatient visits",
        "queue wait",
        "wait_minutes clinic-id",
        "wait minutes clinic id",
    ]
    assert search_text(dataset, None).split("\n") == [
        "health.outpatient-visits",
        "Outpatient visits",
        "queue wait",
    ]


def test_the_sqlite_full_text_table_follows_each_registration(catalog: CatalogWorld) -> None:
    add_contract(
        catalog.session,
        events=catalog.events,
        document=example_contract("transport.bus-arrivals"),
        created_by="t",
    )
    body = catalog.session.scalar(
        sa.text("SELECT body FROM catalog_datasets_fts WHERE dataset_id = 'transport.bus-arrivals'")
    )
    assert body is not None and "delay_s" in body.split() and "delay" in body.split()
    count = catalog.session.scalar(sa.text("SELECT count(*) FROM catalog_datasets_fts"))
    assert count == 1
