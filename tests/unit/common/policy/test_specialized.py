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
from services.common.policy.masking import REMOVED

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
