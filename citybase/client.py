"""Python clients of citybase: a :class:`Publisher` pushes records to ingest in batches, safely
retried; a :class:`Subscriber` reads a feeds subscription with automatic acknowledgements.

:class:`Publisher` speaks ingest's HTTP API (``POST /v1/datasets/{id}/records``). Every batch
carries an ``Idempotency-Key`` (yours, or a fresh one), so a batch retried after a timeout, a 429
(publish buffer full) or a 503 (bus unavailable) is published once: ingest answers a retry with
the first answer. Retries back off exponentially, wait at least what ``Retry-After`` asks, and
stop after ``max_retries``. Any other refusal raises :class:`PublishError` with the RFC 9457
problem document ingest sent.

Example::

    from citybase.client import Publisher

    with Publisher("http://127.0.0.1:8000/ingest", api_key) as publisher:
        result = publisher.publish("transport.bus-arrivals", [{"arrival_id": "...", "stop_id": "S0042"}])
        print(result.accepted, result.rejected, [e.message for e in result.errors])
        totals = publisher.publish_file("transport.bus-arrivals", "arrivals.csv", batch_size=1000)

    from citybase.client import Subscriber

    with Subscriber.create("http://127.0.0.1:8000/feeds", scenario_key, "transport.bus-arrivals") as feed:
        for record in feed:
            print(record.id, record.data)
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from citybase.answers import MAX_RETRY_AFTER_S, describe, problem_document, retry_after_s
from citybase.file_batches import (
    CONTENT_TYPES,
    FileFormat,
    RejectedRow,
    encode_records,
    file_format,
    read_batches,
)
from citybase.subscriber import Delivery, SubscribeError, Subscriber

__all__ = [
    "BatchResult",
    "Delivery",
    "FileFormat",
    "FileResult",
    "PublishError",
    "Publisher",
    "RecordError",
    "RejectedRow",
    "SubscribeError",
    "Subscriber",
    "encode_records",
    "file_format",
    "problem_document",
    "retry_after_s",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses after which nothing of the batch was accepted and the same batch may be sent again."""
IN_PROGRESS = "idempotency-key-in-progress"
"""409 problem type slug: a first attempt with this key is still running (after a client timeout)."""


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record of a batch was rejected (it went to ``dlq.<dataset>``)."""

    index: int
    """Position of the record in its batch, from 0."""
    path: str
    """JSON Pointer to the offending value; "" for the record itself."""
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Ingest's answer to one batch (202): every record accepted, rejected or a duplicate."""

    dataset: str
    contract_version: str
    accepted: int
    rejected: int
    duplicates: int
    event_ids: tuple[str, ...]
    errors: tuple[RecordError, ...]
    errors_truncated: bool
    idempotency_key: str
    replayed: bool = False
    """True when ingest answered from its idempotency store: the batch had already been published."""
    attempts: int = 1

    @classmethod
    def from_answer(
        cls, body: dict[str, Any], *, idempotency_key: str, replayed: bool, attempts: int
    ) -> Self:
        return cls(
            dataset=str(body.get("dataset", "")),
            contract_version=str(body.get("contract_version", "")),
            accepted=int(body.get("accepted", 0)),
            rejected=int(body.get("rejected", 0)),
            duplicates=int(body.get("duplicates", 0)),
            event_ids=tuple(body.get("event_ids") or ()),
            errors=tuple(
                RecordError(int(e["index"]), str(e.get("path", "")), str(e["rule"]), str(e["message"]))
                for e in body.get("errors") or ()
            ),
            errors_truncated=bool(body.get("errors_truncated", False)),
            idempotency_key=idempotency_key,
            replayed=replayed,
            attempts=attempts,
        )


class PublishError(Exception):
    """Ingest refused a batch (a 4xx other than 429, or a retryable failure after the last retry).

    ``problem`` is the RFC 9457 document (``type``, ``title``, ``detail``, and for a CSV header or
    request validation error ``errors`` with path, rule and message); ``status`` is None when no
    answer came at all (connection refused, timeouts). Nothing of the batch was accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = problem or {}
        self.retryable = retryable
        """True when the batch may succeed later unchanged (429, 503, transport errors)."""
        self.attempts = attempts
        self.partial: FileResult | None = None
        """For :meth:`Publisher.publish_file`: what the batches before this one achieved."""

    @property
    def slug(self) -> str:
        """The last part of the problem's ``type``, e.g. ``csv-header-mismatch``."""
        return str(self.problem.get("type", "")).rstrip("/").rpartition("/")[2]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.problem.get("errors") or [])


