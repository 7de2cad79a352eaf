"""Record validators compiled from a contract version's ``record_schema`` (JSON Schema 2020-12).

Each contract version is compiled once, with ``fastjsonschema`` (it generates Python code: about
ten times faster than an interpreting validator). fastjsonschema implements drafts 4 to 7; the
catalog's record schemas use only keywords those drafts share with 2020-12 (type, properties,
required, additionalProperties, enum, pattern, formats, bounds, lengths, items). A schema with a
2020-12-only keyword (``prefixItems``, ``unevaluatedProperties``, ``dependentRequired``, ...), or
one fastjsonschema refuses, is validated by ``jsonschema.Draft202012Validator`` instead, for that
version only; :attr:`RecordValidator.engine` says which one runs.

Both engines use the same format checks for ``date``, ``time``, ``date-time`` (RFC 3339, with a
time offset as 2020-12 demands) and ``uuid``, so a record is judged the same either way;
``jsonschema`` alone would skip date-time unless an optional package is installed.

Errors come out as :class:`Violation` (JSON Pointer, rule, message): a missing required field
points at the field that is missing, an unknown field at the field itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema import ValidationError as JsonSchemaError

MAX_MESSAGE_CHARS = 300

# Keywords of 2020-12 (and 2019-09) that fastjsonschema, a draft-7 implementation, would ignore.
_NEWER_KEYWORDS = frozenset(
    {
        "prefixItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$anchor",
    }
)
# Keywords whose value maps names to sub-schemas: the names are data, not keywords.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule inside one record."""

    path: str
    """JSON Pointer (RFC 6901) to the value; "" is the record itself."""
    rule: str
    message: str


# --- formats --------------------------------------------------------------------------------

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_date(value: str) -> bool:
    """RFC 3339 full-date: a real calendar day."""
    match = _DATE.match(value)
    if match is None:
        return False
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def is_time(value: str) -> bool:
    """RFC 3339 full-time: with seconds and a time offset (``Z`` or ``+08:00``)."""
    match = _TIME.match(value)
    if match is None:
        return False
    hour, minute, second = int(match[1]), int(match[2]), int(match[3])
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return False
    return match[4] is None or (int(match[4]) <= 23 and int(match[5]) <= 59)


def is_date_time(value: str) -> bool:
    """RFC 3339 date-time: ``2026-11-24T08:15:30Z``, ``2026-11-24T16:15:30.5+08:00``."""
    day, separator, time = value.partition("T") if "T" in value else value.partition("t")
    return bool(separator) and is_date(day) and is_time(time)


def is_uuid(value: str) -> bool:
    return _UUID.match(value) is not None


FORMATS = {"date": is_date, "time": is_time, "date-time": is_date_time, "uuid": is_uuid}


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    for name, check in FORMATS.items():
        checker.checks(name)(_strings_only(check))
    return checker


def _strings_only(check: Callable[[str], bool]) -> Callable[[object], bool]:
    # JSON Schema formats constrain strings only: a null or a number is the `type` rule's business.
    def checked(value: object) -> bool:
        return not isinstance(value, str) or check(value)

    return checked


# --- validators -----------------------------------------------------------------------------


