"""The Great Expectations 1.x suite of a contract, from its schema and its ODCS quality rules."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from open_data_contract_standard.model import DataQuality, SchemaObject, SchemaProperty

from services.catalog.contracts.conventions import enum_values, is_required, schema_object, strict_pattern
from services.catalog.contracts.exceptions import ContractInvalid
from services.catalog.contracts.parsed import ParsedContract
from services.catalog.contracts.policy import primary_key
from services.catalog.contracts.syntax import load_yaml
from services.common.i18n import N_, Sentence
from services.common.problems import json_pointer

Dimension = Literal["completeness", "validity", "uniqueness", "conformity", "volume", "consistency"]

GX_ENGINES = frozenset({"greatexpectations", "great-expectations", "great_expectations", "gx"})

# Expectation types are snake_case identifiers; GX's class is the same words in CamelCase.
_EXPECTATION_TYPE = re.compile(r"^expect_[a-z0-9]+(?:_[a-z0-9]+)*$")
_CAPITAL = re.compile(r"(?<!^)(?=[A-Z])")


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
class Tolerance:
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


def count_tolerance(rule: DataQuality) -> Tolerance:
    """Read the threshold of a "count of bad values" rule; raise ValueError when it has none.

    Only upper bounds make sense for such a count: ``mustBe: 0``, ``mustBeLessThan``,
    ``mustBeLessOrEqualTo`` and ``mustBeBetween: [0, n]``.
    """
    bound: float
    strict = False
    if rule.mustBe is not None:
        if rule.mustBe != 0 or isinstance(rule.mustBe, bool):
            raise ValueError(Sentence(N_("mustBe on a count of bad values can only be 0")))
        bound = 0
    elif rule.mustBeLessThan is not None:
        bound, strict = rule.mustBeLessThan, True
    elif rule.mustBeLessOrEqualTo is not None:
        bound = rule.mustBeLessOrEqualTo
    elif rule.mustBeBetween is not None and rule.mustBeBetween[0] == 0:
        bound = rule.mustBeBetween[1]
    else:
        raise ValueError(
            Sentence(
                N_(
                    "a count of bad values takes an upper bound: mustBe: 0, mustBeLessThan, mustBeLessOrEqualTo or mustBeBetween: [0, n]"
                )
            )
        )
    if bound < 0:
        raise ValueError(Sentence(N_("the bound must not be negative")))
    unit = (rule.unit or "rows").lower()
    if unit == "percent":
        if bound > 100:
            raise ValueError(Sentence(N_("a percentage is at most 100")))
        # GX's mostly is the passing fraction; "< p %" and "<= p %" both become mostly 1 - p/100.
        return Tolerance(mostly=round(1 - bound / 100, 6) if bound else None)
    if unit != "rows":
        raise ValueError(Sentence(N_("unit must be rows or percent, not %(unit)r"), unit=rule.unit))
    allowed = math.ceil(bound) - 1 if strict else math.floor(bound)
    return Tolerance(max_unexpected_count=allowed if allowed > 0 else None)


def row_count_expectation(rule: DataQuality) -> tuple[str, dict[str, Any]]:
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
            Sentence(
                N_(
                    "rowCount takes mustBe, mustBeGreaterThan, mustBeGreaterOrEqualTo, mustBeLessThan, mustBeLessOrEqualTo or mustBeBetween"
                )
            )
        )
    return "expect_table_row_count_to_be_between", bounds


def gx_custom_rule(rule: DataQuality) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(type, kwargs, meta) of a Great Expectations custom rule; None for other rules."""
    if rule.type != "custom" or (rule.engine or "").strip().lower() not in GX_ENGINES:
        return None
    implementation: Any = rule.implementation
    if isinstance(implementation, str):
        try:
            implementation = load_yaml(implementation)
        except ContractInvalid as error:
            reason = error.errors[0].message if error.errors else "not YAML"
            raise ValueError(
                Sentence(N_("the implementation is not a YAML mapping: %(reason)s"), reason=reason)
            ) from None
    if not isinstance(implementation, dict):
        raise ValueError(Sentence(N_("the implementation is a mapping with 'type' and 'kwargs'")))
    raw_type = implementation.get("type", implementation.get("expectation_type"))
    expectation_type = _snake_type(raw_type) if isinstance(raw_type, str) else ""
    if not _EXPECTATION_TYPE.match(expectation_type):
        raise ValueError(
            Sentence(
                N_(
                    "type must name a GX expectation such as expect_column_values_to_be_unique, not %(raw_type)r"
                ),
                raw_type=raw_type,
            )
        )
    kwargs = implementation.get("kwargs") or {}
    meta = implementation.get("meta") or {}
    if not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise ValueError(Sentence(N_("kwargs and meta are mappings")))
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
        tolerance: Tolerance | None = None,
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
            custom = gx_custom_rule(rule)
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
    if is_required(prop):
        yield "expect_column_values_to_not_be_null", {}, "required", "completeness"
    enum = enum_values(prop)
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
        pattern = strict_pattern(prop)
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
) -> Iterator[tuple[str, dict[str, Any], Dimension, Tolerance | None]]:
    arguments = rule.arguments or {}
    if metric == "rowCount":
        expectation_type, kwargs = row_count_expectation(rule)
        yield expectation_type, kwargs, "volume", None
        return
    tolerance = count_tolerance(rule)
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
