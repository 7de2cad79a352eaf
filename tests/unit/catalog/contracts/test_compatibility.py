"""Compatibility of contract versions: every rule in both directions, nesting, transitivity, diff.

Schemas are built with the small factories below (the dialect ``json_schema.record_schema`` produces)
and most cases start from :func:`arrivals`, a bus-arrivals record, changing one thing at a time.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.catalog.contracts.compatibility import (
    BreakingChange,
    Change,
    CompatibilityMode,
    check,
    diff,
    render,
)

Mode = CompatibilityMode
Schema = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# factories


def prop(type_: str = "string", *, nullable: bool = False, **keywords: Any) -> Schema:
    """A property schema; nullable ones are typed ``[T, "null"]`` as derive writes optional fields."""
    return {"type": [type_, "null"] if nullable else type_, **keywords}


def obj(*, nullable: bool = False, required: Iterable[str] | None = None, **properties: Schema) -> Schema:
    """A nested object property; its required fields default to the non-nullable ones."""
    schema = prop("object", nullable=nullable, properties=properties)
    schema["required"] = list(required) if required is not None else _non_nullable(properties)
    return schema


def array(items: Schema, *, nullable: bool = False, **keywords: Any) -> Schema:
    return prop("array", nullable=nullable, items=items, **keywords)


def pk(schema: Schema, position: int | None = None) -> Schema:
    """Mark a property as (part of) the primary key."""
    return {**schema, "x-citybase-primary-key": True if position is None else position}


def record(*, required: Iterable[str] | None = None, **properties: Schema) -> Schema:
    """A record schema of the derived dialect; required fields default to the non-nullable ones."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": list(required) if required is not None else _non_nullable(properties),
        "additionalProperties": False,
    }


def _non_nullable(properties: Mapping[str, Schema]) -> list[str]:
    return [name for name, schema in properties.items() if isinstance(schema["type"], str)]


OCCUPANCY = ["EMPTY", "MANY_SEATS_AVAILABLE", "FULL", None]


def arrivals(
    *,
    drop_required: Iterable[str] = (),
    add_required: Iterable[str] = (),
    **overrides: Schema | None,
) -> Schema:
    """A bus-arrivals record; ``name=schema`` replaces or adds a field, ``name=None`` removes it."""
    properties: dict[str, Schema] = {
        "arrival_id": pk(prop()),
        "stop_id": prop(pattern="^S[0-9]{4}$"),
        "route_id": prop(maxLength=8),
        "arrived_at": prop(format="date-time"),
        "delay_s": prop("integer", minimum=-3600, maximum=7200),
        "occupancy": prop(nullable=True, enum=OCCUPANCY),
        "location": obj(
            lat=prop("number", minimum=-90, maximum=90),
            lon=prop("number", minimum=-180, maximum=180),
        ),
        "stops": array(obj(stop_id=prop(), seq=prop("integer", minimum=0)), maxItems=50),
        "tags": array(prop(minLength=1), nullable=True),
    }
    for name, schema in overrides.items():
        if schema is None:
            properties.pop(name, None)
        else:
            properties[name] = schema
    required = [name for name in _non_nullable(properties) if name not in set(drop_required)]
    return record(required=[*required, *add_required], **properties)


def found(changes: Iterable[BreakingChange]) -> set[tuple[str, str]]:
    return {(change.path, change.rule) for change in changes}


def against(old: Schema, version: str = "1.0.0") -> list[tuple[str, Schema]]:
    return [(version, old)]


# --------------------------------------------------------------------------------------------------
# every rule, both directions

BASE = arrivals()

