"""Ingest's business rules: who may publish, how a batch is read, checked and routed, and when a
batch counts as accepted.

Every record of a batch ends in exactly one place: ``ds.<dataset>`` as a CloudEvent (binary mode)
when it satisfies the dataset's current contract, ``dlq.<dataset>`` with its original bytes and
the reasons in headers when it does not, or nowhere when its ``_event_id`` repeats an earlier
record of the same batch. HTTP batches (:meth:`Ingestor.publish`) and records from ``raw.<dataset>``
(:meth:`Ingestor.route_raw`) go through the same :func:`route_record`.

Conventions a publisher sees (also in the API description):

- ``_event_id`` (a record field, or a CSV column): the record's own event id, used as ``ce_id``
  (1-128 visible ASCII characters). Without it, ``ce_id`` is a random UUID, or, when the batch
  carries an ``Idempotency-Key``, a UUID derived from (principal, dataset, key, index), so that a
  retried batch republishes the same ids and consumers can drop duplicates by ``ce_id``. A raw
  record without one gets a UUID derived from its topic, partition and offset.
- ``_contract_version`` (a record field or CSV column), or the ``CityBase-Contract-Version``
  header for a whole batch: the contract version the records were written for. Only the dataset's
  current version is accepted: a header naming another version refuses the batch (409), a field
  naming another version rejects that record.
- Both fields are stripped before the record is validated and published.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import orjson
from sqlalchemy.orm import Session, sessionmaker

from services.common.auth import Principal, PrincipalKind
from services.common.bus import (
    Admin,
    BufferFull,
    Bus,
    BusError,
    Headers,
    Message,
    OutgoingRecord,
    Producer,
)
from services.common.envelope import HEADER_PREFIX, CloudEvent, format_time
from services.common.problems import FieldError
from services.common.topics import (
    dataset_of_raw,
    dead_letter_spec,
    dead_letter_topic,
    raw_spec,
    raw_topic,
    records_spec,
    records_topic,
)
from services.ingest import idempotency
from services.ingest.exceptions import (
    ContractNotLoaded,
    ContractVersionMismatch,
    CsvHeaderMismatch,
    DatasetNotFound,
    DatasetNotWritable,
    EmptyBody,
    InvalidHeader,
    NotDatasetPublisher,
    PublisherBusy,
    PublishFailed,
)
from services.ingest.metrics import IngestMetrics
from services.ingest.parsing import (
    CONTENT_TYPES,
    DECODER,
    BodyFormat,
    ParsedItem,
    body_format,
    csv_record,
    decode_utf8,
    is_gzip,
    parse_csv,
    parse_json_array,
    parse_ndjson,
    too_deep,
)
from services.ingest.projection import CatalogProjection, ContractVersion, DatasetState
from services.ingest.schemas import RecordBatchResult, RecordError
from services.ingest.settings import IngestSettings
from services.ingest.validation import (
    Violation,
    exceeds_depth,
    has_lone_surrogate,
    has_non_finite_number,
    is_non_finite,
    json_type,
    path_of_first,
)

log = logging.getLogger(__name__)

RECORD_EVENT_TYPE = "city.citybase.record.v1"
EVENT_ID_FIELD = "_event_id"
CONTRACT_VERSION_FIELD = "_contract_version"
METADATA_FIELDS = frozenset({EVENT_ID_FIELD, CONTRACT_VERSION_FIELD})
CONTRACT_VERSION_HEADER = "CityBase-Contract-Version"
RAW_CONTRACT_VERSION_HEADER = "citybase-contract-version"
"""The same claim as a Kafka header on a raw record."""
RAW_PUBLISHER = "kafka"
MAX_DEAD_LETTER_ERRORS = 20

_EVENT_IDS = uuid.UUID("8f1d3c52-7c0e-5b7a-9d1e-2f6a4b8c0e13")
"""Namespace of the derived (UUIDv5) event ids."""
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")


# --- who may publish what --------------------------------------------------------------------


def writable_dataset(catalog: CatalogProjection, dataset_id: str) -> DatasetState:
    """The dataset if it takes records: 404 if unknown, 409 if draft or retired."""
    dataset = catalog.dataset(dataset_id)
    if dataset is None:
        raise DatasetNotFound(f"no dataset {dataset_id!r}")
    if not dataset.writable:
        raise DatasetNotWritable(
            f"dataset {dataset_id!r} is {dataset.status}; records are accepted while it is active or deprecated",
            dataset_status=dataset.status,
        )
    return dataset


def authorize_publisher(principal: Principal, dataset: DatasetState) -> None:
    """Only a department principal of the owning department, or an admin, publishes records."""
    if principal.is_admin():
        return
    if principal.kind is PrincipalKind.department and principal.department_id == dataset.owner_department_id:
        return
    raise NotDatasetPublisher(
        f"dataset {dataset.id!r} belongs to department {dataset.owner_department_id!r}; "
        f"{principal.id!r} may not publish to it"
    )


def current_contract(catalog: CatalogProjection, dataset: DatasetState) -> ContractVersion:
    if dataset.current_version is None:
        raise DatasetNotWritable(f"dataset {dataset.id!r} has no contract yet; register one first")
    contract = catalog.contract(dataset.id, dataset.current_version)
    if contract is None:
        raise ContractNotLoaded(
            f"contract {dataset.current_version} of {dataset.id!r} has not reached ingest yet",
            retry_after_s=1,
        )
    return contract


def check_claimed_version(catalog: CatalogProjection, contract: ContractVersion, claimed: str | None) -> None:
    """A batch's ``CityBase-Contract-Version`` must be the current version (409 otherwise)."""
    if claimed is None or claimed == contract.version:
        return
    raise ContractVersionMismatch(
        version_mismatch(catalog, contract, claimed),
        current_version=contract.version,
        claimed_version=claimed,
    )


