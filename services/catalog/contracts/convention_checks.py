"""The parse-time check that a contract follows citybase's conventions (see :mod:`.conventions`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args

from open_data_contract_standard.model import DataQuality, OpenDataContractStandard, SchemaProperty

from services.catalog.contracts.conventions import (
    CLASSIFICATION_PROPERTY,
    COMPATIBILITY_PROPERTY,
    DEPARTMENT_PROPERTY,
    ENUM_PROPERTY,
    EVENT_TIME_PROPERTY,
    EXPECTED_RATE_PROPERTY,
    MASKING_PROPERTY,
    MAX_PARTITIONS,
    PARTITIONS_PROPERTY,
    CompatibilityModeName,
    DatasetClassification,
    custom_property,
    event_time_rank,
    masking_rule,
)
from services.catalog.contracts.expectations import count_tolerance, gx_custom_rule, row_count_expectation
from services.catalog.contracts.sla import SLA_NAMES, duration_s
from services.common.i18n import N_, Sentence, reason_of
from services.common.problems import FieldError, json_pointer

_PROPERTY_METRICS = frozenset({"nullValues", "missingValues", "invalidValues", "duplicateValues"})
_SCHEMA_METRICS = frozenset({"rowCount", "duplicateValues"})


def convention_errors(model: OpenDataContractStandard) -> list[FieldError]:
    """Everything an ODCS-valid contract must also satisfy for citybase to derive from it.

    :func:`~services.catalog.contracts.odcs.parse_contract` calls this, so that a contract that
    would make a derivation fail is refused at registration with a pointer to the culprit, rather
    than breaking ingest or quality later. :mod:`.conventions` lists the conventions.
    """
    errors: list[FieldError] = []

    def error(location: list[str | int], rule: str, message: str) -> None:
        errors.append(FieldError(path=json_pointer(location), rule=rule, message=message))

    objects = model.schema_ or []
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
                        Sentence(
                            N_("position %(position)s is already taken by %(name)r"),
                            position=key_position,
                            name=properties[key_positions[key_position]].name,
                        ),
                    )
                key_positions.setdefault(key_position, position)
        names = {prop.name for prop in properties}
        for position, rule in enumerate(obj.quality or ()):
            _check_rule(rule, [*where, "quality", position], error, column_names=names)
    for position, sla in enumerate(model.slaProperties or ()):
        if SLA_NAMES.get((sla.property or "").strip().lower()) is not None:
            try:
                duration_s(sla.value, sla.unit)
            except ValueError as problem:
                error(["slaProperties", position, "value"], "duration", reason_of(problem))
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
                Sentence(
                    N_("%(property)s must be one of %(allowed)s, not %(value)r"),
                    property=custom.property,
                    allowed=", ".join(values),
                    value=custom.value,
                ),
            )
        if custom.property == PARTITIONS_PROPERTY and not (
            isinstance(custom.value, int)
            and not isinstance(custom.value, bool)
            and 1 <= custom.value <= MAX_PARTITIONS
        ):
            error(
                ["customProperties", position, "value"],
                "citybase-policy",
                Sentence(
                    N_("%(property)s is a whole number of partitions from 1 to %(max)s"),
                    property=PARTITIONS_PROPERTY,
                    max=MAX_PARTITIONS,
                ),
            )
        if custom.property == EXPECTED_RATE_PROPERTY and not (
            isinstance(custom.value, (int, float)) and not isinstance(custom.value, bool) and custom.value > 0
        ):
            error(
                ["customProperties", position, "value"],
                "citybase-policy",
                Sentence(
                    N_("%(property)s is the records per second expected at the peak, a positive number"),
                    property=EXPECTED_RATE_PROPERTY,
                ),
            )
        if custom.property == DEPARTMENT_PROPERTY and not (
            isinstance(custom.value, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", custom.value)
        ):
            error(
                ["customProperties", position, "value"],
                "citybase-policy",
                Sentence(
                    N_("%(property)s is a department id such as transport-bureau"),
                    property=DEPARTMENT_PROPERTY,
                ),
            )
    return errors


_Report = Callable[[list[str | int], str, str], None]
"""How the checks report an error: location, rule, message."""


def _check_property(prop: SchemaProperty, where: list[str | int], error: _Report) -> None:
    try:
        masking_rule(prop)
    except ValueError as problem:
        declared = custom_property(prop.customProperties, MASKING_PROPERTY)
        index = declared[0] if declared else 0
        error([*where, "customProperties", index, "value"], "masking", reason_of(problem))
    declared_time = custom_property(prop.customProperties, EVENT_TIME_PROPERTY)
    if declared_time is not None and (
        event_time_rank(declared_time[1]) is None
        or (prop.logicalType or "").lower() not in ("timestamp", "date")
    ):
        error(
            [*where, "customProperties", declared_time[0], "value"],
            "event-time",
            Sentence(
                N_("%(property)s goes on a timestamp or date property, with true or a rank from 1"),
                property=EVENT_TIME_PROPERTY,
            ),
        )
    declared_enum = custom_property(prop.customProperties, ENUM_PROPERTY)
    if declared_enum is not None:
        values = declared_enum[1]
        scalars = isinstance(values, list) and all(
            value is None or isinstance(value, str | int | float | bool) for value in values
        )
        if not values or not scalars:
            error(
                [*where, "customProperties", declared_enum[0], "value"],
                "enum",
                Sentence(
                    N_("%(property)s is a non-empty list of strings, numbers or booleans"),
                    property=ENUM_PROPERTY,
                ),
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
        error(
            where,
            "pattern",
            Sentence(N_("the regular expression does not compile: %(problem)s"), problem=problem),
        )


def _check_rule(
    rule: DataQuality, where: list[str | int], error: _Report, *, column_names: set[str | None] | None
) -> None:
    """One quality rule; ``column_names`` is None for a property's rule, the columns for an object's."""
    try:
        gx_custom_rule(rule)
    except ValueError as problem:
        error([*where, "implementation"], "gx-implementation", reason_of(problem))
        return
    metric = rule.metric or rule.rule
    if (rule.type or "library") != "library" or not metric:
        return
    refusal, metrics = (
        (N_("on a property citybase runs the ODCS metrics %(metrics)s; not %(metric)r"), _PROPERTY_METRICS)
        if column_names is None
        else (
            N_("on a schema object citybase runs the ODCS metrics %(metrics)s; not %(metric)r"),
            _SCHEMA_METRICS,
        )
    )
    if metric not in metrics:
        error(
            [*where, "metric" if rule.metric else "rule"],
            "metric",
            Sentence(refusal, metrics=", ".join(sorted(metrics)), metric=metric),
        )
        return
    try:
        if metric == "rowCount":
            row_count_expectation(rule)
        else:
            count_tolerance(rule)
    except ValueError as problem:
        error(where, "threshold", reason_of(problem))
    arguments = rule.arguments or {}
    if metric == "invalidValues":
        valid = arguments.get("validValues")
        if not arguments.get("pattern") and not (isinstance(valid, list) and valid):
            error(
                [*where, "arguments"],
                "arguments",
                Sentence(N_("invalidValues needs validValues (a non-empty list) or pattern")),
            )
        if arguments.get("pattern"):
            _check_pattern(arguments["pattern"], [*where, "arguments", "pattern"], error)
    elif metric == "missingValues":
        missing = arguments.get("missingValues")
        if not (isinstance(missing, list) and missing):
            error(
                [*where, "arguments"],
                "arguments",
                Sentence(N_("missingValues needs missingValues, a non-empty list")),
            )
    elif metric == "duplicateValues" and column_names is not None:
        named = arguments.get("properties")
        if named is not None and not (isinstance(named, list) and named):
            error(
                [*where, "arguments", "properties"],
                "arguments",
                Sentence(N_("properties is a non-empty list of names")),
            )
        for position, name in enumerate(named or ()):
            if name not in column_names:
                error(
                    [*where, "arguments", "properties", position],
                    "unknown-property",
                    Sentence(N_("%(name)r is not a property of this schema object"), name=name),
                )