RULE_CASES = [
    # (old, new, breaking under BACKWARD, breaking under FORWARD)
    pytest.param(BASE, arrivals(platform=prop(nullable=True)), set(), set(), id="optional-field-added"),
    pytest.param(
        BASE,
        arrivals(platform=prop()),
        {("/platform", "field-added-required")},
        set(),
        id="required-field-added",
    ),
    pytest.param(
        BASE, arrivals(platform=prop(default="A")), set(), set(), id="required-field-with-default-added"
    ),
    pytest.param(
        BASE, arrivals(route_id=None), set(), {("/route_id", "field-removed")}, id="required-field-removed"
    ),
    pytest.param(BASE, arrivals(occupancy=None), set(), set(), id="optional-field-removed"),
    pytest.param(
        arrivals(route_id=prop(maxLength=8, default="0")),
        arrivals(route_id=None),
        set(),
        set(),
        id="required-field-with-default-removed",
    ),
    pytest.param(
        arrivals(drop_required=["route_id"]),
        BASE,
        {("/route_id", "field-made-required")},
        set(),
        id="field-made-required",
    ),
    pytest.param(
        arrivals(drop_required=["route_id"]),
        arrivals(route_id=prop(maxLength=8, default="0")),
        set(),
        set(),
        id="field-made-required-with-default",
    ),
    pytest.param(
        BASE,
        arrivals(drop_required=["route_id"]),
        set(),
        {("/route_id", "field-made-optional")},
        id="field-made-optional",
    ),
    pytest.param(
        BASE,
        arrivals(tags=array(prop(minLength=1))),
        {("/tags", "field-made-required"), ("/tags", "type-narrowed")},
        set(),
        id="optional-nullable-field-made-required",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("number", minimum=-3600, maximum=7200)),
        set(),
        {("/delay_s", "type-widened")},
        id="integer-widened-to-number",
    ),
    pytest.param(
        arrivals(delay_s=prop("number", minimum=-3600, maximum=7200)),
        BASE,
        {("/delay_s", "type-narrowed")},
        set(),
        id="number-narrowed-to-integer",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop("integer", maxLength=8)),
        {("/route_id", "type-changed")},
        {("/route_id", "type-changed")},
        id="string-changed-to-integer",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(maxLength=8, nullable=True), add_required=["route_id"]),
        set(),
        {("/route_id", "type-widened")},
        id="null-added",
    ),
    pytest.param(
        arrivals(route_id=prop(maxLength=8, nullable=True), add_required=["route_id"]),
        BASE,
        {("/route_id", "type-narrowed")},
        set(),
        id="null-removed",
    ),
    pytest.param(
        BASE,
        arrivals(occupancy=prop(nullable=True, enum=[*OCCUPANCY, "STANDING"])),
        set(),
        {("/occupancy", "enum-value-added")},
        id="enum-value-added",
    ),
    pytest.param(
        BASE,
        arrivals(occupancy=prop(nullable=True, enum=["EMPTY", "MANY_SEATS_AVAILABLE", None])),
        {("/occupancy", "enum-value-removed")},
        set(),
        id="enum-value-removed",
    ),
    pytest.param(
        BASE,
        arrivals(occupancy=prop(nullable=True, enum=list(reversed(OCCUPANCY)))),
        set(),
        set(),
        id="enum-reordered",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(maxLength=8, enum=["71", "72"])),
        {("/route_id", "enum-added")},
        set(),
        id="enum-added",
    ),
    pytest.param(
        BASE,
        arrivals(occupancy=prop(nullable=True)),
        set(),
        {("/occupancy", "enum-removed")},
        id="enum-removed",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", minimum=0, maximum=7200)),
        {("/delay_s", "constraint-tightened")},
        set(),
        id="minimum-raised",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", minimum=-7200, maximum=7200)),
        set(),
        {("/delay_s", "constraint-relaxed")},
        id="minimum-lowered",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", maximum=7200)),
        set(),
        {("/delay_s", "constraint-relaxed")},
        id="minimum-removed",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", minimum=-3600, maximum=3600)),
        {("/delay_s", "constraint-tightened")},
        set(),
        id="maximum-lowered",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", minimum=-3600, maximum=86400)),
        set(),
        {("/delay_s", "constraint-relaxed")},
        id="maximum-raised",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", exclusiveMinimum=-3600, maximum=7200)),
        {("/delay_s", "constraint-tightened")},
        set(),
        id="minimum-made-exclusive",
    ),
    pytest.param(
        BASE,
        arrivals(delay_s=prop("integer", exclusiveMinimum=-3601, maximum=7200)),
        set(),
        {("/delay_s", "constraint-relaxed")},
        id="minimum-replaced-by-looser-exclusive-minimum",
    ),
    pytest.param(
        arrivals(delay_s=prop("integer", minimum=-3600, exclusiveMaximum=7200)),
        arrivals(delay_s=prop("integer", minimum=-3600, exclusiveMaximum=3600)),
        {("/delay_s", "constraint-tightened")},
        set(),
        id="exclusive-maximum-lowered",
    ),
    pytest.param(
        arrivals(delay_s=prop("integer", minimum=-3600, exclusiveMaximum=7200)),
        BASE,
        set(),
        {("/delay_s", "constraint-relaxed")},
        id="exclusive-maximum-made-inclusive",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(minLength=2, maxLength=8)),
        {("/route_id", "constraint-tightened")},
        set(),
        id="min-length-raised",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(minLength=0, maxLength=8)),
        set(),
        set(),
        id="min-length-zero-added",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(maxLength=4)),
        {("/route_id", "constraint-tightened")},
        set(),
        id="max-length-lowered",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop()),
        set(),
        {("/route_id", "constraint-relaxed")},
        id="max-length-removed",
    ),
    pytest.param(
        BASE,
        arrivals(stops=array(obj(stop_id=prop(), seq=prop("integer", minimum=0)), minItems=1, maxItems=50)),
        {("/stops", "constraint-tightened")},
        set(),
        id="min-items-raised",
    ),
    pytest.param(
        BASE,
        arrivals(stops=array(obj(stop_id=prop(), seq=prop("integer", minimum=0)), maxItems=10)),
        {("/stops", "constraint-tightened")},
        set(),
        id="max-items-lowered",
    ),
    pytest.param(
        BASE,
        arrivals(stops=array(obj(stop_id=prop(), seq=prop("integer", minimum=0)), maxItems=100)),
        set(),
        {("/stops", "constraint-relaxed")},
        id="max-items-raised",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(maxLength=8, pattern="^[0-9]+$")),
        {("/route_id", "constraint-tightened")},
        set(),
        id="pattern-added",
    ),
    pytest.param(
        BASE, arrivals(stop_id=prop()), set(), {("/stop_id", "constraint-relaxed")}, id="pattern-removed"
    ),
    pytest.param(
        BASE,
        arrivals(stop_id=prop(pattern="^S[0-9]{5}$")),
        {("/stop_id", "constraint-changed")},
        {("/stop_id", "constraint-changed")},
        id="pattern-changed",
    ),
    pytest.param(
        BASE,
        arrivals(route_id=prop(maxLength=8, format="time")),
        {("/route_id", "constraint-tightened")},
        set(),
        id="format-added",
    ),
    pytest.param(
        BASE, arrivals(arrived_at=prop()), set(), {("/arrived_at", "constraint-relaxed")}, id="format-removed"
    ),
    pytest.param(
        BASE,
        arrivals(arrived_at=prop(format="date")),
        {("/arrived_at", "constraint-changed")},
        {("/arrived_at", "constraint-changed")},
        id="format-changed",
    ),
    pytest.param(
        BASE,
        arrivals(
            route_id=prop(
                maxLength=8,
                default="71",
                description="The line, as printed on the bus",
                **{"x-citybase-classification": "restricted", "x-citybase-masking": "hash"},
            )
        ),
        set(),
        set(),
        id="description-default-and-annotations-changed",
    ),
    pytest.param(
        BASE,
        arrivals(arrival_id=prop(), stop_id=pk(prop(pattern="^S[0-9]{4}$"))),
        {("", "primary-key-changed")},
        {("", "primary-key-changed")},
        id="primary-key-changed",
    ),
    pytest.param(
        record(fare=prop("number")),
        record(fare=prop("number", multipleOf=0.5)),
        {("/fare", "constraint-tightened")},
        set(),
        id="multiple-of-added",
    ),
    pytest.param(
        record(fare=prop("number", multipleOf=0.5)),
        record(fare=prop("number", multipleOf=0.1)),
        set(),
        {("/fare", "constraint-relaxed")},
        id="multiple-of-made-finer",
    ),
    pytest.param(
        record(seats=prop("integer", multipleOf=2)),
        record(seats=prop("integer", multipleOf=3)),
        {("/seats", "constraint-changed")},
        {("/seats", "constraint-changed")},
        id="multiple-of-changed",
    ),
    pytest.param(
        BASE,
        arrivals(tags=array(prop(minLength=1), nullable=True, uniqueItems=True)),
        {("/tags", "constraint-tightened")},
        set(),
        id="unique-items-added",
    ),
    pytest.param(
        record(fares=prop("object", additionalProperties=prop("number"), maxProperties=10)),
        record(fares=prop("object", additionalProperties=prop("number"), maxProperties=5, minProperties=1)),
        {("/fares", "constraint-tightened")},
        set(),
        id="map-property-counts-tightened",
    ),
    pytest.param(
        record(fares=prop("object", additionalProperties=prop("number"))),
        record(fares=prop("object", additionalProperties=prop("integer"))),
        {("/fares/*", "type-narrowed")},
        set(),
        id="map-values-narrowed",
    ),
    pytest.param(
        BASE,
        arrivals(
            location=obj(
                lat=prop("integer", minimum=-90, maximum=90), lon=prop("number", minimum=-180, maximum=180)
            )
        ),
        {("/location/lat", "type-narrowed")},
        set(),
        id="nested-type-narrowed",
    ),
    pytest.param(
        BASE,
        arrivals(
            location=obj(
                lat=prop("number", minimum=-90, maximum=90),
                lon=prop("number", minimum=-180, maximum=180),
                accuracy_m=prop("number"),
            )
        ),
        {("/location/accuracy_m", "field-added-required")},
        set(),
        id="nested-required-field-added",
    ),
    pytest.param(
        BASE,
        arrivals(location=obj(lat=prop("number", minimum=-90, maximum=90))),
        set(),
        {("/location/lon", "field-removed")},
        id="nested-required-field-removed",
    ),
    pytest.param(
        BASE,
        arrivals(tags=array(prop("integer", minLength=1), nullable=True)),
        {("/tags/*", "type-changed")},
        {("/tags/*", "type-changed")},
        id="array-items-type-changed",
    ),
    pytest.param(
        BASE,
        arrivals(tags=array(prop(minLength=3), nullable=True)),
        {("/tags/*", "constraint-tightened")},
        set(),
        id="array-items-constraint-tightened",
    ),
    pytest.param(
        BASE,
        arrivals(stops=array(obj(stop_id=prop()), maxItems=50)),
        set(),
        {("/stops/*/seq", "field-removed")},
        id="array-of-objects-field-removed",
    ),
    pytest.param(
        BASE,
        arrivals(stops=array(obj(stop_id=prop(), seq=prop("integer", minimum=0), bay=prop()), maxItems=50)),
        {("/stops/*/bay", "field-added-required")},
        set(),
        id="array-of-objects-required-field-added",
    ),
]


