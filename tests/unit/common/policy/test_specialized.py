"""The policy compiled to one function per grant: the same verdicts as the row filter on values of
every type (the inline tests and the conditions they hand over to), the same records whether a
record holds every granted field or not, and no grant text ever read as code."""

from __future__ import annotations

from collections import UserString
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.policy import GrantTerms, Policy, compile_policy, new_hash_key, parse_row_filter
from services.common.policy.masking import REMOVED, FieldMask, hasher, mask_function

FILTERS = [
    'channel != "referral"',
    'channel == "online"',
    "wait >= 30",
    "wait < 12.5",
    'channel > "m"',
    'channel in ["online", "phone"]',
    'channel not in ["online", "phone", 1]',
    "wait in [30, 45.0]",
    "channel is null",
    "channel is not null",
    "flag",
    "place.district == 'Putuo'",
    'not (channel == "online")',
    'channel == "online" or wait > 10',
    'channel != "referral" and wait >= 30 and place.district is not null and flag',
]


class Text(str):
    """A string subclass: never taken by a fast path, always by the row filter's own condition."""


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-50, 50),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["online", "phone", "referral", "m", "z", "", "Putuo"]),
    st.sampled_from(["online", "m"]).map(Text),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["district"]), st.sampled_from(["Putuo", "Baoshan", None])),
)
RECORDS = st.dictionaries(st.sampled_from(["channel", "wait", "flag", "place", "visit"]), VALUES)


def compiled(
    fields: list[str], masking: dict[str, Any] | None = None, row_filter: str | None = None
) -> Policy:
    terms = GrantTerms.from_event(
        {
            "id": "g-1",
            "version": 1,
            "scenario_id": "s",
            "dataset_id": "health.outpatient-visits",
            "fields": fields,
            "masking": masking or {},
            "row_filter": row_filter,
        }
    )
    return compile_policy(terms, hash_key=new_hash_key())


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILTERS), st.lists(RECORDS, max_size=8))
def test_the_compiled_filter_gives_the_row_filters_verdict(text: str, records: list[dict[str, Any]]) -> None:
    policy = compiled(["visit", "channel"], row_filter=text)
    matches = parse_row_filter(text).matches
    for record in records:
        assert (policy.apply(record) is not None) is matches(record), record
    assert policy.apply_many(records) == [policy.apply(r) for r in records if matches(r)]


@pytest.mark.parametrize(
    "record",
    [
        {"visit": "v1", "when": "2026-11-24T09:13:11+08:00", "phone": "13812345678", "id": "p1"},
        {"visit": "v1", "when": "not a date", "phone": "13812345678", "id": "p1"},
        {"visit": "v1", "phone": None},
        {"when": "2026-11-24", "extra": "never delivered"},
        {},
    ],
)
def test_a_record_with_or_without_every_granted_field_comes_out_the_same(record: dict[str, Any]) -> None:
    masking = {"when": "generalize", "phone": "partial", "id": "hash", "gone": "redact"}
    policy = compiled(["visit", "when", "phone", "id", "gone"], masking)
    out = policy.apply(dict(record, gone="secret"))
    alone = {name: policy.apply({name: value}) for name, value in dict(record, gone="secret").items()}
    expected: dict[str, Any] = {}
    for name in ["visit", "when", "phone", "id", "gone"]:
        expected.update(alone.get(name) or {})
    assert out == expected
    assert list(out or {}) == [name for name in ["visit", "when", "phone", "id"] if name in expected]
    assert out is not None and "gone" not in out and REMOVED not in out.values()


def test_the_grant_order_holds_whatever_the_record_order() -> None:
    policy = compiled(["c", "a", "b"], {"a": "partial"})
    assert list(policy.apply({"b": 1, "a": "12345678901", "c": 3}) or {}) == ["c", "a", "b"]


