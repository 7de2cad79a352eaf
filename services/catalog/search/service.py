"""Finding datasets: filters and full text, one page at a time in id order.

A page costs the same whether a word matches ten datasets or most of the catalog: on SQLite the
FTS5 table, on PostgreSQL ordered posting lists walked by leapfrogging (migration catalog_0005).
What is indexed of a dataset is in :mod:`services.catalog.search.index`. Reads only, in the
caller's session.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.datasets.service import public_record, topic_names
from services.catalog.models import Dataset, dataset_terms
from services.catalog.needs.service import record_missed_search
from services.catalog.schemas import (
    DatasetFacets,
    DatasetId,
    DatasetPage,
    DatasetRead,
    FacetCount,
    QualityBand,
)
from services.catalog.scores.models import DatasetQuality
from services.common.clock import utcnow
from services.common.i18n import N_, Sentence

DatasetIdAdapter: TypeAdapter[str] = TypeAdapter(DatasetId)

Expansions = dict[str, list[str] | None]
"""What each query word of one search stands for among the indexed words (``_indexed_words``)."""


@dataclass(frozen=True)
class DatasetFilter:
    q: str | None = None
    domain: str | None = None
    department: str | None = None
    classification: str | None = None
    status: str | None = None
    tag: str | None = None
    quality_band: str | None = None
    public_only: bool = False
    """Only what a reader without a key may see: published datasets whose record is listed."""


def search_datasets(
    session: Session,
    *,
    filters: DatasetFilter,
    limit: int = 50,
    cursor: str | None = None,
    expansions: Expansions | None = None,
) -> tuple[list[DatasetRead], str | None]:
    """Datasets matching the filters and the full-text query, in id order, one page at a time.

    Full text covers title, description, tags and field names, each query word matching the
    words it is a prefix of: FTS5 on SQLite; on PostgreSQL, ordered posting lists (migration
    catalog_0005) so that a page costs the same whether a word matches ten datasets or most of
    them. The cursor is the last id of the previous page. ``expansions`` keeps what each query
    word stands for among the indexed words, for the facet counts of the same search to reuse.
    """
    after = decode_cursor(cursor) if cursor else None
    words = _query_words(filters.q)
    postings = None
    if session.get_bind().dialect.name == "postgresql":
        postings = _posting_query(session, filters, words, after, limit + 1, expansions)
    if postings is not None:
        # The page's ids and the listed columns of their datasets in one round trip.
        query, params = postings
        rows = session.execute(query.rows, params).all()
    else:
        rows = _listed_rows(session, _scanned_page(session, filters, words, after, limit + 1))
    page, more = rows[:limit], len(rows) > limit
    if not page and filters.q and after is None:
        record_missed_search(session, filters.q, utcnow())  # shown to operators as a candidate need
    next_cursor = encode_cursor(page[-1].id) if more and page else None
    return _LISTED_PAGE.validate_python(
        [{**row._mapping, "topics": topic_names(row.id)} for row in page]
    ), next_cursor


def search_page(
    session: Session,
    *,
    filters: DatasetFilter,
    limit: int = 50,
    cursor: str | None = None,
    facets: bool = False,
) -> DatasetPage:
    """One page of the search, with the facet counts of the whole query when asked for."""
    expansions: Expansions = {}  # each query word expanded once, for the page and the counts
    items, next_cursor = search_datasets(
        session, filters=filters, limit=limit, cursor=cursor, expansions=expansions
    )
    counts = search_facets(session, filters=filters, expansions=expansions) if facets else None
    return DatasetPage(items=items, next_cursor=next_cursor, facets=counts)


def _query_words(q: str | None) -> list[str]:
    """The query's words, lowercased as the index lowercases them; punctuation separates words."""
    if not q:
        return []
    return "".join(c if c.isalnum() else " " for c in q.lower()).split()


_DATASETS = Dataset.__table__
# Table columns, not the mapped attributes: a statement of plain columns runs on SQLAlchemy's Core
# path, without the ORM's compile and result machinery, which cost a page more than its query.
_LISTED_COLUMNS = tuple(_DATASETS.c[name] for name in DatasetRead.model_fields if name != "topics")
_LISTED_PAGE: TypeAdapter[list[DatasetRead]] = TypeAdapter(list[DatasetRead])