@pytest.mark.parametrize(("old", "new", "backward", "forward"), RULE_CASES)
def test_rule_is_judged_in_both_directions(
    old: Schema, new: Schema, backward: set[tuple[str, str]], forward: set[tuple[str, str]]
) -> None:
    backward_result = check(new, against(old), Mode.BACKWARD)
    forward_result = check(new, against(old), Mode.FORWARD)

    assert found(backward_result) == backward
    assert found(forward_result) == forward
    assert {change.direction for change in backward_result} <= {"backward"}
    assert {change.direction for change in forward_result} <= {"forward"}
    assert found(check(new, against(old), Mode.FULL)) == backward | forward
    assert check(new, against(old), Mode.NONE) == []


def test_every_rule_code_is_exercised() -> None:
    # Keeps the table honest: a rule nobody tests is a rule nobody knows works.
    exercised = {rule for case in RULE_CASES for side in case.values[2:] for _, rule in side}
    assert exercised == {
        "field-added-required",
        "field-removed",
        "field-made-required",
        "field-made-optional",
        "type-narrowed",
        "type-widened",
        "type-changed",
        "enum-value-removed",
        "enum-value-added",
        "enum-added",
        "enum-removed",
        "constraint-tightened",
        "constraint-relaxed",
        "constraint-changed",
        "primary-key-changed",
    }