def version_mismatch(catalog: CatalogProjection, contract: ContractVersion, claimed: str) -> str:
    if claimed in catalog.versions(contract.dataset_id):
        return (
            f"written for contract version {claimed}, but {contract.dataset_id} is at {contract.version}; "
            "only records of the current version are accepted"
        )
    return (
        f"{claimed!r} is not a contract version of {contract.dataset_id}; "
        f"the current version is {contract.version}"
    )


# --- keys, ids, envelopes ----------------------------------------------------------------------


def _key_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def record_key(record: Any, primary_key: Sequence[str]) -> str | None:
    """The record's primary key as text: the value of a one-field key, else the values joined by
    ``/`` with ``%`` and ``/`` escaped (``%25``, ``%2F``) so that different keys stay different.

    None when the contract has no key or the record does not carry every key field as a scalar.
    """
    if not primary_key or not isinstance(record, dict):
        return None
    values = []
    for name in primary_key:
        value = record.get(name)
        if value is None or isinstance(value, (dict, list)):
            return None
        values.append(_key_text(value))
    if len(values) == 1:
        return values[0]
    return "/".join(value.replace("%", "%25").replace("/", "%2F") for value in values)


def _key_bytes(key: str | None) -> bytes | None:
    if key is None:
        return None
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the record is rejected anyway
        return None


def _uuid_text(raw: bytes, version: int) -> str:
    """RFC 4122 text of 16 bytes with ``version`` and the variant set; what ``str(uuid.UUID)``
    gives, without building a UUID object per record (a third of the cost of routing one)."""
    octets = bytearray(raw[:16])
    octets[6] = (octets[6] & 0x0F) | (version << 4)
    octets[8] = (octets[8] & 0x3F) | 0x80
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_event_id() -> str:
    """A UUIDv4."""
    return _uuid_text(os.urandom(16), 4)


def derived_event_id(name: str) -> str:
    """The UUIDv5 of ``name`` in ingest's namespace (``uuid.uuid5(_EVENT_IDS, name)``)."""
    return _uuid_text(
        hashlib.sha1(_EVENT_IDS.bytes + name.encode("utf-8"), usedforsecurity=False).digest(), 5
    )


