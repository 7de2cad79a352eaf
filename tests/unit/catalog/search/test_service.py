"""Searching the catalog on SQLite (FTS5): prefixes of words, field names, filters, pages in id order."""

from __future__ import annotations

import pytest

from services.catalog import exceptions
from services.catalog.contracts.service import add_contract
from services.catalog.datasets.service import add_dataset, change_dataset
from services.catalog.schemas import DatasetCreate, DatasetUpdate
from services.catalog.search import service as search
from services.catalog.search.service import DatasetFilter
from tests.factories import example_contract
from tests.support.catalog_units import CatalogWorld

DATASETS = (
    DatasetCreate(
        id="transport.bus-arrivals",
        title="Bus arrivals",
        owner_department_id="transport-bureau",
        tags=["realtime", "夜间"],
        classification="open",
        status="active",
    ),
    DatasetCreate(id="transport.buses", title="Fleet of buses", owner_department_id="transport-bureau"),
    DatasetCreate(
        id="transport.parking",
        title="Parking at night",
        description="Occupancy of business district garages",
        owner_department_id="transport-bureau",
        tags=["Realtime"],
    ),
    DatasetCreate(
        id="health.clinics", title="Clinics", owner_department_id="health-commission", tags=["realtime"]
    ),
)


@pytest.fixture
def world(catalog: CatalogWorld) -> CatalogWorld:
    for row in DATASETS:
        add_dataset(catalog.session, events=catalog.events, payload=row)
    catalog.session.commit()
    return catalog


def _ids(world: CatalogWorld, **filters: str) -> list[str]:
    items, _ = search.search_datasets(world.session, filters=DatasetFilter(**filters), limit=200)
    return [item.id for item in items]


def test_a_query_word_matches_the_words_it_is_a_prefix_of_in_any_case(world: CatalogWorld) -> None:
    assert _ids(world, q="bus") == ["transport.bus-arrivals", "transport.buses", "transport.parking"]
    assert _ids(world, q="BUSES") == ["transport.buses"]
    assert _ids(world, q="night garages") == ["transport.parking"]  # every word must match
    assert _ids(world, q="tram") == []
    assert _ids(world, q="  ") == _ids(world)  # no words: every dataset


def test_filters_combine_with_the_query_and_tags_match_exactly(world: CatalogWorld) -> None:
    assert _ids(world, domain="health") == ["health.clinics"]
    assert _ids(world, department="transport-bureau", q="arrivals") == ["transport.bus-arrivals"]
    assert _ids(world, classification="open") == ["transport.bus-arrivals"]
    assert _ids(world, status="active") == ["transport.bus-arrivals"]
    assert _ids(world, tag="realtime") == ["health.clinics", "transport.bus-arrivals"]
    assert _ids(world, tag="Realtime") == ["transport.parking"]
    assert _ids(world, tag="夜间") == ["transport.bus-arrivals"]


def test_pages_follow_the_ids_and_the_cursor_continues_where_the_last_page_ended(world: CatalogWorld) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = search.search_datasets(world.session, filters=DatasetFilter(), limit=3, cursor=cursor)
        seen += [item.id for item in items]
        pages += 1
        if cursor is None:
            break
    assert pages == 2
    assert seen == sorted(row.id for row in DATASETS)


def test_a_cursor_the_api_did_not_issue_is_refused(world: CatalogWorld) -> None:
    for cursor in ("not a cursor!", "bm90LWFuLWlk"):  # punctuation; base64 of "not-an-id"
        with pytest.raises(exceptions.InvalidCursor):
            search.search_datasets(world.session, filters=DatasetFilter(), cursor=cursor)


def test_a_dataset_is_found_by_its_contracts_field_names_and_by_their_parts(catalog: CatalogWorld) -> None:
    add_contract(
        catalog.session,
        events=catalog.events,
        document=example_contract("transport.bus-arrivals"),
        created_by="t",
    )
    catalog.session.commit()
    assert _ids(catalog, q="delay") == ["transport.bus-arrivals"]
    assert _ids(catalog, q="occupancy") == ["transport.bus-arrivals"]
    change_dataset(
        catalog.session,
        events=catalog.events,
        dataset_id="transport.bus-arrivals",
        payload=DatasetUpdate(title="Tram arrivals"),
    )
    catalog.session.commit()
    assert _ids(catalog, q="tram") == ["transport.bus-arrivals"]
    assert _ids(catalog, q="delay") == ["transport.bus-arrivals"]  # an update keeps the field names
