"""The catalog's business rules: departments, datasets, contract versions, principals and keys.

Every function takes its collaborators (session, outbox) as arguments and flushes; the caller's
unit of work commits. Each change adds its event to the outbox in the same transaction, so a
change and its announcement on ``platform.catalog`` are committed together or not at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import orm
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.contracts import compatibility, derive
from services.catalog.contracts.odcs import ParsedContract, compare_versions, parse_contract
from services.catalog.models import (
    ApiKey,
    ContractVersion,
    Dataset,
    Department,
    Domain,
    Principal,
    dataset_terms,
)
from services.catalog.schemas import (
    ApiKeyIssued,
    ApiKeyRead,
    BreakingChangeRead,
    CompatibilityModeName,
    CompatibilityReport,
    DatasetCreate,
    DatasetDetail,
    DatasetId,
    DatasetRead,
    DatasetStatus,
    DatasetUpdate,
    DepartmentCreate,
    DepartmentRead,
    DomainCreate,
    PrincipalCreate,
    PrincipalRead,
    QualitySummary,
    Topics,
)
from services.catalog.scores.models import DatasetQuality
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)
from services.common import catalog_events
from services.common.auth import issue_key
from services.common.clock import aware, utcnow
from services.common.outbox import Outbox
from services.common.problems import FieldError, Forbidden, json_pointer
from services.common.topics import dead_letter_topic, raw_topic, records_topic

DatasetIdAdapter: TypeAdapter[str] = TypeAdapter(DatasetId)

CITY_DOMAINS: tuple[tuple[str, str, str], ...] = (
    ("spatial", "Spatial & urban construction", "Land, buildings, permits, infrastructure, coordinates."),
    ("health", "Health", "Hospitals, outpatient and inpatient services, public health."),
    ("education", "Education", "Schools, enrolment, teaching resources."),
    ("culture", "Culture & sport", "Venues, events, libraries, sport facilities."),
    ("market", "Market supervision", "Licences, inspections, enterprise registration, food safety."),
    ("transport", "Transport", "Public transport, roads, traffic, parking."),
    ("community", "Community services", "Street and neighbourhood services, resident requests."),
)


def topics_of(dataset_id: str) -> Topics:
    return Topics(
        records=records_topic(dataset_id),
        dead_letter=dead_letter_topic(dataset_id),
        raw=raw_topic(dataset_id),
    )


def dataset_read(dataset: Dataset) -> DatasetRead:
    return DatasetRead.model_validate(
        {
            **{c.key: getattr(dataset, c.key) for c in sa.inspect(Dataset).column_attrs},
            "topics": topics_of(dataset.id),
        }
    )


_DETAIL_DATASET = tuple(Dataset.__table__.c[name] for name in DatasetRead.model_fields if name != "topics")
_DETAIL_QUALITY = tuple(
    DatasetQuality.__table__.c[name].label(f"quality_{name}") for name in QualitySummary.model_fields
)
_DETAIL_QUERY = sa.select(*_DETAIL_DATASET, *_DETAIL_QUALITY).outerjoin(
    DatasetQuality.__table__, DatasetQuality.__table__.c.dataset_id == Dataset.__table__.c.id
)


def dataset_detail(session: Session, dataset_id: str) -> DatasetDetail:
    """The dataset with its latest quality score (as quality last announced it on platform.quality).

    One query and no ORM objects: this is the catalog's most frequent read, and it needs neither
    the search text nor a unit of work that tracks what it loaded.
    """
    row = session.execute(_DETAIL_QUERY.where(Dataset.__table__.c.id == dataset_id)).mappings().first()
    if row is None:
        raise exceptions.DatasetNotFound(f"no dataset {dataset_id!r}")
    detail: dict[str, Any] = {column.key: row[column.key] for column in _DETAIL_DATASET}
    detail["topics"] = topics_of(dataset_id)
    if row["quality_updated_at"] is not None:
        detail["quality"] = {name: row[f"quality_{name}"] for name in QualitySummary.model_fields}
    return DatasetDetail.model_validate(detail)


class CatalogEvents:
    """Announces catalog changes through the outbox, keyed by entity."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def publish(
        self, session: Session, event_type: str, entity_id: str, state: BaseModel | dict[str, Any]
    ) -> None:
        payload = state if isinstance(state, dict) else state.model_dump(mode="json")
        self._outbox.add(session, catalog_events.catalog_record(event_type, entity_id, payload))


# --- domains and departments -------------------------------------------------------------


def ensure_city_domains(session: Session) -> None:
    """The city's fields of data exist in every catalog; more can be added."""
    existing = set(session.scalars(sa.select(Domain.id)))
    for domain_id, name, description in CITY_DOMAINS:
        if domain_id not in existing:
            session.add(Domain(id=domain_id, name=name, description=description))
    session.flush()


