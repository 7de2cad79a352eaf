"""Compatibility of data-contract versions, checked the way Confluent Schema Registry checks Avro.

A dataset's contract evolves by versions. Before the catalog accepts a new version it asks this
module whether consumers and producers on earlier versions keep working, under the dataset's
:class:`CompatibilityMode`. The input is the per-record JSON Schema that
``json_schema.record_schema`` builds from an ODCS contract (draft 2020-12, an object of typed
``properties`` with ``required``, nullable fields typed ``[T, "null"]``,
``additionalProperties: false``, ``x-citybase-*`` annotations; constraints ``enum``, ``format``, ``pattern``, bounds, ``multipleOf``, lengths, item
and property counts, ``uniqueItems``; nested ``properties``, ``items``, and map values as an
``additionalProperties`` schema). Annotations (``description``, ``title``, ``examples``,
``default``, ``x-citybase-*``) never break compatibility, except the primary key. This module deliberately imports nothing from the ODCS side: it reasons on plain
JSON Schema dicts, so it can be reused on any schema of that dialect and tested in isolation.

Semantics are Avro's, phrased with a *reader* schema (what a consumer expects) and a *writer*
schema (what produced the data):

- the reader ignores fields it does not know (a consumer projects a record on its own schema; the
  ``additionalProperties: false`` of the record schema guards ingest, not consumers);
- a field the reader requires must be produced by the writer, unless the reader has a ``default``;
- every value the writer can produce must be accepted by the reader: types, enums and constraints
  (bounds, lengths, pattern, format) of the reader must be at least as wide as the writer's;
- the primary key (``x-citybase-primary-key``) must not change: it is the Kafka key of
  ``ds.<dataset>``, so changing it re-partitions the topic and breaks compaction.

BACKWARD checks reader=new against writer=old, FORWARD reader=old against writer=new, FULL both;
``*_TRANSITIVE`` modes check every earlier version instead of only the latest. The same finding is
named after the direction in which it was found: a value the new reader no longer accepts is a
``type-narrowed`` when checking BACKWARD, the same comparison swapped is a ``type-widened`` when
checking FORWARD.

Besides the verdict, :func:`diff` lists every change between two versions neutrally (for the
console's diff view and ``citybase contracts diff``) and :func:`render` turns either list into text.

The module is long but one responsibility, comparing two versions of a record schema: the verdict
and the diff walk the same dialect with the same paths, type and bound readings and wording, and
split apart they would have to share those private helpers through a third module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

__all__ = [
    "ITEMS",
    "BreakingChange",
    "Change",
    "ChangeKind",
    "CompatibilityMode",
    "Direction",
    "check",
    "diff",
    "render",
]

Schema = Mapping[str, Any]
"""A record schema or one property schema of the derived JSON Schema dialect."""

Direction = Literal["backward", "forward"]
ChangeKind = Literal["added", "removed", "changed"]

ITEMS: Final = "*"
"""Path segment for any element of an array or any value of a map: ``/stops/*/stop_id``.

JSON Pointer addresses an element by its index or key; a schema describes all of them at once, so
the pointer uses ``*`` where a record would have one.
"""

PRIMARY_KEY: Final = "x-citybase-primary-key"
PRIMARY_KEY_POSITION: Final = "x-citybase-primary-key-position"


class CompatibilityMode(StrEnum):
    """How a new contract version must relate to earlier ones (Confluent Schema Registry's modes)."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions this mode checks, backward first."""
        return _DIRECTIONS[self]

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is checked, not only the latest."""
        return self.endswith("_TRANSITIVE")


_DIRECTIONS: Final[Mapping[CompatibilityMode, tuple[Direction, ...]]] = {
    CompatibilityMode.NONE: (),
    CompatibilityMode.BACKWARD: ("backward",),
    CompatibilityMode.BACKWARD_TRANSITIVE: ("backward",),
    CompatibilityMode.FORWARD: ("forward",),
    CompatibilityMode.FORWARD_TRANSITIVE: ("forward",),
    CompatibilityMode.FULL: ("backward", "forward"),
    CompatibilityMode.FULL_TRANSITIVE: ("backward", "forward"),
}


@dataclass(frozen=True, slots=True)
class BreakingChange:
    """One reason a new contract version is incompatible with an earlier one.

    ``path`` is a JSON Pointer to the property in the record (``""`` for the record itself,
    :data:`ITEMS` for array elements and map values), ``rule`` a stable code clients may switch on, ``direction``
    the check that found it, ``against_version`` the earlier version it breaks. ``old``/``new``
    are the JSON values involved: the ``type`` or ``enum`` of both versions, for constraints a
    ``{keyword: value}`` mapping of the keywords involved (``None`` when a side has none).
    """

    path: str
    rule: str
    direction: Direction
    against_version: str
    message: str
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True)
class Change:
    """One neutral difference between two versions, whether or not it breaks anything.

    ``added``/``removed`` carry the whole property schema in ``new``/``old``; ``changed`` carries
    only the keywords that differ, as ``{keyword: value}`` on each side (a keyword absent on one
    side is absent from that side's mapping, and ``required`` stands for membership in the parent's
    ``required`` list). The schemas are referenced, not copied: treat them as read-only.
    """

    path: str
    kind: ChangeKind
    old: Any
    new: Any
    message: str


# --------------------------------------------------------------------------------------------------
# check


def check(
    new: Schema,
    previous: Sequence[tuple[str, Schema]],
    mode: CompatibilityMode | str,
) -> list[BreakingChange]:
    """Everything that makes ``new`` incompatible with ``previous`` under ``mode``; empty if none.

    ``previous`` lists the registered ``(version, schema)`` pairs oldest first. Non-transitive
    modes compare with the last one only, transitive modes with each. The result is sorted by
    version (in the order given, which is the true version order, unlike a string sort of
    "1.10.0"), then path, rule and direction, so that the same registration always yields the
    same report.
    """
    mode = CompatibilityMode(mode)
    if mode is CompatibilityMode.NONE or not previous:
        return []
    first = 0 if mode.transitive else len(previous) - 1
    new_key = _primary_key(new)
    found: list[tuple[int, BreakingChange]] = []
    for index in range(first, len(previous)):
        version, old = previous[index]
        old_key = _primary_key(old)
        for direction in mode.directions:
            comparison = _Comparison(direction, str(version))
            if direction == "backward":
                comparison.run(new, old, new_key, old_key)
            else:
                comparison.run(old, new, old_key, new_key)
            found.extend((index, change) for change in comparison.found)
    found.sort(key=lambda item: (item[0], item[1].path, item[1].rule, item[1].direction, item[1].message))
    return [change for _, change in found]


# A finding is first classified in reader/writer terms ("the reader requires a field the writer
# lacks") and named only when emitted, after the direction: each kind has its backward and its
# forward rule. One comparison routine thus serves both directions and cannot drift between them.
_RULES: Final[Mapping[str, tuple[str, str]]] = {
    "missing": ("field-added-required", "field-removed"),
    "now-required": ("field-made-required", "field-made-optional"),
    "type-narrower": ("type-narrowed", "type-widened"),
    "type-other": ("type-changed", "type-changed"),
    "enum-narrower": ("enum-value-removed", "enum-value-added"),
    "enum-only-reader": ("enum-added", "enum-removed"),
    "constraint-tighter": ("constraint-tightened", "constraint-relaxed"),
    "constraint-other": ("constraint-changed", "constraint-changed"),
    "primary-key": ("primary-key-changed", "primary-key-changed"),
}

_ABSENT: Final = object()
_ALL_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})
_ANY_SCHEMA: Final[Schema] = {}


class _Comparison:
    """Checks that a reader schema can read everything a writer schema allows, in one direction."""

    __slots__ = ("_backward", "direction", "found", "version")

    def __init__(self, direction: Direction, version: str) -> None:
        self.direction: Direction = direction
        self.version = version
        self._backward = direction == "backward"
        self.found: list[BreakingChange] = []

    def run(
        self, reader: Schema, writer: Schema, reader_key: tuple[str, ...], writer_key: tuple[str, ...]
    ) -> None:
        """Compare the record schemas; their primary keys are given, computed once per version."""
        self._property(reader, writer, "")
        if reader_key != writer_key:
            self._emit("primary-key", "", list(reader_key) or None, list(writer_key) or None)

    def _property(self, reader: Schema, writer: Schema, path: str) -> None:
        # Most properties are untouched between two versions: a C-level dict comparison skips them,
        # which keeps a 200-field FULL_TRANSITIVE check in the low milliseconds. (Python's 1 == True
        # could hide an enum change from [0, 1] to [false, true]; the type changes too in any schema
        # of this dialect, so the dicts still differ.)
        if reader is writer or reader == writer:
            return
        reader_type, writer_type = reader.get("type"), writer.get("type")
        reader_types = _accepted_types(reader_type)
        if reader_type == writer_type:
            writer_types = reader_types
        else:
            writer_types = _accepted_types(writer_type)
            if not writer_types <= reader_types:
                kind = "type-narrower" if reader_types < writer_types else "type-other"
                self._emit(kind, path, reader_type, writer_type)
        self._enum(reader, writer, path)
        self._constraints(reader, writer, path)
        if "object" in reader_types and "object" in writer_types:
            self._object(reader, writer, path)
            # A map (ODCS logicalType map) types its values with an `additionalProperties` schema.
            # `false` on the writer means it produces no such values: nothing to read.
            reader_values = reader.get("additionalProperties")
            writer_values = writer.get("additionalProperties", True)
            if isinstance(reader_values, Mapping) and writer_values is not False:
                if not isinstance(writer_values, Mapping):
                    writer_values = _ANY_SCHEMA
                self._property(reader_values, writer_values, f"{path}/{ITEMS}")
        if "array" in reader_types and "array" in writer_types:
            reader_items = reader.get("items")
            if isinstance(reader_items, Mapping):
                writer_items = writer.get("items")
                if not isinstance(writer_items, Mapping):
                    writer_items = _ANY_SCHEMA
                self._property(reader_items, writer_items, f"{path}/{ITEMS}")

    def _object(self, reader: Schema, writer: Schema, path: str) -> None:
        reader_properties: Mapping[str, Schema] = reader.get("properties") or {}
        writer_properties: Mapping[str, Schema] = writer.get("properties") or {}
        reader_required = set(reader.get("required") or ())
        writer_required = set(writer.get("required") or ())
        # Only the reader's fields matter: a field only the writer has is ignored by the reader.
        for name, reader_property in reader_properties.items():
            writer_property = writer_properties.get(name)
            needed = name in reader_required and "default" not in reader_property
            if writer_property is None:
                if needed:
                    self._emit("missing", f"{path}/{_escape(name)}", reader_property, None)
                continue
            now_required = needed and name not in writer_required
            # Checked here rather than only in _property so that the child's path, which costs a
            # string escape and format, is built for the few fields that changed.
            if not now_required and (
                writer_property is reader_property or writer_property == reader_property
            ):
                continue
            child = f"{path}/{_escape(name)}"
            if now_required:
                self._emit("now-required", child, True, False)
            self._property(reader_property, writer_property, child)

    def _enum(self, reader: Schema, writer: Schema, path: str) -> None:
        reader_enum = reader.get("enum")
        if reader_enum is None:
            return
        writer_enum = writer.get("enum")
        if writer_enum == reader_enum:
            return
        if writer_enum is None:
            self._emit("enum-only-reader", path, reader_enum, None, values=list(reader_enum))
            return
        accepted = {_json_key(value) for value in reader_enum}
        unreadable = [value for value in writer_enum if _json_key(value) not in accepted]
        if unreadable:
            self._emit("enum-narrower", path, reader_enum, writer_enum, values=unreadable)

    def _constraints(self, reader: Schema, writer: Schema, path: str) -> None:
        # Only the reader's constraints can make it tighter; extra ones on the writer only narrow
        # what the writer produces. Most changed fields keep their constraints: skip them cheaply.
        present = _CONSTRAINT_KEYWORDS.intersection(reader)
        if all(writer.get(keyword, _ABSENT) == reader[keyword] for keyword in present):
            return
        # Bounds are compared as effective bounds, not keyword by keyword: replacing
        # `minimum: 0` with `exclusiveMinimum: -1` relaxes the bound although a keyword appears.
        for label, keywords, bound, is_tighter in _BOUNDS:
            reader_bound, writer_bound = bound(reader), bound(writer)
            if reader_bound is not None and (writer_bound is None or is_tighter(reader_bound, writer_bound)):
                self._emit(
                    "constraint-tighter",
                    path,
                    _pick(reader, keywords),
                    _pick(writer, keywords),
                    label=label,
                )
        self._multiple_of(reader, writer, path)
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            self._emit(
                "constraint-tighter",
                path,
                {"uniqueItems": True},
                _pick(writer, ("uniqueItems",)),
                label="uniqueItems",
            )
        for keyword, is_minimum in _LENGTHS:
            reader_limit = _number(reader.get(keyword))
            if reader_limit is None:
                continue
            writer_limit = _number(writer.get(keyword))
            if is_minimum:
                tighter = reader_limit > (writer_limit if writer_limit is not None else 0)
            else:
                tighter = writer_limit is None or reader_limit < writer_limit
            if tighter:
                self._emit(
                    "constraint-tighter",
                    path,
                    {keyword: reader[keyword]},
                    _pick(writer, (keyword,)),
                    label=keyword,
                )
        # A different pattern or format is neither tighter nor looser in general (two regular
        # expressions cannot be ordered cheaply), so it is its own rule and breaks both directions.
        for keyword in ("pattern", "format"):
            reader_value = reader.get(keyword)
            if reader_value is None:
                continue
            writer_value = writer.get(keyword)
            if writer_value is None:
                self._emit("constraint-tighter", path, {keyword: reader_value}, None, label=keyword)
            elif writer_value != reader_value:
                self._emit(
                    "constraint-other",
                    path,
                    {keyword: reader_value},
                    {keyword: writer_value},
                    label=keyword,
                )

    def _multiple_of(self, reader: Schema, writer: Schema, path: str) -> None:
        reader_step = _number(reader.get("multipleOf"))
        if reader_step is None or reader_step <= 0:
            return
        writer_step = _number(writer.get("multipleOf"))
        if writer_step is not None and writer_step > 0 and _divides(reader_step, writer_step):
            return  # every multiple of the writer's step is one of the reader's
        # Without a writer step, or with one the reader's is a multiple of, the reader is tighter;
        # with unrelated steps (2 and 3) the two simply differ.
        related = writer_step is None or writer_step <= 0 or _divides(writer_step, reader_step)
        self._emit(
            "constraint-tighter" if related else "constraint-other",
            path,
            {"multipleOf": reader["multipleOf"]},
            _pick(writer, ("multipleOf",)),
            label="multipleOf",
        )

    def _emit(
        self,
        kind: str,
        path: str,
        reader_value: Any,
        writer_value: Any,
        *,
        label: str = "",
        values: list[Any] | None = None,
    ) -> None:
        backward_rule, forward_rule = _RULES[kind]
        if self._backward:
            rule, old, new = backward_rule, writer_value, reader_value
        else:
            rule, old, new = forward_rule, reader_value, writer_value
        message = _breaking_message(
            rule, _display(path), old, new, self.version, label, values, self._backward
        )
        self.found.append(BreakingChange(path, rule, self.direction, self.version, message, old, new))


def _accepted_types(declared: str | Sequence[str] | None) -> frozenset[str]:
    """The JSON types a `type` accepts; a "number" accepts integers, a missing type accepts all."""
    if declared is None:
        return _ALL_TYPES
    return _type_set(declared if isinstance(declared, str) else tuple(declared))


# A dialect has a handful of distinct `type` values; memoizing their sets keeps the per-property
# cost of a check to a dict lookup.
@functools.lru_cache(maxsize=256)
def _type_set(declared: str | tuple[str, ...]) -> frozenset[str]:
    types = {declared} if isinstance(declared, str) else set(declared)
    if "number" in types:
        types.add("integer")
    return frozenset(types)


def _number(value: Any) -> int | float | None:
    # bool is an int in Python but never a valid bound in JSON Schema.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


# An effective bound is (value, strictness): for a lower bound an exclusive limit is higher than an
# inclusive one at the same value, for an upper bound lower. Tuples then order bounds correctly.
def _lower_bound(schema: Schema) -> tuple[float, int] | None:
    inclusive, exclusive = _number(schema.get("minimum")), _number(schema.get("exclusiveMinimum"))
    bounds = [(inclusive, 0)] if inclusive is not None else []
    if exclusive is not None:
        bounds.append((exclusive, 1))
    return max(bounds) if bounds else None


def _upper_bound(schema: Schema) -> tuple[float, int] | None:
    inclusive, exclusive = _number(schema.get("maximum")), _number(schema.get("exclusiveMaximum"))
    bounds = [(inclusive, 0)] if inclusive is not None else []
    if exclusive is not None:
        bounds.append((exclusive, -1))
    return min(bounds) if bounds else None


def _is_higher(reader: tuple[float, int], writer: tuple[float, int]) -> bool:
    return reader > writer


def _is_lower(reader: tuple[float, int], writer: tuple[float, int]) -> bool:
    return reader < writer


_BOUNDS: Final[
    tuple[
        tuple[
            str,
            tuple[str, str],
            Callable[[Schema], tuple[float, int] | None],
            Callable[[tuple[float, int], tuple[float, int]], bool],
        ],
        ...,
    ]
] = (
    ("lower bound", ("minimum", "exclusiveMinimum"), _lower_bound, _is_higher),
    ("upper bound", ("maximum", "exclusiveMaximum"), _upper_bound, _is_lower),
)
_LENGTHS: Final = (
    ("minLength", True),
    ("maxLength", False),
    ("minItems", True),
    ("maxItems", False),
    ("minProperties", True),
    ("maxProperties", False),
)
_CONSTRAINT_KEYWORDS: Final = frozenset(
    {
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "exclusiveMaximum",
        *(keyword for keyword, _ in _LENGTHS),
        "pattern",
        "format",
        "multipleOf",
        "uniqueItems",
    }
)


def _divides(step: float, value: float) -> bool:
    """Whether ``value`` is a whole multiple of ``step``, tolerating binary fractions (0.1, 0.01)."""
    quotient = value / step
    return abs(quotient - round(quotient)) < 1e-9


def _pick(schema: Schema, keywords: Iterable[str]) -> dict[str, Any] | None:
    picked = {keyword: schema[keyword] for keyword in keywords if keyword in schema}
    return picked or None


def _json_key(value: Any) -> Any:
    """A hashable key equal for equal JSON values (``true`` and ``1`` stay apart, ``1`` and ``1.0`` do not)."""
    if value is None or isinstance(value, str | bool):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", value)
    return ("json", json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _primary_key(schema: Schema) -> tuple[str, ...]:
    """The record's primary key as field names, in key order.

    Accepts the annotation on the record (a name or a list of names) or on each top-level
    property (``true``, or its 1-based position as an int or in ``x-citybase-primary-key-position``);
    without positions, properties are in declaration order, as ODCS orders them.
    """
    declared = schema.get(PRIMARY_KEY)
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list | tuple):
        return tuple(str(name) for name in declared)
    properties: Mapping[str, Schema] = schema.get("properties") or {}
    keyed: list[tuple[int, int, str]] = []
    for order, (name, prop) in enumerate(properties.items()):
        flag = prop.get(PRIMARY_KEY)
        if not flag:
            continue
        position = _number(prop.get(PRIMARY_KEY_POSITION))
        if position is None:
            position = _number(flag)  # None for `true`: bool is no position
        keyed.append((int(position) if position is not None else order, order, name))
    return tuple(name for _, _, name in sorted(keyed))


# --------------------------------------------------------------------------------------------------
# messages


def _escape(name: str) -> str:
    """A property name as a JSON Pointer segment (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    if "~" in name or "/" in name:
        return name.replace("~", "~0").replace("/", "~1")
    return name


def _display(path: str) -> str:
    """A JSON Pointer as a human names the field: ``/stops/*/stop_id`` -> ``stops[].stop_id``."""
    if not path:
        return "the record"
    parts: list[str] = []
    for segment in path[1:].split("/"):
        if segment == ITEMS and parts:
            parts[-1] += "[]"
        else:
            parts.append(segment.replace("~1", "/").replace("~0", "~"))
    return ".".join(parts)


def _text(value: Any) -> str:
    """A JSON value or a ``{keyword: value}`` mapping as a short phrase for a message."""
    if value is None:
        return "none"
    if isinstance(value, Mapping) and value:
        return " and ".join(f"{keyword} {_text(limit)}" for keyword, limit in value.items())
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _type_text(declared: Any) -> str:
    """A ``type`` as people write it: ``integer``, ``string | null``, ``any`` when absent."""
    if declared is None:
        return "any"
    if isinstance(declared, list):
        return " | ".join(str(member) for member in declared)
    return str(declared)


def _breaking_message(
    rule: str,
    name: str,
    old: Any,
    new: Any,
    version: str,
    label: str,
    values: list[Any] | None,
    backward: bool,
) -> str:
    # Readers of the message are publishers whose registration was refused: say what changed and
    # which side of the stream it breaks, naming the version it breaks against.
    new_readers = f"new readers may reject records written with version {version}"
    old_readers = f"readers of version {version} may reject records written with the new version"
    match rule:
        case "field-added-required":
            return f"field '{name}' was added as required without a default; records written with version {version} lack it"
        case "field-removed":
            return f"field '{name}' was removed but old readers require it (required without a default in version {version})"
        case "field-made-required":
            return f"field '{name}' was made required without a default; records written with version {version} may omit it"
        case "field-made-optional":
            return f"field '{name}' was made optional but old readers require it (required without a default in version {version})"
        case "type-narrowed":
            return f"type of '{name}' was narrowed from {_type_text(old)} to {_type_text(new)}; {new_readers}"
        case "type-widened":
            return f"type of '{name}' was widened from {_type_text(old)} to {_type_text(new)}; {old_readers}"
        case "type-changed":
            consequence = new_readers if backward else old_readers
            return f"type of '{name}' changed from {_type_text(old)} to {_type_text(new)}; {consequence}"
        case "enum-value-removed":
            return (
                f"enum of '{name}' lost {_text(values)}; records written with version {version} may hold them"
            )
        case "enum-value-added":
            return f"enum of '{name}' gained {_text(values)}; readers of version {version} reject them"
        case "enum-added":
            return f"'{name}' was restricted to the enum {_text(values)}; {new_readers}"
        case "enum-removed":
            return f"the enum {_text(values)} of '{name}' was removed; {old_readers}"
        case "constraint-tightened":
            return f"{label} of '{name}' was tightened from {_text(old)} to {_text(new)}; {new_readers}"
        case "constraint-relaxed":
            return f"{label} of '{name}' was relaxed from {_text(old)} to {_text(new)}; {old_readers}"
        case "constraint-changed":
            return f"{label} of '{name}' changed from {_text(old)} to {_text(new)}; readers of either version may reject the other's records"
        case "primary-key-changed":
            return (
                f"primary key changed from {_text(old)} to {_text(new)}; records would be keyed, "
                f"partitioned and compacted differently than under version {version}"
            )
    return f"'{name}': {rule}"  # pragma: no cover - every rule of _RULES is named above


# --------------------------------------------------------------------------------------------------
# diff


# Keywords whose value is a set in JSON Schema: a reordering is not a change worth showing.
_UNORDERED: Final = frozenset({"type", "enum"})
# Keywords diffed structurally (per nested field) rather than as values; the sub-schemas of array
# elements and map values are too when both versions have one.
_NESTED: Final = frozenset({"properties", "required"})
_SUBSCHEMAS: Final = ("items", "additionalProperties")


def diff(old: Schema, new: Schema) -> list[Change]:
    """Every difference between two versions of a record schema, compatible or not.

    One :class:`Change` per added, removed or changed field (nested fields and array items are
    their own entries), in declaration order, removed and changed fields first as the old version
    lists them, then added ones; differences on the record itself (``$schema``, annotations) come
    first with the path ``""``.
    """
    changes: list[Change] = []
    _diff_property(old, new, "", None, None, changes)
    return changes


def _diff_property(
    old: Schema,
    new: Schema,
    path: str,
    old_required: bool | None,
    new_required: bool | None,
    changes: list[Change],
) -> None:
    if old_required == new_required and (old is new or old == new):
        return
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    nested = [
        keyword
        for keyword in _SUBSCHEMAS
        if isinstance(old.get(keyword), Mapping) and isinstance(new.get(keyword), Mapping)
    ]
    for keyword in [*old, *(keyword for keyword in new if keyword not in old)]:
        if keyword in _NESTED or keyword in nested:
            continue
        old_value, new_value = old.get(keyword, _ABSENT), new.get(keyword, _ABSENT)
        if _same_value(keyword, old_value, new_value):
            continue
        if old_value is not _ABSENT:
            before[keyword] = old_value
        if new_value is not _ABSENT:
            after[keyword] = new_value
    if old_required != new_required:
        before["required"], after["required"] = old_required, new_required
    if before or after:
        changes.append(Change(path, "changed", before, after, _changed_message(path, before, after)))
    if "properties" in old or "properties" in new:
        _diff_properties(old, new, path, changes)
    for keyword in nested:
        _diff_property(old[keyword], new[keyword], f"{path}/{ITEMS}", None, None, changes)


def _diff_properties(old: Schema, new: Schema, path: str, changes: list[Change]) -> None:
    old_properties: Mapping[str, Schema] = old.get("properties") or {}
    new_properties: Mapping[str, Schema] = new.get("properties") or {}
    old_required = set(old.get("required") or ())
    new_required = set(new.get("required") or ())
    for name, old_property in old_properties.items():
        child = f"{path}/{_escape(name)}"
        new_property = new_properties.get(name)
        if new_property is None:
            message = (
                f"field '{_display(child)}' removed (was {_summary(old_property, name in old_required)})"
            )
            changes.append(Change(child, "removed", old_property, None, message))
        else:
            _diff_property(
                old_property, new_property, child, name in old_required, name in new_required, changes
            )
    for name, new_property in new_properties.items():
        if name not in old_properties:
            child = f"{path}/{_escape(name)}"
            message = f"field '{_display(child)}' added ({_summary(new_property, name in new_required)})"
            changes.append(Change(child, "added", None, new_property, message))


def _same_value(keyword: str, old: Any, new: Any) -> bool:
    if old is _ABSENT or new is _ABSENT:
        return old is new
    if keyword in _UNORDERED:
        return _as_set(old) == _as_set(new)
    return _json_key(old) == _json_key(new)


def _as_set(value: Any) -> set[Any]:
    # "string" and ["string"] declare the same type.
    return {_json_key(member) for member in (value if isinstance(value, list) else [value])}


def _summary(prop: Schema, required: bool) -> str:
    kind = "required" if required else "optional"
    declared = prop.get("type")
    return f"{kind}, type {_type_text(declared)}" if declared is not None else kind


def _changed_message(path: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    keywords = [*before, *(keyword for keyword in after if keyword not in before)]
    parts = []
    for keyword in keywords:
        if (
            keyword == "enum"
            and isinstance(before.get(keyword), list)
            and isinstance(after.get(keyword), list)
        ):
            # Enums run long; the values that came and went are what a reviewer looks for.
            parts.append(f"enum {_enum_delta(before[keyword], after[keyword])}")
            continue
        show = _type_text if keyword == "type" else _text
        old = show(before[keyword]) if keyword in before else "(absent)"
        new = show(after[keyword]) if keyword in after else "(absent)"
        parts.append(f"{keyword} {old} → {new}")
    subject = "record" if not path else f"field '{_display(path)}'"
    return f"{subject} changed: {'; '.join(parts)}"


def _enum_delta(old: list[Any], new: list[Any]) -> str:
    old_keys, new_keys = {_json_key(value) for value in old}, {_json_key(value) for value in new}
    added = [value for value in new if _json_key(value) not in old_keys]
    removed = [value for value in old if _json_key(value) not in new_keys]
    delta = [f"+{_text(added)}"] if added else []
    delta += [f"-{_text(removed)}"] if removed else []
    return " ".join(delta)


# --------------------------------------------------------------------------------------------------
# render

_SIGILS: Final[Mapping[str, str]] = {"added": "+", "removed": "-", "changed": "~"}


def render(changes: Iterable[Change | BreakingChange]) -> str:
    """A text report, one line per change, for the CLI and for refusal details.

    Neutral changes are marked ``+``/``-``/``~``; breaking ones ``✗`` with their rule, direction
    and the version they break against. An empty list renders as ``no changes``.
    """
    lines = []
    for change in changes:
        where = change.path or "(record)"
        if isinstance(change, BreakingChange):
            lines.append(
                f"✗ {where}  {change.rule} ({change.direction}, against {change.against_version}): "
                f"{change.message}"
            )
        else:
            lines.append(f"{_SIGILS[change.kind]} {where}  {change.message}")
    return "\n".join(lines) if lines else "no changes"
