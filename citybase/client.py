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

import csv
import io
import json
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import httpx

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses after which nothing of the batch was accepted and the same batch may be sent again."""
IN_PROGRESS = "idempotency-key-in-progress"
"""409 problem type slug: a first attempt with this key is still running (after a client timeout)."""
MAX_RETRY_AFTER_S = 60.0


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


class FileFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"
    json = "json"


CONTENT_TYPES = {
    FileFormat.csv: "text/csv; charset=utf-8",
    FileFormat.ndjson: "application/x-ndjson",
    FileFormat.json: "application/json",
}
_SUFFIXES = {
    ".csv": FileFormat.csv,
    ".ndjson": FileFormat.ndjson,
    ".jsonl": FileFormat.ndjson,
    ".json": FileFormat.json,
}


def file_format(path: str | Path) -> FileFormat:
    """The format named by a file's extension (``.csv``, ``.ndjson``/``.jsonl``, ``.json``)."""
    suffix = Path(path).suffix.lower()
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        raise ValueError(
            f"{Path(path).name}: cannot tell the format from {suffix or 'no extension'!r}; "
            "use .csv, .ndjson, .jsonl or .json"
        ) from None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One broken rule of one rejected record of a file, by the file line the record starts on."""

    line: int
    path: str
    rule: str
    message: str


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


@dataclass(slots=True)
class _FileBatch:
    """A batch read from a file: the body, the file line of each record, and local rejections."""

    body: bytes
    lines: list[int]
    count: int
    bytes_read: int
    local_errors: list[RejectedRow]


def _json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot write by itself: times as RFC 3339, decimals, UUIDs."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError(f"{value!r} has no time offset; RFC 3339 (and every contract) needs one")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_records(records: Sequence[Any]) -> bytes:
    """A JSON array body; NaN and Infinity are refused here (ingest would refuse the whole batch)."""
    return json.dumps(
        list(records), ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
    ).encode("utf-8")


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), None if unusable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def problem_document(response: httpx.Response) -> dict[str, Any]:
    """The RFC 9457 problem of a refusal; a minimal one when the body is not JSON."""
    try:
        body = response.json()
    except ValueError:
        return {"title": response.reason_phrase, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"title": response.reason_phrase}


def _describe(status: int, problem: dict[str, Any]) -> str:
    title = problem.get("title") or httpx.codes.get_reason_phrase(status)
    detail = problem.get("detail")
    return f"{status} {title}" + (f": {detail}" if detail and detail != title else "")


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
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "citybase-publisher/0.1"},
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
                    _describe(response.status_code, problem),
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
            for batch in _read_batches(stream, fmt, batch_size):
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


class _CountingLines:
    """The decoded lines of a binary file, counting the bytes consumed (for progress)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0
        self.line = 0
        self._first = True

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline()
        if not raw:
            raise StopIteration
        self.bytes_read += len(raw)
        self.line += 1
        if self._first:
            self._first = False
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        return raw.decode("utf-8")


def _read_batches(stream: BinaryIO, fmt: FileFormat, batch_size: int) -> Iterator[_FileBatch]:
    if fmt is FileFormat.csv:
        yield from _csv_batches(stream, batch_size)
    elif fmt is FileFormat.ndjson:
        yield from _ndjson_batches(stream, batch_size)
    else:
        yield from _json_batches(stream, batch_size)


def _csv_batches(stream: BinaryIO, batch_size: int) -> Iterator[_FileBatch]:
    """Rows as ingest reads them (blank rows skipped), re-written under the header in each batch."""
    lines = _CountingLines(stream)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []

    def batch() -> _FileBatch:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header or [])
        writer.writerows(rows)
        return _FileBatch(out.getvalue().encode("utf-8"), list(numbers), len(rows), lines.bytes_read, [])

    while True:
        first_line = lines.line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ValueError(f"line {lines.line}: not valid CSV: {error}") from error
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if header is None:
            header = cells
            continue
        rows.append(cells)
        numbers.append(first_line)
        if len(rows) >= batch_size:
            yield batch()
            rows, numbers = [], []
    if rows:
        yield batch()


def _ndjson_batches(stream: BinaryIO, batch_size: int) -> Iterator[_FileBatch]:
    lines = _CountingLines(stream)
    body: list[str] = []
    numbers: list[int] = []
    local: list[RejectedRow] = []
    count = 0
    for text in lines:
        record = text.rstrip("\r\n")
        if not record.strip():
            continue
        count += 1
        try:
            json.loads(record)
        except ValueError as error:
            local.append(RejectedRow(lines.line, "", "parse", f"the line is not JSON: {error}"))
        else:
            body.append(record)
            numbers.append(lines.line)
        if count >= batch_size:
            yield _FileBatch(
                ("\n".join(body) + "\n").encode("utf-8"), numbers, count, lines.bytes_read, local
            )
            body, numbers, local, count = [], [], [], 0
    if count:
        yield _FileBatch(("\n".join(body) + "\n").encode("utf-8"), numbers, count, lines.bytes_read, local)


