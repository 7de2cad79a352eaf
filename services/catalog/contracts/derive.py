"""Everything citybase derives from one ODCS contract: validator schema, key, masking, SLA, GX suite.

Each derivation is a pure function of a :class:`~services.catalog.contracts.parsed.ParsedContract`.
A dataset has one record shape, so the derivations that describe records work on *one* schema
object: the one named by ``schema_name``, by default the first of ``schema``. A contract with
several objects (a table and its lookup, say) is accepted; citybase streams the chosen one.

ODCS leaves some things to tools; citybase's conventions for them (also in ``contracts/README.md``):

- **Enumerations** of a property, by precedence: the ODCS v3.2 ``enum`` list (``[{value: ...}]``);
  the custom property ``citybase.enum`` (a list of values, for v3.0/v3.1 documents); an
  ``invalidValues`` quality rule with ``arguments.validValues`` that tolerates no invalid value
  (``mustBe: 0``). Library rules that tolerate no failure and can be judged on one record
  (``invalidValues``, ``nullValues``) are enforced per record by the record schema; tolerant ones
  (``mustBeLessThan: 5, unit: percent``) only by the quality suite, since a single record cannot
  be "5 % invalid".
- **Sensitive fields**: a property whose ``classification`` is one of
  :data:`SENSITIVE_CLASSIFICATIONS`, or that carries a ``citybase.masking`` custom property. Its
  value is a masking kind (``hash``, ``redact``, ``partial``, ``generalize``) or a mapping
  ``{kind: partial, keepPrefix: 3, keepSuffix: 4}`` / ``{kind: generalize, precision: 2}``.
  A sensitive property without a rule is redacted. Nested properties are named by dotted path,
  array items by ``[]`` (``contacts[].phone``).
- **Dataset policy** (contract-level custom properties): ``citybase.classification`` (``open``,
  ``conditional``, ``restricted``), ``citybase.department`` (the owning department's id) and
  ``citybase.compatibility`` (the default compatibility mode, as in Confluent Schema Registry).
- **Great Expectations rules**: ``type: custom`` with ``engine: greatExpectations`` (also
  ``great-expectations``, ``great_expectations``, ``gx``) and an ``implementation`` that is a
  mapping, or YAML text of one, with ``type`` (snake_case or the class name) and ``kwargs``
  (snake_case or camelCase, as the ODCS documentation writes them). ``sql`` and ``text`` rules and
  other engines are kept in the contract but not run: citybase checks streams, not databases.

:func:`convention_errors` checks all of this at parse time, so every derivation of an accepted
contract succeeds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from open_data_contract_standard.model import (
    CustomProperty,
    DataQuality,
    OpenDataContractStandard,
    SchemaObject,
    SchemaProperty,
)

from services.catalog.contracts.exceptions import ContractInvalid
from services.catalog.contracts.parsed import ParsedContract
from services.catalog.contracts.syntax import load_yaml
from services.common.problems import FieldError, NotFound, json_pointer

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

SENSITIVE_CLASSIFICATIONS = frozenset(
    {"sensitive", "confidential", "restricted", "personal", "pii", "secret"}
)
"""Property classifications (case-insensitive) that make a field sensitive, hence masked by default."""

MASKING_PROPERTY = "citybase.masking"
ENUM_PROPERTY = "citybase.enum"
EVENT_TIME_PROPERTY = "citybase.eventTime"
"""On a date-time property: the record's event time, by rank when several (1 first, the first
one with a value wins), e.g. ``updated_at`` (1) before ``created_at`` (2) on status changes."""
CLASSIFICATION_PROPERTY = "citybase.classification"
DEPARTMENT_PROPERTY = "citybase.department"
COMPATIBILITY_PROPERTY = "citybase.compatibility"

MaskingKind = Literal["hash", "redact", "partial", "generalize"]
DatasetClassification = Literal["open", "conditional", "restricted"]
CompatibilityModeName = Literal[
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
]
Dimension = Literal["completeness", "validity", "uniqueness", "conformity", "volume", "consistency"]

GX_ENGINES = frozenset({"greatexpectations", "great-expectations", "great_expectations", "gx"})

# Expectation types are snake_case identifiers; GX's class is the same words in CamelCase.
_EXPECTATION_TYPE = re.compile(r"^expect_[a-z0-9]+(?:_[a-z0-9]+)*$")
_CAPITAL = re.compile(r"(?<!^)(?=[A-Z])")

# What one record is, per ODCS logicalType: the JSON type and, for text-encoded times, the format.
_JSON_TYPES: dict[str, tuple[str, str | None]] = {
    "string": ("string", None),
    "date": ("string", "date"),
    "timestamp": ("string", "date-time"),
    "time": ("string", "time"),
    "integer": ("integer", None),
    "number": ("number", None),
    "boolean": ("boolean", None),
    "object": ("object", None),
    "map": ("object", None),
    "array": ("array", None),
    "vector": ("array", None),
}
# String formats both jsonschema and fastjsonschema know; others ("password", "byte") stay
# annotations (``x-citybase-format``) so that no validator rejects a schema for an unknown format.
_JSON_STRING_FORMATS = frozenset(
    {"email", "hostname", "ipv4", "ipv6", "uri", "uri-reference", "date", "date-time"}
)
_UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_NUMERIC_OPTIONS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_OPTIONS = ("minLength", "maxLength", "pattern")
_ARRAY_OPTIONS = ("minItems", "maxItems", "uniqueItems")
_OBJECT_OPTIONS = ("minProperties", "maxProperties")

_PROPERTY_METRICS = frozenset({"nullValues", "missingValues", "invalidValues", "duplicateValues"})
_SCHEMA_METRICS = frozenset({"rowCount", "duplicateValues"})


class SchemaObjectNotFound(NotFound):
    slug, title = "schema-object-not-found", "The contract has no such schema object"


# --- value objects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskingRule:
    """How feeds mask one sensitive field for a grant that does not see it in clear.

    ``partial`` keeps ``keep_prefix`` leading and ``keep_suffix`` trailing characters
    (``138****5678`` is 3 and 4); ``generalize`` coarsens a value, ``precision`` decimal places
    for numbers such as coordinates; ``hash`` replaces it by a keyed hash, so that records still
    join; ``redact`` drops it.
    """

    kind: MaskingKind
    keep_prefix: int | None = None
    keep_suffix: int | None = None
    precision: int | None = None

    @classmethod
    def from_value(cls, value: Any) -> MaskingRule:
        """Read a ``citybase.masking`` value; raise :class:`ValueError` saying what is expected."""
        if isinstance(value, str):
            value = {"kind": value}
        if not isinstance(value, dict):
            raise ValueError(
                "a masking rule is a kind (hash, redact, partial, generalize) or a mapping with 'kind'"
            )
        if value.get("kind") not in get_args(MaskingKind):
            raise ValueError(
                f"masking kind must be one of {', '.join(get_args(MaskingKind))}, not {value.get('kind')!r}"
            )
        kind: MaskingKind = value["kind"]
        allowed: set[str] = {"partial": {"keepPrefix", "keepSuffix"}, "generalize": {"precision"}}.get(
            kind, set()
        )
        unknown = set(value) - allowed - {"kind"}
        if unknown:
            raise ValueError(f"a {kind} masking rule takes no {', '.join(sorted(unknown))}")
        for name in allowed & set(value):
            if not isinstance(value[name], int) or isinstance(value[name], bool) or value[name] < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if kind == "partial":
            return cls(kind, keep_prefix=value.get("keepPrefix", 3), keep_suffix=value.get("keepSuffix", 4))
        if kind == "generalize":
            return cls(kind, precision=value.get("precision"))
        return cls(kind)


@dataclass(frozen=True)
class SlaTargets:
    """The contract's service levels in seconds, None when the contract does not set one."""

    frequency_s: float | None = None
    """How often new data is expected: timeliness alerts when nothing arrived for this long."""
    latency_s: float | None = None
    """Longest delay between an event happening and its record being available."""
    retention_s: float | None = None
    """How long records are kept (topic retention)."""


