"""Reading a batch: JSON arrays, NDJSON and CSV with positions, gzip within a bound, bad bodies."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import pytest

from services.common.problems import MalformedBody, Problem
from services.ingest.exceptions import (
    EmptyBody,
    InvalidUtf8,
    PayloadTooLarge,
    TooManyRecords,
    UnsupportedMediaType,
)
from services.ingest.parsing import (
    ABSENT,
    BodyFormat,
    BoundedBody,
    body_format,
    csv_record,
    csv_value,
    decode_utf8,
    is_gzip,
    parse_csv,
    parse_json_array,
    parse_ndjson,
)

# --- JSON arrays ------------------------------------------------------------------------------


def test_each_element_of_a_json_array_keeps_its_value_and_original_text() -> None:
    text = '[ {"a": 1},\n  {"b": [1, 2],  "c": "é"} ,{"d":null}]'
    items = parse_json_array(text, 10)
    assert [item.value for item in items] == [{"a": 1}, {"b": [1, 2], "c": "é"}, {"d": None}]
    assert [item.index for item in items] == [0, 1, 2]
    assert items[1].payload() == '{"b": [1, 2],  "c": "é"}'.encode()
    assert all(item.problem is None for item in items)


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        ('[{"a": 1}\n {"b": 2}]', 2, 2, "expected ',' or ']'"),
        ('[{"a": 1},]', 1, 11, "Expecting value"),
        ('{"a": 1}', 1, 1, "expected a JSON array"),
        ('[{"a": 1}] x', 1, 12, "unexpected data"),
        ('[{"a": 1}, {"b": ', 1, 18, "Expecting value"),
        ('[{"a": tru}]', 1, 8, "Expecting value"),
        ('[{"a": NaN}]', 1, 2, "NaN is not a JSON value"),
        ('[{"a": ' + "9" * 5000 + "}]", 1, 2, "limit"),
        ('[\n{"a": "unterminated}]', 2, 7, "Unterminated string"),
    ],
)
def test_a_malformed_json_body_says_where(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(MalformedBody) as raised:
        parse_json_array(text, 10)
    problem = raised.value
    assert (problem.line, problem.column) == (line, column)
    assert problem.offset is not None
    assert reason in str(problem.detail)
    assert problem.body()["line"] == line


@pytest.mark.parametrize("text", ["", "  \n ", "[]", "[ \n ]"])
def test_an_empty_json_body_is_refused_or_has_no_records(text: str) -> None:
    if text.strip():
        assert parse_json_array(text, 10) == []
    else:
        with pytest.raises(EmptyBody):
            parse_json_array(text, 10)


def test_a_record_nested_a_thousand_deep_is_rejected_alone() -> None:
    deep = "[" * 1000 + "]" * 1000
    text = f'[{{"a": 1}}, {{"deep": {deep}}}, {{"b": "]"}}]'
    items = parse_json_array(text, 10)
    assert [item.problem.rule if item.problem else None for item in items] == [None, "maxDepth", None]
    assert items[2].value == {"b": "]"}
    assert items[1].payload().decode().startswith('{"deep": [[[')
    assert items[1].payload().decode().endswith("]]]}")


def test_more_records_than_allowed_is_a_413() -> None:
    with pytest.raises(TooManyRecords) as raised:
        parse_json_array(json.dumps([{}] * 4), 3)
    assert raised.value.status == 413


# --- NDJSON -----------------------------------------------------------------------------------


def test_ndjson_has_one_record_per_line_and_ignores_blank_lines() -> None:
    text = '{"a": 1}\r\n\n  \n{"b": 2}\n{"c": 3}'
    items = parse_ndjson(text, 10)
    assert [item.value for item in items] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert [item.line for item in items] == [1, 4, 5]
    assert items[0].payload() == b'{"a": 1}'


def test_a_malformed_ndjson_line_makes_the_body_malformed_with_its_line() -> None:
    with pytest.raises(MalformedBody) as raised:
        parse_ndjson('{"a": 1}\n\n{"b": 2,}\n{"c": 3}\n', 10)
    assert (raised.value.line, raised.value.column) == (3, 9)
    assert "line 3 column 9" in str(raised.value.detail)


def test_a_deep_ndjson_line_is_rejected_alone() -> None:
    items = parse_ndjson('{"a": 1}\n' + "[" * 1000 + "]" * 1000 + '\n{"b": 2}', 10)
    assert [item.problem.rule if item.problem else None for item in items] == [None, "maxDepth", None]


@pytest.mark.parametrize("text", ["", "\n\n", "  \r\n"])
def test_an_ndjson_body_without_records_is_empty(text: str) -> None:
    with pytest.raises(EmptyBody):
        parse_ndjson(text, 10)


def test_ndjson_counts_records_against_the_limit() -> None:
    with pytest.raises(TooManyRecords):
        parse_ndjson("{}\n" * 4, 3)


# --- CSV --------------------------------------------------------------------------------------

TYPES = {
    "count": frozenset({"integer"}),
    "maybe_count": frozenset({"integer", "null"}),
    "ratio": frozenset({"number"}),
    "flag": frozenset({"boolean"}),
    "name": frozenset({"string"}),
    "note": frozenset({"string", "null"}),
    "tags": frozenset({"array"}),
}


@pytest.mark.parametrize(
    ("cell", "field", "value"),
    [
        ("42", "count", 42),
        ("-7", "count", -7),
        ("4.5", "count", "4.5"),
        ("abc", "count", "abc"),
        ("", "count", ABSENT),
        ("", "maybe_count", None),
        ("3", "maybe_count", 3),
        ("2.5", "ratio", 2.5),
        ("1e3", "ratio", 1000.0),
        ("12", "ratio", 12),
        ("nan", "ratio", "nan"),
        ("TRUE", "flag", True),
        ("false", "flag", False),
        ("yes", "flag", "yes"),
        ("", "name", ""),
        (" padded ", "name", " padded "),
        ("", "note", None),
        ('["a", "b"]', "tags", ["a", "b"]),
        ("[broken", "tags", "[broken"),
    ],
)
def test_csv_cells_are_typed_by_the_contract(cell: str, field: str, value: object) -> None:
    assert (
        csv_value(cell, TYPES[field]) == value
        if value is not ABSENT
        else csv_value(cell, TYPES[field]) is ABSENT
    )


def test_a_csv_body_becomes_records_typed_by_the_schema() -> None:
    text = 'name,count,maybe_count,flag,note\r\nbus "A",3,,true,\n"multi\nline",4,5,false,"x, y"\n'
    table = parse_csv(text, 10, 1 << 20)
    assert table.header == ["name", "count", "maybe_count", "flag", "note"]
    for item in table.rows:
        csv_record(table.header, item, TYPES)
    assert [row.value for row in table.rows] == [
        {"name": 'bus "A"', "count": 3, "maybe_count": None, "flag": True, "note": None},
        {"name": "multi\nline", "count": 4, "maybe_count": 5, "flag": False, "note": "x, y"},
    ]
    assert [row.line for row in table.rows] == [2, 3]
    assert table.rows[1].payload() == b'"multi\nline",4,5,false,"x, y"'


def test_a_csv_row_with_missing_or_extra_cells_is_rejected_alone() -> None:
    table = parse_csv("name,count\nok,1\nshort\ntoo,many,cells\n", 10, 1 << 20)
    for item in table.rows:
        csv_record(table.header, item, TYPES)
    assert table.rows[0].value == {"name": "ok", "count": 1}
    assert [row.problem.rule if row.problem else None for row in table.rows] == [
        None,
        "csvColumns",
        "csvColumns",
    ]
    assert table.rows[2].problem is not None
    assert "3 cells but the header has 2" in table.rows[2].problem.message


@pytest.mark.parametrize(
    ("text", "line"),
    [('name,count\n"unterminated,1\n', 2), ('name,count\nok,1\n"a"b,2\n', 3)],
)
def test_a_malformed_csv_says_the_line(text: str, line: int) -> None:
    with pytest.raises(MalformedBody) as raised:
        parse_csv(text, 10, 1 << 20)
    assert raised.value.line == line


@pytest.mark.parametrize("text", ["", "\n\n", "name,count\n", "name,count\n\n"])
def test_a_csv_without_rows_is_empty(text: str) -> None:
    with pytest.raises(EmptyBody):
        parse_csv(text, 10, 1 << 20)


def test_a_long_csv_field_is_not_a_parse_error() -> None:
    table = parse_csv("name\n" + "x" * 300_000 + "\n", 10, 1 << 20)
    assert len(table.rows[0].cells or []) == 1


# --- bodies: size, gzip, encoding, media types -------------------------------------------------


def _feed(body: BoundedBody, data: bytes, chunk: int = 7919) -> bytes:
    for start in range(0, len(data), chunk):
        body.feed(data[start : start + chunk])
    return body.finish()


def test_a_gzip_body_is_inflated_chunk_by_chunk() -> None:
    plain = json.dumps([{"n": n} for n in range(5000)]).encode()
    body = BoundedBody(1 << 20, gzip=True)
    assert _feed(body, gzip.compress(plain)) == plain
    identity = BoundedBody(1 << 20)
    _feed(identity, plain)
    assert body.sha256 == identity.sha256


def test_concatenated_gzip_members_are_one_body() -> None:
    body = BoundedBody(1024, gzip=True)
    assert _feed(body, gzip.compress(b"[1,") + gzip.compress(b"2]")) == b"[1,2]"


def test_a_zip_bomb_stops_at_the_limit_without_inflating_in_memory() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    compressed = bomb.compress(b"\0" * (256 << 20)) + bomb.flush()  # 256 MiB of zeros in ~250 KiB
    body = BoundedBody(1 << 20, gzip=True)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as raised:
            _feed(body, compressed, chunk=65536)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.status == 413
    assert peak < 8 << 20, f"inflating used {peak} bytes"


def test_a_body_over_the_limit_is_refused_while_it_streams_in() -> None:
    body = BoundedBody(100)
    body.feed(b"x" * 60)
    with pytest.raises(PayloadTooLarge):
        body.feed(b"x" * 60)
    with pytest.raises(PayloadTooLarge):
        BoundedBody(100).check_declared_length("101")
    BoundedBody(100).check_declared_length("100")


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"[1, 2, 3]")[:-12]])
def test_corrupt_or_truncated_gzip_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedBody, match="gzip"):
        _feed(BoundedBody(1024, gzip=True), data)


def test_invalid_utf8_says_which_byte() -> None:
    with pytest.raises(InvalidUtf8) as raised:
        decode_utf8(b'[{"a": "ok"},\n{"b": "\xff"}]')
    assert raised.value.body()["offset"] == 21
    assert raised.value.body()["line"] == 2
    assert decode_utf8("\ufeff[]".encode()) == "[]"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", BodyFormat.json),
        ("application/json; charset=utf-8", BodyFormat.json),
        ("Application/JSON;charset=UTF-8", BodyFormat.json),
        ("application/x-ndjson", BodyFormat.ndjson),
        ("application/jsonl", BodyFormat.ndjson),
        ("text/csv; header=present", BodyFormat.csv),
        ("text/plain", None),
        ("application/xml", None),
        ("application/json; charset=latin-1", None),
        (None, None),
    ],
)
def test_only_json_ndjson_and_csv_in_utf8_are_accepted(
    content_type: str | None, expected: BodyFormat | None
) -> None:
    if expected is None:
        with pytest.raises(UnsupportedMediaType) as raised:
            body_format(content_type)
        assert raised.value.status == 415
    else:
        assert body_format(content_type) is expected


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [(None, False), ("identity", False), ("gzip", True), ("x-gzip", True), ("br", None), ("gzip, br", None)],
)
def test_gzip_is_the_one_content_encoding(encoding: str | None, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(Problem) as raised:
            is_gzip(encoding)
        assert raised.value.status == 415
        assert raised.value.headers == {"Accept-Encoding": "gzip"}
    else:
        assert is_gzip(encoding) is expected
