"""Catalog search on SQLite (FTS5) and PostgreSQL (posting lists, migration catalog_0005): common
and rare words, prefixes, filters and cursor pages give the same datasets in the same order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from services.catalog.app import SPEC
from services.catalog.datasets.service import add_dataset, change_dataset
from services.catalog.domains.service import CITY_DOMAINS, ensure_city_domains
from services.catalog.events import CatalogEvents
from services.catalog.models import Dataset, Department, outbox
from services.catalog.schemas import DatasetCreate, DatasetUpdate
from services.catalog.scores.models import DatasetQuality
from services.catalog.search import index as search_index
from services.catalog.search import service as search
from services.common import db
from services.common.outbox import Outbox

EVENTS = CatalogEvents(Outbox(outbox))
DOMAINS = ("transport", "health", "market")
CLASSIFICATIONS = ("open", "conditional", "restricted")


def _catalog_rows(count: int = 45) -> list[DatasetCreate]:
    """Datasets whose words are common (stream: all), frequent (bus: a third), rare (ferry: two),
    share a prefix (bus, buses, business), and spread over domains, classifications and tags."""
    rows = []
    for n in range(count):
        domain = DOMAINS[n % 3]
        subject = ("bus arrivals", "buses in depots", "business licences", "clinic queues", "parking")[n % 5]
        if n in (7, 38):
            subject = "ferry schedules"
        rows.append(
            DatasetCreate(
                id=f"{domain}.{subject.split()[0]}-{n:03d}",
                title=f"{subject.capitalize()} number {n}",
                description=f"A live stream of {subject}, district {n % 4}.",
                owner_department_id=f"{domain}-bureau",
                tags=[domain, f"district-{n % 4}"]
                + (["night"] if n % 6 == 0 else [])
                + (["夜间"] if n % 9 == 0 else []),
                classification=CLASSIFICATIONS[n % 3],
                status="active" if n % 7 else "draft",
            )
        )
    return rows


def _load(session: Session, rows: list[DatasetCreate]) -> None:
    ensure_city_domains(session)
    for domain in DOMAINS:
        session.add(Department(id=f"{domain}-bureau", name=domain, kind="bureau", domains=[domain]))
    session.flush()
    for row in rows:
        add_dataset(session, events=EVENTS, payload=row)


def _load_as_of_0004(session: Session, rows: list[DatasetCreate]) -> None:
    """The rows as the catalog stored them at migration catalog_0004: inserts that name only that
    schema's columns, since the ORM maps the columns later migrations add (domain owners, ...)."""
    meta, now = sa.MetaData(), datetime.now(UTC)
    domains = sa.Table("catalog_domains", meta, *(sa.Column(name) for name in ("id", "name", "description")))
    departments = sa.Table(
        "catalog_departments",
        meta,
        *(sa.Column(name) for name in ("id", "name", "kind", "created_at", "updated_at")),
        sa.Column("domains", sa.JSON),
    )
    datasets = sa.Table(
        "catalog_datasets",
        meta,
        *(sa.Column(name) for name in ("domain_id", "search_text", "created_at", "updated_at")),
        *(sa.Column(name) for name in DatasetCreate.model_fields if name != "tags"),
        sa.Column("tags", sa.JSON),
    )
    session.execute(
        domains.insert(),
        [{"id": d, "name": name, "description": text} for d, name, text in CITY_DOMAINS],
    )
    session.execute(
        departments.insert(),
        [
            {
                "id": f"{d}-bureau",
                "name": d,
                "kind": "bureau",
                "domains": [d],
                "created_at": now,
                "updated_at": now,
            }
            for d in DOMAINS
        ],
    )
    values = []
    for row in rows:
        dataset = Dataset(**row.model_dump(mode="json"), domain_id=row.id.split(".", 1)[0])
        search_text = search_index.search_text(dataset, None)
        values.append(
            {
                **row.model_dump(mode="json"),
                "domain_id": dataset.domain_id,
                "search_text": search_text,
                "created_at": now,
                "updated_at": now,
            }
        )
    session.execute(datasets.insert(), values)


