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
   refuses unknown fields where ODCS forbids them (checked fast by :mod:`.odcs_schema`);
5. what ODCS cannot say in JSON Schema: unique property names within an object, a semantic
   ``version``; and the citybase conventions the derivations rely on (see
   :func:`services.catalog.contracts.convention_checks.convention_errors`), so that every derivation
   of an accepted contract succeeds.

Sections citybase does not use (servers, roles, price, support, team, ...) are validated by ODCS
and kept as they are in ``raw``: the catalog stores the contract exactly as submitted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
from open_data_contract_standard.model import OpenDataContractStandard

from services.catalog.contracts.convention_checks import convention_errors
from services.catalog.contracts.exceptions import ContractInvalid, ContractTooLarge
from services.catalog.contracts.odcs_schema import schema_errors
from services.catalog.contracts.parsed import (
    ParsedContract,
    SemanticVersion,
    compare_versions,
    fingerprint_of,
)
from services.catalog.contracts.syntax import MAX_NESTING_DEPTH, document_pointer, load_yaml
from services.common.i18n import N_, Sentence
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
    more_errors: Callable[[dict[str, Any]], list[FieldError]] | None = None,
) -> ParsedContract:
    """Parse and validate one ODCS v3 contract; raise a problem listing every error otherwise.

    Raises :class:`ContractTooLarge` when the document exceeds ``max_bytes`` (UTF-8 bytes) and
    :class:`ContractInvalid` for anything else, with one :class:`FieldError` per error. Stages
    run in order and a stage's errors stop the next ones, because a later stage's errors would
    only be consequences (a schema error in a document that is not ODCS v3 says nothing useful).

    ``more_errors`` finds what the caller also requires of the loaded document (the catalog: which
    dataset it describes); its errors are reported with those of whichever stage fails, so that a
    publisher sees every problem of a contract in one answer. When no stage fails, the caller
    raises them itself (they are then its problem, not the document's).
    """
    size = len(document) if isinstance(document, bytes) else len(document.encode("utf-8"))
    if size > max_bytes:
        raise ContractTooLarge(
            Sentence(
                N_("the contract has %(size)s bytes; at most %(max_bytes)s are accepted"),
                size=size,
                max_bytes=max_bytes,
            )
        )
    text = _decode(document)
    raw = _load(text, max_depth)
    caller_errors = more_errors(raw) if more_errors is not None else []
    _raise_if(_odcs_v3_errors(raw), N_("the document is not an ODCS v3 data contract"), caller_errors)
    _raise_if(schema_errors(raw), N_("the document does not follow the ODCS JSON Schema"), caller_errors)
    model = _model(raw)
    _raise_if(
        [*_duplicate_name_errors(raw), *_version_errors(raw), *convention_errors(model)],
        N_("the contract breaks a rule ODCS or citybase sets beyond its JSON Schema"),
        caller_errors,
    )
    return ParsedContract(
        raw=raw,
        model=model,
        id=raw["id"],
        version=raw["version"],
        api_version=raw["apiVersion"],
        fingerprint=fingerprint_of(raw),
    )


def _raise_if(errors: list[FieldError], summary: str, also: list[FieldError] | None = None) -> None:
    """Refuse the contract if there are ``errors`` (with ``also``, the caller's, reported beside
    them), under ``summary`` (marked ``N_``)."""
    if not errors:
        return
    errors = [*errors, *(also or ())]
    # Keywords overlap (ODCS says additionalProperties and unevaluatedProperties at the root), so
    # the same error can be found twice; it is reported once.
    unique = {(error.path, error.rule, error.message): error for error in errors}
    errors = [unique[key] for key in sorted(unique)]
    count = (
        Sentence(
            N_("%(count)s error(s), the first %(listed)s listed"),
            count=len(errors),
            listed=MAX_REPORTED_ERRORS,
        )
        if len(errors) > MAX_REPORTED_ERRORS
        else Sentence(N_("%(count)s error(s)"), count=len(errors))
    )
    detail = Sentence(N_("%(summary)s: %(count)s"), summary=Sentence(summary), count=count)
    raise ContractInvalid(detail, errors=errors[:MAX_REPORTED_ERRORS])


