"""The row filter syntax: errors say what and where, bounds hold, nothing is Python, and any text
either parses or raises RowFilterError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.policy import MAX_DEPTH, MAX_LIST_ITEMS, MAX_TEXT, RowFilterError, parse_row_filter


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "a row filter must not be empty", 0),
        ("   ", "a row filter must not be empty", 0),
        ("clinic ==", "expected a field or a value, found the end of the filter", 9),
        ("clinic = 'a'", "unexpected '=': equality is written '=='", 7),
        ("clinic == 'a", "unterminated string", 10),
        ("clinic == 'a\\", "unterminated string", 12),
        (r"clinic == 'a\q'", "unknown escape \\q", 12),
        (r"clinic == 'a\u12'", "\\u must be followed by four hex digits", 12),
        ("clinic == 1a", "malformed number", 10),
        ("clinic == 01", "malformed number", 10),
        ("clinic == 1.", "malformed number", 10),
        ("clinic == 1e999", "number out of range", 10),
        ("clinic == 1" + "0" * 70, "a number has at most 64 characters", 10),
        ("clinic == #", "unexpected character '#'", 10),
        ("clinic == 'a' clinic", "expected 'and', 'or' or the end of the filter, found 'clinic'", 14),
        ("(clinic == 'a'", "expected ')', found the end of the filter", 14),
        ("clinic == 'a')", "expected 'and', 'or' or the end of the filter, found ')'", 13),
        ("clinic in 'a'", "expected '[' opening a list of values, found \"'a'\"", 10),
        ("clinic in ['a' 'b']", "expected ',' or ']', found \"'b'\"", 15),
        ("clinic in ['a', clinic]", "expected a value or ']', found 'clinic'", 16),
        ("clinic in [['a']]", "expected a value or ']', found '['", 11),
        ("clinic in ['a', null]", "null is never in a list: write 'is null'", 16),
        ("clinic not 'a'", "expected 'in' after 'not', found \"'a'\"", 11),
        ("clinic is 'a'", "expected 'null' after 'is', found \"'a'\"", 10),
        ("clinic is not 1", "expected 'null' after 'is not', found '1'", 14),
        ("clinic == null", "nothing equals or orders with null: write 'is null' or 'is not null'", 10),
        ("null != clinic", "nothing equals or orders with null: write 'is null' or 'is not null'", 0),
        ("'cardiology'", "expected a comparison after \"'cardiology'\", found the end of the filter", 12),
        ("3 and true", "expected a comparison after '3', found 'and'", 2),
        ("clinic. == 1", "expected a field name after '.', found '=='", 8),
        ("and", "expected a field or a value, found 'and'", 0),
        ("clinic == 'a' or", "expected a field or a value, found the end of the filter", 16),
        ("1 == 1 == 1", "expected 'and', 'or' or the end of the filter, found '=='", 7),
    ],
)
def test_errors_say_what_and_where(text: str, message: str, position: int) -> None:
    with pytest.raises(RowFilterError) as caught:
        parse_row_filter(text)
    assert (caught.value.message, caught.value.position) == (message, position)
    assert str(caught.value) == f"{message} (at character {position})"
    assert isinstance(caught.value, ValueError)


def test_bounds() -> None:
    with pytest.raises(RowFilterError, match=f"at most {MAX_TEXT} characters"):
        parse_row_filter("a == 1 or " * 500 + "a == 1")
    assert parse_row_filter("not " * MAX_DEPTH + "a")
    with pytest.raises(
        RowFilterError, match=f"nests 'not' and parentheses at most {MAX_DEPTH} deep"
    ) as caught:
        parse_row_filter("not " * (MAX_DEPTH + 1) + "a")
    assert caught.value.position == 4 * MAX_DEPTH
    assert parse_row_filter("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(RowFilterError, match="deep"):
        parse_row_filter("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert parse_row_filter("a in [" + ",".join(["1"] * MAX_LIST_ITEMS) + "]")
    with pytest.raises(RowFilterError, match=f"a list has at most {MAX_LIST_ITEMS} values") as caught:
        parse_row_filter("a in [" + ",".join(["1"] * (MAX_LIST_ITEMS + 1)) + "]")
    assert caught.value.position == 5
    with pytest.raises(RowFilterError, match="a field name has at most 16 parts"):
        parse_row_filter(".".join(["a"] * 17) + " is null")


def test_a_filter_is_never_python() -> None:
    for text in ["__import__('os').system('true')", "clinic.__class__ == 1", "[x for x in y]", "lambda: 1"]:
        try:
            row_filter = parse_row_filter(text)
        except RowFilterError:
            continue
        assert row_filter.evaluate({"clinic": "a"}) is None  # a dotted name is a path, never an attribute


TOKENS = st.sampled_from(
    [
        "a", "b.c", "and", "OR", "not", "in", "is", "null", "true", "false", "==", "!=", "<", "<=", ">",
        ">=", "=", "(", ")", "[", "]", ",", ".", "'x'", '"y', "'", "\\", "1", "-2.5e3", "01", "1e999",
        "\\u12", "é", "٣", "#", "\x00", "\n",
    ]
)  # fmt: skip


@settings(max_examples=200, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=60)
    | st.lists(TOKENS, max_size=20).map(" ".join)
    | st.lists(TOKENS, max_size=20).map("".join)
)
def test_any_text_parses_or_raises_row_filter_error(text: str) -> None:
    try:
        row_filter = parse_row_filter(text, {"a", "b.c"} if len(text) % 2 else None)
    except RowFilterError as caught:
        error = caught
    else:
        assert row_filter.evaluate({"a": 1, "b": {"c": "x"}}) in (True, False, None)
        return
    assert 0 <= error.position <= len(text)
    assert error.message