def batch_event_ids(principal_id: str, dataset_id: str, idempotency_key: str | None) -> Callable[[int], str]:
    """Event ids of a batch's records by index: random, or derived from the Idempotency-Key."""
    if idempotency_key is None:
        return lambda _index: random_event_id()
    base = f"http\x1f{principal_id}\x1f{dataset_id}\x1f{idempotency_key}\x1f"
    return lambda index: derived_event_id(base + str(index))


def raw_event_id(message: Message) -> str:
    """Stable across redeliveries, so a record consumed twice is published under one id."""
    return derived_event_id(f"raw\x1f{message.topic}\x1f{message.partition}\x1f{message.offset}")


class RecordEnvelopes:
    """The ``ds.<dataset>`` records of one batch (CloudEvents binary mode).

    Every attribute but ``id`` and ``subject`` is the same for all records of a batch, so the
    kernel's :class:`CloudEvent` renders the headers once, and each record only adds its own two.
    """

    _ID, _SUBJECT = "\x00id\x00", "\x00subject\x00"

    def __init__(self, dataset_id: str, contract_version: str, time: datetime) -> None:
        template = CloudEvent(
            type=RECORD_EVENT_TYPE,
            source=f"/ingest/datasets/{dataset_id}",
            data=None,
            id=self._ID,
            time=time,
            subject=self._SUBJECT,
            dataschema=f"/catalog/v1/datasets/{dataset_id}/contract-versions/{contract_version}",
            extensions={"dataset": dataset_id, "contractversion": contract_version},
        ).to_record(records_topic(dataset_id), None, value=b"")
        self.topic = template.topic
        self.timestamp_ms = template.timestamp_ms
        self._headers = template.headers
        self._id_at = next(i for i, (_, v) in enumerate(template.headers) if v == self._ID.encode())
        self._subject_at = next(i for i, (_, v) in enumerate(template.headers) if v == self._SUBJECT.encode())

    def record(self, event_id: str, key: str | None, value: bytes) -> OutgoingRecord:
        headers = list(self._headers)
        headers[self._id_at] = (HEADER_PREFIX + "id", event_id.encode())
        key_bytes = _key_bytes(key)
        if key_bytes is None:
            del headers[self._subject_at]
        else:
            headers[self._subject_at] = (HEADER_PREFIX + "subject", key_bytes)
        return OutgoingRecord(self.topic, value, key_bytes, tuple(headers), timestamp_ms=self.timestamp_ms)


def record_envelope(
    *,
    dataset_id: str,
    contract_version: str,
    event_id: str,
    key: str | None,
    value: bytes,
    time: datetime,
) -> OutgoingRecord:
    """The ``ds.<dataset>`` record of one accepted record."""
    return RecordEnvelopes(dataset_id, contract_version, time).record(event_id, key, value)


# --- routing one record -------------------------------------------------------------------------


@dataclass
class RoutingContext:
    """What routing the records of one batch (or one raw record) needs to know."""

    dataset: DatasetState
    contract: ContractVersion
    publisher: str
    content_type: str
    event_id: Callable[[ParsedItem], str]
    location: Callable[[ParsedItem], Headers]
    settings: IngestSettings
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    claimed_version: str | None = None
    """A version claimed for every record (a raw record's header), checked per record."""
    catalog: CatalogProjection | None = None
    envelopes: RecordEnvelopes = field(init=False)

    def __post_init__(self) -> None:
        self.envelopes = RecordEnvelopes(self.dataset.id, self.contract.version, self.now)