# --------------------------------------------------------------------------------------------------
# what a breaking change says


def test_removed_field_names_the_field_version_and_old_readers() -> None:
    [change] = check(arrivals(delay_s=None), against(BASE, "1.2.0"), Mode.FORWARD)

    assert change.path == "/delay_s"
    assert change.rule == "field-removed"
    assert change.direction == "forward"
    assert change.against_version == "1.2.0"
    assert change.old == prop("integer", minimum=-3600, maximum=7200)
    assert change.new is None
    assert "field 'delay_s' was removed but old readers require it" in change.message
    assert "1.2.0" in change.message


def test_type_change_carries_both_types() -> None:
    new = arrivals(route_id=prop(maxLength=8, nullable=True), add_required=["route_id"])

    [change] = check(new, against(BASE), Mode.FORWARD)

    assert (change.old, change.new) == ("string", ["string", "null"])
    assert "widened from string to string | null" in change.message


def test_constraint_change_carries_the_keywords_involved() -> None:
    new = arrivals(delay_s=prop("integer", exclusiveMinimum=0, maximum=600))

    changes = check(new, against(BASE), Mode.BACKWARD)

    assert [(change.old, change.new) for change in changes] == [
        ({"minimum": -3600}, {"exclusiveMinimum": 0}),
        ({"maximum": 7200}, {"maximum": 600}),
    ]
    assert (
        "lower bound of 'delay_s' was tightened from minimum -3600 to exclusiveMinimum 0"
        in changes[0].message
    )


