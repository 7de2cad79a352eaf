"""The grant policy: granted fields only, every masking kind, nested paths, grant events, and the
property that no field outside a grant and no unmasked sensitive value ever comes out."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from datetime import datetime
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.catalog.contracts.conventions import SENSITIVE_CLASSIFICATIONS
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import sensitive_fields
from services.common.policy import (
    HASH_HEX_CHARS,
    HASH_PREFIX,
    FieldMask,
    GrantTerms,
    Policy,
    RowFilterError,
    canonical_json,
    compile_policy,
    encode_hash_key,
    hash_key_of,
    new_hash_key,
    parse_masking_path,
)
from tests.factories import example_contract

GRANT_KEYS: dict[str, bytes] = {}
"""One random hash key per grant id, as the catalog makes them."""


def key_of(grant_id: str) -> bytes:
    return GRANT_KEYS.setdefault(grant_id, new_hash_key())


PROPERTY_SETTINGS = settings(
    max_examples=150, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def grant(
    fields: list[str], masking: dict[str, Any] | None = None, row_filter: str | None = None, **more: Any
) -> GrantTerms:
    return GrantTerms.from_event(
        {
            "id": more.get("id", "g-1"),
            "version": more.get("version", 1),
            "scenario_id": more.get("scenario_id", "one-stop-hospital-visit"),
            "dataset_id": "health.outpatient-visits",
            "fields": fields,
            "masking": masking or {},
            "row_filter": row_filter,
        }
    )


def policy(
    fields: list[str], masking: dict[str, Any] | None = None, row_filter: str | None = None, **more: Any
) -> Policy:
    terms = grant(fields, masking, row_filter, **more)
    return compile_policy(terms, hash_key=key_of(terms.grant_id))


def masked(rule: Any, value: Any) -> Any:
    """What ``rule`` makes of ``value`` (a missing key for a removed value)."""
    return policy(["v"], {"v": rule}).apply({"v": value})


VISIT = {
    "visit_id": "OV-20261124-000123",
    "hospital_id": "H00012",
    "clinic": "cardiology",
    "patient_id": "SHYB0123456789",
    "age_band": "40-59",
    "wait_minutes": 37,
    "registered_at": "2026-11-24T09:13:11.123+08:00",
    "channel": "online",
}


# --- fields -------------------------------------------------------------------------------------


def test_only_granted_fields_present_in_the_record_come_out() -> None:
    out = policy(["visit_id", "clinic", "wait_minutes", "not_in_records"]).apply({**VISIT, "extra": "x"})
    assert out == {"visit_id": "OV-20261124-000123", "clinic": "cardiology", "wait_minutes": 37}


def test_a_missing_field_stays_missing_and_a_null_stays_null() -> None:
    assert policy(["clinic", "channel"]).apply({"channel": None}) == {"channel": None}


def test_the_record_is_not_changed() -> None:
    record = {**VISIT, "contacts": [{"phone": "13812345678"}], "location": {"lat": 31.23456}}
    before = copy.deepcopy(record)
    policy(
        ["patient_id", "contacts", "location"],
        {"patient_id": "hash", "contacts[].phone": "partial", "location.lat": "generalize"},
    ).apply(record)
    assert record == before


def test_apply_many_leaves_out_dropped_records() -> None:
    visits = [{**VISIT, "wait_minutes": minutes} for minutes in (5, 50, None, 90)]
    out = policy(["wait_minutes"], row_filter="wait_minutes > 30").apply_many(visits)
    assert out == [{"wait_minutes": 50}, {"wait_minutes": 90}]


def test_the_row_filter_reads_the_original_record_and_any_field() -> None:
    visits_policy = policy(["clinic", "patient_id"], {"patient_id": "hash"}, 'patient_id == "SHYB0123456789"')
    assert visits_policy.apply(VISIT) == {
        "clinic": "cardiology",
        "patient_id": visits_policy.apply(VISIT)["patient_id"],
    }  # type: ignore[index]
    assert visits_policy.apply({**VISIT, "patient_id": "SHYB9999999999"}) is None
    assert policy(["clinic"], row_filter='channel == "online"').apply(VISIT) == {"clinic": "cardiology"}


def test_a_malformed_row_filter_fails_at_compile_time() -> None:
    with pytest.raises(RowFilterError):
        policy(["clinic"], row_filter="clinic ==")


# --- hash ---------------------------------------------------------------------------------------


def test_hash_is_keyed_blake2b_of_the_canonical_json() -> None:
    key = key_of("g-1")

    def blake(key: bytes, data: bytes) -> str:
        return hashlib.blake2b(data, key=key, digest_size=16, person=b"citybase/hash/v1").hexdigest()

    assert masked("hash", "SHYB0123456789") == {"v": HASH_PREFIX + blake(key, b'"SHYB0123456789"')}
    long_key = b"k" * 100  # longer than BLAKE2b's 64-byte key: hashed down first
    terms = grant(["v"], {"v": "hash"})
    assert compile_policy(terms, hash_key=long_key).apply({"v": [1, "é"]}) == {
        "v": HASH_PREFIX + blake(hashlib.blake2b(long_key).digest(), '[1,"é"]'.encode())
    }
    assert len(HASH_PREFIX) + HASH_HEX_CHARS == len(masked("hash", 1)["v"])


def test_hashes_are_stable_within_a_grant_and_differ_between_grants() -> None:
    first = policy(["patient_id"], {"patient_id": "hash"}, id="g-a")
    next_version = policy(["patient_id"], {"patient_id": "hash"}, id="g-a", version=7)
    same_scenario = policy(["patient_id"], {"patient_id": "hash"}, id="g-b")
    other_scenario = policy(["patient_id"], {"patient_id": "hash"}, id="g-c", scenario_id="b")
    assert first.apply(VISIT) == next_version.apply(VISIT)
    assert first.apply(VISIT) != same_scenario.apply(VISIT)
    assert first.apply(VISIT) != other_scenario.apply(VISIT)
    assert new_hash_key() != new_hash_key() and len(new_hash_key()) == 32


def test_the_grant_event_carries_the_key_and_without_one_a_hash_removes_the_value() -> None:
    key = new_hash_key()
    assert hash_key_of({"hash_key": encode_hash_key(key)}) == key
    assert hash_key_of({}) is None
    for bad in (b"x", "!!", encode_hash_key(b"short")):
        with pytest.raises(ValueError, match="hash_key"):
            hash_key_of({"hash_key": bad})
    keyless = compile_policy(grant(["v", "w"], {"v": "hash"}), hash_key=None)
    assert keyless.apply({"v": "SHYB0123456789", "w": 1}) == {"w": 1}
    assert keyless.apply({"v": None, "w": 1}) == {"v": None, "w": 1}


def test_hash_tells_types_apart_but_not_one_number_written_twice() -> None:
    assert masked("hash", 1) != masked("hash", "1")
    assert masked("hash", 1) == masked("hash", 1.0)
    assert masked("hash", True) != masked("hash", 1)
    assert masked("hash", {"b": 1, "a": 2}) == masked("hash", {"a": 2, "b": 1.0})
    assert masked("hash", None) == {"v": None}
    assert masked("hash", "\ud800") != masked("hash", "\udc00")  # JSON may carry lone surrogates


def test_canonical_json() -> None:
    assert canonical_json({"b": [1.0, 2.5, "é"], "a": None}) == '{"a":null,"b":[1,2.5,"é"]}'
    assert canonical_json('a"b') == '"a\\"b"'


def test_an_empty_hash_key_is_refused() -> None:
    with pytest.raises(ValueError, match="hash key"):
        compile_policy(grant(["v"]), hash_key=b"")


# --- redact, partial, generalize ---------------------------------------------------------------


def test_redact_removes_the_field_whatever_it_holds() -> None:
    assert masked("redact", "13812345678") == {}
    assert masked("redact", None) == {}


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("partial", "13812345678", "138****5678"),
        ({"kind": "partial", "keepPrefix": 1, "keepSuffix": 0}, "secret", "s*****"),
        ({"kind": "partial", "keepPrefix": 0, "keepSuffix": 2}, "secret", "****et"),
        ("partial", "1234567", "*******"),  # 3 + 4 would keep everything
        ("partial", "12345678", "123*5678"),
        ("partial", "", ""),
        ("partial", 13812345678, "138****5678"),
        ("partial", "张三丰的电话号码", "张三丰*电话号码"),
        ("partial", None, None),
    ],
)
def test_partial(rule: Any, value: Any, expected: Any) -> None:
    assert masked(rule, value) == {"v": expected}


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("generalize", 31.234567, 31.23),
        ({"kind": "generalize", "precision": 3}, 121.4737019, 121.474),
        ({"kind": "generalize", "precision": 0}, 31.7, 32.0),
        ({"kind": "generalize", "precision": -2}, 1234, 1200),
        ("generalize", 37, 37),
        ("generalize", "2026-11-24", "2026-11-01"),
        ({"kind": "generalize", "granularity": "year"}, "2026-11-24", "2026-01-01"),
        ({"kind": "generalize", "granularity": "day"}, "2026-11-24", "2026-11-24"),
        ("generalize", "2026-11-24T09:13:11.123+08:00", "2026-11-24T00:00:00+08:00"),
        ({"kind": "generalize", "granularity": "hour"}, "2026-11-24T09:13:11Z", "2026-11-24T09:00:00Z"),
        ({"kind": "generalize", "granularity": "month"}, "2026-11-24 09:13", "2026-11-01 00:00:00"),
        (
            {"kind": "generalize", "granularity": "year"},
            "2026-11-24T09:13:11-0500",
            "2026-01-01T00:00:00-0500",
        ),
        ("generalize", None, None),
    ],
)
def test_generalize(rule: Any, value: Any, expected: Any) -> None:
    out = masked(rule, value)
    assert out == {"v": expected}
    assert type(out["v"]) is type(expected)


@pytest.mark.parametrize(
    "value",
    [
        "Putuo district",
        "2026-11",
        "2026-13-01",
        "20261124",
        "20261124T0913",
        "2026-11-24X09:13",
        "2026-11-24T25:00",
        True,
        {"lat": 1.0},
        [31.2, 121.4],
    ],
)
def test_generalize_removes_what_it_cannot_coarsen(value: Any) -> None:
    assert masked("generalize", value) == {}


TRUNCATE = {
    "year": {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    "month": {"day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    "day": {"hour": 0, "minute": 0, "second": 0, "microsecond": 0},
    "hour": {"minute": 0, "second": 0, "microsecond": 0},
}


@PROPERTY_SETTINGS
@given(
    st.datetimes(timezones=st.none() | st.timezones()) | st.dates(),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds", "minutes", "hours"]),
    st.sampled_from(["year", "month", "day", "hour"]),
)
def test_generalize_truncates_any_iso_date_or_timestamp(
    moment: Any, separator: str, timespec: str, granularity: str
) -> None:
    if isinstance(moment, datetime):
        text = moment.isoformat(sep=separator, timespec=timespec)
        text = text.replace("+00:00", "Z") if timespec == "seconds" else text
    else:
        text = moment.isoformat()
    out = masked({"kind": "generalize", "granularity": granularity}, text)["v"]
    parsed = datetime.fromisoformat(out.upper())
    original = datetime.fromisoformat(text.upper())
    if isinstance(moment, datetime):
        assert parsed == original.replace(**TRUNCATE[granularity])  # type: ignore[arg-type]
        assert parsed.utcoffset() == original.utcoffset()
    else:
        assert (
            parsed.date()
            == original.replace(**TRUNCATE[granularity if granularity != "hour" else "day"]).date()
        )  # type: ignore[arg-type]


@PROPERTY_SETTINGS
@given(st.text(max_size=40) | st.from_regex(r"\d{4}-\d{2}-\d{2}([Tt ].{0,20})?", fullmatch=True))
def test_generalize_gives_a_date_or_timestamp_or_nothing(text: str) -> None:
    out = masked("generalize", text)
    if out:
        assert datetime.fromisoformat(out["v"].upper()) <= datetime.fromisoformat(text.upper())
        assert out["v"][:7] == text[:7]


def test_generalize_keeps_non_finite_numbers() -> None:
    assert masked("generalize", math.inf) == {"v": math.inf}
    assert math.isnan(masked("generalize", math.nan)["v"])


# --- nested paths -------------------------------------------------------------------------------


REQUEST = {
    "request_id": "R-1",
    "location": {"district": "Putuo", "lat": 31.234567, "lng": 121.4737},
    "contacts": [
        {"name": "Li", "phone": "13812345678"},
        {"name": "Wang", "phone": None},
        {"name": "Zhao"},
        "not an object",
    ],
    "tags": ["noise", "night"],
    "grid": [[{"id": "a1"}], [{"id": "b2"}]],
}


def test_masks_on_object_children_and_array_items() -> None:
    out = policy(
        ["location", "contacts", "tags", "grid"],
        {
            "location.lat": "generalize",
            "location.lng": {"kind": "generalize", "precision": 1},
            "contacts[].phone": "partial",
            "contacts[].name": "redact",
            "tags[]": "hash",
            "grid[][].id": "redact",
        },
    ).apply(REQUEST)
    assert out is not None
    assert out["location"] == {"district": "Putuo", "lat": 31.23, "lng": 121.5}
    assert out["contacts"] == [{"phone": "138****5678"}, {"phone": None}, {}, None]
    assert [tag.startswith(HASH_PREFIX) for tag in out["tags"]] == [True, True]
    assert out["grid"] == [[{}], [{}]]


def test_a_mask_on_a_parent_applies_to_what_the_masks_beneath_it_made() -> None:
    caller = {"name": "王芳", "phone": "13812345678"}
    wide_open = {"kind": "partial", "keepPrefix": 34, "keepSuffix": 0}  # all but one character
    out = policy(["caller"], {"caller": wide_open, "caller.phone": "partial"}).apply({"caller": caller})
    assert out == {"caller": canonical_json({"name": "王芳", "phone": "138****5678"})[:34] + "*"}
    out = policy(["contacts"], {"contacts": wide_open, "contacts[].phone": "redact"}).apply(REQUEST)
    assert out is not None and "13812345678" not in out["contacts"]
    assert (
        policy(["caller"], {"caller": "generalize", "caller.phone": "hash"}).apply({"caller": caller}) == {}
    )


def test_a_mask_on_a_field_covers_masks_beneath_it() -> None:
    out = policy(
        ["location", "contacts"],
        {"location": "hash", "location.lat": "redact", "contacts[]": "redact", "contacts[].phone": "hash"},
    ).apply(REQUEST)
    assert out is not None
    assert out["location"].startswith(HASH_PREFIX)
    assert out["contacts"] == [None, None, None, None]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("location.lat", "31.2,121.4"),  # a string where an object is expected
        ("location.lat", [{"lat": 31.2}]),  # an array where an object is expected
        ("contacts[].phone", {"phone": "13812345678"}),  # an object where an array is expected
    ],
)
def test_a_value_of_the_wrong_shape_for_a_nested_mask_is_removed(path: str, value: Any) -> None:
    name = path.split(".")[0].removesuffix("[]")
    assert policy([name], {path: "hash"}).apply({name: value}) == {}


def test_a_null_on_a_nested_path_stays_null() -> None:
    assert policy(["location"], {"location.lat": "hash"}).apply({"location": None}) == {"location": None}


def test_masking_paths() -> None:
    assert parse_masking_path("patient_id") == (("patient_id", 0),)
    assert parse_masking_path("contacts[].phone") == (("contacts", 1), ("phone", 0))
    assert parse_masking_path("grid[][].id") == (("grid", 2), ("id", 0))
    for path in ["", "a.", ".a", "a[0]", "a[", "a]", "a..b", "[]"]:
        with pytest.raises(ValueError, match="masking path"):
            parse_masking_path(path)


def test_masks_on_fields_outside_the_grant_are_ignored() -> None:
    assert policy(["clinic"], {"patient_id": "hash"}).apply(VISIT) == {"clinic": "cardiology"}


# --- masking rules and grant events ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mask"),
    [
        ("hash", FieldMask("hash")),
        ({"kind": "redact"}, FieldMask("redact")),
        (
            {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4},
            FieldMask("partial", keep_prefix=3, keep_suffix=4),
        ),
        ({"kind": "partial"}, FieldMask("partial")),
        (
            {"kind": "generalize", "precision": 2, "granularity": "month"},
            FieldMask("generalize", precision=2, granularity="month"),
        ),
    ],
)
def test_field_mask_reads_and_writes_the_grant_form(value: Any, mask: FieldMask) -> None:
    assert FieldMask.from_value(value) == mask
    assert FieldMask.from_value(mask.to_value()) == mask
    assert mask.to_value() == ({"kind": value} if isinstance(value, str) else value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("scramble", "masking kind must be one of hash, redact, partial, generalize, not 'scramble'"),
        (3, "a masking rule is a kind"),
        ({"keepPrefix": 3}, "masking kind must be one of"),
        ({"kind": "hash", "salt": "x"}, "a hash masking rule takes no options, not salt"),
        (
            {"kind": "partial", "precision": 2},
            "a partial masking rule takes only keepPrefix, keepSuffix, not precision",
        ),
        ({"kind": "partial", "keepPrefix": -1}, "keepPrefix must be an integer from 0"),
        ({"kind": "partial", "keepSuffix": True}, "keepSuffix must be an integer"),
        ({"kind": "partial", "keepSuffix": "4"}, "keepSuffix must be an integer"),
        ({"kind": "generalize", "precision": 2.5}, "precision must be an integer from -15 to 15"),
        ({"kind": "generalize", "precision": 99}, "precision must be an integer from -15 to 15"),
        ({"kind": "generalize", "granularity": "week"}, "granularity must be one of year, month, day, hour"),
    ],
)
def test_field_mask_says_what_is_expected(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        FieldMask.from_value(value)


def test_field_mask_refuses_options_of_another_kind() -> None:
    with pytest.raises(ValueError, match="a hash masking rule takes no keepPrefix"):
        FieldMask("hash", keep_prefix=3)


def test_grant_terms_from_an_event() -> None:
    terms = GrantTerms.from_event(
        {
            "id": "g-7",
            "version": 3,
            "scenario_id": "one-stop-hospital-visit",
            "dataset_id": "health.outpatient-visits",
            "fields": ["visit_id", "patient_id", "visit_id"],
            "masking": {"patient_id": "hash", "contacts[].phone": {"kind": "partial", "keepSuffix": 2}},
            "row_filter": "",
            "state": "active",
            "expires_at": "2027-01-01T00:00:00Z",
        }
    )
    assert terms.grant_id == "g-7" and terms.version == 3
    assert terms.fields == ("visit_id", "patient_id")
    assert terms.masking == {
        "patient_id": FieldMask("hash"),
        "contacts[].phone": FieldMask("partial", keep_suffix=2),
    }
    assert terms.row_filter is None
    with pytest.raises(TypeError):
        terms.masking["clinic"] = FieldMask("redact")  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": ""}, "grant id must be a non-empty string"),
        ({"version": "1"}, "grant version must be a non-negative integer"),
        ({"version": True}, "grant version must be a non-negative integer"),
        ({"fields": "visit_id"}, "grant fields must be a list of field names"),
        ({"fields": ["visit_id", 3]}, "grant fields must be a list of field names"),
        ({"masking": ["hash"]}, "grant masking must be an object"),
        ({"masking": {"patient_id": "scramble"}}, "grant masking\\['patient_id'\\]: masking kind must be"),
        ({"masking": {"a..b": "hash"}}, "grant masking\\['a..b'\\]: masking path"),
        ({"masking": {"a[0]": "hash"}}, "grant masking\\['a\\[0\\]'\\]: masking path"),
        ({"row_filter": 3}, "grant row_filter must be a string or null"),
    ],
)
def test_grant_terms_say_what_is_wrong_with_an_event(change: dict[str, Any], message: str) -> None:
    event = {"id": "g", "version": 1, "scenario_id": "s", "dataset_id": "d", "fields": ["a"], **change}
    with pytest.raises(ValueError, match=message):
        GrantTerms.from_event(event)


# --- properties ---------------------------------------------------------------------------------
# Records are generated from the record schema the catalog derives from a contract (every example
# contract, plus one with nested objects and arrays), with arbitrary extra keys; grants take any
# subset of the fields and mask every sensitive one, by any kind.

EXAMPLE_CONTRACTS = {
    "health.outpatient-visits": "1.1.0",
    "community.service-requests": "1.0.0",
    "market.inspections": "1.0.0",
    "spatial.building-permits": "1.0.0",
}

NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string", "pattern": "^CR-[0-9]{6}$"},
        "category": {"type": "string", "enum": ["noise", "repair", "elderly-care"]},
        "location": {
            "type": ["object", "null"],
            "properties": {
                "district": {"type": "string"},
                "lat": {
                    "type": "number",
                    "minimum": -90,
                    "maximum": 90,
                    "x-citybase-masking": {"kind": "generalize", "precision": 2},
                },
                "address": {"type": "string", "minLength": 8, "x-citybase-classification": "personal"},
            },
        },
        "contacts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 2, "x-citybase-classification": "pii"},
                    "phone": {
                        "type": "string",
                        "pattern": "^1[3-9][0-9]{9}$",
                        "x-citybase-masking": "partial",
                    },
                },
            },
        },
        "reported_on": {"type": "string", "format": "date", "x-citybase-masking": "generalize"},
    },
}
NESTED_SENSITIVE = {"location.lat", "location.address", "contacts[].name", "contacts[].phone", "reported_on"}


@cache
def example_schema(dataset_id: str) -> tuple[dict[str, Any], frozenset[str]]:
    contract = parse_contract(example_contract(dataset_id, EXAMPLE_CONTRACTS[dataset_id]))
    return record_schema(contract), frozenset(sensitive_fields(contract))


SAFE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="*"), max_size=24)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SAFE_TEXT


def json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3)


JSON_VALUES = st.recursive(JSON_SCALARS, json_containers, max_leaves=8)


def timestamps() -> st.SearchStrategy[str]:
    return st.datetimes().map(lambda moment: moment.isoformat() + "+08:00")


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema allows (nulls where it allows them), now and then any JSON value instead:
    a record the contract does not allow must not leak either."""
    types = schema.get("type", "string")
    types = types if isinstance(types, list) else [types]
    options: list[st.SearchStrategy[Any]] = []
    for kind in types:
        if kind == "null":
            options.append(st.none())
        elif "enum" in schema:
            options.append(st.sampled_from([value for value in schema["enum"] if value is not None]))
        elif kind == "string" and "pattern" in schema:
            options.append(st.from_regex(schema["pattern"], fullmatch=True))
        elif kind == "string" and schema.get("format") == "date-time":
            options.append(timestamps())
        elif kind == "string" and schema.get("format") == "date":
            options.append(st.dates().map(str))
        elif kind == "string":
            options.append(
                st.text(
                    st.characters(codec="utf-8", exclude_characters="*"),
                    min_size=schema.get("minLength", 0),
                    max_size=min(schema.get("maxLength", 32), 32),
                )
            )
        elif kind == "integer":
            options.append(st.integers(schema.get("minimum", -(10**12)), schema.get("maximum", 10**12)))
        elif kind == "number":
            options.append(
                st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
            )
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "object":
            options.append(records_of(schema, extra=False))
        elif kind == "array":
            options.append(st.lists(values_of(schema.get("items", {})), min_size=1, max_size=3))
    if not options:
        return JSON_VALUES
    allowed = st.one_of(*options)
    return st.one_of(allowed, allowed, allowed, JSON_VALUES)