@dataclass
class RoutedBatch:
    """The records to publish for a batch, and what the answer will say about them."""

    dataset: str
    contract_version: str
    records: list[OutgoingRecord] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    rejected: int = 0
    duplicates: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    seen_ids: set[str] = field(default_factory=set)

    @property
    def accepted(self) -> int:
        return len(self.event_ids)

    def result(self, max_errors: int) -> RecordBatchResult:
        return RecordBatchResult(
            dataset=self.dataset,
            contract_version=self.contract_version,
            accepted=self.accepted,
            rejected=self.rejected,
            duplicates=self.duplicates,
            event_ids=self.event_ids,
            errors=self.errors[:max_errors],
            errors_truncated=len(self.errors) > max_errors,
        )


def _metadata(value: Any, ctx: RoutingContext) -> tuple[Any, str | None, list[Violation]]:
    """Strip ``_event_id`` / ``_contract_version`` off a record; check what they claim."""
    claimed_id: str | None = None
    violations: list[Violation] = []
    claimed_version = ctx.claimed_version
    if isinstance(value, dict) and not METADATA_FIELDS.isdisjoint(value):
        raw_id = value.get(EVENT_ID_FIELD)
        if EVENT_ID_FIELD in value:
            if isinstance(raw_id, str) and _EVENT_ID.match(raw_id):
                claimed_id = raw_id
            else:
                violations.append(
                    Violation(
                        "/" + EVENT_ID_FIELD,
                        "eventId",
                        f"{EVENT_ID_FIELD} must be 1 to 128 visible ASCII characters, not {json_type(raw_id)} "
                        + (repr(raw_id[:40]) if isinstance(raw_id, str) else ""),
                    )
                )
        if CONTRACT_VERSION_FIELD in value:
            claimed = value[CONTRACT_VERSION_FIELD]
            if not isinstance(claimed, str):
                violations.append(
                    Violation(
                        "/" + CONTRACT_VERSION_FIELD,
                        "contractVersion",
                        f"{CONTRACT_VERSION_FIELD} must be a string, not {json_type(claimed)}",
                    )
                )
            else:
                claimed_version = claimed
        value = {name: item for name, item in value.items() if name not in METADATA_FIELDS}
    if claimed_version is not None and claimed_version != ctx.contract.version:
        message = (
            version_mismatch(ctx.catalog, ctx.contract, claimed_version)
            if ctx.catalog is not None
            else f"written for contract version {claimed_version}, not the current {ctx.contract.version}"
        )
        violations.append(Violation("/" + CONTRACT_VERSION_FIELD, "contractVersion", message))
    return value, claimed_id, violations


def encode_record(value: Any) -> tuple[bytes | None, Violation | None]:
    """The record as the compact UTF-8 JSON ingest publishes, or why it cannot be.

    orjson first: it does in about a microsecond what ``json.dumps`` does in ten, which is a tenth
    of ingest's CPU per record. It writes an infinite float (``1e999`` decodes to one) as ``null``
    instead of refusing it, so output holding ``null`` is checked for those; what orjson refuses
    (an integer beyond 64 bits, a lone surrogate, deep nesting) goes through ``json.dumps``, which
    either writes it or says what is wrong.
    """
    try:
        encoded = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError included
        return _serialize_with_json(value)
    if b"null" in encoded and has_non_finite_number(value):
        return None, _non_finite(value)
    return encoded, None


def _non_finite(value: Any) -> Violation:
    return Violation(
        path_of_first(value, is_non_finite),
        "numberRange",
        "a number is too large to be represented (Infinity)",
    )


def _serialize_with_json(value: Any) -> tuple[bytes | None, Violation | None]:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return None, _non_finite(value)
    try:
        return text.encode("utf-8"), None
    except UnicodeEncodeError as error:
        return None, Violation(
            path_of_first(value, has_lone_surrogate),
            "encoding",
            f"the record holds a lone surrogate ({error.object[error.start]!r}), which is not valid Unicode",
        )