def _decode(document: str | bytes) -> str:
    if isinstance(document, str):
        return document
    try:
        # utf-8-sig: editors on Windows still write a byte order mark; it carries no meaning.
        return document.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContractInvalid(
            Sentence(N_("the contract is not UTF-8 text")),
            errors=[
                FieldError(
                    path="",
                    rule="encoding",
                    message=Sentence(N_("byte %(start)s: not valid UTF-8"), start=error.start),
                )
            ],
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
            Sentence(N_("the contract is not valid JSON")),
            errors=[
                FieldError(
                    path="",
                    rule="json-syntax",
                    message=Sentence(
                        N_("line %(lineno)s, column %(colno)s: %(msg)s"),
                        lineno=error.lineno,
                        colno=error.colno,
                        msg=error.msg,
                    ),
                )
            ],
        ) from None
    except RecursionError:
        raise ContractInvalid(
            Sentence(N_("the contract is nested too deeply")),
            errors=[
                FieldError(
                    path="", rule="depth", message=Sentence(N_("the JSON document is nested too deeply"))
                )
            ],
        ) from None


def _load(text: str, max_depth: int) -> dict[str, Any]:
    # JSON is, for contracts, a subset of YAML, but a JSON author deserves JSON's error messages.
    stripped = text.lstrip()
    data = _load_json(text) if stripped[:1] in ("{", "[") else load_yaml(text, max_depth=max_depth)
    _raise_if(list(_data_errors(data, max_depth)), N_("the contract holds values JSON cannot represent"))
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ContractInvalid(
            Sentence(N_("a contract is a mapping at the top level")),
            errors=[
                FieldError(
                    path="",
                    rule="type",
                    message=Sentence(N_("the document is %(kind)s, not a mapping"), kind=kind),
                )
            ],
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
                message=Sentence(N_("nesting deeper than %(max_depth)s levels"), max_depth=max_depth),
            )
            continue
        if isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                yield FieldError(
                    path=document_pointer([*location, key]),
                    rule="duplicate-key",
                    message=Sentence(N_("duplicate key %(key)r"), key=key),
                )
            for key, item in value.items():
                if not isinstance(key, str):
                    yield FieldError(
                        path=document_pointer([*location, str(key)]),
                        rule="key-type",
                        message=Sentence(
                            N_("mapping keys must be strings, not %(name)s %(key)r"),
                            name=type(key).__name__,
                            key=key,
                        ),
                    )
                    continue
                stack.append((item, [*location, key]))
        elif isinstance(value, list):
            stack.extend((item, [*location, index]) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            yield FieldError(
                path=document_pointer(location), rule="number", message=Sentence(N_("numbers must be finite"))
            )
        elif value is not None and not isinstance(value, str | int | float | bool):
            yield FieldError(
                path=document_pointer(location),
                rule="type",
                message=Sentence(
                    N_("a %(name)s is not a JSON value; quote it or drop the YAML tag"),
                    name=type(value).__name__,
                ),
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
                message=Sentence(
                    N_(
                        "citybase accepts ODCS v3.0.x, v3.1.x and v3.2.x contracts; apiVersion is %(api_version)r"
                    ),
                    api_version=api_version,
                ),
            )
        )
    if raw.get("kind") != "DataContract":
        errors.append(
            FieldError(
                path="/kind",
                rule="kind",
                message=Sentence(N_("kind must be 'DataContract', not %(kind)r"), kind=raw.get("kind")),
            )
        )
    return errors


def _model(raw: dict[str, Any]) -> OpenDataContractStandard:
    try:
        return OpenDataContractStandard.model_validate(raw)
    except pydantic.ValidationError as error:
        # The JSON Schema passed, so this is a gap between the package's model and its schema.
        raise ContractInvalid(
            Sentence(N_("the contract does not fit the ODCS model")),
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

    def unique_names(items: Any, location: list[str | int], duplicate: str) -> None:
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
                        message=Sentence(
                            duplicate, name=name, first=document_pointer([*location, first_at[name]])
                        ),
                    )
                )
            else:
                first_at[name] = index

    def walk_property(prop: Any, location: list[str | int]) -> None:
        if not isinstance(prop, dict):
            return
        children = prop.get("properties")
        unique_names(
            children,
            [*location, "properties"],
            N_("property %(name)r is already defined at %(first)s"),
        )
        if isinstance(children, list):
            for index, child in enumerate(children):
                walk_property(child, [*location, "properties", index])
        walk_property(prop.get("items"), [*location, "items"])

    objects = raw.get("schema")
    unique_names(objects, ["schema"], N_("schema object %(name)r is already defined at %(first)s"))
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
