"""Reading a batch: the body within its size limit, then its records, each with where it came from.

Three formats: a JSON array, NDJSON (one JSON value per line, blank lines ignored) and CSV (RFC
4180, a header row first). A body that is not valid in its format as a whole (a JSON syntax error,
an unterminated CSV quote, bytes that are not UTF-8) is refused with the line, column and offset
of the fault (:class:`MalformedBody`). A record that is well-formed but unusable on its own (nested
too deep to decode, a CSV row with the wrong number of cells) is kept as an item with a
``problem``, so that the rest of the batch still goes through.

Positions: ``line`` and ``column`` count from 1; ``offset`` is in bytes of the decompressed body
for encoding errors and in characters of the decoded text otherwise (the JSON decoder's unit).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.common.i18n import N_, Sentence
from services.common.problems import MalformedBody
from services.ingest.exceptions import (
    EmptyBody,
    InvalidUtf8,
    PayloadTooLarge,
    TooManyRecords,
    UnsupportedMediaType,
)
from services.ingest.validation import Violation


class BodyFormat(StrEnum):
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


MEDIA_TYPES: dict[str, BodyFormat] = {
    "application/json": BodyFormat.json,
    "application/x-ndjson": BodyFormat.ndjson,
    "application/ndjson": BodyFormat.ndjson,
    "application/jsonl": BodyFormat.ndjson,
    "text/csv": BodyFormat.csv,
}
CONTENT_TYPES: dict[BodyFormat, str] = {
    BodyFormat.json: "application/json",
    BodyFormat.ndjson: "application/x-ndjson",
    BodyFormat.csv: "text/csv",
}


def body_format(content_type: str | None) -> BodyFormat:
    """The format named by a ``Content-Type`` header; 415 for anything else or a non-UTF-8 charset."""
    if not content_type:
        raise UnsupportedMediaType(_supported(N_("the request has no Content-Type")))
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    found = MEDIA_TYPES.get(media_type.lower())
    if found is None:
        raise UnsupportedMediaType(_supported(N_("%(media_type)r is not accepted"), media_type=media_type))
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                Sentence(N_("records must be UTF-8, not charset %(charset)r"), charset=value.strip())
            )
    return found


def _supported(reason: str, **values: object) -> Sentence:
    """``reason`` (marked ``N_``), followed by what is accepted."""
    return Sentence(
        N_("%(reason)s; send application/json (an array), application/x-ndjson or text/csv"),
        reason=Sentence(reason, **values),
    )


def is_gzip(content_encoding: str | None) -> bool:
    """Whether the body is gzip; 415 for an encoding other than gzip or identity."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return False
    if codings in (["gzip"], ["x-gzip"]):
        return True
    raise UnsupportedMediaType(
        Sentence(
            N_("Content-Encoding %(content_encoding)r is not accepted; send gzip or no encoding"),
            content_encoding=content_encoding,
        ),
        headers={"Accept-Encoding": "gzip"},
    )


