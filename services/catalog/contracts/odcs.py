"""Parse and validate an ODCS v3 data contract as a publisher submits it (YAML or JSON).

:func:`parse_contract` is the one door through which a contract enters citybase. It is pure: it
either returns a :class:`ParsedContract` or raises a problem listing *every* error it found, each
with a JSON Pointer to the place in the document, so that a publisher can fix a contract in one
round trip. What it checks, in order:

1. size (``max_bytes``) and encoding (UTF-8);
2. syntax: YAML (JSON when the document starts with ``{`` or ``[``), with a loader that refuses
   aliases (the "billion laughs" bomb needs them), duplicate keys and nesting deeper than
   ``max_depth``, and that reads plain scalars by the YAML 1.2 core schema (``no`` stays a string,
   ``2024-05-01`` stays a string, ``010`` is ten): a contract means the same in YAML and in JSON
   (the loader is :mod:`.syntax`);
3. that it is an ODCS v3 document (``apiVersion`` v3.0.x, v3.1.x or v3.2.x; ``kind: DataContract``);
4. the ODCS JSON Schema shipped with ``open-data-contract-standard`` (draft 2019-09), which also
   refuses unknown fields where ODCS forbids them;
5. what ODCS cannot say in JSON Schema: unique property names within an object, a semantic
   ``version``; and the citybase conventions the derivations rely on (see
   :func:`services.catalog.contracts.convention_checks.convention_errors`), so that every derivation
   of an accepted contract succeeds.

Sections citybase does not use (servers, roles, price, support, team, ...) are validated by ODCS
and kept as they are in ``raw``: the catalog stores the contract exactly as submitted.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
import pydantic
from open_data_contract_standard.model import OpenDataContractStandard

from services.catalog.contracts.convention_checks import convention_errors
from services.catalog.contracts.exceptions import ContractInvalid, ContractTooLarge
from services.catalog.contracts.parsed import (
    ParsedContract,
    SemanticVersion,
    compare_versions,
    fingerprint_of,
)
from services.catalog.contracts.syntax import MAX_NESTING_DEPTH, document_pointer, load_yaml
from services.common.problems import FieldError

__all__ = [
    "MAX_CONTRACT_BYTES",
    "MAX_NESTING_DEPTH",
    "MAX_REPORTED_ERRORS",
    "ContractInvalid",
    "ContractTooLarge",
    "ParsedContract",
    "SemanticVersion",
    "compare_versions",
    "load_yaml",
    "parse_contract",
]

MAX_CONTRACT_BYTES = 1024 * 1024
"""Default cap on a submitted document; the largest real contracts are a few dozen KiB."""

MAX_REPORTED_ERRORS = 50
"""A document with hundreds of errors is usually one mistake repeated; the first 50 say enough."""

SUPPORTED_API_VERSION = re.compile(r"^v3\.[0-2]\.\d+$")


def parse_contract(
    document: str | bytes,
    *,
    max_bytes: int = MAX_CONTRACT_BYTES,
    max_depth: int = MAX_NESTING_DEPTH,
) -> ParsedContract:
    """Parse and validate one ODCS v3 contract; raise a problem listing every error otherwise.

    Raises :class:`ContractTooLarge` when the document exceeds ``max_bytes`` (UTF-8 bytes) and
    :class:`ContractInvalid` for anything else, with one :class:`FieldError` per error. Stages
    run in order and a stage's errors stop the next ones, because a later stage's errors would
    only be consequences (a schema error in a document that is not ODCS v3 says nothing useful).
    """
    size = len(document) if isinstance(document, bytes) else len(document.encode("utf-8"))
    if size > max_bytes:
        raise ContractTooLarge(f"the contract has {size} bytes; at most {max_bytes} are accepted")
    text = _decode(document)
    raw = _load(text, max_depth)
    _raise_if(_odcs_v3_errors(raw), "the document is not an ODCS v3 data contract")
    _raise_if(_schema_errors(raw), "the document does not follow the ODCS JSON Schema")
    model = _model(raw)
    _raise_if(
        [*_duplicate_name_errors(raw), *_version_errors(raw), *convention_errors(model)],
        "the contract breaks a rule ODCS or citybase sets beyond its JSON Schema",
    )
    return ParsedContract(
        raw=raw,
        model=model,
        id=raw["id"],
        version=raw["version"],
        api_version=raw["apiVersion"],
        fingerprint=fingerprint_of(raw),
    )


def _raise_if(errors: list[FieldError], summary: str) -> None:
    if not errors:
        return
    # Keywords overlap (ODCS says additionalProperties and unevaluatedProperties at the root), so
    # the same error can be found twice; it is reported once.
    unique = {(error.path, error.rule, error.message): error for error in errors}
    errors = [unique[key] for key in sorted(unique)]
    detail = f"{summary}: {len(errors)} error(s)"
    if len(errors) > MAX_REPORTED_ERRORS:
        detail += f", the first {MAX_REPORTED_ERRORS} listed"
    raise ContractInvalid(detail, errors=errors[:MAX_REPORTED_ERRORS])


def _decode(document: str | bytes) -> str:
    if isinstance(document, str):
        return document
    try:
        # utf-8-sig: editors on Windows still write a byte order mark; it carries no meaning.
        return document.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContractInvalid(
            "the contract is not UTF-8 text",
            errors=[FieldError(path="", rule="encoding", message=f"byte {error.start}: not valid UTF-8")],
        ) from None


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers keys it saw twice, so the walk can report them with a path."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    duplicates = []
    for key, value in pairs:
        if key in obj:
            duplicates.append(key)
        obj[key] = value
    if duplicates:
        obj.duplicates = tuple(duplicates)
    return obj


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as error:
        raise ContractInvalid(
            "the contract is not valid JSON",
            errors=[
                FieldError(
                    path="",
                    rule="json-syntax",
                    message=f"line {error.lineno}, column {error.colno}: {error.msg}",
                )
            ],
        ) from None
    except RecursionError:
        raise ContractInvalid(
            "the contract is nested too deeply",
            errors=[FieldError(path="", rule="depth", message="the JSON document is nested too deeply")],
        ) from None


def _load(text: str, max_depth: int) -> dict[str, Any]:
    # JSON is, for contracts, a subset of YAML, but a JSON author deserves JSON's error messages.
    stripped = text.lstrip()
    data = _load_json(text) if stripped[:1] in ("{", "[") else load_yaml(text, max_depth=max_depth)
    _raise_if(list(_data_errors(data, max_depth)), "the contract holds values JSON cannot represent")
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ContractInvalid(
            "a contract is a mapping at the top level",
            errors=[FieldError(path="", rule="type", message=f"the document is {kind}, not a mapping")],
        )
    return _plain_dicts(data)


def _data_errors(data: Any, max_depth: int) -> Iterator[FieldError]:
    """Depth, key types, duplicate JSON keys and values outside the JSON data model, iteratively."""
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        value, location = stack.pop()
        if isinstance(value, dict | list) and len(location) >= max_depth:
            yield FieldError(
                path=document_pointer(location),
                rule="depth",
                message=f"nesting deeper than {max_depth} levels",
            )
            continue
        if isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                yield FieldError(
                    path=document_pointer([*location, key]),
                    rule="duplicate-key",
                    message=f"duplicate key {key!r}",
                )
            for key, item in value.items():
                if not isinstance(key, str):
                    yield FieldError(
                        path=document_pointer([*location, str(key)]),
                        rule="key-type",
                        message=f"mapping keys must be strings, not {type(key).__name__} {key!r}",
                    )
                    continue
                stack.append((item, [*location, key]))
        elif isinstance(value, list):
            stack.extend((item, [*location, index]) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            yield FieldError(path=document_pointer(location), rule="number", message="numbers must be finite")
        elif value is not None and not isinstance(value, str | int | float | bool):
            yield FieldError(
                path=document_pointer(location),
                rule="type",
                message=f"a {type(value).__name__} is not a JSON value; quote it or drop the YAML tag",
            )


def _plain_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain_dicts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_dicts(item) for item in value]
    return value


# --- ODCS ------------------------------------------------------------------------------------


def _odcs_v3_errors(raw: dict[str, Any]) -> list[FieldError]:
    errors = []
    api_version = raw.get("apiVersion")
    if not isinstance(api_version, str) or not SUPPORTED_API_VERSION.match(api_version):
        errors.append(
            FieldError(
                path="/apiVersion",
                rule="api-version",
                message=f"citybase accepts ODCS v3.0.x, v3.1.x and v3.2.x contracts; apiVersion is {api_version!r}",
            )
        )
    if raw.get("kind") != "DataContract":
        errors.append(
            FieldError(
                path="/kind", rule="kind", message=f"kind must be 'DataContract', not {raw.get('kind')!r}"
            )
        )
    return errors


@functools.cache
def odcs_validator() -> jsonschema.Draft201909Validator:
    """The ODCS JSON Schema of the installed package, checked and compiled once per process."""
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def _schema_errors(raw: dict[str, Any]) -> list[FieldError]:
    fast = odcs_fast_validator()
    if fast is not None:
        try:
            fast(raw)
            return []
        except Exception:
            # Invalid, or the compiled code could not tell: jsonschema decides and says why.
            pass
    found = list(odcs_validator().iter_errors(raw))
    # A field checked by a failing subschema counts as "unevaluated" too, so one wrong operator
    # would also call every sibling field unknown. Such echoes are dropped when a real error sits
    # at or under the same object; a genuinely unknown field beside a real error then shows on
    # the next submission, which is better than blaming fields that are fine.
    real = [tuple(error.absolute_path) for error in found if error.validator != "unevaluatedProperties"]
    kept = [
        error
        for error in found
        if error.validator != "unevaluatedProperties"
        or not any(path[: len(error.absolute_path)] == tuple(error.absolute_path) for path in real)
    ]
    return [field_error for error in kept for field_error in _field_errors(error)]


# --- the ODCS JSON Schema, compiled -----------------------------------------------------------
#
# jsonschema interprets the schema: about 1 ms per contract property, most of it spent by
# ``unevaluatedProperties``, which re-validates every ``if``/``allOf`` branch of a property to
# learn which fields they evaluated. A 200-property contract took ~220 ms to validate.
# fastjsonschema compiles a schema to Python code, but implements draft 7 only. The schema is
# therefore translated to draft 7 *exactly*: every document the translation accepts, jsonschema
# accepts, and the other way round. A valid contract (the common case) is then validated in a few
# milliseconds; an invalid one is validated again by jsonschema, whose errors are the ones
# reported. Anything the translation cannot express exactly makes it give up, and jsonschema
# validates every document as before.

_DRAFT_7 = "http://json-schema.org/draft-07/schema#"
_ANNOTATIONS = frozenset(
    {"$comment", "$defs", "$schema", "default", "deprecated", "description", "examples", "title"}
)
_AS_IS = frozenset(
    {
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "required",
        "type",
        "uniqueItems",
    }
)
_SUBSCHEMA = ("additionalProperties", "else", "if", "items", "not", "then")
_SUBSCHEMAS = ("allOf", "anyOf", "oneOf")

_Condition = tuple[dict[str, Any], ...]
"""Subschemas that must all hold (translated): when a set of fields counts as evaluated."""


class _Untranslatable(Exception):
    """The schema uses something the draft-7 translation cannot express exactly."""


class _Draft7Translation:
    """Translates a draft 2019-09 schema to a draft-7 one that accepts exactly the same documents.

    Exactly means as jsonschema's ``Draft201909Validator`` without a format checker validates:

    - ``$ref`` with sibling keywords (draft 7 ignores the siblings) becomes an ``allOf`` member;
    - ``format`` is an annotation, as for jsonschema, so it is left out;
    - ``const`` and ``enum`` are kept only for strings (fastjsonschema compares other JSON values
      with Python's ``==``, for which ``1 == True``);
    - ``pattern``'s final ``$`` is spelled ``(?=\\n?\\Z)``, which is what Python's ``$`` means
      (fastjsonschema would turn it into ``\\Z``);
    - ``unevaluatedProperties: false`` becomes: no field outside those some subschema could
      evaluate, and each field that only a conditional subschema (an ``if``, an ``anyOf`` or
      ``oneOf`` member) evaluates is present only when one such subschema holds: the rule
      jsonschema applies (``find_evaluated_property_keys_by_schema``), written out.

    Any other keyword raises :class:`_Untranslatable`.
    """

    def __init__(self, root: dict[str, Any]) -> None:
        self._root = root

    def document(self) -> dict[str, Any]:
        body = self._schema(self._root)
        pending, done = list(_schema_refs(self._root)), set()
        while pending:
            ref = pending.pop()
            if ref in done:
                continue
            done.add(ref)
            target = self._resolve(ref)
            node = body
            *parents, last = _ref_parts(ref)
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = self._schema(target)
            pending.extend(_schema_refs(target))
        body["$schema"] = _DRAFT_7
        return body

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise _Untranslatable(f"$ref {ref!r}")
        node: Any = self._root
        for part in _ref_parts(ref):
            if not isinstance(node, dict) or part not in node:
                raise _Untranslatable(f"$ref {ref!r}")
            node = node[part]
        return node

    def _schema(self, schema: Any) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            raise _Untranslatable(f"schema {schema!r}")
        out: dict[str, Any] = {}
        conjuncts: list[dict[str, Any]] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword == "format":
                continue
            if keyword == "$ref":
                self._resolve(value)
                conjuncts.append({"$ref": value})
            elif keyword == "properties" and isinstance(value, dict):
                out[keyword] = {name: self._schema(sub) for name, sub in value.items()}
            elif keyword in _SUBSCHEMA and (keyword != "items" or isinstance(value, dict | bool)):
                out[keyword] = self._schema(value)
            elif keyword in _SUBSCHEMAS and isinstance(value, list):
                out[keyword] = [self._schema(sub) for sub in value]
            elif keyword in ("enum", "const"):
                values = value if keyword == "enum" else [value]
                if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
                    raise _Untranslatable(f"{keyword} {value!r}")
                conjuncts.append({"enum": list(values)})
            elif keyword == "pattern":
                out[keyword] = _python_end_anchor(value)
            elif keyword in _AS_IS:
                out[keyword] = value
            elif keyword == "unevaluatedProperties" and value is False:
                conjuncts.extend(self._no_unevaluated_properties(schema))
            else:
                raise _Untranslatable(keyword)
        if conjuncts:
            out["allOf"] = [*out.get("allOf", ()), *conjuncts]
        return out

    def _no_unevaluated_properties(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        cases = self._evaluated(
            {key: value for key, value in schema.items() if key != "unevaluatedProperties"}
        )
        always = frozenset().union(*(keys for condition, keys in cases if not condition))
        possible = frozenset().union(*(keys for _, keys in cases))
        conjuncts: list[dict[str, Any]] = [
            {"properties": {key: {} for key in sorted(possible)}, "additionalProperties": False}
        ]
        for key in sorted(possible - always):
            when = [{"allOf": list(condition)} for condition, keys in cases if key in keys]
            conjuncts.append({"if": {"required": [key]}, "then": {"anyOf": when}})
        return conjuncts

    def _evaluated(self, schema: Any, depth: int = 0) -> list[tuple[_Condition, frozenset[str]]]:
        """The fields a valid instance has evaluated by ``schema``, as (condition, names) cases.

        Mirrors jsonschema: ``properties`` names, through ``$ref`` and ``allOf`` (members of a
        valid instance's schema hold), ``anyOf``/``oneOf`` members that hold, and ``then`` or
        ``else`` as ``if`` holds.
        """
        if depth > 32:
            raise _Untranslatable("nesting")
        if isinstance(schema, bool):
            return []
        for keyword in ("patternProperties", "dependentSchemas", "$recursiveRef", "unevaluatedProperties"):
            if keyword in schema and (keyword != "unevaluatedProperties" or schema[keyword] is not False):
                raise _Untranslatable(keyword)
        if schema.get("additionalProperties", False) is not False:
            raise _Untranslatable("additionalProperties")
        cases: list[tuple[_Condition, frozenset[str]]] = []
        if "$ref" in schema:
            cases += self._evaluated(self._resolve(schema["$ref"]), depth + 1)
        if isinstance(schema.get("properties"), dict):
            cases.append(((), frozenset(schema["properties"])))
        for sub in schema.get("allOf", ()):
            cases += self._evaluated(sub, depth + 1)
        for keyword in ("anyOf", "oneOf"):
            for sub in schema.get(keyword, ()):
                holds = self._schema(sub)
                cases += [((holds, *when), keys) for when, keys in self._evaluated(sub, depth + 1)]
        if "if" in schema:
            holds = self._schema(schema["if"])
            then = self._evaluated(schema["if"], depth + 1) + self._evaluated(
                schema.get("then", True), depth + 1
            )
            cases += [((holds, *when), keys) for when, keys in then]
            otherwise = self._evaluated(schema.get("else", True), depth + 1)
            cases += [(({"not": holds}, *when), keys) for when, keys in otherwise]
        return cases


def _ref_parts(ref: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/")]


def _schema_refs(schema: Any) -> Iterator[str]:
    """The ``$ref`` values of a schema and its subschemas (not of its ``$defs``)."""
    if not isinstance(schema, dict):
        return
    for keyword, value in schema.items():
        if keyword == "$ref" and isinstance(value, str):
            yield value
        elif keyword == "properties" and isinstance(value, dict):
            for sub in value.values():
                yield from _schema_refs(sub)
        elif keyword in _SUBSCHEMAS and isinstance(value, list):
            for sub in value:
                yield from _schema_refs(sub)
        elif keyword in _SUBSCHEMA:
            yield from _schema_refs(value)


def _python_end_anchor(pattern: Any) -> str:
    if not isinstance(pattern, str) or re.search(r"\(\?[aiLmsux-]", pattern):
        # inline flags ((?m) and the like) change what $ means
        raise _Untranslatable(f"pattern {pattern!r}")
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"(?=\n?\Z)"
    if "$" in pattern:
        raise _Untranslatable(f"pattern {pattern!r}")
    return pattern


@functools.cache
def odcs_fast_validator() -> Callable[[Any], Any] | None:
    """The ODCS JSON Schema compiled by fastjsonschema; None when it cannot be translated exactly.

    The compiled function raises for a document jsonschema would refuse and returns for one it
    accepts (see :class:`_Draft7Translation`). It never fills in defaults: ``raw`` is stored as
    submitted.
    """
    try:
        schema = _Draft7Translation(odcs_validator().schema).document()
        return fastjsonschema.compile(schema, use_default=False, use_formats=False, detailed_exceptions=False)
    except (_Untranslatable, fastjsonschema.JsonSchemaDefinitionException):
        return None


def _field_errors(error: jsonschema.ValidationError) -> list[FieldError]:
    location = list(error.absolute_path)
    rule = str(error.validator)
    if rule in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        # Name each unexpected field by its own path rather than its parent's.
        unexpected = [key for key in error.instance if repr(key) in error.message]
        if unexpected:
            return [
                FieldError(
                    path=document_pointer([*location, key]),
                    rule="unknown-field",
                    message=f"{key!r} is not a field ODCS allows here",
                )
                for key in unexpected
            ]
    if (
        rule == "required"
        and error.validator_value == ["map"]
        and isinstance(error.instance, dict)
        and "logicalType" not in error.instance
    ):
        # The ODCS schema's "if logicalType is map" test also holds when logicalType is absent,
        # so a property without one is told it lacks a map; say what is really missing.
        return [
            FieldError(
                path=document_pointer([*location, "logicalType"]),
                rule="required",
                message="a property needs a logicalType (string, integer, number, boolean, date, timestamp, ...)",
            )
        ]
    if rule in ("oneOf", "anyOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and len(best.absolute_path) >= len(location):
            return _field_errors(best)
    message = error.message
    if rule == "oneOf" and not error.context:
        message = "exactly one of the forms ODCS allows here must match, and this value matches several"
    elif len(message) > 300:
        # jsonschema puts the whole failing instance into some messages; a pointer says where.
        message = f"the value does not satisfy the ODCS schema's {rule!r} rule"
    return [FieldError(path=document_pointer(location), rule=rule, message=message)]


def _model(raw: dict[str, Any]) -> OpenDataContractStandard:
    try:
        return OpenDataContractStandard.model_validate(raw)
    except pydantic.ValidationError as error:
        # The JSON Schema passed, so this is a gap between the package's model and its schema.
        raise ContractInvalid(
            "the contract does not fit the ODCS model",
            errors=[
                FieldError(path=document_pointer(item["loc"]), rule=item["type"], message=item["msg"])
                for item in error.errors()
            ],
        ) from None


def _duplicate_name_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Schema object names, and property names within each object (at every level), are unique.

    Records are JSON objects: two properties of one name would be one field with two contracts.
    """
    errors: list[FieldError] = []

    def unique_names(items: Any, location: list[str | int], what: str) -> None:
        if not isinstance(items, list):
            return
        first_at: dict[str, int] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in first_at:
                errors.append(
                    FieldError(
                        path=document_pointer([*location, index, "name"]),
                        rule="duplicate-name",
                        message=f"{what} {name!r} is already defined at {document_pointer([*location, first_at[name]])}",
                    )
                )
            else:
                first_at[name] = index

    def walk_property(prop: Any, location: list[str | int]) -> None:
        if not isinstance(prop, dict):
            return
        children = prop.get("properties")
        unique_names(children, [*location, "properties"], "property")
        if isinstance(children, list):
            for index, child in enumerate(children):
                walk_property(child, [*location, "properties", index])
        walk_property(prop.get("items"), [*location, "items"])

    objects = raw.get("schema")
    unique_names(objects, ["schema"], "schema object")
    if isinstance(objects, list):
        for index, obj in enumerate(objects):
            walk_property(obj, ["schema", index])
    return errors


def _version_errors(raw: dict[str, Any]) -> list[FieldError]:
    try:
        SemanticVersion.parse(raw["version"])
    except ValueError as error:
        return [FieldError(path="/version", rule="semver", message=str(error))]
    return []