def _listed_rows(session: Session, ids: Sequence[str]) -> list[sa.Row[Any]]:
    """The listed columns of the datasets, in the given order."""
    if not ids:
        return []
    rows = {
        row.id: row for row in session.execute(sa.select(*_LISTED_COLUMNS).where(_DATASETS.c.id.in_(ids)))
    }
    return [rows[dataset_id] for dataset_id in ids if dataset_id in rows]


def _scanned_page(
    session: Session, filters: DatasetFilter, words: list[str], after: str | None, size: int
) -> list[str]:
    """One page of ids by filtering the datasets table in id order: SQLite (with its FTS5 table),
    and PostgreSQL when a query word is too short a prefix for the posting lists, or a filter has
    no posting list (quality band, public records)."""
    query = sa.select(Dataset.id).where(*_conditions(session, filters, words))
    if after is not None:
        query = query.where(Dataset.id > after)
    if words and session.get_bind().dialect.name == "postgresql":
        # A GIN bitmap of every match, sorted: the planner would otherwise walk the primary key
        # testing each row, which reads most of the catalog for a word whose datasets sort late.
        query = sa.select(query.offset(0).subquery()).order_by(sa.column("id"))
    else:
        query = query.order_by(Dataset.id)
    return list(session.scalars(query.limit(size)))


def _conditions(
    session: Session,
    filters: DatasetFilter,
    words: list[str],
    *,
    counting: bool = False,
    expansions: Expansions | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The filters and the query words as conditions on the datasets table; ``counting`` (every
    match is read, not the first page) takes the words from the posting lists on PostgreSQL."""
    conditions: list[sa.ColumnElement[bool]] = [
        column == value
        for column, value in (
            (Dataset.domain_id, filters.domain),
            (Dataset.owner_department_id, filters.department),
            (Dataset.classification, filters.classification),
            (Dataset.status, filters.status),
        )
        if value
    ]
    if filters.tag:
        conditions.append(_has_tag(session, filters.tag))
    if filters.quality_band:
        overall = (
            sa.select(DatasetQuality.overall)
            .where(DatasetQuality.dataset_id == Dataset.id)
            .correlate(Dataset)  # only the dataset: the facet query joins the scores too
        )
        conditions.append(_quality_band(overall.scalar_subquery()) == filters.quality_band)
    if filters.public_only:
        conditions.append(public_record())
    if words and counting and session.get_bind().dialect.name == "postgresql":
        conditions.extend(_posting_range(session, word, expansions) for word in words)
    elif words:
        conditions.append(_full_text(session, words))
    return conditions


def _posting_range(
    session: Session, prefix: str, expansions: Expansions | None = None
) -> sa.ColumnElement[bool]:
    """The datasets holding a word ``prefix`` is a prefix of: the posting lists of the indexed
    words it stands for, or their index range when it stands for too many to list.

    What the GIN index answers too, but a query matching a quarter of the catalog made the
    planner test the search vector of every dataset; the lists read only the matching ids. The
    words are named rather than left a range: PostgreSQL estimates a narrow range of terms at
    one row, and joined two words' ranges by rescanning one for every id of the other (a faceted
    "arrival time" took half a minute); each named word it estimates from its statistics.
    """
    expansion = _indexed_words(session, prefix, expansions)
    if expansion is None:
        terms = sa.and_(dataset_terms.c.term >= prefix, dataset_terms.c.term < _after_prefix(prefix))
    else:
        terms = dataset_terms.c.term.in_(expansion)
    holding = sa.select(dataset_terms.c.dataset_id).where(dataset_terms.c.field == "text", terms)
    return Dataset.id.in_(holding)


QUALITY_BANDS = ((QualityBand.high, 90.0), (QualityBand.medium, 70.0))
"""The lowest overall score of each band above ``low``."""


def _quality_band(overall: sa.ColumnElement[Any] | Any) -> sa.ColumnElement[str]:
    return sa.case(
        *((overall >= floor, band.value) for band, floor in QUALITY_BANDS),
        (overall.is_not(None), QualityBand.low.value),
        else_=QualityBand.unscored.value,
    )


TOP_TAGS = 20
"""The tag facet counts the most frequent tags of the query, not every tag of the catalog."""


def search_facets(
    session: Session, *, filters: DatasetFilter, expansions: Expansions | None = None
) -> DatasetFacets:
    """How the datasets of the query spread over domain, department, classification, status,
    quality band and tag: the counts a search page shows beside its results.

    One grouped scan of the matching datasets for the five single-valued facets (the few
    combinations that occur, added up here) and one for the tags, on PostgreSQL and SQLite alike.
    """
    conditions = _conditions(session, filters, _query_words(filters.q), counting=True, expansions=expansions)
    facets = {
        "domain": Dataset.domain_id,
        "department": Dataset.owner_department_id,
        "classification": Dataset.classification,
        "status": Dataset.status,
        "quality_band": _quality_band(DatasetQuality.overall),
    }
    combinations = session.execute(
        sa.select(*facets.values(), sa.func.count())
        .select_from(Dataset)
        .outerjoin(DatasetQuality, DatasetQuality.dataset_id == Dataset.id)
        .where(*conditions)
        .group_by(*facets.values())
    )
    counters: dict[str, Counter[str]] = {name: Counter() for name in facets}
    for *values, count in combinations:
        for name, value in zip(facets, values, strict=True):
            counters[name][str(value)] += int(count)
    counted = {name: _most_frequent(counter.items()) for name, counter in counters.items()}
    return DatasetFacets(**counted, tag=_tag_counts(session, conditions))


def _tag_counts(session: Session, conditions: list[sa.ColumnElement[bool]]) -> list[FacetCount]:
    elements = {"sqlite": sa.func.json_each, "postgresql": sa.func.json_array_elements_text}[
        session.get_bind().dialect.name
    ]
    values = elements(Dataset.tags).table_valued("value")
    count = sa.func.count().label("n")
    rows = session.execute(
        sa.select(values.c.value, count)
        .select_from(Dataset)
        .join(values, sa.true())
        .where(*conditions)
        .group_by(values.c.value)
        .order_by(count.desc(), values.c.value)
        .limit(TOP_TAGS)
    )
    return _most_frequent((str(value), n) for value, n in rows)


def _most_frequent(counts: Any) -> list[FacetCount]:
    ordered = sorted(counts, key=lambda item: (-item[1], item[0]))
    return [FacetCount(value=value, count=n) for value, n in ordered if n]


def _has_tag(session: Session, tag: str) -> sa.ColumnElement[bool]:
    """The dataset's tags (a JSON list) hold exactly ``tag``, compared as decoded JSON strings, so
    that a tag outside ASCII (stored escaped) matches as it does in the posting lists.

    On PostgreSQL the tag's posting list answers, an index range, rather than the tags of every
    dataset the other conditions leave being unpacked from JSON (a facet query counts them all)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        tagged = sa.select(dataset_terms.c.dataset_id).where(
            dataset_terms.c.field == "tag", dataset_terms.c.term == tag
        )
        return Dataset.id.in_(tagged)
    elements = {"sqlite": sa.func.json_each}.get(dialect)
    if elements is None:
        return sa.cast(Dataset.tags, sa.Text).like(f"%{_escape_like(json.dumps(tag))}%", escape="\\")
    values = elements(Dataset.tags).table_valued("value")
    return sa.exists(sa.select(1).select_from(values).where(values.c.value == tag))