def create_domain(session: Session, payload: DomainCreate) -> Domain:
    if session.get(Domain, payload.id) is not None:
        raise exceptions.AlreadyExists(f"domain {payload.id!r} exists")
    if payload.owner_department_id is not None:
        get_department(session, payload.owner_department_id)
    domain = Domain(**payload.model_dump())
    session.add(domain)
    session.flush()
    return domain


def list_domains(session: Session) -> Sequence[Domain]:
    return session.scalars(sa.select(Domain).order_by(Domain.id)).all()


def create_department(session: Session, events: CatalogEvents, payload: DepartmentCreate) -> DepartmentRead:
    if session.get(Department, payload.id) is not None:
        raise exceptions.AlreadyExists(f"department {payload.id!r} exists")
    domains = []
    for domain_id in payload.domains:
        domain = session.get(Domain, domain_id)
        if domain is None:
            raise exceptions.DomainNotFound(f"no domain {domain_id!r}")
        domains.append(domain)
    department = Department(**payload.model_dump())
    session.add(department)
    session.flush()
    for domain in domains:
        # The first department an admin creates for a domain owns it; later ones listing it
        # publish in it too (see _may_register_in).
        if domain.owner_department_id is None:
            domain.owner_department_id = department.id
    session.flush()
    read = DepartmentRead.model_validate(department)
    events.publish(session, catalog_events.DEPARTMENT, department.id, read)
    return read


def get_department(session: Session, department_id: str) -> Department:
    department = session.get(Department, department_id)
    if department is None:
        raise exceptions.DepartmentNotFound(f"no department {department_id!r}")
    return department


def list_departments(session: Session) -> Sequence[Department]:
    return session.scalars(sa.select(Department).order_by(Department.id)).all()


# --- datasets ------------------------------------------------------------------------------


def create_dataset(session: Session, events: CatalogEvents, payload: DatasetCreate) -> DatasetRead:
    if session.get(Dataset, payload.id) is not None:
        raise exceptions.AlreadyExists(f"dataset {payload.id!r} exists")
    domain_id = payload.id.split(".", 1)[0]
    domain = session.get(Domain, domain_id)
    if domain is None:
        raise exceptions.DomainNotFound(f"no domain {domain_id!r}: the part of the id before the dot")
    _may_register_in(domain, get_department(session, payload.owner_department_id))
    dataset = Dataset(**payload.model_dump(), domain_id=domain_id)
    dataset.search_text = _search_text(dataset, None)
    session.add(dataset)
    session.flush()
    _index(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


def _may_register_in(domain: Domain, department: Department) -> None:
    """A department registers datasets in the domains it owns or was created for, and claims a
    domain no one owns yet; whoever calls (the department itself or an admin).

    Without this rule one department could take another's namespace (``health.*`` registered by
    market supervision) and keep its owner from registering the ids it needs.
    """
    if domain.owner_department_id is None:
        domain.owner_department_id = department.id
        return
    if domain.owner_department_id == department.id or domain.id in (department.domains or []):
        return
    raise exceptions.DomainOwnedByAnotherDepartment(
        f"domain {domain.id!r} is owned by department {domain.owner_department_id!r}; "
        f"{department.id!r} may not register datasets in it",
        domain_id=domain.id,
        owner_department_id=domain.owner_department_id,
    )


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise exceptions.DatasetNotFound(f"no dataset {dataset_id!r}")
    return dataset


def update_dataset(
    session: Session, events: CatalogEvents, dataset_id: str, payload: DatasetUpdate
) -> DatasetRead:
    dataset = get_dataset(session, dataset_id)
    for name, value in payload.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(dataset, name, value)
    dataset.updated_at = utcnow()
    dataset.search_text = _search_text(dataset, _current(session, dataset))
    session.flush()
    _index(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


@dataclass(frozen=True)
class DatasetFilter:
    q: str | None = None
    domain: str | None = None
    department: str | None = None
    classification: str | None = None
    status: str | None = None
    tag: str | None = None


def search_datasets(
    session: Session, filters: DatasetFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[DatasetRead], str | None]:
    """Datasets matching the filters and the full-text query, in id order, one page at a time.

    Full text covers title, description, tags and field names, each query word matching the
    words it is a prefix of: FTS5 on SQLite; on PostgreSQL, ordered posting lists (migration
    catalog_0005) so that a page costs the same whether a word matches ten datasets or most of
    them. The cursor is the last id of the previous page.
    """
    after = _decode_cursor(cursor) if cursor else None
    words = _query_words(filters.q)
    postings = None
    if session.get_bind().dialect.name == "postgresql":
        postings = _posting_query(session, filters, words, after, limit + 1)
    if postings is not None:
        # The page's ids and the listed columns of their datasets in one round trip.
        page_ids = postings.subquery()
        rows = session.execute(
            sa.select(*_LISTED_COLUMNS)
            .join(page_ids, page_ids.c.dataset_id == Dataset.id)
            .order_by(Dataset.id)
        ).all()
    else:
        rows = _listed_rows(session, _scanned_page(session, filters, words, after, limit + 1))
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1].id) if more and page else None
    return [
        DatasetRead.model_validate({**row._mapping, "topics": topics_of(row.id)}) for row in page
    ], next_cursor


