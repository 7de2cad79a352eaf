"""Tumbling windows, the offsets that are safe to commit, and the rolling view of primary keys."""

from __future__ import annotations

import json
import time

from services.common.bus import Message, TopicPartition
from services.quality.windows import RollingKeys, WindowSet, dataset_of, key_of


def record(topic: str, offset: int, value: object, partition: int = 0, **headers: str) -> Message:
    return Message(
        topic,
        partition,
        offset,
        None,
        json.dumps(value).encode() if not isinstance(value, bytes) else value,
        tuple((name, text.encode()) for name, text in headers.items()),
        1_700_000_000_000,
    )


def test_topics_name_their_dataset() -> None:
    assert dataset_of("ds.health.visits") == ("health.visits", False)
    assert dataset_of("dlq.health.visits") == ("health.visits", True)
    assert dataset_of("raw.health.visits") is None


def test_a_window_closes_at_its_record_count_and_a_new_one_opens() -> None:
    windows = WindowSet(lambda _dataset: (3, 60.0))
    for offset in range(7):
        windows.add(record("ds.a.b", offset, {"id": offset}, ce_id=str(offset), ce_contractversion="1.0.0"))
    closed = windows.take_closed()
    assert [w.size for w in closed] == [3, 3]
    assert all(w.closed_because == "records" for w in closed)
    assert windows.open["a.b"].size == 1
    assert closed[0].contract_version == "1.0.0"


def test_a_window_closes_after_its_time() -> None:
    windows = WindowSet(lambda _dataset: (1000, 0.05))
    windows.add(record("ds.a.b", 0, {"id": 1}))
    windows.close_due()
    assert windows.take_closed() == []
    time.sleep(0.06)
    windows.close_due()
    [closed] = windows.take_closed()
    assert closed.closed_because == "time"


def test_dead_letters_count_as_rejected_and_missing_required_fields_as_incomplete() -> None:
    windows = WindowSet(lambda _dataset: (1000, 60.0))
    errors = json.dumps([{"path": "/clinic", "rule": "required", "message": "clinic is required"}])
    windows.add(record("dlq.a.b", 0, {"id": 1}, dlq_reason="required", dlq_errors=errors))
    windows.add(record("dlq.a.b", 1, {"id": 2}, dlq_reason="enum", dlq_path="/age_band"))
    windows.add(record("ds.a.b", 0, b"not json"))
    window = windows.open["a.b"]
    assert window.rejected == 2 and window.rejected_incomplete == 1
    assert window.rejected_missing == {"clinic": 1}
    assert window.rejected_rules == {"required": 1, "enum": 1}
    assert window.unreadable == 1 and window.rows == []


def test_a_record_is_read_as_python_s_json_parser_reads_it() -> None:
    """What the fast parser refuses but JSON allows (integers beyond 64 bits, NaN) is read all the
    same, with the same values; what is no JSON object is unreadable."""
    windows = WindowSet(lambda _dataset: (1000, 60.0))
    values = [
        b'{"id": 123456789012345678901234567890, "ratio": NaN, "at": "\\ud800"}',
        b'{"id": 1, "name": "\\u4e1c\\u57ce", "km": 1.5e3}',
        b"[1, 2]",
        b'"text"',
        b'{"id": ',
    ]
    for offset, value in enumerate(values):
        windows.add(record("ds.a.b", offset, value, ce_id=f"e{offset}", ce_contractversion="1.0.0"))
    window = windows.open["a.b"]
    expected = [json.loads(value) for value in values[:2]]
    assert repr(window.rows) == repr(expected)  # repr: NaN is not equal to itself
    assert window.unreadable == 3
    assert window.event_ids == ["e0", "e1"] and window.versions == {"1.0.0": 2}


def test_offsets_are_committed_only_up_to_the_first_record_of_an_unstored_window() -> None:
    windows = WindowSet(lambda _dataset: (2, 60.0))
    positions = {}
    for offset in range(3):
        message = record("ds.a.b", offset, {"id": offset})
        windows.add(message)
        positions[message.topic_partition] = offset + 1
    other = record("ds.c.d", 5, {"id": 1}, partition=1)
    windows.add(other)
    positions[other.topic_partition] = 6
    tp, tp_other = TopicPartition("ds.a.b", 0), TopicPartition("ds.c.d", 1)
    # The first window (offsets 0-1) is closed but not stored: nothing of the partition may go.
    assert windows.committable(positions) == {tp: 0, tp_other: 5}
    windows.take_closed()  # stored
    assert windows.committable(positions) == {tp: 2, tp_other: 5}
    windows.clear()
    assert windows.committable(positions) == {tp: 3, tp_other: 6}


def test_the_rolling_view_counts_repeated_keys_but_not_redeliveries() -> None:
    keys = RollingKeys(span_s=100, max_keys=1000)
    assert keys.duplicates(["a", "b", "a"], ["1", "2", "3"], now_s=0) == (1, 0, ["a"])
    # The same events again (a redelivery) are no duplicates; a new event with an old key is.
    assert keys.duplicates(["a", "b"], ["1", "2"], now_s=10)[:2] == (0, 0)
    assert keys.duplicates(["b", "c"], ["9", "4"], now_s=20)[:2] == (0, 1)
    # After the span the old keys are forgotten.
    assert keys.duplicates(["a"], ["10"], now_s=500)[:2] == (0, 0)


def test_the_rolling_view_forgets_the_oldest_keys_beyond_its_size() -> None:
    keys = RollingKeys(span_s=1e9, max_keys=2)
    keys.duplicates(["a", "b", "c"], ["1", "2", "3"], now_s=0)
    assert len(keys) == 2 and keys.evicted == 1
    assert keys.duplicates(["a"], ["9"], now_s=1)[:2] == (0, 0)


def test_keys_are_hashable_and_missing_parts_make_none() -> None:
    assert key_of({"a": 1, "b": "x"}, ["a", "b"]) == (1, "x")
    assert key_of({"a": 1}, ["a"]) == 1
    assert key_of({"a": 1}, ["a", "b"]) is None
    assert key_of({"a": {"z": 1}}, ["a"]) == '{"z": 1}'
