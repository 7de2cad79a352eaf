"""What one delivered record looks like: the same JSON whichever parser read it, integers exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.bus import GroupRebalancing, Message
from services.common.envelope import encode_json
from services.feeds.delivery import commit_rejoining, delivered_entry, delivered_item, joined_entries
from services.feeds.exceptions import GroupNotReady
from services.ingest.envelopes import RecordEnvelopes

HEADERS = (("ce_id", b"first"), ("ce_time", b"2026-11-24T10:00:00.000Z"), ("ce_id", b"event-1"))


def _message(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = HEADERS) -> Message:
    return Message(
        topic="ds.transport.x",
        partition=2,
        offset=41,
        key=b"k",
        value=value,
        headers=headers,
        timestamp_ms=0,
    )


def _visible(record: dict[str, Any]) -> dict[str, Any] | None:
    return None if record.get("drop") else {k: v for k, v in record.items() if k != "secret"}


def _expected(data: Any, event_id: str = "event-1", time: str | None = "2026-11-24T10:00:00.000Z") -> Any:
    return {
        "id": event_id,
        "dataset": "transport.x",
        "partition": 2,
        "offset": 41,
        "time": time,
        "data": data,
    }


@pytest.mark.parametrize(
    "record",
    [
        {"a": 1, "b": "é 中文", "c": [1.5, None, True], "d": {"e": -0.25}, "secret": "s"},
        {"big": 123456789012345678901234567890, "neg": -(2**70)},
        {"phone": "13812345678901234567890", "n": 2**63 - 1},
        {"f": 1e16, "g": 0.1, "h": 1e-7},
    ],
)
def test_an_entry_is_the_json_of_the_visible_record(record: dict[str, Any]) -> None:
    entry = delivered_entry(_message(encode_json(record)), "transport.x", _visible)
    assert entry is not None
    parsed = json.loads(entry)
    assert parsed == _expected(_visible(record))
    assert type(parsed["data"].get("big", 0)) is int  # never rounded through a float


def test_json_that_orjson_refuses_is_read_as_python_reads_it() -> None:
    entry = delivered_entry(_message(b'{"x": NaN, "y": 1e400}'), "transport.x", _visible)
    assert entry is not None
    assert b'"data":{"x":NaN,"y":Infinity}' in entry


def test_a_lone_surrogate_is_delivered_escaped_not_a_failed_batch() -> None:
    entry = delivered_entry(_message(b'{"s": "a\\ud800b", "t": "\xc3\xa9"}'), "transport.x", _visible)
    assert entry is not None
    assert json.loads(entry)["data"] == {"s": "a\ud800b", "t": "\u00e9"}


def test_what_is_not_delivered() -> None:
    assert delivered_entry(_message(None), "transport.x", _visible) is None
    assert delivered_entry(_message(b"not json"), "transport.x", _visible) is None
    assert delivered_entry(_message(b"[1, 2]"), "transport.x", _visible) is None
    assert delivered_entry(_message(b'{"drop": true}'), "transport.x", _visible) is None


def test_without_cloudevents_headers_the_id_is_the_position() -> None:
    entry = delivered_entry(_message(b'{"a": 1}', headers=()), "transport.x", _visible)
    assert entry is not None
    assert json.loads(entry) == _expected({"a": 1}, event_id="ds.transport.x/2/41", time=None)


def test_a_feed_entry_carries_the_occurrence_time_ingest_stamped() -> None:
    """The ``time`` of a delivered entry is the record's CloudEvents ``time``: the occurrence time
    when its contract names one, else the ingest time (issue 18)."""
    envelopes = RecordEnvelopes("transport.x", "1.0.0", datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    occurred = envelopes.record("e1", "k", b'{"a":1}', datetime(2026, 11, 24, 8, 15, 30, tzinfo=UTC))
    ingested = envelopes.record("e2", "k", b'{"a":2}')
    times = [
        json.loads(delivered_entry(_message(record.value, record.headers), "transport.x", _visible) or b"")[
            "time"
        ]
        for record in (occurred, ingested)
    ]
    assert times == ["2026-11-24T08:15:30.000Z", "2026-12-07T09:00:00.000Z"]


CHUNK_VALUES = [
    b'{"a": 1, "b": "\xc3\xa9 \xe4\xb8\xad"}',
    b'{"x": NaN, "y": 1e400}',
    b'{"big": 123456789012345678901234567890}',
    b'{"s": "a\\ud800b"}',
    b"not json",
    b'{"drop": true}',
    b'{"deep": ' + b"[" * 252 + b"]" * 252 + b"}",
    b'{"f": 1e16, "g": 0.1}',
]


@pytest.mark.parametrize("size", [1, 2, len(CHUNK_VALUES)])
def test_a_chunk_is_written_as_its_entries_joined(size: int) -> None:
    """A chunk written at once is byte for byte its entries joined, whichever parser read each
    (and an entry as deep as orjson writes alone, which in an array it would refuse)."""
    for start in range(len(CHUNK_VALUES) - size + 1):
        messages = [_message(value) for value in CHUNK_VALUES[start : start + size]]
        entries = [delivered_entry(m, "transport.x", _visible) for m in messages]
        items = [delivered_item(m, "transport.x", _visible) for m in messages]
        delivered = [item for item in items if item is not None]
        if delivered:
            assert joined_entries(delivered) == b",".join(entry for entry in entries if entry is not None)
        assert [item is None for item in items] == [entry is None for entry in entries]


class _Rejoining:
    """A group member whose commits are refused until it has polled ``rounds`` times (the group
    rebalanced since its last poll); it reads one record per poll."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.polls = 0
        self.seeks: list[dict[int, int]] = []
        self.committed: dict[int, int] = {}

    def commit(self, offsets: dict[int, int]) -> dict[int, int]:
        if self.polls < self.rounds:
            raise GroupRebalancing("commit failed: the group is rebalancing")
        self.committed = dict(offsets)
        return self.committed

    def poll(self, timeout_s: float, max_records: int) -> list[Message]:
        self.polls += 1
        return [Message("ds.a.b", 1, 40 + self.polls, None, b"{}", (), 0)]

    def seek(self, offsets: dict[int, int]) -> None:
        self.seeks.append(dict(offsets))


def test_an_acknowledgement_refused_by_a_rebalance_is_committed_once_the_reader_rejoined() -> None:
    reader = _Rejoining(rounds=2)
    assert commit_rejoining(reader, {0: 10, 1: 41}, timeout_s=5) == {0: 10, 1: 41}  # type: ignore[arg-type]
    assert reader.polls == 2
    assert reader.seeks == [{1: 41}, {1: 42}]  # what each poll read is put back, not delivered


def test_a_group_that_does_not_settle_is_a_503_to_retry() -> None:
    reader = _Rejoining(rounds=10**9)
    with pytest.raises(GroupNotReady) as refused:
        commit_rejoining(reader, {0: 10}, timeout_s=0.3)  # type: ignore[arg-type]
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert reader.committed == {}