def route_record(item: ParsedItem, ctx: RoutingContext, out: RoutedBatch) -> None:
    """Check one record and add its ds. or dlq. record (or nothing, for a duplicate) to ``out``."""
    settings = ctx.settings
    violations: list[Violation] = []
    claimed_id: str | None = None
    value: Any = None
    encoded: bytes | None = None
    if item.problem is not None:
        violations.append(item.problem)
    else:
        value, claimed_id, violations = _metadata(item.value, ctx)
    event_id = claimed_id or ctx.event_id(item)
    if event_id in out.seen_ids:
        out.duplicates += 1
        return
    out.seen_ids.add(event_id)
    if not violations:
        if exceeds_depth(value, settings.max_depth):
            violations.append(
                Violation("", "maxDepth", f"the record nests deeper than {settings.max_depth} levels")
            )
        else:
            encoded, problem = encode_record(value)
            if problem is not None:
                violations.append(problem)
            elif encoded is not None and len(encoded) > settings.max_record_bytes:
                violations.append(
                    Violation(
                        "",
                        "maxRecordBytes",
                        f"the record has {len(encoded)} bytes as JSON; at most {settings.max_record_bytes} are accepted",
                    )
                )
            else:
                violations.extend(ctx.contract.validator.violations(value))
    key = record_key(value, ctx.contract.primary_key)
    if violations or encoded is None:
        out.records.append(_dead_letter(item, ctx, violations, event_id, key))
        out.rejected += 1
        out.rules[violations[0].rule] += 1
        out.errors.extend(
            RecordError(index=item.index, path=v.path, rule=v.rule, message=v.message) for v in violations
        )
        return
    out.records.append(ctx.envelopes.record(event_id, key, encoded))
    out.event_ids.append(event_id)


def _dead_letter(
    item: ParsedItem, ctx: RoutingContext, violations: list[Violation], event_id: str, key: str | None
) -> OutgoingRecord:
    """The ``dlq.<dataset>`` record: the original bytes, and why, in headers."""
    payload = item.payload()
    first = violations[0]
    headers: list[tuple[str, bytes]] = [
        ("dlq_reason", first.rule.encode()),
        ("dlq_path", first.path.encode()),
        ("dlq_message", first.message.encode("utf-8", "replace")),
        ("dlq_contract_version", ctx.contract.version.encode()),
        ("dlq_time", format_time(ctx.now).encode()),
        ("dlq_publisher", ctx.publisher.encode()),
        ("dlq_event_id", event_id.encode()),
        (
            "dlq_errors",
            json.dumps(
                [
                    {"path": v.path, "rule": v.rule, "message": v.message}
                    for v in violations[:MAX_DEAD_LETTER_ERRORS]
                ],
                ensure_ascii=False,
            ).encode("utf-8", "replace"),
        ),
        ("ce_dataset", ctx.dataset.id.encode()),
        ("content-type", ctx.content_type.encode()),
        *ctx.location(item),
    ]
    if len(payload) > ctx.settings.max_dead_letter_bytes:
        headers.append(("dlq_truncated", str(len(payload)).encode()))
        payload = payload[: ctx.settings.max_dead_letter_bytes]
    return OutgoingRecord(
        dead_letter_topic(ctx.dataset.id),
        payload,
        _key_bytes(key),
        tuple(headers),
        timestamp_ms=int(ctx.now.timestamp() * 1000),
    )


# --- CSV against the contract -----------------------------------------------------------------


def check_csv_header(header: list[str], contract: ContractVersion) -> None:
    """The columns must be fields of the contract (or ``_event_id`` / ``_contract_version``), each
    once, and every required field must have one: 422 listing every mismatch otherwise."""
    problems: list[FieldError] = []
    seen: set[str] = set()
    for position, name in enumerate(header):
        where = f"/header/{position}"
        if not name:
            problems.append(
                FieldError(path=where, rule="minLength", message=f"column {position + 1} has no name")
            )
        elif name in seen:
            problems.append(
                FieldError(path=where, rule="uniqueItems", message=f"column {name!r} appears twice")
            )
        elif name not in contract.field_types and name not in METADATA_FIELDS:
            problems.append(
                FieldError(
                    path=where,
                    rule="additionalProperties",
                    message=f"column {name!r} is not a field of contract {contract.version}",
                )
            )
        seen.add(name)
    for name in sorted(contract.required - seen):
        problems.append(
            FieldError(path="/header", rule="required", message=f"required field {name!r} has no column")
        )
    if problems:
        raise CsvHeaderMismatch(
            f"the CSV header does not match contract {contract.version} of {contract.dataset_id}: "
            f"{len(problems)} problem(s)",
            errors=problems,
        )