class BoundedBody:
    """Collects a request body chunk by chunk, decompressing gzip, never past ``limit`` bytes.

    The limit holds for the bytes received and for the bytes they decompress to; decompression
    asks zlib for at most what still fits (``max_length``), so a zip bomb stops at the limit
    instead of filling memory. The SHA-256 of the decompressed body is computed on the way (the
    request fingerprint of idempotency keys).
    """

    def __init__(self, limit: int, *, gzip: bool = False) -> None:
        self.limit = limit
        self._gzip = gzip
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._received = 0
        self._data = bytearray()
        self._sha = hashlib.sha256()

    def check_declared_length(self, content_length: str | None) -> None:
        """Refuse at once a body whose Content-Length already exceeds the limit."""
        if content_length and content_length.strip().isdigit() and int(content_length) > self.limit:
            raise self._too_large()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._received += len(chunk)
        if self._received > self.limit:
            raise self._too_large()
        if self._inflater is None:
            self._append(chunk)
            return
        data = chunk
        while data:
            try:
                # +1: produce one byte more than fits, to tell "exactly full" from "too large"
                out = self._inflater.decompress(data, self.limit - len(self._data) + 1)
            except zlib.error as error:
                raise MalformedBody(
                    Sentence(N_("the body is not valid gzip: %(error)s"), error=error)
                ) from error
            self._append(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                # Concatenated gzip members are one valid gzip stream; trailing zeros are padding.
                rest = self._inflater.unused_data
                if rest.strip(b"\x00"):
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
                elif data:
                    data = b""

    def _append(self, data: bytes) -> None:
        if len(self._data) + len(data) > self.limit:
            raise self._too_large()
        self._data += data
        self._sha.update(data)

    def _too_large(self) -> PayloadTooLarge:
        template = (
            N_("the decompressed body exceeds %(limit)s bytes; send smaller batches")
            if self._gzip
            else N_("the body exceeds %(limit)s bytes; send smaller batches")
        )
        return PayloadTooLarge(Sentence(template, limit=self.limit), limit=self.limit)

    def finish(self) -> bytes:
        if self._inflater is not None and not self._inflater.eof and (self._received or self._data):
            raise MalformedBody(Sentence(N_("the gzip stream is truncated")))
        return bytes(self._data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def decode_utf8(body: bytes) -> str:
    """The body as text (a leading byte-order mark dropped); 400 saying where it is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        column = error.start - (body.rfind(b"\n", 0, error.start) + 1) + 1
        raise InvalidUtf8(
            Sentence(
                N_("byte %(start)s (line %(line)s, column %(column)s) is not valid UTF-8: %(reason)s"),
                start=error.start,
                line=line,
                column=column,
                reason=error.reason,
            ),
            line=line,
            column=column,
            offset=error.start,
        ) from error
    return text.removeprefix("\ufeff")


@dataclass(slots=True)
class ParsedItem:
    """One record of a batch: its value (or why it has none) and where its text is."""

    index: int
    source: str
    start: int
    end: int
    value: Any = None
    problem: Violation | None = None
    line: int | None = None
    cells: list[str] | None = None
    """CSV only: the row's cells, typed later against the contract."""
    original: bytes | None = None
    """The record's bytes when they are not a slice of ``source`` (a raw Kafka record)."""

    def payload(self) -> bytes:
        """The record exactly as it was sent (for the dead-letter topic)."""
        if self.original is not None:
            return self.original
        return self.source[self.start : self.end].encode("utf-8", "surrogatepass")


class _NotJson(ValueError):
    """NaN and Infinity: Python's decoder takes them, JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def too_deep(path: str = "") -> Violation:
    return Violation(path, "maxDepth", "the record nests too deeply to be read")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _skip_nested(text: str, start: int) -> int:
    """End of the array or object at ``start``, without decoding it (it was too deep to decode)."""
    depth = 0
    for match in _STRUCTURE.finditer(text, start):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                return match.end()
    raise MalformedBody.at(text, start, "unterminated array or object")


def _value_error(error: ValueError) -> str:
    """What the decoder refused, in the caller's terms (not the interpreter's advice to itself)."""
    if "integer string conversion" in str(error):
        return f"a record holds an integer longer than the limit of {sys.get_int_max_str_digits()} digits"
    return str(error)


def parse_json_array(text: str, max_records: int) -> list[ParsedItem]:
    """The records of a JSON array, decoded one element at a time so each keeps its own span."""
    position = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if position == len(text):
        raise EmptyBody(Sentence(N_("the body is empty")))
    if text[position] != "[":
        raise MalformedBody.at(text, position, "expected a JSON array of records ('[')")
    position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    items: list[ParsedItem] = []
    if text.startswith("]", position):
        position += 1
    else:
        while True:
            start = position
            item = ParsedItem(index=len(items), source=text, start=start, end=start)
            try:
                item.value, item.end = DECODER.raw_decode(text, start)
            except json.JSONDecodeError as error:
                raise MalformedBody.at(text, error.pos, error.msg) from error
            except RecursionError:
                item.end, item.problem = _skip_nested(text, start), too_deep()
            except ValueError as error:  # NaN, or an integer longer than Python converts
                raise MalformedBody.at(text, start, _value_error(error)) from error
            item.line = _position(text, start)[0] if item.problem else None
            items.append(item)
            if len(items) > max_records:
                raise TooManyRecords(
                    Sentence(N_("a batch may hold at most %(max_records)s records"), max_records=max_records),
                    limit=max_records,
                )
            position = _WHITESPACE.match(text, item.end).end()  # type: ignore[union-attr]
            if position < len(text) and text[position] == ",":
                position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
                continue
            if position < len(text) and text[position] == "]":
                position += 1
                break
            raise MalformedBody.at(text, position, "expected ',' or ']' after a record")
    position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
    if position != len(text):
        raise MalformedBody.at(text, position, "unexpected data after the array")
    return items


def parse_ndjson(text: str, max_records: int) -> list[ParsedItem]:
    """One record per non-blank line; a line that is not JSON makes the whole body malformed."""
    items: list[ParsedItem] = []
    position, line = 0, 0
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline < 0 else newline
        line += 1
        stop = end - 1 if end > position and text[end - 1] == "\r" else end
        segment = text[position:stop]
        if segment.strip():
            item = ParsedItem(index=len(items), source=text, start=position, end=stop, line=line)
            try:
                item.value = DECODER.decode(segment)
            except json.JSONDecodeError as error:
                raise MalformedBody(
                    Sentence(
                        N_("line %(line)s column %(colno)s: %(msg)s"),
                        line=line,
                        colno=error.colno,
                        msg=error.msg,
                    ),
                    line=line,
                    column=error.colno,
                    offset=position + error.pos,
                ) from error
            except RecursionError:
                item.problem = too_deep()
            except ValueError as error:
                raise MalformedBody(
                    Sentence(N_("line %(line)s: %(reason)s"), line=line, reason=_value_error(error)),
                    line=line,
                    offset=position,
                ) from error
            items.append(item)
            if len(items) > max_records:
                raise TooManyRecords(
                    Sentence(N_("a batch may hold at most %(max_records)s records"), max_records=max_records),
                    limit=max_records,
                )
        position = end + 1
    if not items:
        raise EmptyBody(
            Sentence(N_("the body holds no records") if text.strip() else N_("the body is empty"))
        )
    return items


class _Lines:
    """Feeds ``csv.reader`` one physical line at a time and remembers how far it has read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.text):
            raise StopIteration
        newline = self.text.find("\n", self.position)
        end = len(self.text) if newline < 0 else newline + 1
        line, self.position = self.text[self.position : end], end
        return line