def test_enum_change_names_the_values_that_break() -> None:
    new = arrivals(occupancy=prop(nullable=True, enum=[*OCCUPANCY, "STANDING"]))

    [change] = check(new, against(BASE), Mode.FORWARD)

    assert change.old == OCCUPANCY
    assert change.new == [*OCCUPANCY, "STANDING"]
    assert '"STANDING"' in change.message


def test_nested_paths_are_json_pointers_with_escaped_names() -> None:
    old = record(meta=obj(**{"a/b": prop(), "c~d": prop()}))
    new = record(meta=obj(**{"a/b": prop("integer"), "c~d": prop("boolean")}))

    changes = check(new, against(old), Mode.BACKWARD)

    assert [change.path for change in changes] == ["/meta/a~1b", "/meta/c~0d"]
    assert "'meta.a/b'" in changes[0].message


def test_array_items_are_named_with_brackets_in_messages() -> None:
    new = arrivals(stops=array(obj(stop_id=prop()), maxItems=50))

    [change] = check(new, against(BASE), Mode.FORWARD)

    assert "'stops[].seq'" in change.message


def test_type_change_does_not_descend_into_unrelated_shapes() -> None:
    # An object that became a string is one breaking change, not one per nested field.
    new = arrivals(location=prop())

    assert found(check(new, against(BASE), Mode.FULL)) == {("/location", "type-changed")}


def test_items_added_to_an_untyped_array_narrow_it() -> None:
    old = record(tags=prop("array"))
    new = record(tags=array(prop()))

    assert found(check(new, against(old), Mode.BACKWARD)) == {("/tags/*", "type-narrowed")}
    assert check(new, against(old), Mode.FORWARD) == []


# --------------------------------------------------------------------------------------------------
# primary key


def test_primary_key_change_breaks_every_mode_but_none() -> None:
    new = arrivals(arrival_id=prop(), stop_id=pk(prop(pattern="^S[0-9]{4}$")))

    for mode in Mode:
        changes = check(new, against(BASE), mode)
        if mode is Mode.NONE:
            assert changes == []
        else:
            assert ("", "primary-key-changed") in found(changes), mode
            assert all((change.old, change.new) == (["arrival_id"], ["stop_id"]) for change in changes)


def test_primary_key_added_where_there_was_none_is_a_change() -> None:
    old = record(stop_id=prop(), route_id=prop())
    new = record(stop_id=pk(prop()), route_id=prop())

    [change] = check(new, against(old), Mode.BACKWARD)

    assert (change.rule, change.old, change.new) == ("primary-key-changed", None, ["stop_id"])


def test_composite_primary_key_order_follows_positions() -> None:
    old = record(stop_id=pk(prop(), 2), route_id=pk(prop(), 1))
    same_key_declared_on_record = {
        **record(stop_id=prop(), route_id=prop()),
        "x-citybase-primary-key": ["route_id", "stop_id"],
    }
    swapped = record(stop_id=pk(prop(), 1), route_id=pk(prop(), 2))

    assert check(same_key_declared_on_record, against(old), Mode.FULL) == []
    assert found(check(swapped, against(old), Mode.BACKWARD)) == {("", "primary-key-changed")}


# --------------------------------------------------------------------------------------------------
# modes, versions, transitivity


@pytest.mark.parametrize("mode", list(Mode))
def test_identical_schemas_are_compatible_in_every_mode(mode: Mode) -> None:
    assert check(BASE, [("1", BASE), ("2", copy.deepcopy(BASE))], mode) == []


@pytest.mark.parametrize("mode", list(Mode))
def test_only_none_accepts_an_unrelated_schema(mode: Mode) -> None:
    unrelated = record(anything=prop("boolean"))

    changes = check(unrelated, against(BASE), mode)

    assert (changes == []) is (mode is Mode.NONE)


def test_first_version_has_nothing_to_break() -> None:
    assert check(BASE, [], Mode.FULL_TRANSITIVE) == []


