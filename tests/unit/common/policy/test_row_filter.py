"""The row filter language's meaning: every operator, three-valued evaluation, and agreement with a
reference evaluator on generated filters (its syntax: test_row_filter_syntax.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.policy import RowFilterError, parse_row_filter

PROPERTY_SETTINGS = settings(
    max_examples=200, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

VISIT = {
    "clinic": "cardiology",
    "wait_minutes": 37,
    "score": 4.5,
    "first_visit": True,
    "channel": None,
    "location": {"district": "Putuo", "lat": 31.23},
    "tags": ["a"],
}


def verdict(text: str, record: dict[str, Any] = VISIT) -> bool | None:
    return parse_row_filter(text).evaluate(record)


# --- operators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('clinic == "cardiology"', True),
        ("clinic == 'cardiology'", True),
        ('clinic != "cardiology"', False),
        ("wait_minutes == 37", True),
        ("wait_minutes == 37.0", True),
        ("wait_minutes != 36", True),
        ("wait_minutes < 38", True),
        ("wait_minutes <= 37", True),
        ("wait_minutes > 37", False),
        ("wait_minutes >= 37", True),
        ("score > -1.5e0", True),
        ('clinic < "dermatology"', True),
        ('clinic >= "cardiology"', True),
        ("first_visit", True),
        ("first_visit == true", True),
        ("first_visit != false", True),
        ("not first_visit", False),
        ('location.district == "Putuo"', True),
        ("location.lat < 31.5", True),
        ('clinic in ["cardiology", "dermatology"]', True),
        ('clinic in ["dermatology"]', False),
        ('clinic not in ["dermatology"]', True),
        ("wait_minutes in [1, 37.0]", True),
        ("wait_minutes in []", False),
        ("wait_minutes not in []", True),
        ("first_visit in [1]", False),  # true is not 1
        ("first_visit in [true, 'x']", True),
        ('location.district in ["Putuo", "Baoshan",]', True),
        ("channel is null", True),
        ("missing is null", True),
        ("location.missing is null", True),
        ("clinic.deeper is null", True),
        ("clinic is not null", True),
        ("channel is not null", False),
        ("location is not null", True),
        ('wait_minutes > 30 and clinic == "cardiology"', True),
        ("wait_minutes > 40 or first_visit", True),
        ("wait_minutes > 40 or not first_visit", False),
        ("not (wait_minutes > 40)", True),
        ("not not first_visit", True),
        ("true", True),
        ("false or (true and not false)", True),
        ("1 < 2", True),
        ('WAIT_MINUTES is null AND clinic IN ["cardiology"] OR False', True),
    ],
)
def test_operators(text: str, expected: bool) -> None:
    assert verdict(text) is expected
    assert parse_row_filter(text).matches(VISIT) is expected


@pytest.mark.parametrize(
    "text",
    [
        'missing == "x"',  # a missing field
        'missing != "x"',
        'not (missing == "x")',  # not of unknown stays unknown
        'channel == "online"',  # a null
        'channel != "online"',
        "channel in ['online']",
        "channel not in ['online']",
        "location == 1",  # an object
        "tags != 'a'",  # an array
        "clinic < 3",  # different types do not order
        "wait_minutes >= '3'",
        "first_visit > false",  # booleans do not order
        "missing",  # a bare field that is not a boolean
        "clinic",
        "not clinic",
        'missing == "x" and true',
        'missing == "x" or false',
    ],
)
def test_missing_null_and_incomparable_values_are_unknown(text: str) -> None:
    assert verdict(text) is None
    assert parse_row_filter(text).matches(VISIT) is False


def test_three_valued_and_or() -> None:
    assert verdict('missing == "x" and false') is False
    assert verdict('missing == "x" or true') is True


def test_values_of_different_types_are_unequal() -> None:
    assert verdict('wait_minutes == "37"') is False
    assert verdict('wait_minutes != "37"') is True
    assert verdict("first_visit == 1") is False
    assert verdict("clinic not in [1, 2, true]") is True


def test_string_escapes() -> None:
    record = {"name": 'a "quoted" \\ name\n\u00e9\U0001f600\'s'}
    assert verdict(r'name == "a \"quoted\" \\ name\n\u00e9\ud83d\ude00\'s"', record) is True
    assert verdict(r"name == 'a \"quoted\" \\ name\n\u00E9\uD83D\uDE00\'s'", record) is True
    assert verdict(r'x == "\/\b\f\r\t"', {"x": "/\b\f\r\t"}) is True


def test_field_names_it_reads() -> None:
    row_filter = parse_row_filter('a == 1 or (not b.c in [1] and d is null) or e < f or "x" == "y" or g')
    assert row_filter.fields == {"a", "b.c", "d", "e", "f", "g"}
    assert row_filter.text.startswith("a == 1")


def test_names_are_checked_against_the_fields_given() -> None:
    fields = {"clinic", "location.district"}
    assert parse_row_filter('location.district == "Putuo" and clinic is null', fields)
    with pytest.raises(RowFilterError) as caught:
        parse_row_filter('clinic == "a" or location.street == "b"', fields)
    assert caught.value.message == "unknown field 'location.street'"
    assert caught.value.position == 17


# --- properties ---------------------------------------------------------------------------------
# Filters are generated as trees, written out as text (with random quotes, keyword case and
# spacing) and evaluated by the parser and by a small reference evaluator written from the rules.

MISSING = object()


@dataclass(frozen=True)
class Ref:
    """A generated filter: its tree as nested tuples, and its text."""

    tree: tuple[Any, ...]
    text: str


FIELDS = ["a", "b", "c", "n.x", "n.y"]
SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0, 1, 0.5, 1.0, -1.5, 1e-5, 3.0e20]),  # 1 == 1.0, and neither is true
    st.sampled_from(["", "x", "y", "Putuo", "a'b", 'q"', "é\n"]),
    st.booleans(),
)
RECORD_VALUES = st.one_of(
    SCALARS,
    SCALARS,
    SCALARS,
    st.none(),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.just("x"), SCALARS),
)


MOSTLY = st.sampled_from([True, True, True, False])


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = {name: draw(RECORD_VALUES) for name in ("a", "b", "c") if draw(MOSTLY)}
    if draw(MOSTLY):
        nested = draw(st.sampled_from([{}, {}, {}, None, "n", [1]]))
        if isinstance(nested, dict):
            nested = {key: draw(RECORD_VALUES) for key in ("x", "y") if draw(st.booleans())}
        record["n"] = nested
    return record


def keyword(draw: st.DrawFn, word: str) -> str:
    return draw(st.sampled_from([word, word.upper(), word.capitalize()]))


def literal_text(draw: st.DrawFn, value: Any) -> str:
    if isinstance(value, bool):
        return keyword(draw, "true" if value else "false")
    if isinstance(value, str):
        if draw(st.booleans()):
            return json.dumps(value)
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return repr(value)


@st.composite
def operands(draw: st.DrawFn) -> tuple[tuple[Any, ...], str]:
    if draw(MOSTLY):
        name = draw(st.sampled_from(FIELDS))
        return ("field", name), name
    value = draw(SCALARS)
    return ("literal", value), literal_text(draw, value)


@st.composite
def conditions(draw: st.DrawFn) -> Ref:
    left, left_text = draw(operands())
    form = draw(st.sampled_from(["compare", "compare", "compare", "in", "in", "null", "truth"]))
    space = draw(st.sampled_from([" ", "  ", "\t"]))
    if form == "compare":
        operator = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        right, right_text = draw(operands())
        return Ref(("compare", operator, left, right), f"{left_text}{space}{operator} {right_text}")
    if form == "in":
        items = draw(st.lists(SCALARS, max_size=4))
        negated = draw(st.booleans())
        words = (keyword(draw, "not") + " " if negated else "") + keyword(draw, "in")
        listed = "[" + ", ".join(literal_text(draw, item) for item in items) + "]"
        return Ref(("in", negated, left, tuple(items)), f"{left_text} {words}{space}{listed}")
    if form == "null":
        negated = draw(st.booleans())
        words = (
            keyword(draw, "is")
            + (" " + keyword(draw, "not") if negated else "")
            + " "
            + keyword(draw, "null")
        )
        return Ref(("null", negated, left), f"{left_text} {words}")
    if left[0] == "literal" and not isinstance(left[1], bool):
        left, left_text = ("field", "a"), "a"
    return Ref(("truth", left), left_text)


def combine(children: st.SearchStrategy[Ref]) -> st.SearchStrategy[Ref]:
    @st.composite
    def combined(draw: st.DrawFn) -> Ref:
        form = draw(st.sampled_from(["and", "or", "not"]))
        if form == "not":
            child = draw(children)
            return Ref(("not", child.tree), f"{keyword(draw, 'not')} ({child.text})")
        operands_ = draw(st.lists(children, min_size=2, max_size=3))
        joiner = f" {keyword(draw, form)} "
        return Ref(
            (form, *(child.tree for child in operands_)),
            joiner.join(f"({child.text})" for child in operands_),
        )

    return combined()


FILTERS = st.recursive(conditions(), combine, max_leaves=8)


def reference_value(record: dict[str, Any], operand: tuple[Any, ...]) -> Any:
    if operand[0] == "literal":
        return operand[1]
    value: Any = record
    for part in operand[1].split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def reference_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def reference(tree: tuple[Any, ...], record: dict[str, Any]) -> bool | None:
    """The rules of the row filter module docstring, evaluated the plain way."""
    form = tree[0]
    if form == "compare":
        _, operator, left, right = tree
        a, b = reference_value(record, left), reference_value(record, right)
        kind_a, kind_b = reference_kind(a), reference_kind(b)
        if kind_a is None or kind_b is None:
            return None
        if operator in ("==", "!="):
            return (kind_a == kind_b and a == b) == (operator == "==")
        if kind_a != kind_b or kind_a == "boolean":
            return None
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator]
    if form == "in":
        _, negated, operand, items = tree
        value = reference_value(record, operand)
        if reference_kind(value) is None:
            return None
        found = any(reference_kind(item) == reference_kind(value) and item == value for item in items)
        return found != negated
    if form == "null":
        value = reference_value(record, tree[2])
        return (value is None or value is MISSING) != tree[1]
    if form == "truth":
        value = reference_value(record, tree[1])
        return value if isinstance(value, bool) else None
    if form == "not":
        inner = reference(tree[1], record)
        return None if inner is None else not inner
    verdicts = [reference(child, record) for child in tree[1:]]
    if form == "and":
        return False if False in verdicts else None if None in verdicts else True
    return True if True in verdicts else None if None in verdicts else False


@PROPERTY_SETTINGS
@given(FILTERS, st.lists(records(), min_size=1, max_size=4))
def test_the_parser_agrees_with_the_reference_evaluator(
    generated: Ref, samples: list[dict[str, Any]]
) -> None:
    row_filter = parse_row_filter(generated.text)
    for record in samples:
        expected = reference(generated.tree, record)
        assert row_filter.evaluate(record) is expected, (generated.text, record)
        assert row_filter.matches(record) is (expected is True), (generated.text, record)
