"""Open data without a key: the latest records of an open dataset, as one bounded download.

A dataset whose records anyone may download is published (active or deprecated), publicly listed
and classified ``open`` (:attr:`~services.feeds.projection.DatasetState.open_to_all`); feeds learns
all three from the dataset events it already reads. Every other id (hidden, conditional,
restricted, draft, retired, unknown) gets one refusal, so a reader learns nothing of what the city
keeps back.

A snapshot is the latest ``limit`` records of the dataset's records topic, newest last, read by a
reader outside any consumer group (nothing is committed): each partition is read from its end
minus ``limit`` (what it may have to give if the newest records all sit in it), the partitions are
merged by record time and the newest ``limit`` kept, within ``snapshot_timeout_s``.

No grant applies, so no mask applies either: every field a contract version of the dataset marks
sensitive is left out (:func:`open_record`), never masked, since a hash without a grant's key
would link one person's records across every reader of the download.

Each snapshot served is metered: a ``city.citybase.feeds.open-snapshot.v1`` event on
``platform.usage`` through feeds' outbox, naming the dataset, the records and bytes served and a
salted hash of the client's address (never the address); the catalog's audit trail enters it as
``open.snapshot``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy.orm import Session, sessionmaker

from services.common import db, usage_events
from services.common.auth import Principal
from services.common.bus import Bus, Message, TopicPartition, UnknownTopic
from services.common.clock import utcnow
from services.common.envelope import CloudEvent, format_time
from services.common.i18n import N_, Sentence
from services.common.outbox import Outbox
from services.common.policy.masking import REMOVED, MaskFunction, compile_masks, parse_masking_path
from services.common.public_reads import PublicRateLimit, PublicReadSettings
from services.feeds.delivery import SOURCE, delivered_entry
from services.feeds.exceptions import DatasetNotFound, SnapshotTimeout
from services.feeds.metrics import FeedsMetrics
from services.feeds.projection import DatasetState, FeedsCatalog
from services.feeds.settings import FeedsSettings

log = logging.getLogger(__name__)

SnapshotFormat = Literal["ndjson", "csv"]
MEDIA_TYPES: dict[str, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
MODE = "snapshot"
"""The ``mode`` label of feeds' delivery counters for records served in snapshots."""
_CLIENT_SALT_LABEL = b"citybase-feeds-open-snapshot-client\x00"


# --- which fields a reader without a grant sees ---------------------------------------------------


def _left_out(_value: Any) -> Any:
    return REMOVED