@dataclass(frozen=True, slots=True)
class CsvBatch:
    header: list[str]
    rows: list[ParsedItem]


def parse_csv(text: str, max_records: int, max_field_chars: int) -> CsvBatch:
    """Header and rows of a CSV body (RFC 4180: comma, double quotes, a row may span lines).

    Cells stay text here; they are typed against the contract's record schema afterwards.
    """
    # The csv module caps a field at 128 KiB by default, process-wide; a long field is the
    # contract's business (maxLength, record size), not a reason to refuse the whole body.
    if csv.field_size_limit() < max_field_chars:
        csv.field_size_limit(max_field_chars)
    lines = _Lines(text)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    rows: list[ParsedItem] = []
    start = 0
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise MalformedBody(
                Sentence(N_("line %(line)s: %(error)s"), line=reader.line_num, error=error),
                line=reader.line_num,
                offset=lines.position,
            ) from error
        end = lines.position
        blank = not cells or (len(cells) == 1 and not cells[0].strip())
        if not blank:
            if header is None:
                header = [cell.strip() for cell in cells]
            else:
                stop = end - (2 if text.endswith("\r\n", 0, end) else 1 if text.endswith("\n", 0, end) else 0)
                rows.append(
                    ParsedItem(
                        index=len(rows), source=text, start=start, end=stop, line=first_line, cells=cells
                    )
                )
                if len(rows) > max_records:
                    raise TooManyRecords(
                        Sentence(
                            N_("a batch may hold at most %(max_records)s records"), max_records=max_records
                        ),
                        limit=max_records,
                    )
        start = end
    if header is None:
        raise EmptyBody(Sentence(N_("the body is empty")))
    if not rows:
        raise EmptyBody(Sentence(N_("the CSV has a header but no rows")))
    return CsvBatch(header, rows)


# --- CSV cells typed by the contract -------------------------------------------------------

ABSENT: Any = object()
"""A cell that stands for no value at all: the field is left out of the record."""

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def csv_value(cell: str, types: frozenset[str]) -> Any:
    """A CSV cell as the JSON value the contract's field expects.

    An empty cell is null for a field that may be null, "" for a text field, and otherwise no
    value (so the ``required`` rule names it). A cell that does not read as the field's type stays
    text, and the schema then reports the type error at the field's path.
    """
    if cell == "":
        if "null" in types:
            return None
        return "" if "string" in types or not types else ABSENT
    text = cell.strip()
    if "integer" in types and _INTEGER.match(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts: leave it to the schema
            return cell
    if "number" in types and _NUMBER.match(text):
        number = float(text)
        if number == number and abs(number) != float("inf"):
            return int(text) if _INTEGER.match(text) and abs(number) < 2**63 else number
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if types & {"object", "array"} and text[:1] in ("{", "["):
        try:
            return DECODER.decode(text)
        except (ValueError, RecursionError):
            return cell
    return cell


def csv_record(header: list[str], item: ParsedItem, types: dict[str, frozenset[str]]) -> None:
    """Turn a CSV row into its record (``item.value``), or say why it has none (``item.problem``)."""
    cells = item.cells or []
    if len(cells) != len(header):
        item.problem = Violation(
            "",
            "csvColumns",
            f"line {item.line}: the row has {len(cells)} cells but the header has {len(header)} columns",
        )
        return
    record: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        value = csv_value(cell, types.get(name, frozenset({"string"})))
        if value is not ABSENT:
            record[name] = value
    item.value = record