def _full_text(session: Session, words: list[str]) -> sa.ColumnElement[bool]:
    if session.get_bind().dialect.name == "sqlite":
        match = " ".join(f'"{word}"*' for word in words)
        return Dataset.id.in_(
            sa.select(sa.column("dataset_id"))
            .select_from(sa.table("catalog_datasets_fts"))
            .where(sa.text("catalog_datasets_fts MATCH :match").bindparams(match=match))
        )
    if session.get_bind().dialect.name == "postgresql":
        # A literal regconfig, so that the expression is the one the stored column is computed with.
        tsquery = sa.func.to_tsquery(
            sa.literal_column("'simple'::regconfig"), " & ".join(f"{word}:*" for word in words)
        )
        return sa.literal_column("catalog_datasets.search_vector").op("@@")(tsquery)
    return sa.and_(*(Dataset.search_text.ilike(f"%{word}%") for word in words))


MAX_PREFIX_EXPANSION = 64
"""A query word may stand for at most this many indexed words on the posting-list path; a shorter
prefix ("a", "st") is answered from the GIN index instead."""


def _posting_page(
    session: Session, filters: DatasetFilter, words: list[str], after: str | None, size: int
) -> list[str] | None:
    """One page of ids from the posting lists (PostgreSQL), or None where they do not serve."""
    postings = _posting_query(session, filters, words, after, size)
    if postings is None:
        return None
    query, params = postings
    return list(session.scalars(query.ids, params))