def _query_words(q: str | None) -> list[str]:
    """The query's words, lowercased as the index lowercases them; punctuation separates words."""
    if not q:
        return []
    return "".join(c if c.isalnum() else " " for c in q.lower()).split()


_LISTED_COLUMNS = tuple(getattr(Dataset, name) for name in DatasetRead.model_fields if name != "topics")


def _listed_rows(session: Session, ids: Sequence[str]) -> list[sa.Row[Any]]:
    """The listed columns of the datasets, in the given order."""
    if not ids:
        return []
    rows = {row.id: row for row in session.execute(sa.select(*_LISTED_COLUMNS).where(Dataset.id.in_(ids)))}
    return [rows[dataset_id] for dataset_id in ids if dataset_id in rows]


def _scanned_page(
    session: Session, filters: DatasetFilter, words: list[str], after: str | None, size: int
) -> list[str]:
    """One page of ids by filtering the datasets table in id order: SQLite (with its FTS5 table),
    and PostgreSQL when a query word is too short a prefix for the posting lists."""
    query = sa.select(Dataset.id)
    if after is not None:
        query = query.where(Dataset.id > after)
    if filters.domain:
        query = query.where(Dataset.domain_id == filters.domain)
    if filters.department:
        query = query.where(Dataset.owner_department_id == filters.department)
    if filters.classification:
        query = query.where(Dataset.classification == filters.classification)
    if filters.status:
        query = query.where(Dataset.status == filters.status)
    if filters.tag:
        query = query.where(_has_tag(session, filters.tag))
    if words:
        query = query.where(_full_text(session, words))
    if words and session.get_bind().dialect.name == "postgresql":
        # A GIN bitmap of every match, sorted: the planner would otherwise walk the primary key
        # testing each row, which reads most of the catalog for a word whose datasets sort late.
        query = sa.select(query.offset(0).subquery()).order_by(sa.column("id"))
    else:
        query = query.order_by(Dataset.id)
    return list(session.scalars(query.limit(size)))


def _has_tag(session: Session, tag: str) -> sa.ColumnElement[bool]:
    """The dataset's tags (a JSON list) hold exactly ``tag``, compared as decoded JSON strings, so
    that a tag outside ASCII (stored escaped) matches as it does in the posting lists."""
    elements = {"sqlite": sa.func.json_each, "postgresql": sa.func.json_array_elements_text}.get(
        session.get_bind().dialect.name
    )
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
    query = _posting_query(session, filters, words, after, size)
    return None if query is None else list(session.scalars(query))


def _posting_query(
    session: Session, filters: DatasetFilter, words: list[str], after: str | None, size: int
) -> sa.Select[tuple[str]] | None:
    """The query of one page of ids from the posting lists (PostgreSQL), or None where they do not serve.

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
        expansion = _indexed_words(session, word)
        if expansion is None:
            return None
        if not expansion:
            return sa.select(dataset_terms.c.dataset_id).where(sa.false())
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
    if not lists:
        return None  # no word, no filter: the primary key is already the list
    if len(lists) == 1:
        field, terms = lists[0]
        ids = _posting_list(field, terms, after)
        return sa.select(ids.c.dataset_id).distinct().order_by(ids.c.dataset_id).limit(size)
    return _leapfrog(lists, after, size)


def _leapfrog(
    lists: Sequence[tuple[str, Sequence[str]]], after: str | None, size: int
) -> sa.Select[tuple[str]]:
    params: dict[str, Any] = {"after": after or "", "size": size}

    def seek(index: int, operator: str, start: str) -> str:
        """The list's first id ``operator`` ``start``: one index probe per indexed word."""
        field, terms = lists[index]
        params[f"f{index}"] = field
        probes = []
        for position, term in enumerate(terms):
            params[f"t{index}_{position}"] = term
            probes.append(
                f"(SELECT dataset_id FROM catalog_dataset_terms WHERE field = :f{index} "
                f"AND term = :t{index}_{position} AND dataset_id {operator} {start} "
                f"ORDER BY dataset_id LIMIT 1)"
            )
        return probes[0] if len(probes) == 1 else f"LEAST({', '.join(probes)})"

    heads = ", ".join(f"{seek(index, '>=', 'walk.candidate')} AS head{index}" for index in range(len(lists)))
    every = " AND ".join(f"heads.head{index} IS NOT NULL" for index in range(len(lists)))
    top = f"GREATEST({', '.join(f'heads.head{index}' for index in range(len(lists)))})"
    # walk(candidate, found): found is the id the step that produced the row confirmed, if any.
    # No ORDER BY on the walk: candidates only grow, and an ORDER BY would make PostgreSQL run
    # the walk to its end before the LIMIT could stop it.
    sql = f"""
        WITH RECURSIVE walk(candidate, found) AS (
            SELECT {seek(0, ">", ":after")}, NULL::varchar
            UNION ALL
            SELECT CASE WHEN {top} = walk.candidate THEN {seek(0, ">", "walk.candidate")} ELSE {top} END,
                   CASE WHEN {top} = walk.candidate THEN walk.candidate END
            FROM walk CROSS JOIN LATERAL (SELECT {heads}) AS heads
            WHERE walk.candidate IS NOT NULL AND {every}
        )
        SELECT found AS dataset_id FROM walk WHERE found IS NOT NULL LIMIT :size
    """
    text = sa.text(sql).bindparams(**params).columns(dataset_id=sa.String)
    return sa.select(text.subquery().c.dataset_id)