def needs_full_validator(schema: Any) -> bool:
    """Whether ``schema`` uses a keyword fastjsonschema would silently ignore."""
    if isinstance(schema, list):
        return any(needs_full_validator(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    for key, value in schema.items():
        if key in _NEWER_KEYWORDS:
            return True
        if key == "items" and isinstance(value, list):  # tuple form: prefixItems in 2020-12
            return True
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            if any(needs_full_validator(sub) for sub in value.values()):
                return True
        elif isinstance(value, (dict, list)) and needs_full_validator(value):
            return True
    return False


class RecordValidator:
    """Validates records against one contract version's record schema."""

    engine: Literal["fastjsonschema", "jsonschema"]

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = dict(schema)
        self.fallback_reason: str | None = None
        self._fast: Any = None
        self._full: Draft202012Validator | None = None
        if needs_full_validator(self.schema):
            self.fallback_reason = "uses a JSON Schema 2020-12 keyword fastjsonschema does not implement"
        else:
            try:
                self._fast = fastjsonschema.compile(self.schema, formats=FORMATS)
            except fastjsonschema.JsonSchemaDefinitionException as error:
                self.fallback_reason = f"fastjsonschema cannot compile it: {error}"
        if self._fast is not None:
            self.engine = "fastjsonschema"
        else:
            self.engine = "jsonschema"
            self._full = Draft202012Validator(self.schema, format_checker=_format_checker())

    def violations(self, record: Any) -> list[Violation]:
        """Every violation found (fastjsonschema stops at the first failing keyword)."""
        if self._fast is not None:
            try:
                self._fast(record)
            except fastjsonschema.JsonSchemaValueException as error:
                return list(_from_fastjsonschema(error, record))
            return []
        assert self._full is not None
        found: dict[tuple[str, str], Violation] = {}
        errors = sorted(self._full.iter_errors(record), key=lambda e: [str(p) for p in e.absolute_path])
        for found_error in errors:
            for violation in _from_jsonschema(found_error):
                found.setdefault((violation.path, violation.rule), violation)
        return list(found.values())


def json_pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901: "" for the whole document, ``/a/0/b~1c`` below it."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _label(parts: Sequence[str | int]) -> str:
    """A reader's name for a place in the record: ``delay_s``, ``stops[2].name``, ``the record``."""
    if not parts:
        return "the record"
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _missing(instance: Any, required: Any) -> list[str]:
    if not isinstance(instance, dict) or not isinstance(required, list):
        return []
    return [name for name in required if name not in instance]


def _unknown(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    if not isinstance(instance, dict):
        return []
    known = schema.get("properties") or {}
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties") or {}]
    return [
        name
        for name in instance
        if name not in known and not any(pattern.search(name) for pattern in patterns)
    ]


def _rule_message(rule: str, parts: Sequence[str | int], definition: Any, value: Any) -> str | None:
    """Ingest's wording for the common rules; None to keep the engine's own."""
    label = _label(parts)
    if rule == "type":
        wanted = " or ".join(definition) if isinstance(definition, list) else str(definition)
        return f"{label} must be {wanted}, not {json_type(value)}"
    if rule == "enum":
        return f"{label} must be one of {json.dumps(definition, ensure_ascii=False)}"
    if rule == "const":
        return f"{label} must be {json.dumps(definition, ensure_ascii=False)}"
    if rule == "pattern":
        return f"{label} must match the pattern {definition}"
    if rule == "format":
        return f"{label} must be a valid {definition}" + (
            " (RFC 3339, with a time offset)" if definition in ("date-time", "time") else ""
        )
    if rule in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
        relation = {
            "maximum": "at most",
            "minimum": "at least",
            "exclusiveMaximum": "less than",
            "exclusiveMinimum": "greater than",
        }[rule]
        return f"{label} must be {relation} {definition}, not {value}"
    if rule in ("maxLength", "minLength"):
        relation = "at most" if rule == "maxLength" else "at least"
        length = len(value) if isinstance(value, str) else "?"
        return f"{label} must have {relation} {definition} characters, not {length}"
    return None


def _typed_parts(record: Any, names: Sequence[str]) -> list[str | int]:
    """fastjsonschema names array indexes as text: make them numbers where the record has arrays."""
    parts: list[str | int] = []
    node = record
    for name in names:
        if isinstance(node, list) and name.isdigit():
            parts.append(int(name))
            node = node[int(name)] if int(name) < len(node) else None
        else:
            parts.append(name)
            node = node.get(name) if isinstance(node, dict) else None
    return parts


def _from_fastjsonschema(error: fastjsonschema.JsonSchemaValueException, record: Any) -> Iterator[Violation]:
    parts = _typed_parts(record, [str(part) for part in (error.path or ["data"])[1:]])
    rule = error.rule or "invalid"
    if rule == "required":
        for name in _missing(error.value, error.rule_definition) or ["?"]:
            yield Violation(json_pointer([*parts, name]), rule, f"{_label([*parts, name])} is required")
        return
    if rule == "additionalProperties" and error.rule_definition is False:
        schema = error.definition if isinstance(error.definition, dict) else {}
        for name in _unknown(error.value, schema) or ["?"]:
            yield Violation(
                json_pointer([*parts, name]),
                rule,
                f"{_label([*parts, name])} is not a field of the contract",
            )
        return
    message = _rule_message(rule, parts, error.rule_definition, error.value)
    if message is None:
        name = error.name or "data"
        rest = error.message[len(name) :] if error.message.startswith(name) else " " + error.message
        message = _label(parts) + rest
    yield Violation(json_pointer(parts), rule, _short(message))


def _from_jsonschema(error: JsonSchemaError) -> Iterator[Violation]:
    parts: list[str | int] = list(error.absolute_path)
    rule = str(error.validator)
    if rule == "required":
        for name in _missing(error.instance, error.validator_value):
            yield Violation(json_pointer([*parts, name]), rule, f"{_label([*parts, name])} is required")
        return
    if rule == "additionalProperties" and error.validator_value is False:
        schema = error.schema if isinstance(error.schema, dict) else {}
        for name in _unknown(error.instance, schema):
            yield Violation(
                json_pointer([*parts, name]),
                rule,
                f"{_label([*parts, name])} is not a field of the contract",
            )
        return
    message = _rule_message(rule, parts, error.validator_value, error.instance)
    yield Violation(json_pointer(parts), rule, _short(message or f"{_label(parts)}: {error.message}"))


# --- shape checks before the schema ---------------------------------------------------------


def exceeds_depth(value: Any, limit: int) -> bool:
    """Whether objects and arrays nest deeper than ``limit`` (a flat record is depth 1).

    Iterative, so that a hostile record cannot exhaust the interpreter's stack.
    """
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def has_non_finite_number(value: Any) -> bool:
    """Whether an infinite or NaN float is anywhere in ``value`` (JSON has no such numbers)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def path_of_first(value: Any, unwanted: Callable[[Any], bool]) -> str:
    """JSON Pointer of the first value (or object key) in ``value`` that is ``unwanted``, "" for
    the whole record: where a record that cannot be published went wrong."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, location = stack.pop()
        if unwanted(node):
            return json_pointer(location) if location else ""
        if isinstance(node, dict):
            for name, item in reversed(list(node.items())):
                if unwanted(name):
                    return json_pointer((*location, name))
                stack.append((item, (*location, name)))
        elif isinstance(node, list):
            stack.extend((item, (*location, index)) for index, item in reversed(list(enumerate(node))))
    return ""


def is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def has_lone_surrogate(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def field_types(schema: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The JSON types each top-level field may take (what a CSV cell is converted to)."""
    types: dict[str, frozenset[str]] = {}
    for name, prop in (schema.get("properties") or {}).items():
        declared = prop.get("type") if isinstance(prop, dict) else None
        if isinstance(declared, str):
            types[name] = frozenset({declared})
        elif isinstance(declared, list):
            types[name] = frozenset(str(t) for t in declared)
        else:
            types[name] = frozenset()
        if isinstance(prop, dict) and None in (prop.get("enum") or ()):
            types[name] |= {"null"}
    return types