@dataclass(slots=True)
class FileResult:
    """Totals of :meth:`Publisher.publish_file`, growing batch by batch."""

    dataset: str
    path: Path
    format: FileFormat
    bytes_total: int
    bytes_read: int = 0
    sent: int = 0
    """Records read from the file (those sent, and those refused before sending: ``parse``)."""
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    batches: int = 0
    replayed_batches: int = 0
    rejected_rows: list[RejectedRow] = field(default_factory=list)
    errors_truncated: bool = False
    """Ingest listed only the first errors of some batch: ``rejected`` is exact, the rows are not."""

    @property
    def all_accepted(self) -> bool:
        return self.rejected == 0 and self.accepted + self.duplicates == self.sent


BatchCallback = Callable[[BatchResult, FileResult], None]


class Publisher:
    """Publishes records to one ingest service over HTTP, one batch per request.

    ``base_url`` is ingest's root: ``http://127.0.0.1:8000/ingest`` under ``citybase up``, the
    service's own address when it runs alone. The client keeps one connection pool; close it
    (or use ``with``) when done. It is safe to share between threads.

    Example::

        with Publisher("http://127.0.0.1:8000/ingest", os.environ["CITYBASE_API_KEY"]) as publisher:
            result = publisher.publish("market.inspections", records)
            if result.rejected:
                for error in result.errors:
                    print(error.index, error.path, error.rule, error.message)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        language: str | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._jitter = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": "citybase-publisher/0.1",
                # the language of the problems ingest answers with (zh-CN or en); its default, English
                **({"Accept-Language": language} if language else {}),
            },
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- batches ----------------------------------------------------------------------------

    def publish(
        self, dataset_id: str, records: Sequence[Any], *, idempotency_key: str | None = None
    ) -> BatchResult:
        """Publish one batch of records (a JSON array) and return ingest's answer.

        A batch may be partly accepted: rejected records are in ``result.errors`` (by index in
        ``records``) and on ``dlq.<dataset>``; that is a result, not an error. Raises
        :class:`PublishError` when the batch as a whole is refused, or still fails after the
        retries. Without ``idempotency_key`` a fresh one is made, and kept across the retries.

        Example::

            result = publisher.publish("health.outpatient-visits", visits)
            print(f"{result.accepted} accepted, {result.rejected} rejected")
            for error in result.errors:
                print(f"record {error.index}: {error.path} {error.rule}: {error.message}")
            assert result.accepted + result.rejected + result.duplicates == len(visits)
        """
        return self._post(dataset_id, encode_records(records), "application/json", idempotency_key)

    def publish_body(
        self,
        dataset_id: str,
        body: bytes,
        content_type: str,
        *,
        idempotency_key: str | None = None,
    ) -> BatchResult:
        """Publish a batch already encoded as JSON, NDJSON or CSV (``content_type`` says which)."""
        return self._post(dataset_id, body, content_type, idempotency_key)

    def check(self, dataset_id: str) -> None:
        """Raise :class:`PublishError` unless ingest would take records of ``dataset_id`` from
        this key (dataset known to ingest, active or deprecated, contract loaded, key allowed).

        Publishes nothing: it sends an empty batch, which ingest refuses as empty (400
        ``empty-body``) only after every check that comes before reading the records.

        Example::

            try:
                publisher.check("health.outpatient-visits")
            except PublishError as error:
                print(error.status, error.slug, error)   # 403 not-dataset-publisher ...
        """
        try:
            self._post(dataset_id, b"[]", "application/json", None, idempotent=False)
        except PublishError as error:
            if error.slug != "empty-body":
                raise

    def _post(
        self,
        dataset_id: str,
        body: bytes,
        content_type: str,
        idempotency_key: str | None,
        *,
        idempotent: bool = True,
    ) -> BatchResult:
        key = idempotency_key or f"cbp-{uuid.uuid4()}"
        url = f"/v1/datasets/{quote(dataset_id, safe='')}/records"
        headers = {"Content-Type": content_type}
        if idempotent:
            headers["Idempotency-Key"] = key
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._http.post(url, content=body, headers=headers)
            except httpx.TransportError as error:
                # The batch may or may not have arrived; the same key makes sending it again safe.
                failure = PublishError(
                    f"no answer from {self.base_url}: {error!r}", retryable=True, attempts=attempt
                )
            else:
                if response.status_code == 202:
                    return BatchResult.from_answer(
                        response.json(),
                        idempotency_key=key,
                        replayed=response.headers.get("Idempotent-Replayed") == "true",
                        attempts=attempt,
                    )
                problem = problem_document(response)
                wait = retry_after_s(response.headers.get("Retry-After"))
                retryable = response.status_code in RETRYABLE_STATUSES or (
                    response.status_code == 409 and str(problem.get("type", "")).endswith(IN_PROGRESS)
                )
                failure = PublishError(
                    describe(response.status_code, problem),
                    status=response.status_code,
                    problem=problem,
                    retryable=retryable,
                    attempts=attempt,
                )
            if not failure.retryable or attempt > self.max_retries:
                raise failure
            self._sleep(self._delay(attempt, wait))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter, never shorter than ``Retry-After``, both capped."""
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        backoff *= 0.5 + self._jitter.random() / 2
        if retry_after is not None:
            return max(min(retry_after, MAX_RETRY_AFTER_S), backoff)
        return backoff

    # --- files ------------------------------------------------------------------------------

    def publish_file(
        self,
        dataset_id: str,
        path: str | Path,
        *,
        batch_size: int = 1000,
        on_batch: BatchCallback | None = None,
        file_type: FileFormat | None = None,
        idempotency_prefix: str | None = None,
    ) -> FileResult:
        """Stream a CSV, NDJSON or JSON-array file to a dataset, ``batch_size`` records a batch.

        CSV goes as ``text/csv`` with the header row repeated in every batch; NDJSON as
        ``application/x-ndjson``, line by line as written (a line that is not JSON is counted as
        rejected with rule ``parse`` and not sent, so the rest of its batch still goes); a
        ``.json`` file (one array) is read whole. Rejected records come back as
        :class:`RejectedRow` with the file line they start on. ``on_batch(result, totals)`` runs
        after every batch. With ``idempotency_prefix`` the batch keys are ``<prefix>-<n>``, so that
        sending the same file again (within ingest's 24 h) publishes nothing twice.

        Raises :class:`PublishError` (with ``partial``: what earlier batches achieved) when a
        batch is refused as a whole, e.g. a CSV header that does not match the contract.

        Example::

            def progress(batch, totals):
                print(f"{totals.sent} sent, {totals.accepted} accepted, {totals.rejected} rejected")

            totals = publisher.publish_file("market.inspections", "inspections.csv", on_batch=progress)
            for row in totals.rejected_rows:
                print(f"line {row.line}: {row.path} {row.rule}: {row.message}")
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        path = Path(path)
        fmt = file_type or file_format(path)
        totals = FileResult(dataset=dataset_id, path=path, format=fmt, bytes_total=path.stat().st_size)
        with path.open("rb") as stream:
            for batch in read_batches(stream, fmt, batch_size):
                totals.sent += batch.count
                totals.bytes_read = batch.bytes_read
                totals.rejected += len({row.line for row in batch.local_errors})
                totals.rejected_rows.extend(batch.local_errors)
                if not batch.lines:
                    continue
                key = f"{idempotency_prefix}-{totals.batches + 1}" if idempotency_prefix else None
                try:
                    result = self._post(dataset_id, batch.body, CONTENT_TYPES[fmt], key)
                except PublishError as error:
                    error.partial = totals
                    raise
                totals.batches += 1
                totals.replayed_batches += result.replayed
                totals.accepted += result.accepted
                totals.rejected += result.rejected
                totals.duplicates += result.duplicates
                totals.errors_truncated |= result.errors_truncated
                totals.rejected_rows.extend(
                    RejectedRow(batch.lines[error.index], error.path, error.rule, error.message)
                    for error in result.errors
                    if 0 <= error.index < len(batch.lines)
                )
                if on_batch is not None:
                    on_batch(result, totals)
        totals.rejected_rows.sort(key=lambda row: row.line)
        return totals


# --- reading files in batches -------------------------------------------------------------------