# --- topics ------------------------------------------------------------------------------------


class TopicRegistry:
    """Makes sure a dataset's topics exist, once per process (``ensure_topic`` is not free)."""

    def __init__(self, bus: Bus, settings: IngestSettings) -> None:
        self._bus = bus
        self._settings = settings
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def ready(self, dataset_id: str) -> bool:
        return dataset_id in self._ready

    def ensure_dataset(self, dataset_id: str, retention_ms: int | None = None) -> None:
        """``ds.<id>`` (with the contract's retention) and ``dlq.<id>``."""
        if dataset_id in self._ready:
            return
        with self._lock:
            if dataset_id in self._ready:
                return
            admin = self._bus.admin()
            partitions = self._settings.topic_partitions
            admin.ensure_topic(records_spec(dataset_id, partitions, retention_ms=retention_ms))
            admin.ensure_topic(dead_letter_spec(dataset_id, partitions))
            self._ready.add(dataset_id)

    def ensure_raw(self, dataset_ids: Sequence[str]) -> None:
        """``raw.<id>`` of each dataset: one listing, then a create for each that is missing."""
        admin: Admin = self._bus.admin()
        existing = admin.list_topics()
        for dataset_id in dataset_ids:
            if raw_topic(dataset_id) not in existing:
                admin.ensure_topic(raw_spec(dataset_id, self._settings.raw_topic_partitions))


# --- batches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequest:
    """A batch as far as it is known before its body is read."""

    dataset: DatasetState
    contract: ContractVersion
    principal_id: str
    format: BodyFormat
    gzip: bool
    claimed_version: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class BatchAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