def open_record(sensitive_paths: Iterable[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function that makes a record fit for a reader without a grant: every sensitive path
    (``a``, ``a.b``, ``a[].b``, as contracts name them) left out entirely, the rest as the record
    carries it. The one place this is decided.

    A path feeds cannot read is treated as its whole top-level field: too much is left out
    rather than too little. Where a record does not have the shape a nested path expects, the
    value on the path's first field is left out (see :mod:`services.common.policy.masking`); an
    item of a sensitive array (``tags[]``) becomes null, so that positions stay.
    """
    masks: dict[tuple[tuple[str, int], ...], MaskFunction] = {}
    for path in sensitive_paths:
        try:
            steps = parse_masking_path(path)
        except ValueError:
            top = path.split(".", 1)[0].split("[", 1)[0]
            log.warning("sensitive path %r cannot be read: its field %r is left out whole", path, top)
            steps = ((top, 0),)
        masks[steps] = _left_out
    by_field = compile_masks(masks)
    fields = tuple(by_field.items())

    def visible(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for name, mask in fields:
            if name in out:
                value = mask(out[name])
                if value is REMOVED:
                    del out[name]
                else:
                    out[name] = value
        return out

    return visible


# --- reading the latest records ---------------------------------------------------------------------


def snapshot_starts(beginning: Mapping[int, int], end: Mapping[int, int], limit: int) -> dict[int, int]:
    """Where each partition is read from for the latest ``limit`` records of the topic: its end
    minus ``limit`` (the newest ``limit`` may all be in it), not before its first retained record."""
    return {partition: max(beginning.get(partition, 0), high - limit) for partition, high in end.items()}


def newest(messages: Iterable[Message], limit: int) -> list[Message]:
    """The ``limit`` newest of ``messages`` (by record time, then partition and offset), newest last."""
    ordered = sorted(messages, key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    return ordered[-limit:] if limit else []


def latest_records(
    bus: Bus, topic: str, limit: int, *, timeout_s: float, client_id: str = "citybase-feeds-snapshot"
) -> list[Message]:
    """The latest ``limit`` records of ``topic``, newest last, read outside any consumer group
    (no group joins, nothing is committed). :class:`SnapshotTimeout` if the partitions are not
    read up to the ends seen on the way in within ``timeout_s``; a topic that does not exist yet
    has no records."""
    try:
        bus.admin().partitions_for(topic)
    except UnknownTopic:
        return []
    deadline = time.monotonic() + timeout_s
    consumer = bus.consumer(None, [topic], start="earliest", client_id=client_id)
    try:
        partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        consumer.seek_to_beginning(partitions)
        beginning = {tp.partition: consumer.position(tp) for tp in partitions}
        end = {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
        starts = snapshot_starts(beginning, end, limit)
        for partition, start in starts.items():
            consumer.seek(TopicPartition(topic, partition), start)
        read: list[Message] = []
        while any(consumer.position(TopicPartition(topic, p)) < high for p, high in end.items()):
            if time.monotonic() > deadline:
                raise SnapshotTimeout(
                    Sentence(
                        N_(
                            "the latest records of %(topic)s were not read within %(timeout_s)gs; retry shortly"
                        ),
                        topic=topic,
                        timeout_s=timeout_s,
                    )
                )
            read.extend(m for m in consumer.poll(0.2, 1000) if m.offset < end.get(m.partition, 0))
    finally:
        consumer.close()
    return newest(read, limit)


# --- the download -------------------------------------------------------------------------------------


def not_open(dataset_id: str) -> DatasetNotFound:
    """What every reader is told of a dataset whose records are not open to all: hidden,
    conditional, restricted, unpublished and unknown alike, with a key or without, so that it
    learns nothing of what the city keeps back. A 404 rather than the catalog's 401 for a record
    that is not public: a key does not open a snapshot, only a grant opens the records."""
    return DatasetNotFound(
        Sentence(
            N_(
                "no open dataset %(dataset_id)r: the records of any other dataset are delivered by subscription, under a grant"
            ),
            dataset_id=dataset_id,
        )
    )


def client_token(salt: bytes, address: str) -> str:
    """A salted hash of a client's address: the same address always gives the same token (the
    audit trail can count a client's downloads), and the address cannot be read back from it."""
    return hmac.new(salt, address.encode(), hashlib.sha256).hexdigest()[:32]


_FORMULA_SIGNS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell: text as it is, but a leading formula sign neutralised with ``'`` (so that a
    spreadsheet opening a public download never runs what a record says: CSV injection); numbers,
    booleans and nested values as JSON (a negative number stays a number)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value[:1] in _FORMULA_SIGNS else value
    return orjson.dumps(value).decode()


def csv_body(entries: list[dict[str, Any]]) -> bytes:
    """One row per record: ``id``, ``time``, then every field of the records' data, in the order
    they first appear; nested values as JSON, a missing field empty (see :func:`_cell`)."""
    rows = [(entry, data if isinstance(data := entry.get("data"), dict) else {}) for entry in entries]
    columns: dict[str, None] = {}
    for _entry, data in rows:
        columns.update(dict.fromkeys(data))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "time", *columns])
    for entry, data in rows:
        writer.writerow(
            [_cell(entry.get("id")), _cell(entry.get("time")), *(_cell(data.get(c)) for c in columns)]
        )
    return out.getvalue().encode()