@dataclass(frozen=True)
class _PostingQuery:
    """A page of ids from the posting lists, and the listed columns of the page's datasets.

    Built once per shape (how many lists, how many indexed words in each, from a cursor or not)
    with the words, filters, cursor and page size as parameters: a statement built afresh for
    every search made SQLAlchemy build and derive its cache key again, which cost more than the
    page's SQL took to run.
    """

    ids: sa.Select[tuple[str]]
    rows: sa.Select[Any]

    @classmethod
    def of(cls, ids: sa.Select[tuple[str]]) -> _PostingQuery:
        page_ids = ids.subquery()
        rows = (
            sa.select(*_LISTED_COLUMNS)
            .join(page_ids, page_ids.c.dataset_id == _DATASETS.c.id)
            .order_by(_DATASETS.c.id)
        )
        return cls(ids, rows)


POSTING_SHAPES = 512
"""Posting queries kept built, one per shape; searches repeat a few shapes."""


@cache
def _no_postings() -> _PostingQuery:
    """A word no indexed word starts with: no dataset."""
    return _PostingQuery.of(sa.select(dataset_terms.c.dataset_id).where(sa.false()))


def _posting_query(
    session: Session,
    filters: DatasetFilter,
    words: list[str],
    after: str | None,
    size: int,
    expansions: Expansions | None = None,
) -> tuple[_PostingQuery, dict[str, Any]] | None:
    """The query of one page of ids from the posting lists (PostgreSQL) and its parameters, or
    None where they do not serve.

    Each query word and each filter is a list of dataset ids in id order (for a word, the union
    of the lists of the indexed words it is a prefix of), an index range read without the table.
    One list is read from the cursor on. The intersection of several is walked by leapfrogging:
    each list seeks, by one index probe, its first id at or after the current candidate; the
    greatest becomes the next candidate, and a candidate every list holds is a match. Lists that
    rarely meet are skipped through in a few seeks instead of being read side by side, so the
    work follows the page and how often the lists interleave, not how many datasets match.
    """
    lists: list[tuple[str, list[str]]] = []
    for word in words:
        expansion = _indexed_words(session, word, expansions)
        if expansion is None:
            return None
        if not expansion:
            return _no_postings(), {}
        lists.append(("text", expansion))
    for field, value in (
        ("tag", filters.tag),
        ("department", filters.department),
        ("domain", filters.domain),
        ("classification", filters.classification),
        ("status", filters.status),
    ):
        if value:
            lists.append((field, [value]))
    if filters.quality_band or filters.public_only:
        return None  # no posting list of these: the scanned page filters them
    if not lists:
        return None  # no word, no filter: the primary key is already the list
    # List i is field f<i> holding any of the terms t<i>_<j>.
    params: dict[str, Any] = {"after": after or "", "size": size}
    for index, (field, terms) in enumerate(lists):
        params[f"f{index}"] = field
        params.update({f"t{index}_{position}": term for position, term in enumerate(terms)})
    if len(lists) == 1:
        return _posting_list(len(lists[0][1]), from_cursor=after is not None), params
    return _leapfrog(tuple(len(terms) for _, terms in lists)), params


@lru_cache(maxsize=POSTING_SHAPES)
def _leapfrog(shape: tuple[int, ...]) -> _PostingQuery:
    """The walk of the lists' intersection, for lists of ``shape[i]`` indexed words each."""

    def seek(index: int, operator: str, start: str) -> str:
        """The list's first id ``operator`` ``start``: one index probe per indexed word."""
        probes = [
            f"(SELECT dataset_id FROM catalog_dataset_terms WHERE field = :f{index} "
            f"AND term = :t{index}_{position} AND dataset_id {operator} {start} "
            f"ORDER BY dataset_id LIMIT 1)"
            for position in range(shape[index])
        ]
        return probes[0] if len(probes) == 1 else f"LEAST({', '.join(probes)})"

    heads = ", ".join(f"{seek(index, '>=', 'walk.candidate')} AS head{index}" for index in range(len(shape)))
    every = " AND ".join(f"heads.head{index} IS NOT NULL" for index in range(len(shape)))
    top = f"GREATEST({', '.join(f'heads.head{index}' for index in range(len(shape)))})"
    # walk(candidate, found): found is the id the step that produced the row confirmed, if any.
    # No ORDER BY on the walk: candidates only grow, and an ORDER BY would make PostgreSQL run
    # the walk to its end before the LIMIT could stop it. OFFSET 0 keeps the heads a subquery of
    # their own: pulled up, each probe ran again wherever its head is named (five times a step).
    sql = f"""
        WITH RECURSIVE walk(candidate, found) AS (
            SELECT {seek(0, ">", ":after")}, NULL::varchar
            UNION ALL
            SELECT CASE WHEN {top} = walk.candidate THEN {seek(0, ">", "walk.candidate")} ELSE {top} END,
                   CASE WHEN {top} = walk.candidate THEN walk.candidate END
            FROM walk CROSS JOIN LATERAL (SELECT {heads} OFFSET 0) AS heads
            WHERE walk.candidate IS NOT NULL AND {every}
        )
        SELECT found AS dataset_id FROM walk WHERE found IS NOT NULL LIMIT :size
    """
    text = sa.text(sql).columns(dataset_id=sa.String)
    return _PostingQuery.of(sa.select(text.subquery().c.dataset_id))