def _posting_list(field: str, terms: Sequence[str], after: str | None) -> sa.Subquery:
    branches = []
    for term in terms:
        branch = sa.select(dataset_terms.c.dataset_id).where(
            dataset_terms.c.field == field, dataset_terms.c.term == term
        )
        if after is not None:
            branch = branch.where(dataset_terms.c.dataset_id > after)
        # Ordered each on its own, so that PostgreSQL merges the words' lists (each an index
        # range already in id order) rather than gathering and sorting all of them.
        branches.append(branch.order_by(dataset_terms.c.dataset_id))
    if len(branches) == 1:
        return branches[0].order_by(None).subquery()
    # A dataset holding several words of one prefix (bus, buses) is in the list once per word;
    # the page query removes the repeats. Deduplicating here instead would hide from the planner
    # that the page needs only the first few: it would gather and hash the whole list.
    return sa.union_all(*branches).subquery()


_INDEXED_WORDS = sa.text(
    """
    WITH RECURSIVE found(term) AS (
        SELECT min(term) FROM catalog_dataset_terms
        WHERE field = 'text' AND term >= :prefix AND term < :beyond
        UNION ALL
        SELECT (
            SELECT min(term) FROM catalog_dataset_terms
            WHERE field = 'text' AND term > found.term AND term < :beyond
        )
        FROM found WHERE found.term IS NOT NULL
    )
    SELECT term FROM found WHERE term IS NOT NULL LIMIT :most
    """
)


def _indexed_words(session: Session, prefix: str) -> list[str] | None:
    """The indexed words ``prefix`` is a prefix of, or None when there are too many to list.

    A loose index scan: one index probe per distinct word, however many datasets hold it.
    """
    beyond = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    found = list(
        session.scalars(
            _INDEXED_WORDS, {"prefix": prefix, "beyond": beyond, "most": MAX_PREFIX_EXPANSION + 1}
        )
    )
    return None if len(found) > MAX_PREFIX_EXPANSION else found


def _search_text(dataset: Dataset, version: ContractVersion | None) -> str:
    fields = list((version.record_schema.get("properties") or {}).keys()) if version else []
    words = [dataset.id, dataset.title, dataset.description, " ".join(dataset.tags), " ".join(fields)]
    # field names like wait_minutes are indexed whole and split, so "wait" finds them
    words.append(" ".join(part for name in fields for part in name.replace("-", "_").split("_")))
    return "\n".join(word for word in words if word)