MOSTLY = st.sampled_from([True, True, True, False])
"""Present (or granted) three times in four: records and grants that are mostly full."""


def records_of(schema: dict[str, Any], *, extra: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})

    @st.composite
    def record(draw: st.DrawFn) -> dict[str, Any]:
        out = draw(st.dictionaries(SAFE_TEXT, JSON_VALUES, max_size=3)) if extra else {}
        for name, sub in properties.items():
            if draw(MOSTLY):
                out[name] = draw(values_of(sub))
            else:
                out.pop(name, None)
        return out

    return record()


def sensitive_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Paths of the properties the schema marks sensitive, as derive does for contracts."""
    paths = set()
    for name, sub in schema.get("properties", {}).items():
        path = prefix + name
        classification = str(sub.get("x-citybase-classification", "")).lower()
        if "x-citybase-masking" in sub or classification in SENSITIVE_CLASSIFICATIONS:
            paths.add(path)
        types = sub.get("type")
        types = types if isinstance(types, list) else [types]
        if "object" in types:
            paths |= sensitive_paths(sub, path + ".")
        if "array" in types:
            paths |= sensitive_paths(sub.get("items", {}), path + "[].")
    return paths


def path_steps(path: str) -> list[str]:
    """``contacts[].phone`` -> ``["contacts", "[]", "phone"]``."""
    steps: list[str] = []
    for segment in path.split("."):
        steps.append(segment.removesuffix("[]"))
        steps.extend(["[]"] * segment.endswith("[]"))
    return steps


def values_on(value: Any, steps: list[str]) -> list[Any]:
    """The values a record holds on a masking path, as steps."""
    if not steps:
        return [value]
    step, rest = steps[0], steps[1:]
    if step == "[]":
        return [found for item in value for found in values_on(item, rest)] if isinstance(value, list) else []
    return values_on(value[step], rest) if isinstance(value, dict) and step in value else []


def without(value: Any, steps: list[str]) -> Any:
    """``value`` with whatever lies on a masking path taken out."""
    if not steps:
        return None
    step, rest = steps[0], steps[1:]
    if step == "[]":
        return [without(item, rest) for item in value] if isinstance(value, list) else value
    if not isinstance(value, dict) or step not in value:
        return value
    if not rest:
        return {key: item for key, item in value.items() if key != step}
    return {**value, step: without(value[step], rest)}


def top(path: str) -> str:
    return path.split(".")[0].removesuffix("[]")


DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}")


MASKS = st.sampled_from(
    [
        "hash",
        "redact",
        "partial",
        {"kind": "partial", "keepPrefix": 0, "keepSuffix": 2},
        {"kind": "partial", "keepPrefix": 4, "keepSuffix": 4},
        "generalize",
        {"kind": "generalize", "precision": 0, "granularity": "year"},
    ]
)


@st.composite
def schema_record_and_grant(draw: st.DrawFn) -> tuple[dict[str, Any], GrantTerms, set[str]]:
    dataset_id = draw(st.sampled_from([*EXAMPLE_CONTRACTS, "nested", "nested"]))
    if dataset_id == "nested":
        schema, sensitive = NESTED_SCHEMA, NESTED_SENSITIVE
    else:
        schema, sensitive = example_schema(dataset_id)
    assert sensitive_paths(schema) == set(sensitive)
    record = draw(records_of(schema))
    names = [*schema["properties"], *draw(st.lists(SAFE_TEXT.filter(bool), max_size=2))]
    fields = [name for name in names if draw(MOSTLY)]
    masking = {path: draw(MASKS) for path in sorted(sensitive)}
    for name in draw(st.lists(st.sampled_from(list(schema["properties"])), unique=True, max_size=2)):
        masking.setdefault(name, draw(MASKS))
    terms = GrantTerms.from_event(
        {
            "id": "g",
            "version": 1,
            "scenario_id": "s",
            "dataset_id": dataset_id,
            "fields": fields,
            "masking": masking,
        }
    )
    return record, terms, set(sensitive)


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(schema_record_and_grant())
def test_no_field_outside_the_grant_and_no_unmasked_sensitive_value_comes_out(
    case: tuple[dict[str, Any], GrantTerms, set[str]],
) -> None:
    record, terms, sensitive = case
    out = policy_for(terms).apply(record)
    assert out is not None
    assert set(out) <= set(terms.fields) & set(record)
    masked_fields = {top(path) for path in terms.masking}
    for name in set(terms.fields) & set(record):
        if name not in masked_fields:
            assert out[name] is record[name]  # granted and unmasked: as it was
        elif name not in out:
            assert any(
                FieldMask.from_value(terms.masking[path]).kind in ("redact", "generalize")
                or "." in path
                or "[]" in path
                for path in terms.masking
                if top(path) == name
            )
    serialized = json.dumps(out, ensure_ascii=False)
    remainder = record
    for path in sensitive:
        remainder = without(remainder, path_steps(path))
    elsewhere = json.dumps(remainder, ensure_ascii=False)  # what the record holds outside sensitive paths
    for path in sensitive:
        # the outermost mask on the path is the one that applies
        covering = min(
            (
                other
                for other in terms.masking
                if path == other or path.startswith(other + ".") or path.startswith(other + "[]")
            ),
            key=len,
        )
        generalized = terms.masking[covering].kind == "generalize"
        for value in values_on(record, path_steps(path)):
            if generalized and (type(value) in (int, float) or DATE_LIKE.match(str(value))):
                continue  # coarsened, not hidden: a value already as coarse as the rule comes out as it was
            text = value if isinstance(value, str) else canonical_json(value)
            needles = {text, json.dumps(text, ensure_ascii=False)[1:-1]}  # as is, and as inside a JSON string
            if len(text) >= 6 and not any(needle in elsewhere for needle in needles):
                for needle in needles:
                    assert needle not in serialized, (path, text, out)


def policy_for(terms: GrantTerms) -> Policy:
    return compile_policy(terms, hash_key=key_of(terms.grant_id))


@PROPERTY_SETTINGS
@given(st.text(min_size=1, max_size=40), JSON_VALUES, JSON_VALUES)
def test_hash_is_equal_exactly_for_equal_canonical_values(name: str, first: Any, second: Any) -> None:
    assume(name.strip())
    hashing = policy_for(GrantTerms("g", 1, "s", "d", ("v",), {"v": FieldMask("hash")}))
    one, two = hashing.apply({"v": first}), hashing.apply({"v": second})
    assert (one == two) == (canonical_json(first) == canonical_json(second))
    other = policy_for(GrantTerms("g-" + name, 1, "s", "d", ("v",), {"v": FieldMask("hash")}))
    if first is not None:
        assert other.apply({"v": first}) != one


@PROPERTY_SETTINGS
@given(st.text(max_size=30), st.integers(0, 8), st.integers(0, 8))
def test_partial_never_shows_more_than_it_keeps(value: str, prefix: int, suffix: int) -> None:
    out = masked({"kind": "partial", "keepPrefix": prefix, "keepSuffix": suffix}, value)["v"]
    assert len(out) == len(value)
    shown = [index for index, char in enumerate(out) if char != "*"]
    if len(value) <= prefix + suffix:
        assert shown == []
    else:
        assert all(index < prefix or index >= len(value) - suffix for index in shown)
        assert out[:prefix] == value[:prefix] and out[len(value) - suffix :] == value[len(value) - suffix :]