def test_mode_may_be_given_by_name() -> None:
    assert check(arrivals(route_id=None), against(BASE), "FORWARD") == check(
        arrivals(route_id=None), against(BASE), Mode.FORWARD
    )
    with pytest.raises(ValueError, match="SIDEWAYS"):
        check(BASE, against(BASE), "SIDEWAYS")


def test_backward_transitive_catches_a_break_with_an_older_version_only() -> None:
    # Confluent's classic: a field dropped then re-added with another type and a default is
    # compatible with the version that dropped it, but cannot read the data of the one before.
    history = [
        ("1", arrivals(platform=prop())),
        ("2", arrivals()),
    ]
    new = arrivals(platform=prop("integer", default=0))

    assert check(new, history, Mode.BACKWARD) == []
    changes = check(new, history, Mode.BACKWARD_TRANSITIVE)
    assert [(c.against_version, c.path, c.rule) for c in changes] == [("1", "/platform", "type-changed")]


def test_forward_transitive_catches_a_break_with_an_older_version_only() -> None:
    history = [
        ("1", arrivals(platform=prop(nullable=True))),
        ("2", arrivals()),
    ]
    new = arrivals(platform=prop("integer", nullable=True))

    assert check(new, history, Mode.FORWARD) == []
    changes = check(new, history, Mode.FORWARD_TRANSITIVE)
    assert [(c.against_version, c.path, c.rule) for c in changes] == [("1", "/platform", "type-changed")]


def test_full_transitive_checks_both_directions_against_every_version() -> None:
    history = [
        ("1", arrivals(platform=prop())),
        ("2", arrivals()),
    ]
    new = arrivals(platform=prop("integer", default=0))

    changes = check(new, history, Mode.FULL_TRANSITIVE)

    assert [(c.against_version, c.direction, c.rule) for c in changes] == [
        ("1", "backward", "type-changed"),
        ("1", "forward", "type-changed"),
    ]
    assert check(new, history, Mode.FULL) == []


def test_non_transitive_modes_compare_with_the_latest_version_only() -> None:
    history = [("1", record(a=prop("integer"))), ("2", BASE)]

    assert check(BASE, history, Mode.FULL) == []
    assert check(BASE, history, Mode.FULL_TRANSITIVE) != []


def test_result_is_sorted_by_version_order_then_path_then_rule() -> None:
    # "1.10.0" sorts before "1.9.0" as a string; the order given (oldest first) must win.
    history = [("1.9.0", BASE), ("1.10.0", BASE)]
    new = arrivals(route_id=None, delay_s=None, stop_id=prop(pattern="^S[0-9]{5}$"))

    changes = check(new, history, Mode.FULL_TRANSITIVE)

    keys = [(c.against_version, c.path, c.rule, c.direction) for c in changes]
    assert keys == [
        ("1.9.0", "/delay_s", "field-removed", "forward"),
        ("1.9.0", "/route_id", "field-removed", "forward"),
        ("1.9.0", "/stop_id", "constraint-changed", "backward"),
        ("1.9.0", "/stop_id", "constraint-changed", "forward"),
        ("1.10.0", "/delay_s", "field-removed", "forward"),
        ("1.10.0", "/route_id", "field-removed", "forward"),
        ("1.10.0", "/stop_id", "constraint-changed", "backward"),
        ("1.10.0", "/stop_id", "constraint-changed", "forward"),
    ]
    assert check(new, history, Mode.FULL_TRANSITIVE) == changes


def test_check_does_not_modify_its_inputs() -> None:
    old, new = arrivals(), arrivals(route_id=None, occupancy=prop(nullable=True))
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)

    check(new, against(old), Mode.FULL_TRANSITIVE)
    diff(old, new)

    assert (old, new) == (old_copy, new_copy)


# --------------------------------------------------------------------------------------------------
# diff and render


def test_diff_of_identical_schemas_is_empty() -> None:
    assert diff(BASE, copy.deepcopy(BASE)) == []