def _json_batches(stream: BinaryIO, batch_size: int) -> Iterator[_FileBatch]:
    """A JSON array file, read whole; records are numbered by the line each one starts on."""
    raw = stream.read()
    text = raw.decode("utf-8").removeprefix("\ufeff")
    decoder = json.JSONDecoder()
    space = re.compile(r"[ \t\r\n]*")

    def skip(position: int) -> int:
        return space.match(text, position).end()  # type: ignore[union-attr]

    position = skip(0)
    if not text.startswith("[", position):
        raise ValueError("a .json file must hold one JSON array of records")
    position = skip(position + 1)
    records: list[Any] = []
    starts: list[int] = []
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            starts.append(text.count("\n", 0, position) + 1)
            try:
                value, position = decoder.raw_decode(text, position)
            except ValueError as error:
                raise ValueError(f"not a JSON array of records: {error}") from error
            records.append(value)
            position = skip(position)
            if text.startswith(",", position):
                position = skip(position + 1)
            elif text.startswith("]", position):
                position += 1
                break
            else:
                raise ValueError(f"line {text.count(chr(10), 0, position) + 1}: expected ',' or ']'")
    if skip(position) != len(text):
        raise ValueError("unexpected data after the JSON array")
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        done = len(raw) * (start + len(chunk)) // len(records)
        yield _FileBatch(encode_records(chunk), starts[start : start + batch_size], len(chunk), done, [])


# --- feeds: reading a subscription ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record delivered by feeds, as the subscription's grant lets the scenario see it."""

    id: str
    """Its CloudEvents id: the same record delivered again has the same id."""
    dataset: str
    partition: int
    offset: int
    time: str | None
    data: dict[str, Any]


class SubscribeError(Exception):
    """Feeds refused to deliver (a 4xx other than 429), or kept failing after the last retry.

    ``problem`` is the RFC 9457 document; ``reason`` says why a grant stopped delivery
    (``revoked``, ``suspended``, ``expired``, ``no_grant``, ``paused``...).
    """

    def __init__(
        self, message: str, *, status: int | None = None, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = problem or {}

    @property
    def reason(self) -> str | None:
        reason = self.problem.get("reason")
        return str(reason) if reason is not None else None


SUBSCRIBER_RETRYABLE = frozenset({429, 502, 503, 504})


class Subscriber:
    """Reads one feeds subscription over long-poll, acknowledging what the caller has processed.

    Iterating yields :class:`Delivery` records. A batch is acknowledged (its cursor committed) when
    the caller asks for the record after its last one, so a crash while processing delivers the
    batch again: at-least-once. An acknowledgement that does not get through (feeds restarting) is
    not waited for: the batch comes again. Records delivered again are dropped by their event id
    (the last ``remember`` ids are kept). 429 and 503 answers and lost connections are retried with
    exponential backoff (at least ``Retry-After``); any other refusal, such as a revoked grant,
    raises :class:`SubscribeError`. ``cursor`` is the last acknowledged cursor: keep it, and pass
    it back (``cursor=``) to resume exactly there in another process.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        subscription_id: str,
        *,
        cursor: str | None = None,
        max_records: int = 500,
        wait_s: float = 20.0,
        max_retries: int | None = 10,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        remember: int = 100_000,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.subscription_id = subscription_id
        self.cursor = cursor
        self._unacked: str | None = cursor
        self.max_records = max_records
        self.wait_s = wait_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0
        """Records dropped because their id had been delivered before."""
        self._sleep = sleep
        self._jitter = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "citybase-subscriber/0.1"},
            timeout=httpx.Timeout(wait_s + 30.0),
            transport=transport,
        )

    @classmethod
    def create(
        cls,
        base_url: str,
        api_key: str,
        dataset_id: str,
        *,
        start: str | dict[str, Any] = "latest",
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> Subscriber:
        """Subscribe the key's scenario to ``dataset_id`` and read the new subscription."""
        with httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, transport=transport
        ) as http:
            response = http.post(
                "/v1/subscriptions", json={"dataset": dataset_id, "start": start}, timeout=60
            )
        if response.status_code != 201:
            problem = problem_document(response)
            raise SubscribeError(
                _describe(response.status_code, problem), status=response.status_code, problem=problem
            )
        return cls(base_url, api_key, response.json()["id"], transport=transport, **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Delivery]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Delivery]]:
        """Batches of new records (never empty), each acknowledged when the next is asked for."""
        while True:
            if self._unacked is not None:
                try:
                    self._ack(self._unacked, retry=False)
                except SubscribeError as error:
                    if error.status is not None and error.status not in SUBSCRIBER_RETRYABLE | {409}:
                        raise
                    # A lost acknowledgement (feeds restarting, or a replay since): not worth
                    # waiting for; the batch comes again and its records are dropped as duplicates.
                    self._unacked = None
            body = self._request(
                "GET",
                f"/v1/subscriptions/{quote(self.subscription_id, safe='')}/records",
                params={"max": self.max_records, "wait": self.wait_s},
            )
            records = [Delivery(**record) for record in body["records"]]
            self._unacked = body["cursor"]
            fresh = [record for record in records if self._first_time(record.id)]
            if fresh:
                yield fresh

    def ack(self, cursor: str) -> None:
        """Acknowledge every record delivered before ``cursor``."""
        self._ack(cursor, retry=True)

    def _ack(self, cursor: str, *, retry: bool) -> None:
        self._request(
            "POST",
            f"/v1/subscriptions/{quote(self.subscription_id, safe='')}/ack",
            retry=retry,
            json={"cursor": cursor},
        )
        self.cursor = cursor
        if self._unacked == cursor:
            self._unacked = None

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return True

    def _request(self, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as error:
                failure = SubscribeError(f"no answer from {self.base_url}: {error!r}")
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                problem = problem_document(response)
                failure = SubscribeError(
                    _describe(response.status_code, problem), status=response.status_code, problem=problem
                )
                if response.status_code not in SUBSCRIBER_RETRYABLE:
                    raise failure
                wait = retry_after_s(response.headers.get("Retry-After"))
            if not retry or (self.max_retries is not None and attempt > self.max_retries):
                raise failure
            backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * (
                0.5 + self._jitter.random() / 2
            )
            self._sleep(max(min(wait, MAX_RETRY_AFTER_S), backoff) if wait is not None else backoff)