@dataclass(frozen=True)
class DatasetPolicy:
    """The citybase policy a contract declares for its dataset (None for what it leaves out)."""

    classification: DatasetClassification | None = None
    department: str | None = None
    compatibility: CompatibilityModeName | None = None


# --- schema object and properties ------------------------------------------------------------


def schema_object(contract: ParsedContract, schema_name: str | None = None) -> SchemaObject:
    """The schema object records follow: the one called ``schema_name``, by default the first."""
    objects = contract.model.schema_ or []
    if schema_name is None and objects:
        return objects[0]
    for obj in objects:
        if obj.name == schema_name:
            return obj
    raise SchemaObjectNotFound(
        f"contract {contract.id} {contract.version} has no schema object {schema_name!r}"
    )


def _custom(properties: Sequence[CustomProperty] | None, name: str) -> tuple[int, Any] | None:
    for index, custom in enumerate(properties or ()):
        if custom.property == name:
            return index, custom.value
    return None


def _library_rules(prop: SchemaProperty | SchemaObject) -> Iterator[tuple[int, DataQuality, str]]:
    for index, rule in enumerate(prop.quality or ()):
        metric = rule.metric or rule.rule
        if metric and (rule.type or "library") == "library":
            yield index, rule, metric


def _tolerates_none(rule: DataQuality) -> bool:
    """Whether a "count of bad values" rule allows no bad value at all (so one record can fail it)."""
    if rule.mustBe == 0 or rule.mustBeLessOrEqualTo == 0:
        return True
    return rule.mustBeLessThan is not None and rule.mustBeLessThan <= 1 and (rule.unit or "rows") == "rows"


def _is_required(prop: SchemaProperty) -> bool:
    if prop.required or prop.primaryKey:
        return True
    return any(metric == "nullValues" and _tolerates_none(rule) for _, rule, metric in _library_rules(prop))


def _enum_values(prop: SchemaProperty) -> list[Any] | None:
    if prop.enum:
        return [entry.value for entry in prop.enum]
    declared = _custom(prop.customProperties, ENUM_PROPERTY)
    if declared is not None:
        return list(declared[1])
    for _, rule, metric in _library_rules(prop):
        valid = (rule.arguments or {}).get("validValues")
        if metric == "invalidValues" and valid and _tolerates_none(rule):
            return list(valid)
    return None


