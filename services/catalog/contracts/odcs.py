"""Parse and validate an ODCS v3 data contract as a publisher submits it (YAML or JSON).

:func:`parse_contract` is the one door through which a contract enters citybase. It is pure: it
either returns a :class:`ParsedContract` or raises a problem listing *every* error it found, each
with a JSON Pointer to the place in the document, so that a publisher can fix a contract in one
round trip. What it checks, in order:

1. size (``max_bytes``) and encoding (UTF-8);
2. syntax: YAML (JSON when the document starts with ``{`` or ``[``), with a loader that refuses
   aliases (the "billion laughs" bomb needs them), duplicate keys and nesting deeper than
   ``max_depth``, and that reads plain scalars by the YAML 1.2 core schema (``no`` stays a string,
   ``2024-05-01`` stays a string, ``010`` is ten): a contract means the same in YAML and in JSON;
3. that it is an ODCS v3 document (``apiVersion`` v3.0.x, v3.1.x or v3.2.x; ``kind: DataContract``);
4. the ODCS JSON Schema shipped with ``open-data-contract-standard`` (draft 2019-09), which also
   refuses unknown fields where ODCS forbids them;
5. what ODCS cannot say in JSON Schema: unique property names within an object, a semantic
   ``version``; and the citybase conventions that :mod:`services.catalog.contracts.derive` relies
   on (see :func:`services.catalog.contracts.derive.convention_errors`), so that every derivation
   of an accepted contract succeeds.

Sections citybase does not use (servers, roles, price, support, team, ...) are validated by ODCS
and kept as they are in ``raw``: the catalog stores the contract exactly as submitted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
import pydantic
import yaml
from open_data_contract_standard.model import OpenDataContractStandard
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from services.common.problems import FieldError, Problem, json_pointer


def _libyaml_parser() -> Any:
    """libyaml's parser (PyYAML's C extension), or None where PyYAML was built without it."""
    try:
        from yaml._yaml import CParser
    except ImportError:
        return None
    return CParser


_LibyamlParser: Any = _libyaml_parser()

MAX_CONTRACT_BYTES = 1024 * 1024
"""Default cap on a submitted document; the largest real contracts are a few dozen KiB."""

MAX_NESTING_DEPTH = 64
"""Default cap on nested mappings and sequences; ODCS documents rarely go deeper than 12."""

MAX_REPORTED_ERRORS = 50
"""A document with hundreds of errors is usually one mistake repeated; the first 50 say enough."""

SUPPORTED_API_VERSION = re.compile(r"^v3\.[0-2]\.\d+$")

# semver.org's recommended expression, anchored, without a leading "v".
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class ContractInvalid(Problem):
    """The submitted document is not an ODCS v3 contract citybase can accept; ``errors`` say where."""

    slug, title, status = "contract-invalid", "The data contract is not valid", 422


class ContractTooLarge(Problem):
    """The submitted document is larger than the catalog accepts (checked before parsing)."""

    slug, title, status = "contract-too-large", "The contract document is too large", 413


def _pointer(location: list[str | int] | tuple[str | int, ...] | Any) -> str:
    """RFC 6901 pointer; the whole document is ``""`` (``json_pointer`` would say ``"/"``, the key "")."""
    return json_pointer(list(location)) if len(location) else ""


# --- semantic versions ---------------------------------------------------------------------


@functools.total_ordering
@dataclass(frozen=True)
class SemanticVersion:
    """A SemVer 2.0.0 version, ordered by SemVer precedence (build metadata is ignored).

    Equality follows precedence too, so ``1.0.0+build.1 == 1.0.0``: two contract versions that
    differ only in build metadata are the same version to the catalog.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> SemanticVersion:
        """Parse ``text`` or raise :class:`ValueError` saying what a semantic version looks like."""
        match = _SEMVER.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0 or 2.0.0-rc.1)"
            )
        prerelease = match["prerelease"]
        return cls(
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"]),
            prerelease=tuple(prerelease.split(".")) if prerelease else (),
            build=match["build"] or "",
        )

    def _precedence(self) -> tuple[Any, ...]:
        # SemVer §11: a release ranks above its pre-releases; numeric identifiers compare as
        # numbers and rank below alphanumeric ones; a longer pre-release wins when the rest tie.
        identifiers = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, not self.prerelease, identifiers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence() == other._precedence()

    def __hash__(self) -> int:
        return hash(self._precedence())

    def __lt__(self, other: SemanticVersion) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence() < other._precedence()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` ranks below, equal to or above ``right`` by SemVer precedence."""
    a, b = SemanticVersion.parse(left), SemanticVersion.parse(right)
    return (a > b) - (a < b)


# --- the parsed contract -------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedContract:
    """An accepted contract: the document as submitted, its ODCS model, and what identifies it.

    ``raw`` is kept exactly as submitted (parsed to JSON data) for storage and must be treated as
    read-only. Two parsed contracts are equal when their fingerprints (and identity) are.
    """

    raw: dict[str, Any] = field(compare=False, repr=False)
    model: OpenDataContractStandard = field(compare=False, repr=False)
    id: str
    version: str
    """The contract's semantic version as written, e.g. ``1.2.0`` (see :attr:`semantic_version`)."""
    api_version: str
    fingerprint: str
    """sha256 (hex) of the canonical JSON of ``raw``: equal documents, equal fingerprints."""

    @property
    def semantic_version(self) -> SemanticVersion:
        return SemanticVersion.parse(self.version)


def fingerprint_of(raw: dict[str, Any]) -> str:
    """sha256 of ``raw`` as canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
    # Imported here because derive imports this module for ParsedContract and the safe YAML
    # loader; the convention checks live beside the derivations so that the two cannot drift.
    from services.catalog.contracts.derive import convention_errors

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


# --- syntax --------------------------------------------------------------------------------


class _Refused(Exception):
    """Raised inside the loaders for a document citybase refuses; carries the field error."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(error.message)
        self.error = error


def _at(node_or_mark: Any) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _CoreSchemaResolver(BaseResolver):
    """YAML 1.2 core schema for plain scalars, so that YAML means what the same JSON would.

    PyYAML implements YAML 1.1, where ``no``/``off`` are booleans, ``2024-05-01`` is a date,
    ``010`` is eight and ``1:30`` is ninety: each has broken a real enum or SLA value somewhere.
    """


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
):
    _CoreSchemaResolver.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _ContractConstructor(SafeConstructor):
    """Safe constructor with YAML 1.2 integers (no octal ``010``, no sexagesimal ``1:30``)."""

    def construct_core_int(self, node: Node) -> int:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        sign, digits = (-1, value[1:]) if value.startswith("-") else (1, value.lstrip("+"))
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)


_ContractConstructor.add_constructor(  # type: ignore[type-var]  # the stub binds it to SafeConstructor
    "tag:yaml.org,2002:int", _ContractConstructor.construct_core_int
)


class _GuardedComposer(Composer):
    """A composer that refuses aliases, duplicate keys and deep nesting, tracking the JSON Pointer."""

    max_depth: int = MAX_NESTING_DEPTH
    # Provided by yaml.parser.Parser in the loader's MRO; declared for the type checker.
    check_event: Any
    peek_event: Any

    def __init__(self) -> None:
        super().__init__()
        self._location: list[str | int] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # Keys are composed with index None; a mapping value's index is its key node.
        segment: str | int | None = index.value if isinstance(index, ScalarNode) else index
        if isinstance(index, Node) and not isinstance(index, ScalarNode):
            segment = "?"
        if segment is not None:
            self._location.append(segment)
        try:
            if self.check_event(AliasEvent):
                event = self.peek_event()
                raise _Refused(
                    FieldError(
                        path=self._here(),
                        rule="yaml-alias",
                        message=f"{_at(event.start_mark)}: YAML aliases are not accepted; write the value out",
                    )
                )
            if len(self._location) > self.max_depth:
                raise _Refused(
                    FieldError(
                        path=self._here(),
                        rule="depth",
                        message=f"{_at(self.peek_event().start_mark)}: nesting deeper than {self.max_depth} levels",
                    )
                )
            node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            if isinstance(node, MappingNode):
                self._refuse_duplicate_keys(node)
            return node
        finally:
            if segment is not None:
                self._location.pop()

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[tuple[str, Any]] = set()
        for key, _value in node.value:
            if not isinstance(key, ScalarNode):
                continue  # complex keys are refused later: JSON keys are strings
            identity = (key.tag, key.value)
            if identity in seen:
                raise _Refused(
                    FieldError(
                        path=_pointer([*self._location, key.value]),
                        rule="duplicate-key",
                        message=f"{_at(key)}: duplicate key {key.value!r}",
                    )
                )
            seen.add(identity)

    def _here(self) -> str:
        return _pointer(self._location)


class _ContractLoader(Reader, Scanner, Parser, _GuardedComposer, _ContractConstructor, _CoreSchemaResolver):
    """PyYAML's pure-Python SafeLoader stack with the guards above (the C loader cannot be hooked)."""

    def __init__(self, stream: str, max_depth: int) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _GuardedComposer.__init__(self)
        _ContractConstructor.__init__(self)
        _CoreSchemaResolver.__init__(self)
        self.max_depth = max_depth


if _LibyamlParser is not None:

    class _FastContractLoader(_GuardedComposer, _LibyamlParser, _ContractConstructor, _CoreSchemaResolver):
        """The same guards, constructor and resolver over libyaml's scanner and parser.

        Only the composer is needed from Python (it is what the guards hook); libyaml turns the
        text into events about five times faster than PyYAML's pure-Python reader, scanner and
        parser, which PyYAML's own test suite checks produce the same events.
        """

        def __init__(self, stream: str, max_depth: int) -> None:
            _LibyamlParser.__init__(self, stream)
            _GuardedComposer.__init__(self)
            _ContractConstructor.__init__(self)
            _CoreSchemaResolver.__init__(self)
            self.max_depth = max_depth

    _LOADERS: tuple[type[Any], ...] = (_FastContractLoader, _ContractLoader)
else:  # pragma: no cover - PyYAML wheels ship libyaml
    _LOADERS = (_ContractLoader,)


def load_yaml(text: str, *, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """Load one YAML document with the contract loader's guards; raise :class:`ContractInvalid`.

    Also used by :mod:`derive` for YAML embedded in a contract (a Great Expectations rule's
    ``implementation``), which must be held to the same rules as the document around it.
    """
    if len(_LOADERS) > 1 and not Reader.NON_PRINTABLE.search(text):
        try:
            return _load_with(_LOADERS[0], text, max_depth)
        except Exception:
            # Whatever the fast loader refuses, the pure-Python loader refuses too, and says why
            # in the words (and with the line and column) publishers have always been shown.
            pass
    try:
        return _load_with(_ContractLoader, text, max_depth)
    except _Refused as refused:
        raise ContractInvalid("the contract is not acceptable YAML", errors=[refused.error]) from None
    except yaml.MarkedYAMLError as error:
        where = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        message = f"{_at(where)}: {problem}" if where is not None else problem
        raise ContractInvalid(
            "the contract is not valid YAML",
            errors=[FieldError(path="", rule="yaml-syntax", message=message)],
        ) from None
    except yaml.YAMLError as error:  # reader errors: control characters and the like
        raise ContractInvalid(
            "the contract is not valid YAML",
            errors=[FieldError(path="", rule="yaml-syntax", message=str(error))],
        ) from None


def _load_with(loader_class: type[Any], text: str, max_depth: int) -> Any:
    loader = None
    try:
        # The reader checks for control characters as it is built, so building it can fail too.
        loader = loader_class(text, max_depth)
        return loader.get_single_data()
    finally:
        if loader is not None:
            loader.dispose()


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
                path=_pointer(location), rule="depth", message=f"nesting deeper than {max_depth} levels"
            )
            continue
        if isinstance(value, dict):
            for key in getattr(value, "duplicates", ()):
                yield FieldError(
                    path=_pointer([*location, key]),
                    rule="duplicate-key",
                    message=f"duplicate key {key!r}",
                )
            for key, item in value.items():
                if not isinstance(key, str):
                    yield FieldError(
                        path=_pointer([*location, str(key)]),
                        rule="key-type",
                        message=f"mapping keys must be strings, not {type(key).__name__} {key!r}",
                    )
                    continue
                stack.append((item, [*location, key]))
        elif isinstance(value, list):
            stack.extend((item, [*location, index]) for index, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            yield FieldError(path=_pointer(location), rule="number", message="numbers must be finite")
        elif value is not None and not isinstance(value, str | int | float | bool):
            yield FieldError(
                path=_pointer(location),
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
                    path=_pointer([*location, key]),
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
                path=_pointer([*location, "logicalType"]),
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
    return [FieldError(path=_pointer(location), rule=rule, message=message)]


def _model(raw: dict[str, Any]) -> OpenDataContractStandard:
    try:
        return OpenDataContractStandard.model_validate(raw)
    except pydantic.ValidationError as error:
        # The JSON Schema passed, so this is a gap between the package's model and its schema.
        raise ContractInvalid(
            "the contract does not fit the ODCS model",
            errors=[
                FieldError(path=_pointer(item["loc"]), rule=item["type"], message=item["msg"])
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
                        path=_pointer([*location, index, "name"]),
                        rule="duplicate-name",
                        message=f"{what} {name!r} is already defined at {_pointer([*location, first_at[name]])}",
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