def _index(session: Session, dataset: Dataset) -> None:
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(sa.text("DELETE FROM catalog_datasets_fts WHERE dataset_id = :id"), {"id": dataset.id})
    session.execute(
        sa.text("INSERT INTO catalog_datasets_fts (dataset_id, body) VALUES (:id, :body)"),
        {"id": dataset.id, "body": dataset.search_text},
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


def _decode_cursor(cursor: str) -> str:
    try:
        if not _CURSOR.match(cursor):
            raise ValueError(cursor)
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        DatasetIdAdapter.validate_python(last_id)
        return last_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise exceptions.InvalidCursor("the cursor was not issued by this API") from error


# --- contract versions ---------------------------------------------------------------------


def _current(session: Session, dataset: Dataset) -> ContractVersion | None:
    """The dataset's current contract version: the last registered, named by ``current_version``."""
    if dataset.current_version is None:
        return None
    return session.get(ContractVersion, (dataset.id, dataset.current_version))


@dataclass(frozen=True)
class _Earlier:
    """What a compatibility check needs of an earlier version (not its document)."""

    version: str
    sequence: int
    record_schema: dict[str, Any]


class RecordSchemaCache:
    """Record schemas of stored contract versions, by dataset, version and document fingerprint.

    A stored version never changes, and the same document always derives the same record schema,
    so a schema read (or derived) once serves every later compatibility check in the process:
    a check under a transitive mode then reads only the earlier versions' keys, not 20 record
    schemas to decode. Keyed by fingerprint as well, so a version registered in a transaction
    that rolled back and then registered again with another document is never confused with it.
    Bounded (least recently used out); thread-safe.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._schemas: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        with self._lock:
            schema = self._schemas.get(key)
            if schema is not None:
                self._schemas.move_to_end(key)
            return schema

    def put(self, key: tuple[str, str, str], schema: dict[str, Any]) -> None:
        with self._lock:
            self._schemas[key] = schema
            self._schemas.move_to_end(key)
            while len(self._schemas) > self._size:
                self._schemas.popitem(last=False)


RECORD_SCHEMAS = RecordSchemaCache()


def _earlier_versions(
    session: Session, dataset_id: str, mode: compatibility.CompatibilityMode
) -> list[_Earlier]:
    """The earlier versions a check under ``mode`` reads, oldest first: all of them for transitive
    modes, else only the last (which also tells whether the new version is higher). Record
    schemas come from :data:`RECORD_SCHEMAS` when there, else from the database in one query."""
    query = sa.select(ContractVersion.version, ContractVersion.sequence, ContractVersion.fingerprint).where(
        ContractVersion.dataset_id == dataset_id
    )
    if mode.transitive:
        rows = session.execute(query.order_by(ContractVersion.sequence)).all()
    else:
        rows = session.execute(query.order_by(ContractVersion.sequence.desc()).limit(1)).all()
    schemas = {row.version: RECORD_SCHEMAS.get((dataset_id, row.version, row.fingerprint)) for row in rows}
    missing = [version for version, schema in schemas.items() if schema is None]
    if missing:
        loaded = session.execute(
            sa.select(
                ContractVersion.version, ContractVersion.fingerprint, ContractVersion.record_schema
            ).where(ContractVersion.dataset_id == dataset_id, ContractVersion.version.in_(missing))
        )
        for version, fingerprint, schema in loaded:
            RECORD_SCHEMAS.put((dataset_id, version, fingerprint), schema)
            schemas[version] = schema
    earlier = []
    for row in rows:
        schema = schemas[row.version]
        if schema is None:  # deleted since the first query: not something the catalog does
            raise RuntimeError(f"version {row.version} of {dataset_id} vanished during a check")
        earlier.append(_Earlier(row.version, row.sequence, schema))
    return earlier


def check_version(session: Session, dataset: Dataset, contract: ParsedContract) -> CompatibilityReport:
    """Would ``contract`` be accepted as the dataset's next version, and if not, why not."""
    report, _, _ = _check(session, dataset, contract)
    return report


def _check(
    session: Session, dataset: Dataset, contract: ParsedContract
) -> tuple[CompatibilityReport, dict[str, Any], int]:
    """The report, the contract's derived record schema and the sequence it would be stored at."""
    if contract.id != dataset.id:
        raise exceptions.ContractMismatch(
            f"the contract's id is {contract.id!r}, not {dataset.id!r}",
        )
    mode = compatibility.CompatibilityMode(dataset.compatibility_mode)
    previous = _earlier_versions(session, dataset.id, mode)
    if previous and compare_versions(contract.version, previous[-1].version) <= 0:
        raise exceptions.VersionNotHigher(
            f"version {contract.version} is not higher than the last, {previous[-1].version}"
        )
    new_schema = derive.record_schema(contract)
    history = [(earlier.version, earlier.record_schema) for earlier in previous]
    changes = compatibility.check(new_schema, history, mode)
    checked = [] if mode is compatibility.CompatibilityMode.NONE else [v for v, _ in history]
    report = CompatibilityReport(
        compatible=not changes,
        mode=CompatibilityModeName(mode.value),
        version=contract.version,
        checked_against=checked,
        breaking_changes=[
            BreakingChangeRead.model_validate(change, from_attributes=True) for change in changes
        ],
    )
    return report, new_schema, (previous[-1].sequence + 1) if previous else 1


def register_version(
    session: Session,
    events: CatalogEvents,
    dataset_id: str,
    document: str | bytes,
    *,
    created_by: str,
) -> ContractVersion:
    """Store a new contract version if it parses, is higher, and keeps the compatibility mode."""
    dataset = get_dataset(session, dataset_id)
    return _register_parsed(session, events, dataset, parse_contract(document), document, created_by)


def _register_parsed(
    session: Session,
    events: CatalogEvents,
    dataset: Dataset,
    contract: ParsedContract,
    document: str | bytes,
    created_by: str,
) -> ContractVersion:
    # Reads the earlier versions' record schemas only, never their documents or the
    # ``dataset.versions`` collection: registering stays flat in the length of the history.
    report, new_schema, sequence = _check(session, dataset, contract)
    if not report.compatible:
        raise exceptions.IncompatibleContract(
            f"{len(report.breaking_changes)} breaking change(s) under {report.mode}",
            breaking_changes=[change.model_dump(mode="json") for change in report.breaking_changes],
        )
    text = document.decode() if isinstance(document, bytes) else document
    version = ContractVersion(
        dataset_id=dataset.id,
        version=contract.version,
        sequence=sequence,
        api_version=contract.api_version,
        document=text,
        document_format="json" if text.lstrip().startswith("{") else "yaml",
        fingerprint=contract.fingerprint,
        record_schema=new_schema,
        primary_key=list(derive.primary_key(contract)),
        sensitive_fields={name: _plain(rule) for name, rule in derive.sensitive_fields(contract).items()},
        sla=_plain(derive.sla_targets(contract)),
        expectation_suite=list(derive.expectation_suite(contract)),
        created_by=created_by,
    )
    session.add(version)
    RECORD_SCHEMAS.put((dataset.id, version.version, version.fingerprint), new_schema)
    dataset.current_version = version.version
    dataset.updated_at = utcnow()
    dataset.search_text = _search_text(dataset, version)
    session.flush()
    _index(session, dataset)
    events.publish(
        session, catalog_events.CONTRACT_VERSION, f"{dataset.id}:{version.version}", contract_state(version)
    )
    events.publish(session, catalog_events.DATASET, dataset.id, dataset_read(dataset))
    return version


def register_contract(
    session: Session,
    events: CatalogEvents,
    document: str | bytes,
    *,
    created_by: str,
    department_id: str | None = None,
) -> ContractVersion:
    """Register an ODCS document: a new dataset (described by the contract) or its next version.

    The dataset's owner, classification and compatibility mode come from the contract's citybase
    custom properties; ``department_id`` is the caller's department, which must own the dataset.
    """
    contract = parse_contract(document)
    existing = session.get(Dataset, contract.id)
    if existing is None:
        policy = derive.dataset_policy(contract)
        owner = policy.department or department_id
        if owner is None:
            raise exceptions.ContractMismatch(
                "a new dataset needs an owner: set the contract's citybase.department custom property"
            )
        if department_id is not None and owner != department_id:
            raise Forbidden(f"the contract names department {owner!r}, not yours")
        description = contract.model.description
        try:
            payload = DatasetCreate(
                id=contract.id,
                title=contract.model.name or contract.id,
                description=(description.purpose or "") if description else "",
                owner_department_id=owner,
                tags=list(contract.model.tags or []),
                classification=policy.classification or "conditional",
                status=DatasetStatus.active if contract.model.status == "active" else DatasetStatus.draft,
                compatibility_mode=policy.compatibility or CompatibilityModeName.BACKWARD,
            )
        except ValidationError as error:
            raise exceptions.ContractMismatch(
                "the contract cannot describe a citybase dataset", errors=_contract_field_errors(error)
            ) from None
        create_dataset(session, events, payload)
    elif department_id is not None and existing.owner_department_id != department_id:
        raise Forbidden("only the owning department may register versions of this dataset")
    dataset = get_dataset(session, contract.id)
    return _register_parsed(session, events, dataset, contract, document, created_by)


_CONTRACT_PATH_OF_FIELD = {
    "id": ["id"],
    "title": ["name"],
    "description": ["description", "purpose"],
    "tags": ["tags"],
    "owner_department_id": ["customProperties", "citybase.department"],
}


def _contract_field_errors(error: ValidationError) -> list[FieldError]:
    """Where in the ODCS document each invalid dataset attribute came from."""
    errors = []
    for detail in error.errors():
        field, *rest = detail["loc"] or ("id",)
        path = _CONTRACT_PATH_OF_FIELD.get(str(field), [str(field)]) + list(rest)
        errors.append(FieldError(path=json_pointer(path), rule=detail["type"], message=detail["msg"]))
    return errors


def contract_state(version: ContractVersion) -> dict[str, Any]:
    """What read models need of a contract version (no document: they validate, not display)."""
    return {
        "dataset_id": version.dataset_id,
        "version": version.version,
        "sequence": version.sequence,
        "fingerprint": version.fingerprint,
        "record_schema": version.record_schema,
        "primary_key": version.primary_key,
        "sensitive_fields": version.sensitive_fields,
        "sla": version.sla,
        "expectation_suite": version.expectation_suite,
        "created_at": version.created_at.isoformat(),
    }


def list_versions(session: Session, dataset_id: str) -> Sequence[ContractVersion]:
    """The dataset's versions, oldest first, without their documents and derivations."""
    get_dataset(session, dataset_id)
    return session.scalars(
        sa.select(ContractVersion)
        .where(ContractVersion.dataset_id == dataset_id)
        .order_by(ContractVersion.sequence)
        .options(
            orm.load_only(
                ContractVersion.version,
                ContractVersion.fingerprint,
                ContractVersion.created_by,
                ContractVersion.created_at,
            )
        )
    ).all()


def get_version(session: Session, dataset_id: str, version: str | None = None) -> ContractVersion:
    dataset = get_dataset(session, dataset_id)
    if version is None:
        current = _current(session, dataset)
        if current is None:
            raise exceptions.ContractVersionNotFound(f"dataset {dataset_id!r} has no contract yet")
        return current
    found = session.get(ContractVersion, (dataset_id, version))
    if found is None:
        raise exceptions.ContractVersionNotFound(f"dataset {dataset_id!r} has no version {version!r}")
    return found


def _plain(value: Any) -> Any:
    """A dataclass (masking rule, SLA targets) as JSON-ready data."""
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    return value


# --- principals and API keys ---------------------------------------------------------------


def create_principal(session: Session, events: CatalogEvents, payload: PrincipalCreate) -> PrincipalRead:
    if session.get(Principal, payload.id) is not None:
        raise exceptions.AlreadyExists(f"principal {payload.id!r} exists")
    if payload.department_id is not None:
        get_department(session, payload.department_id)
    principal = Principal(**payload.model_dump())
    session.add(principal)
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def set_principal_status(
    session: Session, events: CatalogEvents, principal_id: str, status: str
) -> PrincipalRead:
    """Suspend (``suspended``) or reactivate (``active``) a principal: its keys stop or work again
    everywhere as soon as the event reaches each service's key ring."""
    principal = get_principal(session, principal_id)
    principal.status = status
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def get_principal(session: Session, principal_id: str) -> Principal:
    principal = session.get(Principal, principal_id)
    if principal is None:
        raise exceptions.PrincipalNotFound(f"no principal {principal_id!r}")
    return principal


def list_principals(session: Session, kind: str | None = None) -> Sequence[Principal]:
    query = sa.select(Principal).order_by(Principal.id)
    if kind:
        query = query.where(Principal.kind == kind)
    return session.scalars(query).all()


def issue_api_key(
    session: Session,
    events: CatalogEvents,
    principal_id: str,
    name: str = "",
    *,
    issued_by: str | None = None,
) -> ApiKeyIssued:
    """A new key for the principal; the returned ``key`` is the only time it is ever shown.

    ``issued_by`` is the prefix of the principal's own key that asked for this one: the new key is
    revoked whenever that one is, so that a stolen key cannot leave behind a sibling that outlives
    its revocation.
    """
    get_principal(session, principal_id)
    issued = issue_key()
    api_key = ApiKey(
        prefix=issued.prefix,
        principal_id=principal_id,
        key_hash=issued.key_hash,
        name=name,
        issued_by=issued_by,
    )
    session.add(api_key)
    session.flush()
    events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))
    return ApiKeyIssued.model_validate({**ApiKeyRead.model_validate(api_key).model_dump(), "key": issued.key})


