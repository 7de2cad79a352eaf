"""Row filters: the small, safe expression language in which a grant says which records it covers.

Examples::

    district in ["Putuo", "Baoshan"]
    wait_minutes >= 30 and channel != "on-site"
    not (age_band in ["0-6", "7-17"]) or location.district is null

The grammar and the parser are in :mod:`.row_filter_syntax`; this module compiles the parsed tree
into closures over the record and is where a filter's meaning is defined.

Evaluation is three-valued, as in SQL: a comparison involving a missing field, a null, an object
or an array, and an order comparison of values of different types (``"a" < 1``) or of booleans,
is *unknown*; ``not`` of unknown is unknown, ``false and unknown`` is false, ``true or unknown``
is true, and a record passes the filter only when it is *true*. So neither ``district == "X"``
nor ``not (district == "X")`` lets a record without a district through; ``is null`` (true for a
missing field too) and ``is not null`` are how to ask about one. Equality of values of different
types is false (``"1" == 1`` is false, ``"1" != 1`` true); numbers compare as numbers (``1 ==
1.0``). ``x in [...]`` is true when an item equals ``x``, false otherwise (unknown when ``x`` is
null, missing, an object or an array), and ``x not in [...]`` is its negation. Comparing with the
``null`` literal (``x == null``, ``[null]``) is refused: it could never be true.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from services.common.i18n import N_, Sentence
from services.common.policy.row_filter_syntax import (
    MAX_TEXT,
    All,
    Any_,
    Compare,
    Field,
    IsNull,
    Literal,
    Member,
    Node,
    Not,
    Operand,
    RowFilterError,
    Truth,
    parse_tree,
)

Verdict = bool | None
"""The value of a condition: True, False, or None for unknown."""
Condition = Callable[[Mapping[str, Any]], Verdict]


# --- evaluation ----------------------------------------------------------------------------------

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__slots__": ()})()

_NUMBER_KIND, _STRING_KIND, _BOOL_KIND = 1, 2, 3


def _kind(value: Any) -> int:
    """1 number, 2 string, 3 boolean, 0 anything that takes part in no comparison."""
    kind = type(value)
    if kind is str:
        return _STRING_KIND
    if kind is int or kind is float:
        return _NUMBER_KIND
    if kind is bool:
        return _BOOL_KIND
    if isinstance(value, bool):
        return _BOOL_KIND
    if isinstance(value, str):
        return _STRING_KIND
    if isinstance(value, int | float):
        return _NUMBER_KIND
    return 0


def _getter(operand: Operand) -> Callable[[Mapping[str, Any]], Any]:
    if isinstance(operand, Literal):
        value = operand.value
        return lambda record: value
    path = operand.path
    if len(path) == 1:
        name = path[0]

        def top(record: Mapping[str, Any]) -> Any:
            return record.get(name, MISSING)

        return top

    def nested(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for part in path:
            if not isinstance(value, Mapping):
                return MISSING
            value = value.get(part, MISSING)
        return value

    return nested


def _order(operator: str) -> Callable[[Any, Any], bool]:
    return {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[operator]


def _compile_compare(node: Compare) -> Condition:
    left, right = _getter(node.left), _getter(node.right)
    kind = _kind
    if node.operator in ("==", "!="):
        equal_is = node.operator == "=="

        def equality(record: Mapping[str, Any]) -> Verdict:
            a, b = left(record), right(record)
            kind_a, kind_b = kind(a), kind(b)
            if not kind_a or not kind_b:
                return None
            return (kind_a == kind_b and a == b) is equal_is

        # A field against a string literal is the common case: one type check and one compare.
        if isinstance(node.right, Literal) and type(node.right.value) is str and isinstance(node.left, Field):
            literal = node.right.value

            def string_equality(record: Mapping[str, Any]) -> Verdict:
                a = left(record)
                kind_a = kind(a)
                if kind_a == _STRING_KIND:
                    return (a == literal) is equal_is
                return None if not kind_a else not equal_is

            return string_equality
        return equality

    order = _order(node.operator)

    def ordering(record: Mapping[str, Any]) -> Verdict:
        a, b = left(record), right(record)
        kind_a = kind(a)
        if kind_a == _BOOL_KIND or not kind_a or kind_a != kind(b):
            return None
        return order(a, b)

    return ordering


def _compile_member(node: Member) -> Condition:
    get = _getter(node.operand)
    kind = _kind
    # Items by kind, so that True is not 1 and 1 is 1.0: each kind's items in its own set.
    by_kind: dict[int, frozenset[Any]] = {}
    for item in node.items:
        by_kind[kind(item)] = by_kind.get(kind(item), frozenset()) | {item}
    strings = by_kind.get(_STRING_KIND, frozenset())
    negated = node.negated

    def member(record: Mapping[str, Any]) -> Verdict:
        value = get(record)
        if type(value) is str:
            return (value in strings) is not negated
        value_kind = kind(value)
        if not value_kind:
            return None
        items = by_kind.get(value_kind)
        found = items is not None and _contains(items, value)
        return found is not negated

    return member


def _contains(items: frozenset[Any], value: Any) -> bool:
    try:
        return value in items
    except TypeError:  # an unhashable subclass of a scalar
        return any(value == item for item in items)


def _compile_is_null(node: IsNull) -> Condition:
    get, negated = _getter(node.operand), node.negated

    def is_null(record: Mapping[str, Any]) -> Verdict:
        value = get(record)
        return (value is None or value is MISSING) is not negated

    return is_null


def _compile_truth(node: Truth) -> Condition:
    get = _getter(node.operand)

    def truth(record: Mapping[str, Any]) -> Verdict:
        value = get(record)
        return value if isinstance(value, bool) else None

    return truth


def compile_condition(node: Node) -> Condition:
    """The three-valued verdict of ``node`` (a whole filter or any condition in it) on a record."""
    if isinstance(node, Compare):
        return _compile_compare(node)
    if isinstance(node, Member):
        return _compile_member(node)
    if isinstance(node, IsNull):
        return _compile_is_null(node)
    if isinstance(node, Truth):
        return _compile_truth(node)
    if isinstance(node, Not):
        inner = compile_condition(node.operand)

        def negation(record: Mapping[str, Any]) -> Verdict:
            verdict = inner(record)
            return None if verdict is None else not verdict

        return negation
    conditions = tuple(compile_condition(operand) for operand in node.operands)
    if isinstance(node, All):

        def conjunction(record: Mapping[str, Any]) -> Verdict:
            verdict: Verdict = True
            for condition in conditions:
                value = condition(record)
                if value is False:
                    return False
                if value is None:
                    verdict = None
            return verdict

        return conjunction

    def disjunction(record: Mapping[str, Any]) -> Verdict:
        verdict: Verdict = False
        for condition in conditions:
            value = condition(record)
            if value is True:
                return True
            if value is None:
                verdict = None
        return verdict

    return disjunction


def _compile_matches(node: Node) -> Callable[[Mapping[str, Any]], bool]:
    """Whether the verdict is true, for the filter as a whole: the same rules as
    :func:`compile_condition`, but ``and`` and ``or`` need not tell false from unknown, so they
    stop at the first child that decides and the leaves need no wrapper."""
    if not isinstance(node, All | Any_):
        condition = compile_condition(node)
        return lambda record: condition(record) is True
    children = tuple(
        _compile_matches(operand) if isinstance(operand, All | Any_) else compile_condition(operand)
        for operand in node.operands
    )
    if isinstance(node, All):
        if len(children) == 2:
            first, second = children
            return lambda record: first(record) is True and second(record) is True
        return lambda record: all(child(record) is True for child in children)
    if len(children) == 2:
        first, second = children
        return lambda record: first(record) is True or second(record) is True
    return lambda record: any(child(record) is True for child in children)


def _field_names(node: Node) -> list[str]:
    if isinstance(node, Compare):
        return [operand.name for operand in (node.left, node.right) if isinstance(operand, Field)]
    if isinstance(node, Member | IsNull | Truth):
        return [node.operand.name] if isinstance(node.operand, Field) else []
    if isinstance(node, Not):
        return _field_names(node.operand)
    return [name for operand in node.operands for name in _field_names(operand)]


class RowFilter:
    """A parsed row filter: ``matches(record)`` (or calling it) is True when the record passes.

    ``evaluate(record)`` gives the three-valued verdict (None for unknown); ``fields`` the field
    names it reads (dotted for nested), ``text`` what it was parsed from.
    """

    __slots__ = ("evaluate", "fields", "matches", "text", "tree")

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        self.evaluate: Condition = compile_condition(tree)
        self.matches: Callable[[Mapping[str, Any]], bool] = _compile_matches(tree)
        self.fields: frozenset[str] = frozenset(_field_names(tree))

    def __call__(self, record: Mapping[str, Any]) -> bool:
        return self.matches(record)

    def __repr__(self) -> str:
        return f"RowFilter({self.text!r})"


def parse_row_filter(text: str, fields: Collection[str] | None = None) -> RowFilter:
    """Parse a row filter; RowFilterError (with a position) if it is malformed or too big, or, when
    ``fields`` is given, names a field that is not in it (nested fields as ``a.b``)."""
    if not isinstance(text, str):
        raise RowFilterError(Sentence(N_("a row filter is text")), 0)
    if len(text) > MAX_TEXT:
        raise RowFilterError(
            Sentence(N_("a row filter has at most %(limit)s characters"), limit=MAX_TEXT), MAX_TEXT
        )
    if not text.strip():
        raise RowFilterError(Sentence(N_("a row filter must not be empty")), 0)
    return RowFilter(text, parse_tree(text, fields))