def test_field_names_and_literals_are_data_never_code() -> None:
    name = 'x":\n    import os  # ") or True or ("'
    policy = compiled([name, "channel"], {name: "partial"}, row_filter="channel == '\\\"); import os; (\\\"'")
    record = {name: "1234567890", "channel": '"); import os; ("'}
    assert policy.apply(record) == {name: "123***7890", "channel": '"); import os; ("'}
    assert policy.apply({name: "1234567890", "channel": "other"}) is None


def test_a_string_subclass_is_judged_by_the_row_filter_itself() -> None:
    policy = compiled(["channel"], row_filter='channel in ["online"]')
    assert policy.apply({"channel": Text("online")}) == {"channel": "online"}
    assert policy.apply({"channel": UserString("online")}) is None  # not a string: unknown


# --- masks written out in the compiled function --------------------------------------------------

TIMESTAMP_PARTS = st.tuples(
    st.sampled_from(["2026", "2024", "0001", "9999", "202", "2026-"]),
    st.sampled_from(["-", "", "W", "/"]),
    st.sampled_from(["11", "02", "13", "00", "W48"]),
    st.sampled_from(["-", "", ":"]),
    st.sampled_from(["24", "29", "30", "31", "1", "00"]),
    st.sampled_from(["T", "t", " ", "_", ""]),
    st.sampled_from(
        ["07:59:55", "23:59:59", "24:00:00", "075955", "07:59", "07:59:55.1", "07:59:60", "7:59:55"]
    ),
    st.sampled_from(
        ["+00:00", "-05:30", "+08:00", "+23:59", "+24:00", "Z", "z", "", "+0800", "+08:00:30", "+08"]
    ),
)
CUT_VALUES = st.one_of(
    TIMESTAMP_PARTS.map("".join),
    st.sampled_from(
        [
            "2026-11-24T07:59:55+00:00",
            "2026-11-24 07:59:55-05:30",
            "2026-11-24t07:59:55z",
            "2026-11-24T07:59:55.123456+08:00",
            "2026-11-24T075955.1+00:00",
            "2026-W48-1T07:59:55+00:00",
            "20261124T07:59:55.1+00:00",
            "2026-02-30T07:59:55+00:00",
            "2026-11-24",
            "2026-11-24T07:59:55+00:00\n",
            "",
        ]
    ),
    st.text(max_size=30),
)
HASH_VALUES = st.one_of(
    st.text(),
    st.sampled_from(["\ud800", "a\udfffb", '"quoted" \\ back', "\x00\x1f\x7f", "患者-123", "\u2028"]),
)
OTHER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["2026-11-24T07:59:55+00:00", "p-1"]).map(Text),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a"]), st.integers()),
)
KEY = new_hash_key()
CUT_GRANT_EVENT: dict[str, Any] = {
    "id": "g-written-out",
    "version": 1,
    "scenario_id": "s",
    "dataset_id": "health.outpatient-visits",
    "fields": ["visit", "id", "day", "hour"],
    "masking": {
        "id": "hash",
        "day": {"kind": "generalize", "granularity": "day"},
        "hour": {"kind": "generalize", "granularity": "hour"},
    },
}
CUT_GRANT = GrantTerms.from_event(CUT_GRANT_EVENT)
MASKS: dict[str, Any] = {
    "id": hasher(KEY),
    "day": mask_function(FieldMask("generalize", granularity="day"), hasher(KEY)),
    "hour": mask_function(FieldMask("generalize", granularity="hour"), hasher(KEY)),
}
"""The mask functions of :data:`CUT_GRANT`, called per value: what the written-out code must give."""


def by_mask_functions(record: dict[str, Any]) -> dict[str, Any]:
    """:data:`CUT_GRANT` applied to ``record`` field by field through :data:`MASKS`."""
    out: dict[str, Any] = {}
    for name in ["visit", "id", "day", "hour"]:
        if name in record:
            value = MASKS[name](record[name]) if name in MASKS else record[name]
            if value is not REMOVED:
                out[name] = value
    return out