def list_api_keys(session: Session, principal_id: str) -> Sequence[ApiKey]:
    get_principal(session, principal_id)
    return session.scalars(
        sa.select(ApiKey).where(ApiKey.principal_id == principal_id).order_by(ApiKey.created_at)
    ).all()


def revoke_api_key(
    session: Session, events: CatalogEvents, principal_id: str, prefix: str
) -> tuple[ApiKey, list[str]]:
    """Revoke the key and every key minted from it, directly or through another; returns the key
    and the prefixes of the keys revoked with it."""
    api_key = session.get(ApiKey, prefix)
    if api_key is None or api_key.principal_id != principal_id:
        raise exceptions.ApiKeyNotFound(f"no key {prefix!r} for principal {principal_id!r}")
    now = utcnow()
    _revoke(session, events, api_key, now)
    with_it: list[str] = []
    parents = [api_key.prefix]
    while parents:  # a key is minted after its parent, so the lineage has no cycle
        minted = session.scalars(
            sa.select(ApiKey)
            .where(ApiKey.issued_by.in_(parents), ApiKey.principal_id == principal_id)
            .order_by(ApiKey.created_at)
        ).all()
        for child in minted:
            _revoke(session, events, child, now)
        parents = [child.prefix for child in minted]
        with_it.extend(parents)
    return api_key, with_it