class Ingestor:
    """Takes batches in over HTTP and records from raw topics; one per process.

    Collaborators are handed in (read model, producer, topic registry, sessions, metrics,
    settings), so this class runs the same under the app, the raw worker, and unit tests.
    """

    def __init__(
        self,
        *,
        catalog: CatalogProjection,
        producer: Producer,
        topics: TopicRegistry,
        sessions: sessionmaker[Session],
        metrics: IngestMetrics,
        settings: IngestSettings,
    ) -> None:
        self.catalog = catalog
        self.producer = producer
        self.topics = topics
        self._sessions = sessions
        self.metrics = metrics
        self.settings = settings

    # --- HTTP ---------------------------------------------------------------------------------

    def open_batch(
        self,
        dataset_id: str,
        principal: Principal,
        *,
        content_type: str | None,
        content_encoding: str | None,
        contract_version: str | None,
        idempotency_key: str | None,
    ) -> BatchRequest:
        """Everything that can be refused before reading the body: 404, 403, 409, 415, 400."""
        dataset = writable_dataset(self.catalog, dataset_id)
        authorize_publisher(principal, dataset)
        contract = current_contract(self.catalog, dataset)
        claimed = contract_version.strip() if contract_version is not None else None
        check_claimed_version(self.catalog, contract, claimed)
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidHeader("Idempotency-Key must be 1 to 255 visible ASCII characters")
        return BatchRequest(
            dataset=dataset,
            contract=contract,
            principal_id=principal.id,
            format=body_format(content_type),
            gzip=is_gzip(content_encoding),
            claimed_version=claimed,
            idempotency_key=idempotency_key,
        )

    def prepare(self, batch: BatchRequest, body: bytes) -> RoutedBatch:
        """Parse, check and route a batch's records (CPU-bound: runs in a worker thread)."""
        if not body:
            raise EmptyBody("the body is empty")
        settings = self.settings
        text = decode_utf8(body)
        contract = batch.contract
        if batch.format is BodyFormat.json:
            items = parse_json_array(text, settings.max_records_per_batch)
        elif batch.format is BodyFormat.ndjson:
            items = parse_ndjson(text, settings.max_records_per_batch)
        else:
            table = parse_csv(text, settings.max_records_per_batch, settings.max_body_bytes)
            check_csv_header(table.header, contract)
            items = table.rows
            for item in items:
                csv_record(table.header, item, contract.field_types)
        if not items:
            raise EmptyBody("the array holds no records")
        event_ids = batch_event_ids(batch.principal_id, batch.dataset.id, batch.idempotency_key)
        ctx = RoutingContext(
            dataset=batch.dataset,
            contract=contract,
            publisher=batch.principal_id,
            content_type=CONTENT_TYPES[batch.format],
            event_id=lambda item: event_ids(item.index),
            location=_http_location,
            settings=settings,
            catalog=self.catalog,
        )
        routed = RoutedBatch(dataset=batch.dataset.id, contract_version=contract.version)
        for item in items:
            route_record(item, ctx, routed)
        return routed

    async def publish(self, batch: BatchRequest, body: bytes, body_sha256: str) -> BatchAnswer:
        """Check and route a batch, and answer 202 once the bus acknowledged every record.

        With an Idempotency-Key, a retry gets the stored answer and publishes nothing. If the bus
        fails, the answer is a 503 (or 429) that claims nothing accepted; records acknowledged
        before the failure may be on the topics, under the same event ids a retry with the same
        key will use again.
        """
        started = time.perf_counter()
        key = batch.idempotency_key
        if key is not None:
            stored = await anyio.to_thread.run_sync(
                lambda: idempotency.claim(
                    self._sessions,
                    principal_id=batch.principal_id,
                    key=key,
                    dataset_id=batch.dataset.id,
                    request_fingerprint=idempotency.fingerprint(
                        batch.dataset.id, batch.format.value, batch.claimed_version, body_sha256
                    ),
                    now=datetime.now(UTC),
                    stale_after_s=self.settings.idempotency_stale_s,
                )
            )
            if stored is not None:
                return BatchAnswer(stored.status, stored.body, replayed=True)
        try:
            routed = await anyio.to_thread.run_sync(self.prepare, batch, body)
            await self._send(routed.records, batch.dataset.id, batch.contract)
        except BaseException:
            if key is not None:
                with anyio.CancelScope(shield=True):
                    await self._release(batch.principal_id, key)
            raise
        answer = routed.result(self.settings.max_errors_reported).model_dump(mode="json")
        if key is not None:
            try:
                await anyio.to_thread.run_sync(
                    lambda: idempotency.complete(
                        self._sessions, principal_id=batch.principal_id, key=key, status=202, body=answer
                    )
                )
            except Exception:
                # The records are durably published: answer 202 anyway. A retry will republish
                # them under the same event ids, which consumers drop.
                log.exception("could not store the answer of Idempotency-Key %r", key)
                await self._release(batch.principal_id, key)
        self.metrics.count(
            batch.dataset.id,
            accepted=routed.accepted,
            rejected=routed.rejected,
            duplicates=routed.duplicates,
            rules=routed.rules,
        )
        self.metrics.batch_duration.labels("http").observe(time.perf_counter() - started)
        return BatchAnswer(202, answer)

    async def _release(self, principal_id: str, key: str) -> None:
        try:
            await anyio.to_thread.run_sync(
                lambda: idempotency.release(self._sessions, principal_id=principal_id, key=key)
            )
        except Exception:
            log.exception("could not release Idempotency-Key %r (it frees itself when stale)", key)

    async def _send(self, records: list[OutgoingRecord], dataset_id: str, contract: ContractVersion) -> None:
        """Publish and wait for every acknowledgement without blocking the event loop."""
        settings = self.settings
        try:
            if not self.topics.ready(dataset_id):
                await anyio.to_thread.run_sync(self.topics.ensure_dataset, dataset_id, contract.retention_ms)
            if self.producer.buffer_fill() >= settings.buffer_high_watermark:
                raise BufferFull("the producer buffer is above its high watermark")
            # One future for the batch: a thread-safe wake-up of the event loop per batch, and no
            # future per record (send_batch), which would cost more than validating the record.
            acknowledged = await anyio.to_thread.run_sync(self.producer.send_batch, records)
            await asyncio.wait_for(asyncio.wrap_future(acknowledged), settings.ack_timeout_s)
        except BufferFull as error:
            self.metrics.producer_errors.labels("buffer_full").inc()
            raise PublisherBusy(
                f"{error}; nothing of this batch is accepted. Retry after a pause "
                "(with the same Idempotency-Key, so that a record that did get out keeps its event id)",
                retry_after_s=1,
            ) from error
        except (BusError, TimeoutError, OSError) as error:
            self.metrics.producer_errors.labels("unavailable").inc()
            reason = str(error) or f"no acknowledgement within {settings.ack_timeout_s}s"
            raise PublishFailed(
                f"the bus did not acknowledge the batch ({reason}); nothing of this batch is accepted. "
                "Retry with the same Idempotency-Key: records acknowledged before the failure may "
                "already be on the topic, and the retry republishes them under the same event ids "
                "(ce_id), which consumers drop as duplicates",
                retry_after_s=5,
            ) from error

    def purge_idempotency_keys(self, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.idempotency_ttl_s)
        return idempotency.purge(self._sessions, older_than=cutoff)

    # --- raw topics ------------------------------------------------------------------------

    def route_raw(self, message: Message) -> RoutedBatch | None:
        """Route one record of ``raw.<dataset>``; None if its dataset's contract is not loaded yet
        (the caller retries later). Records of a dataset that no longer takes records, and records
        that are not JSON (reason ``parse``), go to the dead-letter topic like invalid ones."""
        dataset_id = dataset_of_raw(message.topic)
        dataset = self.catalog.dataset(dataset_id)
        if dataset is None or dataset.current_version is None:
            return None
        contract = self.catalog.contract(dataset_id, dataset.current_version)
        if contract is None:
            return None
        item = _raw_item(message)
        if not dataset.writable:
            item.problem = Violation(
                "", "datasetNotWritable", f"dataset {dataset_id!r} is {dataset.status} and takes no records"
            )
        claimed = message.header(RAW_CONTRACT_VERSION_HEADER)
        ctx = RoutingContext(
            dataset=dataset,
            contract=contract,
            publisher=RAW_PUBLISHER,
            content_type="application/json",
            event_id=lambda _item: raw_event_id(message),
            location=lambda _item: (
                ("dlq_source", f"{message.topic}/{message.partition}/{message.offset}".encode()),
            ),
            settings=self.settings,
            claimed_version=claimed.decode("utf-8", "replace") if claimed is not None else None,
            catalog=self.catalog,
        )
        routed = RoutedBatch(dataset=dataset_id, contract_version=contract.version)
        route_record(item, ctx, routed)
        return routed


def _http_location(item: ParsedItem) -> Headers:
    headers: list[tuple[str, bytes]] = [("dlq_index", str(item.index).encode())]
    if item.line is not None:
        headers.append(("dlq_line", str(item.line).encode()))
    return tuple(headers)


def _raw_item(message: Message) -> ParsedItem:
    """A raw record as a batch item: decoded if it is one JSON value, else with a ``parse`` problem."""
    value = message.value
    item = ParsedItem(index=0, source="", start=0, end=0, original=value or b"")
    if value is None:
        item.problem = Violation("", "parse", "the record has no value")
        return item
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        item.problem = Violation("", "parse", f"byte {error.start} is not valid UTF-8: {error.reason}")
        return item
    try:
        item.value = DECODER.decode(text)
    except RecursionError:
        item.problem = too_deep()
    except ValueError as error:  # JSONDecodeError, NaN, an over-long integer
        item.problem = Violation("", "parse", f"the record is not JSON: {error}")
    return item
