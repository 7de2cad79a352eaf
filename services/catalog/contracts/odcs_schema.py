"""The ODCS JSON Schema check of a contract, fast: the package's schema compiled by fastjsonschema.

:func:`schema_errors` is what :func:`~services.catalog.contracts.odcs.parse_contract` asks in its
step 4. A valid contract passes the compiled draft-7 translation of the schema in milliseconds; an
invalid one is validated again by jsonschema, whose errors become field errors with JSON Pointers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema

from services.catalog.contracts.syntax import document_pointer
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError


@functools.cache
def odcs_validator() -> jsonschema.Draft201909Validator:
    """The ODCS JSON Schema of the installed package, checked and compiled once per process."""
    text = resources.files("open_data_contract_standard").joinpath("schema.json").read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def schema_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Every way ``raw`` breaks the ODCS JSON Schema, as field errors; empty when it follows it."""
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
                    message=Sentence(N_("%(key)r is not a field ODCS allows here"), key=key),
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
                message=Sentence(
                    N_(
                        "a property needs a logicalType (string, integer, number, boolean, date, timestamp, ...)"
                    )
                ),
            )
        ]
    if rule in ("oneOf", "anyOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and len(best.absolute_path) >= len(location):
            return _field_errors(best)
    message = error.message
    if rule == "oneOf" and not error.context:
        message = Sentence(
            N_("exactly one of the forms ODCS allows here must match, and this value matches several")
        )
    elif len(message) > 300:
        # jsonschema puts the whole failing instance into some messages; a pointer says where.
        message = Sentence(N_("the value does not satisfy the ODCS schema's %(rule)r rule"), rule=rule)
    return [FieldError(path=document_pointer(location), rule=rule, message=message)]