def _revoke(session: Session, events: CatalogEvents, api_key: ApiKey, now: datetime) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = now
        session.flush()
        events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))


def _key_state(api_key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": api_key.prefix,
        "principal_id": api_key.principal_id,
        "key_hash": api_key.key_hash,
        "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
    }


def bootstrap_admin(session: Session, events: CatalogEvents) -> ApiKeyIssued | None:
    """On an empty catalog, create the admin principal and its first key (shown once)."""
    ensure_city_domains(session)
    if session.scalar(sa.select(sa.func.count()).select_from(Principal)):
        return None
    create_principal(
        session, events, PrincipalCreate(id="admin", kind="admin", name="Platform administrator")
    )
    return issue_api_key(session, events, "admin", "bootstrap")


def is_empty(session: Session) -> bool:
    return not session.scalar(sa.select(sa.func.count()).select_from(Dataset))


def load_examples(session: Session, events: CatalogEvents, directory: Path) -> list[str]:
    """Register the example departments and every example contract version, oldest first.

    ``directory`` holds ``departments.yaml`` and ``datasets/<dataset-id>/<version>.yaml``. Used
    by ``citybase up`` on an empty catalog, so that a newcomer sees real datasets at once.
    """
    ensure_city_domains(session)
    for entry in yaml.safe_load((directory / "departments.yaml").read_text(encoding="utf-8")):
        if session.get(Department, entry["id"]) is None:
            create_department(session, events, DepartmentCreate.model_validate(entry))
    registered: list[str] = []
    for dataset_dir in sorted(path for path in (directory / "datasets").iterdir() if path.is_dir()):
        files = sorted(dataset_dir.glob("*.yaml"), key=lambda path: _semver_sort_key(path.stem))
        for path in files:
            version = register_contract(
                session, events, path.read_text(encoding="utf-8"), created_by="examples"
            )
            registered.append(f"{version.dataset_id}@{version.version}")
    return registered