@lru_cache(maxsize=POSTING_SHAPES)
def _posting_list(terms: int, *, from_cursor: bool) -> _PostingQuery:
    """One list read in id order (from the cursor on): the union of ``terms`` indexed words' lists."""
    branches = []
    for position in range(terms):
        branch = sa.select(dataset_terms.c.dataset_id).where(
            dataset_terms.c.field == sa.bindparam("f0"),
            dataset_terms.c.term == sa.bindparam(f"t0_{position}"),
        )
        if from_cursor:
            branch = branch.where(dataset_terms.c.dataset_id > sa.bindparam("after"))
        # Ordered each on its own, so that PostgreSQL merges the words' lists (each an index
        # range already in id order) rather than gathering and sorting all of them.
        branches.append(branch.order_by(dataset_terms.c.dataset_id))
    # A dataset holding several words of one prefix (bus, buses) is in the list once per word;
    # the page query removes the repeats. Deduplicating here instead would hide from the planner
    # that the page needs only the first few: it would gather and hash the whole list.
    ids = branches[0].order_by(None).subquery() if terms == 1 else sa.union_all(*branches).subquery()
    page = ids.c.dataset_id
    return _PostingQuery.of(
        sa.select(page).distinct().order_by(page).limit(sa.bindparam("size", type_=sa.Integer))
    )


# Each step is the first term of an index range, ORDER BY ... LIMIT 1 rather than min(): for
# the first step the planner, expecting one row, aggregated the whole range instead (every
# posting of a common word, 7,500 for "delay", read to find its first term).
_INDEXED_WORDS = sa.text(
    """
    WITH RECURSIVE found(term) AS (
        (
            SELECT term FROM catalog_dataset_terms
            WHERE field = 'text' AND term >= :prefix AND term < :beyond
            ORDER BY term LIMIT 1
        )
        UNION ALL
        SELECT (
            SELECT term FROM catalog_dataset_terms
            WHERE field = 'text' AND term > found.term AND term < :beyond
            ORDER BY term LIMIT 1
        )
        FROM found WHERE found.term IS NOT NULL
    )
    SELECT term FROM found WHERE term IS NOT NULL LIMIT :most
    """
)


def _indexed_words(session: Session, prefix: str, expansions: Expansions | None = None) -> list[str] | None:
    """The indexed words ``prefix`` is a prefix of, or None when there are too many to list;
    taken from ``expansions`` when this search expanded ``prefix`` already, and kept there.

    A loose index scan: one index probe per distinct word, however many datasets hold it.
    """
    if expansions is not None and prefix in expansions:
        return expansions[prefix]
    beyond = _after_prefix(prefix)
    found = list(
        session.scalars(
            _INDEXED_WORDS, {"prefix": prefix, "beyond": beyond, "most": MAX_PREFIX_EXPANSION + 1}
        )
    )
    expansion = None if len(found) > MAX_PREFIX_EXPANSION else found
    if expansions is not None:
        expansions[prefix] = expansion
    return expansion


def _after_prefix(prefix: str) -> str:
    """The first string after every word ``prefix`` is a prefix of: the end of its index range."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


def decode_cursor(cursor: str) -> str:
    try:
        if not _CURSOR.match(cursor):
            raise ValueError(cursor)
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        DatasetIdAdapter.validate_python(last_id)
        return last_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise exceptions.InvalidCursor(Sentence(N_("the cursor was not issued by this API"))) from error