def _words(row: DatasetCreate) -> set[str]:
    text = " ".join([row.id, row.title, row.description, *row.tags]).lower()
    return set("".join(c if c.isalnum() else " " for c in text).split())


def _expected(rows: list[DatasetCreate], filters: search.DatasetFilter) -> list[str]:
    """What a search must answer, computed from the rows: each query word a prefix of some word."""
    found = []
    for row in rows:
        words = _words(row)
        if any(not any(word.startswith(q) for word in words) for q in search._query_words(filters.q)):
            continue
        if filters.domain and row.id.split(".")[0] != filters.domain:
            continue
        if filters.classification and row.classification != filters.classification:
            continue
        if filters.status and row.status != filters.status:
            continue
        if filters.department and row.owner_department_id != filters.department:
            continue
        if filters.tag and filters.tag not in row.tags:
            continue
        found.append(row.id)
    return sorted(found)


def _all_pages(session: Session, filters: search.DatasetFilter, limit: int) -> Iterator[str]:
    cursor = None
    while True:
        items, cursor = search.search_datasets(session, filters=filters, limit=limit, cursor=cursor)
        assert len(items) <= limit
        yield from (item.id for item in items)
        if cursor is None:
            return


SEARCHES = (
    search.DatasetFilter(q="stream"),  # every dataset
    search.DatasetFilter(q="bus"),  # a prefix of bus, buses, business
    search.DatasetFilter(q="buses"),
    search.DatasetFilter(q="ferry"),  # rare
    search.DatasetFilter(q="FERRY Schedules"),  # two words, any case
    search.DatasetFilter(q="tram"),  # nothing
    search.DatasetFilter(q="b"),  # a short prefix
    search.DatasetFilter(q="district 3", domain="health"),
    search.DatasetFilter(q="bus", classification="open", status="active"),
    search.DatasetFilter(q="parking", tag="night"),
    search.DatasetFilter(tag="night"),
    search.DatasetFilter(tag="夜间"),  # stored escaped in the JSON list
    search.DatasetFilter(q="bus", tag="夜间"),
    search.DatasetFilter(tag="Night"),  # tags match exactly
    search.DatasetFilter(domain="market", department="market-bureau"),
    search.DatasetFilter(department="transport-bureau", status="draft"),
    search.DatasetFilter(),
)


