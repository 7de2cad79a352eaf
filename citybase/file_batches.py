"""Files of records read in batches for ingest: CSV, NDJSON and JSON arrays, each batch with the
file line of every record and the rows rejected before sending."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO


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
class FileBatch:
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


def read_batches(stream: BinaryIO, fmt: FileFormat, batch_size: int) -> Iterator[FileBatch]:
    if fmt is FileFormat.csv:
        yield from _csv_batches(stream, batch_size)
    elif fmt is FileFormat.ndjson:
        yield from _ndjson_batches(stream, batch_size)
    else:
        yield from _json_batches(stream, batch_size)


def _csv_batches(stream: BinaryIO, batch_size: int) -> Iterator[FileBatch]:
    """Rows as ingest reads them (blank rows skipped), re-written under the header in each batch."""
    lines = _CountingLines(stream)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []

    def batch() -> FileBatch:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header or [])
        writer.writerows(rows)
        return FileBatch(out.getvalue().encode("utf-8"), list(numbers), len(rows), lines.bytes_read, [])

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


def _ndjson_batches(stream: BinaryIO, batch_size: int) -> Iterator[FileBatch]:
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
            yield FileBatch(("\n".join(body) + "\n").encode("utf-8"), numbers, count, lines.bytes_read, local)
            body, numbers, local, count = [], [], [], 0
    if count:
        yield FileBatch(("\n".join(body) + "\n").encode("utf-8"), numbers, count, lines.bytes_read, local)


def _json_batches(stream: BinaryIO, batch_size: int) -> Iterator[FileBatch]:
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
        yield FileBatch(encode_records(chunk), starts[start : start + batch_size], len(chunk), done, [])
