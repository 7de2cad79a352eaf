"""Ingest's entry point: the :class:`Ingestor` takes batches in over HTTP (:meth:`Ingestor.accept`,
the one call of the route) and records from ``raw.<dataset>`` (:meth:`Ingestor.route_raw`), and
answers a batch once the bus acknowledged every record.

The rules it applies live beside it, one module each: who may publish what
(:mod:`~services.ingest.publishers`), reading a body (:mod:`~services.ingest.parsing`), checking a
record (:mod:`~services.ingest.validation`), where each record goes (:mod:`~services.ingest.routing`:
``ds.<dataset>``, ``dlq.<dataset>`` or nowhere for a repeated ``_event_id``), keys, event ids and
envelopes (:mod:`~services.ingest.envelopes`), the dataset's topics (:mod:`~services.ingest.topic_registry`)
and safe retries (:mod:`~services.ingest.idempotency`). Only the idempotency keys touch the
database, each in a unit of work of its own; every method says so where it does.

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
import logging
import re
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from services.common.auth import Principal
from services.common.bus import (
    BufferFull,
    BusError,
    Headers,
    Message,
    OutgoingRecord,
    Producer,
)
from services.common.i18n import N_, Sentence
from services.common.topics import (
    dataset_of_raw,
)
from services.ingest import idempotency
from services.ingest.envelopes import batch_event_ids, raw_event_id
from services.ingest.exceptions import (
    EmptyBody,
    InvalidHeader,
    PublisherBusy,
    PublishFailed,
)
from services.ingest.metrics import IngestMetrics
from services.ingest.parsing import (
    CONTENT_TYPES,
    DECODER,
    BodyFormat,
    BoundedBody,
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
from services.ingest.publishers import (
    authorize_publisher,
    check_claimed_version,
    current_contract,
    stream_closed,
    writable_dataset,
)
from services.ingest.routing import RoutedBatch, RoutingContext, check_csv_header, route_record
from services.ingest.settings import IngestSettings
from services.ingest.topic_registry import TopicRegistry
from services.ingest.validation import (
    Violation,
)

log = logging.getLogger(__name__)

CONTRACT_VERSION_HEADER = "CityBase-Contract-Version"
RAW_CONTRACT_VERSION_HEADER = "citybase-contract-version"
"""The same claim as a Kafka header on a raw record."""
RAW_PUBLISHER = "kafka"

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")


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

    async def accept(
        self,
        *,
        dataset_id: str,
        principal: Principal,
        content_type: str | None,
        content_encoding: str | None,
        content_length: str | None,
        contract_version: str | None,
        idempotency_key: str | None,
        body: AsyncIterable[bytes],
    ) -> BatchAnswer:
        """A batch over HTTP from its headers to its answer: what can be refused before the body
        is read (:meth:`open_batch`), the body read within its limits (413 as soon as it is over
        one), then :meth:`publish`. The one call of the route; sessions as :meth:`publish`."""
        batch = self.open_batch(
            dataset_id=dataset_id,
            principal=principal,
            content_type=content_type,
            content_encoding=content_encoding,
            contract_version=contract_version,
            idempotency_key=idempotency_key,
        )
        bounded = BoundedBody(self.settings.max_body_bytes, gzip=batch.gzip)
        bounded.check_declared_length(content_length)
        async for chunk in body:
            bounded.feed(chunk)
        return await self.publish(batch=batch, body=bounded.finish(), body_sha256=bounded.sha256)

    def open_batch(
        self,
        *,
        dataset_id: str,
        principal: Principal,
        content_type: str | None,
        content_encoding: str | None,
        contract_version: str | None,
        idempotency_key: str | None,
    ) -> BatchRequest:
        """Everything that can be refused before reading the body: 404, 403, 409, 415, 400.
        Reads the read model only; no session."""
        dataset = writable_dataset(self.catalog, dataset_id)
        authorize_publisher(principal, dataset)
        contract = current_contract(self.catalog, dataset)
        claimed = contract_version.strip() if contract_version is not None else None
        check_claimed_version(self.catalog, contract, claimed)
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidHeader(Sentence(N_("Idempotency-Key must be 1 to 255 visible ASCII characters")))
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
        """Parse, check and route a batch's records (CPU-bound: runs in a worker thread). No session."""
        if not body:
            raise EmptyBody(Sentence(N_("the body is empty")))
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
            raise EmptyBody(Sentence(N_("the array holds no records")))
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

    async def publish(self, *, batch: BatchRequest, body: bytes, body_sha256: str) -> BatchAnswer:
        """Check and route a batch, and answer 202 once the bus acknowledged every record.

        With an Idempotency-Key, a retry gets the stored answer and publishes nothing. If the bus
        fails, the answer is a 503 (or 429) that claims nothing accepted; records acknowledged
        before the failure may be on the topics, under the same event ids a retry with the same
        key will use again. The Idempotency-Key is claimed, completed or released in units of
        work of its own, opened from the ingestor's sessionmaker.
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
            if not self.topics.ready(dataset_id, contract.partitions):
                await anyio.to_thread.run_sync(
                    self.topics.ensure_dataset, dataset_id, contract.retention_ms, contract.partitions
                )
            if self.producer.buffer_fill() >= settings.buffer_high_watermark:
                raise BufferFull("the producer buffer is above its high watermark")
            # One future for the batch: a thread-safe wake-up of the event loop per batch, and no
            # future per record (send_batch), which would cost more than validating the record.
            acknowledged = await anyio.to_thread.run_sync(self.producer.send_batch, records)
            await asyncio.wait_for(asyncio.wrap_future(acknowledged), settings.ack_timeout_s)
        except BufferFull as error:
            self.metrics.producer_errors.labels("buffer_full").inc()
            raise PublisherBusy(
                Sentence(
                    N_(
                        "%(error)s; nothing of this batch is accepted. Retry after a pause (with the same Idempotency-Key, so that a record that did get out keeps its event id)"
                    ),
                    error=error,
                ),
                retry_after_s=1,
            ) from error
        except (BusError, TimeoutError, OSError) as error:
            self.metrics.producer_errors.labels("unavailable").inc()
            reason = str(error) or f"no acknowledgement within {settings.ack_timeout_s}s"
            raise PublishFailed(
                Sentence(
                    N_(
                        "the bus did not acknowledge the batch (%(reason)s); nothing of this batch is accepted. Retry with the same Idempotency-Key: records acknowledged before the failure may already be on the topic, and the retry republishes them under the same event ids (ce_id), which consumers drop as duplicates"
                    ),
                    reason=reason,
                ),
                retry_after_s=5,
            ) from error

    def purge_idempotency_keys(self, now: datetime | None = None) -> int:
        """Forget the answers older than ``idempotency_ttl_s``, in a unit of work of its own."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.idempotency_ttl_s)
        return idempotency.purge(self._sessions, older_than=cutoff)

    # --- raw topics ------------------------------------------------------------------------

    def route_raw(self, message: Message) -> RoutedBatch | None:
        """Route one record of ``raw.<dataset>``; None if its dataset's contract is not loaded yet
        (the caller retries later). Records of a dataset that no longer takes records, and records
        that are not JSON (reason ``parse``), go to the dead-letter topic like invalid ones.
        No session: the raw worker commits the record's offset once the bus acknowledged."""
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
        elif not contract.has_schema:
            item.problem = Violation("", "streamClosed", stream_closed(contract))
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