def test_diff_lists_added_removed_and_changed_fields() -> None:
    new = arrivals(
        route_id=None,
        platform=prop(nullable=True),
        delay_s=prop("number", minimum=-3600, maximum=900),
        drop_required=["stop_id"],
    )

    changes = diff(BASE, new)

    assert [(c.path, c.kind) for c in changes] == [
        ("/stop_id", "changed"),
        ("/route_id", "removed"),
        ("/delay_s", "changed"),
        ("/platform", "added"),
    ]
    stop, route, delay, platform = changes
    assert (stop.old, stop.new) == ({"required": True}, {"required": False})
    assert (route.old, route.new) == (prop(maxLength=8), None)
    assert (delay.old, delay.new) == (
        {"type": "integer", "maximum": 7200},
        {"type": "number", "maximum": 900},
    )
    assert delay.message == "field 'delay_s' changed: type integer → number; maximum 7200 → 900"
    assert (platform.old, platform.new) == (None, prop(nullable=True))
    assert platform.message == "field 'platform' added (optional, type string | null)"
    assert route.message == "field 'route_id' removed (was required, type string)"


def test_diff_message_names_enum_values_that_came_and_went() -> None:
    new = arrivals(occupancy=prop(nullable=True, enum=["EMPTY", "MANY_SEATS_AVAILABLE", None, "STANDING"]))

    [change] = diff(BASE, new)

    assert (change.old, change.new) == ({"enum": OCCUPANCY}, {"enum": new["properties"]["occupancy"]["enum"]})
    assert change.message == 'field \'occupancy\' changed: enum +["STANDING"] -["FULL"]'


def test_diff_descends_into_nested_objects_and_array_items() -> None:
    new = arrivals(
        location=obj(lat=prop("number", minimum=-90, maximum=90), alt=prop("number", nullable=True)),
        tags=array(prop(minLength=2), nullable=True),
    )

    changes = diff(BASE, new)

    assert [(c.path, c.kind, c.old, c.new) for c in changes] == [
        ("/location/lon", "removed", prop("number", minimum=-180, maximum=180), None),
        ("/location/alt", "added", None, prop("number", nullable=True)),
        ("/tags/*", "changed", {"minLength": 1}, {"minLength": 2}),
    ]


def test_diff_shows_annotation_and_description_changes_but_not_reorderings() -> None:
    new = arrivals(
        occupancy=prop(nullable=True, enum=list(reversed(OCCUPANCY))),
        tags={**array(prop(minLength=1), nullable=True), "type": ["null", "array"]},
        route_id=prop(maxLength=8, description="line", **{"x-citybase-classification": "open"}),
    )

    [change] = diff(BASE, new)

    assert change.path == "/route_id"
    assert change.new == {"description": "line", "x-citybase-classification": "open"}
    assert change.old == {}


def test_diff_reports_record_level_changes_at_the_root() -> None:
    new = {**BASE, "description": "Arrivals of buses at stops"}

    assert [(c.path, c.kind, c.new) for c in diff(BASE, new)] == [
        ("", "changed", {"description": "Arrivals of buses at stops"})
    ]


def test_render_writes_one_line_per_change() -> None:
    new = arrivals(route_id=None, platform=prop())

    neutral = render(diff(BASE, new))
    breaking = render(check(new, against(BASE, "1.0.0"), Mode.FULL))

    assert neutral.splitlines() == [
        "- /route_id  field 'route_id' removed (was required, type string)",
        "+ /platform  field 'platform' added (required, type string)",
    ]
    lines = breaking.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("✗ /platform  field-added-required (backward, against 1.0.0): ")
    assert lines[1].startswith("✗ /route_id  field-removed (forward, against 1.0.0): ")


def test_render_of_nothing_says_so() -> None:
    assert render([]) == "no changes"


def test_render_names_the_record_for_root_changes() -> None:
    new = arrivals(arrival_id=prop(), stop_id=pk(prop(pattern="^S[0-9]{4}$")))

    assert render(check(new, against(BASE), Mode.BACKWARD)).startswith("✗ (record)  primary-key-changed")


def test_changes_are_immutable_values() -> None:
    change = Change("/a", "added", None, {"type": "string"}, "field 'a' added")

    with pytest.raises(AttributeError):
        change.path = "/b"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# properties over random schemas

FIELD_NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
SCALARS = ["string", "integer", "number", "boolean"]


