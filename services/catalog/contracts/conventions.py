"""citybase's conventions on top of ODCS, and the reading of one schema object's properties.

A dataset has one record shape, so the derivations that describe records work on *one* schema
object: the one named by ``schema_name``, by default the first of ``schema``. A contract with
several objects (a table and its lookup, say) is refused at registration, naming them, rather than
cut to one; a contract with none (roles, SLA or stakeholders only) registers a catalog entry whose
stream stays closed until a version with a schema arrives. Which dataset a contract describes is
read by :mod:`.identity`.

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

This module reads those conventions off a property; :mod:`.json_schema`, :mod:`.policy`,
:mod:`.sla` and :mod:`.expectations` derive from them, and :mod:`.convention_checks` checks them
at parse time, so that every derivation of an accepted contract succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from open_data_contract_standard.model import CustomProperty, DataQuality, SchemaObject, SchemaProperty

from services.catalog.contracts.parsed import ParsedContract
from services.common.i18n import N_, Sentence
from services.common.problems import NotFound

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
PARTITIONS_PROPERTY = "citybase.partitions"
"""Partitions of the dataset's ``ds.``/``dlq.`` topics, 1 to :data:`MAX_PARTITIONS`."""
EXPECTED_RATE_PROPERTY = "citybase.expectedRate"
"""The records per second the dataset is expected to carry at its peak; its partitions follow
(one per :data:`RECORDS_PER_PARTITION`), unless ``citybase.partitions`` says."""
MAX_PARTITIONS = 64
RECORDS_PER_PARTITION = 1000

MaskingKind = Literal["hash", "redact", "partial", "generalize"]
DatasetClassification = Literal["open", "conditional", "restricted"]
CompatibilityModeName = Literal[
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
]


class SchemaObjectNotFound(NotFound):
    slug, title = "schema-object-not-found", "The contract has no such schema object"


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


def schema_object(contract: ParsedContract, schema_name: str | None = None) -> SchemaObject:
    """The schema object records follow: the one called ``schema_name``, by default the first."""
    objects = contract.model.schema_ or []
    if schema_name is None and objects:
        return objects[0]
    for obj in objects:
        if obj.name == schema_name:
            return obj
    raise SchemaObjectNotFound(
        Sentence(
            N_("contract %(id)s %(version)s has no schema object %(schema_name)r"),
            id=contract.id,
            version=contract.version,
            schema_name=schema_name,
        )
    )


def custom_property(properties: Sequence[CustomProperty] | None, name: str) -> tuple[int, Any] | None:
    """(position, value) of the custom property called ``name``, None when there is none."""
    for index, custom in enumerate(properties or ()):
        if custom.property == name:
            return index, custom.value
    return None


def library_rules(prop: SchemaProperty | SchemaObject) -> Iterator[tuple[int, DataQuality, str]]:
    """(position, rule, metric) of each ODCS library quality rule of a property or object."""
    for index, rule in enumerate(prop.quality or ()):
        metric = rule.metric or rule.rule
        if metric and (rule.type or "library") == "library":
            yield index, rule, metric


def tolerates_none(rule: DataQuality) -> bool:
    """Whether a "count of bad values" rule allows no bad value at all (so one record can fail it)."""
    if rule.mustBe == 0 or rule.mustBeLessOrEqualTo == 0:
        return True
    return rule.mustBeLessThan is not None and rule.mustBeLessThan <= 1 and (rule.unit or "rows") == "rows"


def is_required(prop: SchemaProperty) -> bool:
    """Required, part of the key, or under a ``nullValues`` rule that tolerates no null."""
    if prop.required or prop.primaryKey:
        return True
    return any(metric == "nullValues" and tolerates_none(rule) for _, rule, metric in library_rules(prop))


def enum_values(prop: SchemaProperty) -> list[Any] | None:
    """The property's enumeration by the precedence above, None when it declares none."""
    if prop.enum:
        return [entry.value for entry in prop.enum]
    declared = custom_property(prop.customProperties, ENUM_PROPERTY)
    if declared is not None:
        return list(declared[1])
    for _, rule, metric in library_rules(prop):
        valid = (rule.arguments or {}).get("validValues")
        if metric == "invalidValues" and valid and tolerates_none(rule):
            return list(valid)
    return None


def strict_pattern(prop: SchemaProperty) -> str | None:
    """The pattern every value must match: ``logicalTypeOptions.pattern``, else a strict rule's."""
    pattern = (prop.logicalTypeOptions or {}).get("pattern")
    if pattern is not None:
        return str(pattern)
    for _, rule, metric in library_rules(prop):
        candidate = (rule.arguments or {}).get("pattern")
        if metric == "invalidValues" and candidate and tolerates_none(rule):
            return str(candidate)
    return None


def masking_rule(prop: SchemaProperty) -> MaskingRule | None:
    """The masking rule of one property: its ``citybase.masking``, else redact when sensitive."""
    declared = custom_property(prop.customProperties, MASKING_PROPERTY)
    if declared is not None:
        return MaskingRule.from_value(declared[1])
    if (prop.classification or "").strip().lower() in SENSITIVE_CLASSIFICATIONS:
        return MaskingRule("redact")
    return None


def event_time_rank(value: Any) -> int | None:
    """``true`` is rank 1; a positive integer is its own rank; anything else is not a rank."""
    if value is True:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
