"""Values for any field from its JSON Schema alone, and whether a value fits a field's schema
(checked with ``jsonschema``, the formats as the example contracts write them)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.protocols import Validator

from citybase.demo.flavours import FieldContext, just_now
from citybase.demo.patterns import PatternNotSupported, sample_pattern


def json_types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    if "enum" in schema:
        return sorted({json_type(v) for v in schema["enum"]})
    return ["string"]


def is_date_time(value: str) -> bool:
    """An RFC 3339 timestamp with its offset, as the example contracts write their times."""
    if "T" not in value.upper():
        return False
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return moment.tzinfo is not None


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


_FORMATS = FormatChecker(formats=())
for _name, _check in (("date-time", is_date_time), ("date", _is_date), ("uuid", _is_uuid)):
    _FORMATS.checks(_name)(lambda value, check=_check: not isinstance(value, str) or check(value))

# An integer is an int, as the generator writes it, never a float such as 3.0.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_FieldValidator = validators.extend(Draft202012Validator, type_checker=_TYPES)
_OWN_KEYWORDS = (
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
)
_JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Validator]] = {}
_MAX_VALIDATORS = 1024


def json_type(value: Any) -> str:
    """The JSON type of a decoded value (an ``int`` is an integer, a ``float`` a number)."""
    return next((name for name in _JSON_TYPES if _TYPES.is_type(value, name)), "object")


def _field_validator(schema: Mapping[str, Any]) -> Validator:
    """The validator of a field's own keywords, built once per schema object: nested objects and
    arrays are checked by type only, and a field without a type is a string."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    own = {keyword: schema[keyword] for keyword in _OWN_KEYWORDS if keyword in schema}
    own["type"] = json_types(schema)
    validator: Validator = _FieldValidator(own, format_checker=_FORMATS)
    if len(_VALIDATORS) >= _MAX_VALIDATORS:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def fits(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``value`` satisfies the field's own keywords (type, enum, bounds, length, pattern,
    format); nested objects and arrays are checked by type only."""
    return bool(_field_validator(schema).is_valid(value))


_WORDS = ("north", "east", "river", "garden", "lane", "plaza", "bridge", "harbour", "park", "market")


class SchemaValues:
    """Values for any field from its JSON Schema alone."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self, schema: Mapping[str, Any], ctx: FieldContext) -> Any:
        if "const" in schema:
            return schema["const"]
        enum = [v for v in schema.get("enum") or () if v is not None]
        if enum:
            return self.rng.choice(enum)
        types = [t for t in json_types(schema) if t != "null"] or ["null"]
        kind = types[0]
        if kind == "string":
            return self.string(schema, ctx)
        if kind in ("integer", "number"):
            return self.number(schema, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "object":
            return self.object(schema, ctx)
        if kind == "array":
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            low = int(schema.get("minItems", 0))
            high = max(low, min(int(schema.get("maxItems", low + 3)), low + 3))
            return [self.value(items or {}, ctx) for _ in range(self.rng.randint(low, high))]
        return None

    def object(self, schema: Mapping[str, Any], ctx: FieldContext) -> dict[str, Any]:
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            if name in required or self.rng.random() < 0.9:
                out[name] = self.value(sub if isinstance(sub, dict) else {}, ctx)
        return out

    def string(self, schema: Mapping[str, Any], ctx: FieldContext) -> str:
        rng = self.rng
        fmt = schema.get("format")
        if fmt == "date-time":
            return just_now(ctx)
        if fmt == "date":
            return ctx.now.date().isoformat()
        if fmt == "time":
            return ctx.now.timetz().isoformat(timespec="seconds")
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 24)))
        if "pattern" in schema:
            for _ in range(50):
                text = sample_pattern(schema["pattern"], rng)
                if low <= len(text) <= high:
                    return text
            raise PatternNotSupported(
                f"no value of {low} to {high} characters found for {schema['pattern']!r}"
            )
        if fmt == "email":
            return f"{rng.choice(_WORDS)}.{rng.randrange(1000)}@example.gov.cn"[:high]
        text = " ".join(rng.choice(_WORDS) for _ in range(3)).capitalize()
        if len(text) < low:
            text += "x" * (low - len(text))
        return text[: max(high, low)]

    def number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        low, high = numeric_bounds(schema)
        low = 0.0 if low is None else low
        high = low + 1000.0 if high is None else high
        if low > high:
            low = high - 1000.0
        if integer:
            return self.rng.randint(math.ceil(low), math.floor(high))
        value = round(self.rng.uniform(low, high), 4)
        return min(max(value, low), high)


def numeric_bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The inclusive range a number may take (an exclusive bound moved inwards a little)."""
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + 0.01)
    if "exclusiveMaximum" in schema:
        high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - 0.01)
    return low, high