@st.composite
def property_schemas(draw: st.DrawFn, depth: int = 2) -> Schema:
    """A random property of the derived dialect, with random constraints and nesting."""
    type_ = draw(st.sampled_from(SCALARS + (["object", "array"] if depth > 0 else [])))
    keywords: dict[str, Any] = {}
    if type_ == "string":
        keywords = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "minLength": st.integers(0, 5),
                    "maxLength": st.integers(5, 50),
                    "pattern": st.sampled_from(["^[A-Z]+$", "^S[0-9]{4}$"]),
                    "format": st.sampled_from(["date", "date-time", "time"]),
                    "enum": st.lists(st.text(max_size=4), min_size=1, max_size=4, unique=True),
                },
            )
        )
    elif type_ in ("integer", "number"):
        keywords = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "minimum": st.integers(-100, 0),
                    "maximum": st.integers(1, 100),
                    "exclusiveMinimum": st.integers(-100, 0),
                    "exclusiveMaximum": st.floats(1, 100),
                    "enum": st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True),
                },
            )
        )
    elif type_ == "object":
        properties = draw(st.dictionaries(FIELD_NAMES, property_schemas(depth - 1), max_size=4))
        keywords = {
            "properties": properties,
            "required": [name for name in properties if draw(st.booleans())],
        }
    elif type_ == "array":
        keywords = {"items": draw(property_schemas(depth - 1))}
        keywords.update(
            draw(
                st.fixed_dictionaries(
                    {}, optional={"minItems": st.integers(0, 3), "maxItems": st.integers(3, 9)}
                )
            )
        )
    if draw(st.booleans()):
        keywords["description"] = draw(st.text(max_size=10))
    if draw(st.booleans()):
        keywords["x-citybase-classification"] = draw(st.sampled_from(["open", "conditional", "restricted"]))
    return prop(type_, nullable=draw(st.booleans()), **keywords)


@st.composite
def record_schemas(draw: st.DrawFn) -> Schema:
    properties = draw(st.dictionaries(FIELD_NAMES, property_schemas(), max_size=8))
    if properties and draw(st.booleans()):
        first = next(iter(properties))
        properties[first] = pk(properties[first])
    return record(**properties)


def redescribed(schema: Any) -> Any:
    """A copy with every description rewritten: equal in meaning, unequal as a dict at every level.

    Comparing a schema with this copy defeats the equality shortcut, so the property below runs
    every rule on every field instead of passing because the dicts are equal.
    """
    if isinstance(schema, list):
        return [redescribed(member) for member in schema]
    if not isinstance(schema, dict):
        return schema
    rewritten = {key: redescribed(value) for key, value in schema.items()}
    if "type" in schema:
        rewritten["description"] = f"{schema.get('description', '')} (reworded)"
    if "properties" in schema:
        rewritten["properties"] = {name: redescribed(value) for name, value in schema["properties"].items()}
    return rewritten


def fresh_name(schema: Schema, name: str) -> str:
    while name in schema["properties"]:
        name += "_"
    return name


PROPERTY_SETTINGS = settings(max_examples=150, database=None, deadline=None)


@PROPERTY_SETTINGS
@given(record_schemas())
def test_every_schema_is_compatible_with_itself(schema: Schema) -> None:
    assert check(schema, [("1", schema)], Mode.FULL_TRANSITIVE) == []
    assert check(schema, [("1", copy.deepcopy(schema))], Mode.FULL_TRANSITIVE) == []
    assert check(redescribed(schema), [("1", schema)], Mode.FULL_TRANSITIVE) == []
    assert diff(schema, copy.deepcopy(schema)) == []


@PROPERTY_SETTINGS
@given(record_schemas(), FIELD_NAMES, property_schemas())
def test_adding_an_optional_field_passes_every_mode(schema: Schema, name: str, field: Schema) -> None:
    name = fresh_name(schema, name)
    optional = {
        **field,
        "type": [field["type"] if isinstance(field["type"], str) else field["type"][0], "null"],
    }
    new = {**schema, "properties": {**schema["properties"], name: optional}}

    for mode in Mode:
        assert check(new, [("1", schema)], mode) == [], mode
    assert [(c.path, c.kind) for c in diff(schema, new)] == [(f"/{name}", "added")]


@PROPERTY_SETTINGS
@given(record_schemas(), FIELD_NAMES, property_schemas())
def test_adding_a_required_field_breaks_backward_only(schema: Schema, name: str, field: Schema) -> None:
    name = fresh_name(schema, name)
    new = {
        **schema,
        "properties": {**schema["properties"], name: field},
        "required": [*schema["required"], name],
    }

    assert found(check(new, [("1", schema)], Mode.BACKWARD)) == {(f"/{name}", "field-added-required")}
    assert check(new, [("1", schema)], Mode.FORWARD) == []
    # Swapping the versions turns the addition into the removal FORWARD refuses.
    assert found(check(schema, [("1", new)], Mode.FORWARD)) == {(f"/{name}", "field-removed")}