@dataclass(frozen=True)
class Snapshot:
    dataset_id: str
    format: SnapshotFormat
    body: bytes
    records: int
    withheld: tuple[str, ...]
    """The sensitive paths left out of every record."""

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        return f"{self.dataset_id}-snapshot.{self.format}"


class OpenSnapshots:
    """Serves, bounds and meters the open-data snapshots; one per process, inside
    :class:`~services.feeds.service.Feeds`."""

    def __init__(
        self,
        *,
        catalog: FeedsCatalog,
        bus: Bus,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        metrics: FeedsMetrics,
        settings: FeedsSettings,
    ) -> None:
        self.catalog = catalog
        self.bus = bus
        self.sessions = sessions
        self.outbox = outbox
        self.metrics = metrics
        self.settings = settings
        self.rate_limit = PublicRateLimit(
            PublicReadSettings(
                requests_per_minute=settings.snapshot_requests_per_minute, burst=settings.snapshot_burst
            )
        )
        self._salt = hmac.new(settings.signing_key(), _CLIENT_SALT_LABEL, hashlib.sha256).digest()

    def count(self, address: str, principal: Principal | None) -> None:
        """Count one download against the client's address (a caller with a key: against its
        principal, wherever it calls from); TooManyRequests with Retry-After past the limit."""
        self.rate_limit.take(address if principal is None else f"principal:{principal.id}")

    def open_dataset(self, dataset_id: str) -> tuple[DatasetState, frozenset[str]]:
        """The dataset and the sensitive paths to leave out, or the one refusal of :func:`not_open`.
        A dataset whose contract feeds has not seen yet is refused too: without it, feeds cannot
        know which fields to leave out."""
        dataset = self.catalog.dataset(dataset_id)
        sensitive = self.catalog.sensitive_fields(dataset_id)
        if dataset is None or not dataset.open_to_all or sensitive is None:
            raise not_open(dataset_id)
        return dataset, sensitive

    def serve(
        self,
        *,
        dataset_id: str,
        limit: int,
        format: SnapshotFormat,
        address: str,
        principal: Principal | None,
    ) -> Snapshot:
        """The latest ``limit`` records of an open dataset without their sensitive fields, in
        ``format``, metered (see the module docstring)."""
        dataset, sensitive = self.open_dataset(dataset_id)
        messages = latest_records(
            self.bus, dataset.records_topic, limit, timeout_s=self.settings.snapshot_timeout_s
        )
        visible = open_record(sensitive)
        lines = [
            entry
            for entry in (delivered_entry(m, dataset.id, visible) for m in messages)
            if entry is not None
        ]
        if format == "csv":
            body = csv_body([orjson.loads(line) for line in lines])
        else:
            body = b"".join(line + b"\n" for line in lines)
        snapshot = Snapshot(dataset.id, format, body, len(lines), tuple(sorted(sensitive)))
        self.meter(snapshot, limit=limit, address=address, principal=principal)
        return snapshot

    def meter(self, snapshot: Snapshot, *, limit: int, address: str, principal: Principal | None) -> None:
        """The usage event of a served snapshot, through feeds' outbox in a unit of work of its own."""
        served_at = utcnow()
        self.metrics.records.labels(snapshot.dataset_id, MODE).inc(snapshot.records)
        self.metrics.bytes.labels(snapshot.dataset_id, MODE).inc(len(snapshot.body))
        usage = {
            "dataset_id": snapshot.dataset_id,
            "records": snapshot.records,
            "bytes": len(snapshot.body),
            "format": snapshot.format,
            "limit": limit,
            "withheld_fields": list(snapshot.withheld),
            "client": client_token(self._salt, address),
            "principal_id": principal.id if principal is not None else None,
            "served_at": format_time(served_at),
        }
        event = CloudEvent(
            type=usage_events.OPEN_SNAPSHOT,
            source=SOURCE,
            subject=snapshot.dataset_id,
            data=usage,
            time=served_at,
        )
        with db.unit_of_work(self.sessions) as session:
            self.outbox.add(session, event.to_record(usage_events.TOPIC, snapshot.dataset_id.encode()))