@pytest.mark.parametrize("limit", [4, 50])
def test_every_search_pages_through_exactly_its_matches_in_id_order(database_url: str, limit: int) -> None:
    rows = _catalog_rows()
    engine = db.create_db_engine(database_url)
    db.migrate(database_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            _load(session, rows)
        with db.unit_of_work(db.session_factory(engine)) as session:
            for filters in SEARCHES:
                assert list(_all_pages(session, filters, limit)) == _expected(rows, filters), filters
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_posting_lists_agree_with_the_gin_index(schema_url: str) -> None:
    """The two PostgreSQL paths (posting lists, and the GIN index short prefixes fall back to)
    answer the same page for the same query, from the first page and from a cursor."""
    rows = _catalog_rows()
    engine = db.create_db_engine(schema_url)
    db.migrate(schema_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            _load(session, rows)
        with db.unit_of_work(db.session_factory(engine)) as session:
            for filters in SEARCHES:
                words = search._query_words(filters.q)
                for after in (None, "market.bus-010", "transport.clinic-018"):
                    postings = search._posting_page(session, filters, words, after, 6)
                    if postings is None:
                        continue
                    scanned = search._scanned_page(session, filters, words, after, 6)
                    assert postings == scanned, (filters, after)
            assert search._indexed_words(session, "b") is not None
            assert search._indexed_words(session, "bus") == ["bus", "buses", "business"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_search_migration_indexes_a_populated_catalog_and_follows_its_changes(schema_url: str) -> None:
    rows = _catalog_rows()
    engine = db.create_db_engine(schema_url)
    config = db.alembic_config(schema_url, SPEC.migrations, SPEC.version_table)  # type: ignore[arg-type]
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "catalog_0004")
        with db.unit_of_work(db.session_factory(engine)) as session:
            _load_as_of_0004(session, rows)  # written before the search tables exist
        db.migrate(schema_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
        sessions = db.session_factory(engine)
        with db.unit_of_work(sessions) as session:
            for filters in SEARCHES:
                assert list(_all_pages(session, filters, 5)) == _expected(rows, filters), filters

        # Writes after the migration keep the posting lists in step: an update and a new dataset.
        with db.unit_of_work(sessions) as session:
            change_dataset(
                session,
                events=EVENTS,
                dataset_id="market.ferry-038",
                payload=DatasetUpdate(title="Tram timetable", tags=["night"]),
            )
            add_dataset(
                session,
                events=EVENTS,
                payload=DatasetCreate(
                    id="transport.tram-999",
                    title="Tram stops",
                    owner_department_id="transport-bureau",
                    classification="open",
                ),
            )
        with db.unit_of_work(sessions) as session:
            found = search.search_datasets(session, filters=search.DatasetFilter(q="tram"))[0]
            assert [item.id for item in found] == ["market.ferry-038", "transport.tram-999"]
            night = search.search_datasets(session, filters=search.DatasetFilter(tag="night"))[0]
            assert "market.ferry-038" in [item.id for item in night]
            terms = session.scalar(
                sa.text("SELECT count(*) FROM catalog_dataset_terms WHERE dataset_id = 'market.ferry-038'")
            )
            assert terms and terms > 5
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_words_too_short_for_the_posting_lists_are_answered_from_the_gin_index(
    schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "MAX_PREFIX_EXPANSION", 0)  # every word falls back
    rows = _catalog_rows()
    engine = db.create_db_engine(schema_url)
    db.migrate(schema_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            _load(session, rows)
        with db.unit_of_work(db.session_factory(engine)) as session:
            assert search._indexed_words(session, "bus") is None
            for filters in SEARCHES:
                assert list(_all_pages(session, filters, 4)) == _expected(rows, filters), filters
    finally:
        engine.dispose()


# --- facets ----------------------------------------------------------------------------------

SCORES = {0: 95.0, 1: 80.0, 2: 40.0, 3: None}
"""The overall quality score of row n by n % 5 (high, medium, low, scored without an overall);
the rest are never scored."""


def _band(n: int) -> str:
    overall = SCORES.get(n % 5)
    if overall is None:
        return "unscored"
    return "high" if overall >= 90 else "medium" if overall >= 70 else "low"


def _score(session: Session, rows: list[DatasetCreate]) -> None:
    for n, row in enumerate(rows):
        if n % 5 in SCORES:
            session.add(
                DatasetQuality(
                    dataset_id=row.id,
                    overall=SCORES[n % 5],
                    scores={},
                    problems=[],
                    window_closed_at=datetime.now(UTC),
                    open_breaches=[],
                    updated_at=datetime.now(UTC),
                )
            )


def _expected_facets(rows: list[DatasetCreate], filters: search.DatasetFilter) -> dict[str, dict[str, int]]:
    """The facet counts of a query, computed from the rows."""
    matching = set(_expected(rows, filters))
    counts: dict[str, Counter[str]] = {
        name: Counter()
        for name in ("domain", "department", "classification", "status", "quality_band", "tag")
    }
    for n, row in enumerate(rows):
        if row.id not in matching or (filters.quality_band and _band(n) != filters.quality_band):
            continue
        counts["domain"][row.id.split(".")[0]] += 1
        counts["department"][row.owner_department_id] += 1
        counts["classification"][row.classification] += 1
        counts["status"][row.status] += 1
        counts["quality_band"][_band(n)] += 1
        counts["tag"].update(row.tags)
    return {name: dict(counter) for name, counter in counts.items()}


@contextmanager
def _scored_catalog(database_url: str, rows: list[DatasetCreate]) -> Iterator[sessionmaker[Session]]:
    """A migrated catalog holding ``rows`` and their quality scores; its sessions."""
    engine = db.create_db_engine(database_url)
    db.migrate(database_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
    try:
        sessions = db.session_factory(engine)
        with db.unit_of_work(sessions) as session:
            _load(session, rows)
            session.flush()
            _score(session, rows)
        yield sessions
    finally:
        engine.dispose()


def _facets(session: Session, filters: search.DatasetFilter) -> dict[str, dict[str, int]]:
    facets = search.search_facets(session, filters=filters)
    found = {name: {c.value: c.count for c in getattr(facets, name)} for name in type(facets).model_fields}
    for name in found:
        counts = [c.count for c in getattr(facets, name)]
        assert counts == sorted(counts, reverse=True), (name, counts)  # most frequent first
    return found


def test_facets_count_every_match_of_the_query_per_value(database_url: str) -> None:
    """The same counts on SQLite and PostgreSQL, for every search, and with a quality band chosen."""
    rows = _catalog_rows()
    with _scored_catalog(database_url, rows) as sessions, db.unit_of_work(sessions) as session:
        for filters in (*SEARCHES, search.DatasetFilter(q="bus", quality_band="high")):
            assert _facets(session, filters) == _expected_facets(rows, filters), filters
        everything = _facets(session, search.DatasetFilter())
        assert everything["quality_band"] == {"high": 9, "medium": 9, "low": 9, "unscored": 18}
        assert sum(everything["domain"].values()) == len(rows)
        for band in ("high", "unscored"):
            filters = search.DatasetFilter(quality_band=band)
            ids = list(_all_pages(session, filters, 7))
            assert ids == sorted(row.id for n, row in enumerate(rows) if _band(n) == band)


@pytest.mark.postgres
def test_a_faceted_search_expands_each_query_word_once(schema_url: str) -> None:
    """The page and its facet counts share what each query word stands for among the indexed
    words: one expansion per word, and the same page and counts as asked for separately."""
    rows = _catalog_rows()
    with _scored_catalog(schema_url, rows) as sessions, db.unit_of_work(sessions) as session:
        expansions: list[str] = []

        def count(conn: object, cursor: object, statement: str, params: object, *args: object) -> None:
            if "WITH RECURSIVE found(term)" in statement:
                expansions.append(str(params))

        engine = session.get_bind()
        filters = search.DatasetFilter(q="bus district", status="active")
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            page = search.search_page(session, filters=filters, limit=4, facets=True)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(expansions) == 2, expansions  # "bus" and "district", once each
        items, _ = search.search_datasets(session, filters=filters, limit=4)
        assert page.items == items
        assert page.facets == search.search_facets(session, filters=filters)
        assert sum(c.count for c in page.facets.status) == len(_expected(rows, filters))


def test_a_reader_without_a_key_finds_only_published_records_it_may_see(database_url: str) -> None:
    rows = _catalog_rows()
    hidden = {"transport.bus-000"}
    with _scored_catalog(database_url, rows) as sessions:
        with db.unit_of_work(sessions) as session:
            change_dataset(
                session,
                events=EVENTS,
                dataset_id="transport.bus-000",
                payload=DatasetUpdate(status="active", publicly_listed=False),
            )
        with db.unit_of_work(sessions) as session:
            for filters in SEARCHES:
                public = search.DatasetFilter(**{**filters.__dict__, "public_only": True})
                expected = [
                    row_id
                    for row_id in _expected(rows, filters)
                    if row_id not in hidden and next(r for r in rows if r.id == row_id).status == "active"
                ]
                assert list(_all_pages(session, public, 5)) == expected, filters
                counted = search.search_facets(session, filters=public).domain
                assert sum(c.count for c in counted) == len(expected)