def _strict_pattern(prop: SchemaProperty) -> str | None:
    pattern = (prop.logicalTypeOptions or {}).get("pattern")
    if pattern is not None:
        return str(pattern)
    for _, rule, metric in _library_rules(prop):
        candidate = (rule.arguments or {}).get("pattern")
        if metric == "invalidValues" and candidate and _tolerates_none(rule):
            return str(candidate)
    return None


def masking_rule(prop: SchemaProperty) -> MaskingRule | None:
    """The masking rule of one property: its ``citybase.masking``, else redact when sensitive."""
    declared = _custom(prop.customProperties, MASKING_PROPERTY)
    if declared is not None:
        return MaskingRule.from_value(declared[1])
    if (prop.classification or "").strip().lower() in SENSITIVE_CLASSIFICATIONS:
        return MaskingRule("redact")
    return None


# --- record schema ---------------------------------------------------------------------------


def record_schema(contract: ParsedContract, schema_name: str | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for one record of the dataset; ingest compiles it to validate.

    The dialect is fixed, because the compatibility engine and ingest read it: a closed object
    (``additionalProperties: false``) whose ``properties`` map each field to a schema with
    ``type`` (a ``[type, "null"]`` pair for a field that may be null), constraints from
    ``logicalTypeOptions``, ``enum``, ``description``, and ``x-citybase-*`` annotations.
    ``required`` lists required and primary-key fields. Bounds of dates and times are not
    expressed: JSON Schema cannot order date strings (the quality suite does not check them either).
    """
    obj = schema_object(contract, schema_name)
    first = (contract.model.schema_ or [obj])[0]
    urn = f"urn:citybase:dataset:{contract.id}:{contract.version}"
    if obj is not first:
        urn += f":{obj.name}"
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": urn,
        "title": contract.model.name or contract.id,
    }
    if obj.description:
        schema["description"] = obj.description
    schema.update(_object_body(obj.properties or [], top_level=True))
    return schema


def _object_body(properties: Sequence[SchemaProperty], *, top_level: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for prop in properties:
        name = prop.name or ""
        body["properties"][name] = _property_schema(prop, top_level=top_level)
        if _is_required(prop):
            body["required"].append(name)
    body["additionalProperties"] = False
    return body


def _property_schema(prop: SchemaProperty, *, top_level: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    options = prop.logicalTypeOptions or {}
    logical = prop.logicalType
    json_type, json_format = _JSON_TYPES.get(logical or "", (None, None))
    if json_type is not None:
        schema["type"] = json_type
    if json_format is not None:
        # ODCS's own ``format`` for dates is a JDK pattern (yyyy-MM-dd) describing storage; on
        # the wire citybase records carry RFC 3339 text, which is what the JSON format checks.
        schema["format"] = json_format

    if logical == "string":
        schema.update({key: options[key] for key in _STRING_OPTIONS if key in options})
        pattern = _strict_pattern(prop)
        if pattern is not None:
            schema["pattern"] = pattern
        string_format = options.get("format")
        if string_format in _JSON_STRING_FORMATS:
            schema["format"] = string_format
        elif string_format == "uuid":
            # fastjsonschema does not know the uuid format; a pattern means the same everywhere.
            schema["format"] = "uuid"
            schema.setdefault("pattern", _UUID_PATTERN)
        elif string_format is not None:
            schema["x-citybase-format"] = string_format
    elif logical in ("integer", "number"):
        schema.update({key: options[key] for key in _NUMERIC_OPTIONS if key in options})
    elif logical == "object":
        schema.update({key: options[key] for key in _OBJECT_OPTIONS if key in options})
        if prop.properties:
            body = _object_body(prop.properties)
            body["required"] += [name for name in options.get("required", ()) if name not in body["required"]]
            schema.update({key: value for key, value in body.items() if key != "type"})
    elif logical == "array":
        schema.update({key: options[key] for key in _ARRAY_OPTIONS if key in options})
        if prop.items is not None:
            schema["items"] = _property_schema(prop.items)
    elif logical == "map":
        if prop.map is not None and prop.map.value is not None:
            schema["additionalProperties"] = _property_schema(prop.map.value)
    elif logical == "vector":
        dimensions = options.get("dimensions")
        schema["items"] = {"type": "number"}
        if dimensions is not None:
            schema["minItems"] = schema["maxItems"] = dimensions

    enum = _enum_values(prop)
    if enum is not None:
        schema["enum"] = list(enum)
    if not _is_required(prop):
        # ODCS ``required: false`` means "may be null"; a JSON record says so with null or by
        # leaving the field out, and both must pass.
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"].append(None)

    if prop.description:
        schema["description"] = prop.description
    if prop.businessName:
        schema["title"] = prop.businessName
    if prop.examples:
        schema["examples"] = list(prop.examples)
    if prop.deprecated:
        schema["deprecated"] = True
    if top_level and prop.primaryKey:
        schema["x-citybase-primary-key"] = True
    if prop.classification:
        schema["x-citybase-classification"] = prop.classification
    rule = masking_rule(prop)
    if rule is not None:
        schema["x-citybase-masking"] = rule.kind
    event_time = _custom(prop.customProperties, EVENT_TIME_PROPERTY)
    if top_level and event_time is not None and _event_time_rank(event_time[1]) is not None:
        schema["x-citybase-event-time"] = _event_time_rank(event_time[1])
    return schema


def _event_time_rank(value: Any) -> int | None:
    """``true`` is rank 1; a positive integer is its own rank; anything else is not a rank."""
    if value is True:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


# --- key, masking, SLA, policy -----------------------------------------------------------------


def primary_key(contract: ParsedContract, schema_name: str | None = None) -> list[str]:
    """Primary-key fields in ``primaryKeyPosition`` order (unpositioned ones last, as declared)."""
    keyed = [prop for prop in schema_object(contract, schema_name).properties or () if prop.primaryKey]
    positioned = sorted(
        (prop for prop in keyed if (prop.primaryKeyPosition or -1) > 0),
        key=lambda prop: prop.primaryKeyPosition or 0,
    )
    return [
        prop.name or "" for prop in [*positioned, *(p for p in keyed if (p.primaryKeyPosition or -1) <= 0)]
    ]


def sensitive_fields(contract: ParsedContract, schema_name: str | None = None) -> dict[str, MaskingRule]:
    """Sensitive fields by path (``a``, ``a.b``, ``a[].b``) with the masking rule feeds apply."""
    found: dict[str, MaskingRule] = {}

    def walk(properties: Sequence[SchemaProperty], prefix: str) -> None:
        for prop in properties:
            path = prefix + (prop.name or "")
            rule = masking_rule(prop)
            if rule is not None:
                found[path] = rule
            if prop.properties:
                walk(prop.properties, path + ".")
            if prop.items is not None and prop.items.properties:
                walk(prop.items.properties, path + "[].")

    walk(schema_object(contract, schema_name).properties or [], "")
    return found


_SLA_NAMES = {
    "frequency": "frequency",
    "fy": "frequency",
    "latency": "latency",
    "ly": "latency",
    "freshness": "latency",
    "retention": "retention",
    "re": "retention",
}
_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604800.0),
    # Calendar units have no fixed length; SLAs need a number, so a month is 30 days, a year 365.
    **dict.fromkeys(("mo", "month", "months"), 30 * 86400.0),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * 86400.0),
}
_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_s(value: Any, unit: str | None) -> float:
    """Seconds in an SLA value: a number with a unit (``4``, ``d``) or an ISO 8601 duration.

    Raises :class:`ValueError` for anything else, including a number without a unit: guessing
    between seconds and days is how an SLA ends up 86 400 times too strict.
    """
    if isinstance(value, str) and value.strip().upper().startswith("P"):
        if unit:
            raise ValueError("give an ISO 8601 duration without a unit, or a number with a unit")
        match = _ISO_DURATION.match(value.strip().upper())
        if match is None:
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT15M or P30D")
        seconds = sum(
            float(match[part] or 0) * _UNIT_SECONDS[part] for part in ("y", "mo", "w", "d", "h", "m", "s")
        )
    else:
        if isinstance(value, bool) or value is None:
            raise ValueError("a duration is a number with a unit or an ISO 8601 duration")
        try:
            amount = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number or an ISO 8601 duration") from None
        if unit is None:
            raise ValueError("a unit is required (ms, s, m, h, d, w, mo, y or their names)")
        factor = _UNIT_SECONDS.get(unit.strip().lower())
        if factor is None:
            raise ValueError(f"unknown unit {unit!r}; use ms, s, m, h, d, w, mo, y or their names")
        seconds = amount * factor
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def sla_targets(contract: ParsedContract) -> SlaTargets:
    """Frequency, latency and retention from ``slaProperties`` (names case-insensitive, ODCS
    synonyms ``fy``, ``ly``, ``re`` and the older ``freshness`` accepted); the first entry of each
    counts, as an ``element``-specific SLA cannot apply to a whole stream anyway."""
    targets: dict[str, float] = {}
    for sla in contract.model.slaProperties or ():
        name = _SLA_NAMES.get((sla.property or "").strip().lower())
        if name is not None and name not in targets:
            targets[name] = duration_s(sla.value, sla.unit)
    return SlaTargets(
        frequency_s=targets.get("frequency"),
        latency_s=targets.get("latency"),
        retention_s=targets.get("retention"),
    )


def dataset_policy(contract: ParsedContract) -> DatasetPolicy:
    """Classification, owning department and default compatibility mode the contract declares."""
    values = {custom.property: custom.value for custom in contract.model.customProperties or ()}
    return DatasetPolicy(
        classification=values.get(CLASSIFICATION_PROPERTY),
        department=values.get(DEPARTMENT_PROPERTY),
        compatibility=values.get(COMPATIBILITY_PROPERTY),
    )


# --- Great Expectations suite ------------------------------------------------------------------


def expectation_class_name(expectation_type: str) -> str:
    """GX 1.x class of an expectation type: ``expect_column_to_exist`` -> ``ExpectColumnToExist``."""
    return "".join(word.capitalize() for word in expectation_type.split("_"))


def _snake_type(name: str) -> str:
    """``ExpectColumnPairValuesAToBeGreaterThanB`` -> ``expect_column_pair_values_a_to_be_greater_than_b``."""
    return name if "_" in name else _CAPITAL.sub("_", name).lower()


def _snake_kwarg(name: str) -> str:
    """``minValue`` -> ``min_value``, ``columnA`` -> ``column_A`` (GX keeps one-letter words upper case)."""
    if "_" in name or name.islower():
        return name
    return "_".join(word if len(word) == 1 else word.lower() for word in _CAPITAL.split(name))


@dataclass(frozen=True)
class _Tolerance:
    """How many failing rows a rule allows: ``mostly`` for percentages, a count otherwise."""

    mostly: float | None = None
    max_unexpected_count: int | None = None

    def apply(self, expectation: dict[str, Any]) -> dict[str, Any]:
        if self.mostly is not None:
            expectation["kwargs"]["mostly"] = self.mostly
        if self.max_unexpected_count is not None:
            # GX has no count threshold; the quality service compares the result's
            # unexpected_count with this when it scores the window.
            expectation["meta"]["max_unexpected_count"] = self.max_unexpected_count
        return expectation


def _tolerance(rule: DataQuality) -> _Tolerance:
    """Read the threshold of a "count of bad values" rule; raise ValueError when it has none.

    Only upper bounds make sense for such a count: ``mustBe: 0``, ``mustBeLessThan``,
    ``mustBeLessOrEqualTo`` and ``mustBeBetween: [0, n]``.
    """
    bound: float
    strict = False
    if rule.mustBe is not None:
        if rule.mustBe != 0 or isinstance(rule.mustBe, bool):
            raise ValueError("mustBe on a count of bad values can only be 0")
        bound = 0
    elif rule.mustBeLessThan is not None:
        bound, strict = rule.mustBeLessThan, True
    elif rule.mustBeLessOrEqualTo is not None:
        bound = rule.mustBeLessOrEqualTo
    elif rule.mustBeBetween is not None and rule.mustBeBetween[0] == 0:
        bound = rule.mustBeBetween[1]
    else:
        raise ValueError(
            "a count of bad values takes an upper bound: mustBe: 0, mustBeLessThan, "
            "mustBeLessOrEqualTo or mustBeBetween: [0, n]"
        )
    if bound < 0:
        raise ValueError("the bound must not be negative")
    unit = (rule.unit or "rows").lower()
    if unit == "percent":
        if bound > 100:
            raise ValueError("a percentage is at most 100")
        # GX's mostly is the passing fraction; "< p %" and "<= p %" both become mostly 1 - p/100.
        return _Tolerance(mostly=round(1 - bound / 100, 6) if bound else None)
    if unit != "rows":
        raise ValueError(f"unit must be rows or percent, not {rule.unit!r}")
    allowed = math.ceil(bound) - 1 if strict else math.floor(bound)
    return _Tolerance(max_unexpected_count=allowed if allowed > 0 else None)


def _row_count(rule: DataQuality) -> tuple[str, dict[str, Any]]:
    """The GX expectation of a ``rowCount`` rule; raise ValueError for operators GX cannot say."""
    if rule.mustBe is not None:
        return "expect_table_row_count_to_equal", {"value": rule.mustBe}
    bounds: dict[str, Any] = {}
    if rule.mustBeGreaterThan is not None:
        bounds["min_value"] = math.floor(rule.mustBeGreaterThan) + 1
    elif rule.mustBeGreaterOrEqualTo is not None:
        bounds["min_value"] = math.ceil(rule.mustBeGreaterOrEqualTo)
    elif rule.mustBeLessThan is not None:
        bounds["max_value"] = math.ceil(rule.mustBeLessThan) - 1
    elif rule.mustBeLessOrEqualTo is not None:
        bounds["max_value"] = math.floor(rule.mustBeLessOrEqualTo)
    elif rule.mustBeBetween is not None:
        bounds["min_value"], bounds["max_value"] = rule.mustBeBetween
    else:
        raise ValueError(
            "rowCount takes mustBe, mustBeGreaterThan, mustBeGreaterOrEqualTo, "
            "mustBeLessThan, mustBeLessOrEqualTo or mustBeBetween"
        )
    return "expect_table_row_count_to_be_between", bounds


def _gx_custom(rule: DataQuality) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(type, kwargs, meta) of a Great Expectations custom rule; None for other rules."""
    if rule.type != "custom" or (rule.engine or "").strip().lower() not in GX_ENGINES:
        return None
    implementation: Any = rule.implementation
    if isinstance(implementation, str):
        try:
            implementation = load_yaml(implementation)
        except ContractInvalid as error:
            reason = error.errors[0].message if error.errors else "not YAML"
            raise ValueError(f"the implementation is not a YAML mapping: {reason}") from None
    if not isinstance(implementation, dict):
        raise ValueError("the implementation is a mapping with 'type' and 'kwargs'")
    raw_type = implementation.get("type", implementation.get("expectation_type"))
    expectation_type = _snake_type(raw_type) if isinstance(raw_type, str) else ""
    if not _EXPECTATION_TYPE.match(expectation_type):
        raise ValueError(
            f"type must name a GX expectation such as expect_column_values_to_be_unique, not {raw_type!r}"
        )
    kwargs = implementation.get("kwargs") or {}
    meta = implementation.get("meta") or {}
    if not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise ValueError("kwargs and meta are mappings")
    return expectation_type, {_snake_kwarg(str(key)): value for key, value in kwargs.items()}, dict(meta)


_ODCS_TO_DIMENSION: dict[str, Dimension] = {
    "completeness": "completeness",
    "coverage": "completeness",
    "uniqueness": "uniqueness",
    "conformity": "conformity",
    "accuracy": "validity",
    "consistency": "consistency",
}


def expectation_suite(contract: ParsedContract, schema_name: str | None = None) -> list[dict[str, Any]]:
    """The Great Expectations 1.x suite of the dataset as plain dicts (the catalog does not import GX).

    Each item is ``{"type": snake_case expectation, "kwargs": {...}, "meta": {"rule", "dimension",
    "source": "schema" | "quality", "path": JSON Pointer of its origin in the contract, ...}}``;
    ``gx.expectations.<expectation_class_name(type)>(**kwargs)`` builds it. A rule with a count
    threshold (``mustBeLessThan: 10, unit: rows``) carries ``meta.max_unexpected_count`` for the
    quality service to compare. Columns are the top-level properties: nested fields are validated
    by the record schema, not by the suite. An expectation derived twice (``required: true`` and a
    ``nullValues: 0`` rule) appears once, in the place of the first, with the quality rule's meta.
    """
    obj = schema_object(contract, schema_name)
    index = (contract.model.schema_ or [obj]).index(obj)
    base: list[str | int] = ["schema", index]
    suite: list[dict[str, Any]] = []
    seen: dict[str, int] = {}

    def add(
        expectation_type: str,
        kwargs: dict[str, Any],
        *,
        rule: str,
        dimension: Dimension,
        source: Literal["schema", "quality"],
        location: list[str | int],
        tolerance: _Tolerance | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        expectation: dict[str, Any] = {
            "type": expectation_type,
            "kwargs": kwargs,
            "meta": {"rule": rule, "dimension": dimension, "source": source, "path": json_pointer(location)},
        }
        if extra:
            expectation["meta"].update(extra)
        if tolerance is not None:
            tolerance.apply(expectation)
        identity = json.dumps([expectation_type, expectation["kwargs"]], sort_keys=True, default=str)
        if identity not in seen:
            seen[identity] = len(suite)
            suite.append(expectation)
        elif source == "quality" and suite[seen[identity]]["meta"]["source"] == "schema":
            # The author wrote this rule explicitly; its name and place say more than "required".
            suite[seen[identity]] = expectation

    properties = obj.properties or []
    key = primary_key(contract, schema_name)
    for position, prop in enumerate(properties):
        column, where = prop.name or "", [*base, "properties", position]
        sole_key = key == [column]
        for expectation_type, kwargs, rule, dimension in _schema_expectations(prop, sole_key=sole_key):
            add(
                expectation_type,
                {"column": column, **kwargs},
                rule=rule,
                dimension=dimension,
                source="schema",
                location=where,
            )
    if len(key) > 1:
        add(
            "expect_compound_columns_to_be_unique",
            {"column_list": key},
            rule="primaryKey",
            dimension="uniqueness",
            source="schema",
            location=[*base, "properties"],
        )

    def quality_of(
        element: SchemaProperty | SchemaObject, location: list[str | int], column: str | None
    ) -> None:
        for position, rule in enumerate(element.quality or ()):
            where = [*location, "quality", position]
            name = rule.id or rule.name
            extra = {"description": rule.description} if rule.description else None
            custom = _gx_custom(rule)
            if custom is not None:
                expectation_type, kwargs, meta = custom
                if (
                    column is not None
                    and expectation_type.startswith("expect_column_")
                    and "column" not in kwargs
                ):
                    kwargs = {"column": column, **kwargs}
                add(
                    expectation_type,
                    kwargs,
                    rule=name or expectation_type,
                    dimension=_ODCS_TO_DIMENSION.get(rule.dimension or "", "consistency"),
                    source="quality",
                    location=where,
                    extra={**meta, **(extra or {})},
                )
                continue
            metric = rule.metric or rule.rule
            if (rule.type or "library") != "library" or not metric:
                continue
            for expectation_type, kwargs, dimension, tolerance in _library_expectations(
                rule, metric, column, properties
            ):
                add(
                    expectation_type,
                    kwargs,
                    rule=name or metric,
                    dimension=dimension,
                    source="quality",
                    location=where,
                    tolerance=tolerance,
                    extra=extra,
                )

    for position, prop in enumerate(properties):
        quality_of(prop, [*base, "properties", position], prop.name or "")
    quality_of(obj, base, None)
    return suite


def _schema_expectations(
    prop: SchemaProperty, *, sole_key: bool
) -> Iterator[tuple[str, dict[str, Any], str, Dimension]]:
    """Expectations implied by one property's declaration (``sole_key``: the whole primary key)."""
    options = prop.logicalTypeOptions or {}
    yield "expect_column_to_exist", {}, "exists", "conformity"
    if _is_required(prop):
        yield "expect_column_values_to_not_be_null", {}, "required", "completeness"
    enum = _enum_values(prop)
    if enum is not None:
        yield "expect_column_values_to_be_in_set", {"value_set": list(enum)}, "enum", "validity"
    if prop.logicalType in ("integer", "number"):
        bounds: dict[str, Any] = {}
        for inclusive, exclusive, side in (
            ("minimum", "exclusiveMinimum", "min"),
            ("maximum", "exclusiveMaximum", "max"),
        ):
            if inclusive in options:
                bounds[f"{side}_value"] = options[inclusive]
            elif exclusive in options:
                bounds[f"{side}_value"] = options[exclusive]
                bounds[f"strict_{side}"] = True
        if bounds:
            yield "expect_column_values_to_be_between", bounds, "range", "validity"
    if prop.logicalType == "string":
        pattern = _strict_pattern(prop)
        if pattern is not None:
            yield "expect_column_values_to_match_regex", {"regex": pattern}, "pattern", "validity"
        lengths = {
            f"{side}_value": options[key]
            for key, side in (("minLength", "min"), ("maxLength", "max"))
            if key in options
        }
        if lengths:
            yield "expect_column_value_lengths_to_be_between", lengths, "length", "validity"
    if prop.unique or sole_key:
        yield (
            "expect_column_values_to_be_unique",
            {},
            "primaryKey" if prop.primaryKey else "unique",
            "uniqueness",
        )


def _library_expectations(
    rule: DataQuality, metric: str, column: str | None, properties: Sequence[SchemaProperty]
) -> Iterator[tuple[str, dict[str, Any], Dimension, _Tolerance | None]]:
    arguments = rule.arguments or {}
    if metric == "rowCount":
        expectation_type, kwargs = _row_count(rule)
        yield expectation_type, kwargs, "volume", None
        return
    tolerance = _tolerance(rule)
    if column is None:  # schema-level duplicateValues: a compound key, or whole rows
        names = list(arguments.get("properties") or [prop.name for prop in properties])
        if len(names) == 1:
            yield "expect_column_values_to_be_unique", {"column": names[0]}, "uniqueness", tolerance
        else:
            yield "expect_compound_columns_to_be_unique", {"column_list": names}, "uniqueness", tolerance
        return
    if metric == "nullValues":
        yield "expect_column_values_to_not_be_null", {"column": column}, "completeness", tolerance
    elif metric == "missingValues":
        missing = list(arguments.get("missingValues") or [])
        present = [value for value in missing if value is not None]
        if present:
            yield (
                "expect_column_values_to_not_be_in_set",
                {"column": column, "value_set": present},
                "completeness",
                tolerance,
            )
        if None in missing:
            yield "expect_column_values_to_not_be_null", {"column": column}, "completeness", tolerance
    elif metric == "invalidValues":
        if arguments.get("validValues"):
            yield (
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": list(arguments["validValues"])},
                "validity",
                tolerance,
            )
        if arguments.get("pattern"):
            yield (
                "expect_column_values_to_match_regex",
                {"column": column, "regex": str(arguments["pattern"])},
                "validity",
                tolerance,
            )
    elif metric == "duplicateValues":
        yield "expect_column_values_to_be_unique", {"column": column}, "uniqueness", tolerance


# --- conventions, checked at parse time --------------------------------------------------------


def convention_errors(model: OpenDataContractStandard) -> list[FieldError]:
    """Everything an ODCS-valid contract must also satisfy for citybase to derive from it.

    :func:`~services.catalog.contracts.odcs.parse_contract` calls this, so that a contract that
    would make a derivation fail is refused at registration with a pointer to the culprit, rather
    than breaking ingest or quality later. See the module docstring for the conventions.
    """
    errors: list[FieldError] = []

    def error(location: list[str | int], rule: str, message: str) -> None:
        errors.append(FieldError(path=json_pointer(location), rule=rule, message=message))

    objects = model.schema_ or []
    if not objects:
        error(["schema"], "required", "citybase needs a schema object describing the dataset's records")
    for index, obj in enumerate(objects):
        where: list[str | int] = ["schema", index]
        properties = obj.properties or []
        for position, prop in enumerate(properties):
            _check_property(prop, [*where, "properties", position], error)
        key_positions: dict[int, int] = {}
        for position, prop in enumerate(properties):
            key_position = prop.primaryKeyPosition or -1
            if prop.primaryKey and key_position > 0:
                if key_position in key_positions:
                    error(
                        [*where, "properties", position, "primaryKeyPosition"],
                        "primary-key-position",
                        f"position {key_position} is already taken by "
                        f"{properties[key_positions[key_position]].name!r}",
                    )
                key_positions.setdefault(key_position, position)
        names = {prop.name for prop in properties}
        for position, rule in enumerate(obj.quality or ()):
            _check_rule(rule, [*where, "quality", position], error, column_names=names)
    for position, sla in enumerate(model.slaProperties or ()):
        if _SLA_NAMES.get((sla.property or "").strip().lower()) is not None:
            try:
                duration_s(sla.value, sla.unit)
            except ValueError as problem:
                error(["slaProperties", position, "value"], "duration", str(problem))
    allowed: dict[str, tuple[str, ...]] = {
        CLASSIFICATION_PROPERTY: get_args(DatasetClassification),
        COMPATIBILITY_PROPERTY: get_args(CompatibilityModeName),
    }
    for position, custom in enumerate(model.customProperties or ()):
        values = allowed.get(custom.property or "")
        if values is not None and custom.value not in values:
            error(
                ["customProperties", position, "value"],
                "citybase-policy",
                f"{custom.property} must be one of {', '.join(values)}, not {custom.value!r}",
            )
        if custom.property == DEPARTMENT_PROPERTY and not (
            isinstance(custom.value, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", custom.value)
        ):
            error(
                ["customProperties", position, "value"],
                "citybase-policy",
                f"{DEPARTMENT_PROPERTY} is a department id such as transport-bureau",
            )
    return errors


_Report = Callable[[list[str | int], str, str], None]
"""How the checks report an error: location, rule, message."""


def _check_property(prop: SchemaProperty, where: list[str | int], error: _Report) -> None:
    try:
        masking_rule(prop)
    except ValueError as problem:
        declared = _custom(prop.customProperties, MASKING_PROPERTY)
        index = declared[0] if declared else 0
        error([*where, "customProperties", index, "value"], "masking", str(problem))
    declared_time = _custom(prop.customProperties, EVENT_TIME_PROPERTY)
    if declared_time is not None and (
        _event_time_rank(declared_time[1]) is None
        or (prop.logicalType or "").lower() not in ("timestamp", "date")
    ):
        error(
            [*where, "customProperties", declared_time[0], "value"],
            "event-time",
            f"{EVENT_TIME_PROPERTY} goes on a timestamp or date property, with true or a rank from 1",
        )
    declared_enum = _custom(prop.customProperties, ENUM_PROPERTY)
    if declared_enum is not None:
        values = declared_enum[1]
        scalars = isinstance(values, list) and all(
            value is None or isinstance(value, str | int | float | bool) for value in values
        )
        if not values or not scalars:
            error(
                [*where, "customProperties", declared_enum[0], "value"],
                "enum",
                f"{ENUM_PROPERTY} is a non-empty list of strings, numbers or booleans",
            )
    pattern = (prop.logicalTypeOptions or {}).get("pattern")
    if pattern is not None:
        _check_pattern(pattern, [*where, "logicalTypeOptions", "pattern"], error)
    for position, rule in enumerate(prop.quality or ()):
        _check_rule(rule, [*where, "quality", position], error, column_names=None)
    for position, child in enumerate(prop.properties or ()):
        _check_property(child, [*where, "properties", position], error)
    if prop.items is not None:
        _check_property(prop.items, [*where, "items"], error)


def _check_pattern(pattern: Any, where: list[str | int], error: _Report) -> None:
    try:
        re.compile(str(pattern))
    except re.error as problem:
        error(where, "pattern", f"the regular expression does not compile: {problem}")


def _check_rule(
    rule: DataQuality, where: list[str | int], error: _Report, *, column_names: set[str | None] | None
) -> None:
    """One quality rule; ``column_names`` is None for a property's rule, the columns for an object's."""
    try:
        _gx_custom(rule)
    except ValueError as problem:
        error([*where, "implementation"], "gx-implementation", str(problem))
        return
    metric = rule.metric or rule.rule
    if (rule.type or "library") != "library" or not metric:
        return
    level, metrics = (
        ("property", _PROPERTY_METRICS) if column_names is None else ("schema object", _SCHEMA_METRICS)
    )
    if metric not in metrics:
        error(
            [*where, "metric" if rule.metric else "rule"],
            "metric",
            f"on a {level} citybase runs the ODCS metrics {', '.join(sorted(metrics))}; not {metric!r}",
        )
        return
    try:
        if metric == "rowCount":
            _row_count(rule)
        else:
            _tolerance(rule)
    except ValueError as problem:
        error(where, "threshold", str(problem))
    arguments = rule.arguments or {}
    if metric == "invalidValues":
        valid = arguments.get("validValues")
        if not arguments.get("pattern") and not (isinstance(valid, list) and valid):
            error(
                [*where, "arguments"],
                "arguments",
                "invalidValues needs validValues (a non-empty list) or pattern",
            )
        if arguments.get("pattern"):
            _check_pattern(arguments["pattern"], [*where, "arguments", "pattern"], error)
    elif metric == "missingValues":
        missing = arguments.get("missingValues")
        if not (isinstance(missing, list) and missing):
            error([*where, "arguments"], "arguments", "missingValues needs missingValues, a non-empty list")
    elif metric == "duplicateValues" and column_names is not None:
        named = arguments.get("properties")
        if named is not None and not (isinstance(named, list) and named):
            error([*where, "arguments", "properties"], "arguments", "properties is a non-empty list of names")
        for position, name in enumerate(named or ()):
            if name not in column_names:
                error(
                    [*where, "arguments", "properties", position],
                    "unknown-property",
                    f"{name!r} is not a property of this schema object",
                )
