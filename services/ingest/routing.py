"""Routing one record: every record of a batch ends in exactly one place, ``ds.<dataset>`` when it
satisfies the dataset's current contract, ``dlq.<dataset>`` with its original bytes and the
reasons in headers when it does not, or nowhere when its ``_event_id`` repeats an earlier record
of the same batch. HTTP batches and raw records go through the same :func:`route_record`; a CSV
header is checked against the contract first. Pure computation; no session, no bus.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.common.bus import (
    Headers,
    OutgoingRecord,
)
from services.common.envelope import format_time, occurrence_time
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError
from services.common.topics import (
    dead_letter_topic,
)
from services.ingest.envelopes import RecordEnvelopes, kafka_key, record_key
from services.ingest.exceptions import (
    CsvHeaderMismatch,
)
from services.ingest.parsing import (
    ParsedItem,
)
from services.ingest.projection import CatalogProjection, ContractVersion, DatasetState
from services.ingest.publishers import version_mismatch
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

EVENT_ID_FIELD = "_event_id"
CONTRACT_VERSION_FIELD = "_contract_version"
METADATA_FIELDS = frozenset({EVENT_ID_FIELD, CONTRACT_VERSION_FIELD})
MAX_DEAD_LETTER_ERRORS = 20

_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")


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
            str(version_mismatch(ctx.catalog, ctx.contract, claimed_version))
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
    occurred_at = occurrence_time(value, ctx.contract.event_time_fields)
    out.records.append(ctx.envelopes.record(event_id, key, encoded, occurred_at))
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
        kafka_key(key),
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
                FieldError(
                    path=where,
                    rule="minLength",
                    message=Sentence(N_("column %(number)s has no name"), number=position + 1),
                )
            )
        elif name in seen:
            problems.append(
                FieldError(
                    path=where,
                    rule="uniqueItems",
                    message=Sentence(N_("column %(name)r appears twice"), name=name),
                )
            )
        elif name not in contract.field_types and name not in METADATA_FIELDS:
            problems.append(
                FieldError(
                    path=where,
                    rule="additionalProperties",
                    message=Sentence(
                        N_("column %(name)r is not a field of contract %(version)s"),
                        name=name,
                        version=contract.version,
                    ),
                )
            )
        seen.add(name)
    for name in sorted(contract.required - seen):
        problems.append(
            FieldError(
                path="/header",
                rule="required",
                message=Sentence(N_("required field %(name)r has no column"), name=name),
            )
        )
    if problems:
        raise CsvHeaderMismatch(
            Sentence(
                N_(
                    "the CSV header does not match contract %(version)s of %(dataset_id)s: %(count)s problem(s)"
                ),
                version=contract.version,
                dataset_id=contract.dataset_id,
                count=len(problems),
            ),
            errors=problems,
        )