def _semver_sort_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("-", 1)[0].split("."))


# --- standard interfaces: descriptions for DCAT-AP and AsyncAPI ----------------------------


def describe_department(department: Department) -> PublisherDescription:
    """A department as the exporters see it: a publisher."""
    return PublisherDescription(
        id=department.id, name=department.name, kind=department.kind, email=department.contact_email
    )


def describe(dataset: Dataset, department: Department, current: ContractVersion | None) -> DatasetDescription:
    """The exporters' view of one dataset and its current contract."""
    frequency = (current.sla or {}).get("frequency_s") if current else None
    return DatasetDescription(
        id=dataset.id,
        title=dataset.title,
        description=dataset.description,
        publisher=describe_department(department),
        domain=dataset.domain_id,
        classification=dataset.classification,  # type: ignore[arg-type]
        status=dataset.status,
        created_at=aware(dataset.created_at),
        updated_at=aware(dataset.updated_at),
        tags=tuple(dataset.tags),
        update_frequency=f"PT{int(frequency)}S" if frequency else dataset.update_frequency,
        contract_version=current.version if current else None,
        record_schema=current.record_schema if current else None,
        primary_key=tuple(current.primary_key) if current else (),
    )


def describe_one(session: Session, dataset_id: str) -> DatasetDescription:
    dataset = get_dataset(session, dataset_id)
    return describe(dataset, get_department(session, dataset.owner_department_id), _current(session, dataset))


def iter_descriptions(session: Session, batch: int = 500) -> Iterator[DatasetDescription]:
    """Every dataset, streamed from the database in batches (memory flat in the catalog's size).

    Keyset pagination rather than one long cursor, so no transaction stays open while a slow
    client reads the export.
    """
    departments = {department.id: department for department in list_departments(session)}
    last = ""
    while True:
        rows = session.scalars(
            sa.select(Dataset).where(Dataset.id > last).order_by(Dataset.id).limit(batch)
        ).all()
        if not rows:
            return
        current = _current_versions(session, [dataset.id for dataset in rows])
        for dataset in rows:
            yield describe(dataset, departments[dataset.owner_department_id], current.get(dataset.id))
        last = rows[-1].id
        session.expunge_all()


def _current_versions(session: Session, dataset_ids: Sequence[str]) -> dict[str, ContractVersion]:
    """The current contract version of each dataset, in one query and without the documents."""
    query = (
        sa.select(ContractVersion)
        .join(
            Dataset,
            sa.and_(
                Dataset.id == ContractVersion.dataset_id, Dataset.current_version == ContractVersion.version
            ),
        )
        .where(Dataset.id.in_(dataset_ids))
        .options(orm.load_only(*_DESCRIBED_VERSION_COLUMNS))
    )
    return {version.dataset_id: version for version in session.scalars(query)}


_DESCRIBED_VERSION_COLUMNS = (
    ContractVersion.dataset_id,
    ContractVersion.version,
    ContractVersion.record_schema,
    ContractVersion.primary_key,
    ContractVersion.sla,
)


def catalog_description(session: Session, links: PlatformLinks) -> CatalogDescription:
    # No homepage of its own: the export links the catalog's API documentation, which the
    # catalog service itself answers wherever it is deployed.
    return CatalogDescription(
        title="citybase: the city's public data",
        description="Datasets published by the city's departments as live streams under ODCS data contracts.",
        publisher=PublisherDescription(id="city", name="City data administration", kind="city"),
    )