def writes_out(policy: Policy) -> set[str]:
    """Which masks the compiled loop writes out (by the locals that code alone has)."""
    local_names = policy.apply_many.__code__.co_varnames
    return {
        kind
        for kind, name in (("hash", "state"), ("cut", "parse_"))
        if any(n.startswith(name) for n in local_names)
    }


@settings(max_examples=400, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "visit": st.just("v"),
                "id": st.one_of(HASH_VALUES, OTHER_VALUES),
                "day": st.one_of(CUT_VALUES, OTHER_VALUES),
                "hour": st.one_of(CUT_VALUES, OTHER_VALUES),
            },
        ),
        max_size=6,
    )
)
def test_a_written_out_hash_and_cut_give_what_their_masks_give(records: list[dict[str, Any]]) -> None:
    policy = compile_policy(CUT_GRANT, hash_key=KEY)
    assert writes_out(policy) == {"hash", "cut"}
    expected = [by_mask_functions(record) for record in records]
    assert [policy.apply(record) for record in records] == expected
    delivered = policy.apply_many(records)
    assert delivered == expected
    assert [list(out) for out in delivered] == [list(out) for out in expected]


@pytest.mark.parametrize(
    ("value", "day", "hour"),
    [
        ("2026-11-24T07:59:55+00:00", "2026-11-24T00:00:00+00:00", "2026-11-24T07:00:00+00:00"),
        ("2026-11-24 07:59:55-05:30", "2026-11-24 00:00:00-05:30", "2026-11-24 07:00:00-05:30"),
        ("2026-11-24t07:59:55+08:00", "2026-11-24t00:00:00+08:00", "2026-11-24t07:00:00+08:00"),
        ("2026-11-24T07:59:55Z", "2026-11-24T00:00:00Z", "2026-11-24T07:00:00Z"),
        ("2026-02-30T07:59:55+00:00", None, None),
        ("2026-11-24", "2026-11-24", "2026-11-24"),
        (None, None, None),
        (20261124, 20261124, 20261124),
        (True, None, None),
    ],
)
def test_the_written_out_cut(value: Any, day: Any, hour: Any) -> None:
    out = compile_policy(CUT_GRANT, hash_key=KEY).apply({"day": value, "hour": value})
    assert out == {
        name: cut for name, cut in (("day", day), ("hour", hour)) if cut is not None or value is None
    }


@pytest.mark.parametrize(
    "value", ["p-1", "患者", '"\\', "\ud800", "", None, 1, 1.0, [1], {"a": 1}, Text("p-1")]
)
def test_the_written_out_hash_is_the_hash_masks(value: Any) -> None:
    policy = compile_policy(CUT_GRANT, hash_key=KEY)
    assert policy.apply({"id": value}) == {"id": MASKS["id"](value)}
    assert policy.apply_many([{"id": value}] * 2) == [{"id": MASKS["id"](value)}] * 2


def test_a_mask_is_called_where_it_is_not_written_out() -> None:
    def grant(masking: dict[str, Any]) -> GrantTerms:
        return GrantTerms.from_event({**CUT_GRANT_EVENT, "masking": masking})

    nested = compile_policy(grant({"id": "hash", "id.name": "redact"}), hash_key=KEY)
    keyless = compile_policy(grant({"id": "hash"}), hash_key=None)
    by_month = compile_policy(grant({"day": {"kind": "generalize", "granularity": "month"}}), hash_key=KEY)
    assert writes_out(nested) == writes_out(keyless) == writes_out(by_month) == set()
    assert nested.apply({"id": {"name": "x", "n": 1}}) == {"id": MASKS["id"]({"n": 1})}
    assert nested.apply_many([{"id": "p-1"}]) == [{}]  # not the object id.name needs: removed
    assert keyless.apply_many([{"id": "p-1", "visit": "v"}]) == [{"visit": "v"}]
    assert by_month.apply_many([{"day": "2026-11-24T07:59:55+00:00"}]) == [
        {"day": "2026-11-01T00:00:00+00:00"}
    ]
