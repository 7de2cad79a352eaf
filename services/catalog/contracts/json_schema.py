"""The per-record JSON Schema (draft 2020-12) of a contract: what ingest compiles to validate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_data_contract_standard.model import SchemaProperty

from services.catalog.contracts.conventions import (
    EVENT_TIME_PROPERTY,
    custom_property,
    enum_values,
    event_time_rank,
    is_required,
    masking_rule,
    schema_object,
    strict_pattern,
)
from services.catalog.contracts.parsed import ParsedContract

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

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
        if is_required(prop):
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
        pattern = strict_pattern(prop)
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

    enum = enum_values(prop)
    if enum is not None:
        schema["enum"] = list(enum)
    if not is_required(prop):
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
    event_time = custom_property(prop.customProperties, EVENT_TIME_PROPERTY)
    if top_level and event_time is not None and event_time_rank(event_time[1]) is not None:
        schema["x-citybase-event-time"] = event_time_rank(event_time[1])
    return schema
