"""Open data without a key: which fields a snapshot shows, how many records it holds, where each
partition is read from, and what feeds' read model says is open; without HTTP."""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.common import catalog_events
from services.common.bus import Bus, Consumer, Message, OutgoingRecord, TopicPartition, TopicSpec
from services.common.bus.embedded import EmbeddedBus
from services.feeds.exceptions import SnapshotTimeout
from services.feeds.open_data import csv_body, latest_records, newest, open_record, snapshot_starts
from services.feeds.projection import FeedsCatalog
from tests.factories import bus_arrival_record, catalog_records, contract_state, dataset_event_state

TOPIC = "ds.transport.open-arrivals"


def message(record: OutgoingRecord, offset: int = 0) -> Message:
    return Message(record.topic, 0, offset, record.key, record.value, record.headers, 0)


# --- the field rule ---------------------------------------------------------------------------------


def test_a_sensitive_field_never_appears_whatever_the_record_holds() -> None:
    sensitive = contract_state("health.open-visits")["sensitive_fields"]
    assert "patient_id" in sensitive  # the example contract hashes it under a grant
    visible = open_record(sensitive)
    shapes: list[dict[str, Any]] = [
        {"visit_id": "v1", "patient_id": "P-1234"},
        {"visit_id": "v2", "patient_id": None},  # a null is left out too: no field, no hint
        {"visit_id": "v3", "patient_id": {"nested": "P-1"}},
        {"visit_id": "v4", "patient_id": ["P-1", "P-2"]},
        {"visit_id": "v5"},
    ]
    for record in shapes:
        before = copy.deepcopy(record)
        shown = visible(record)
        assert "patient_id" not in shown
        assert "patient_id" not in json.dumps(shown) and "P-1" not in json.dumps(shown)
        assert shown["visit_id"] == record["visit_id"]
        assert record == before  # the record read from the topic is not changed


def test_nested_and_array_paths_are_left_out_and_the_rest_kept() -> None:
    visible = open_record(["caller.phone", "contacts[].email", "tags[]", "plate"])
    record = {
        "id": 1,
        "plate": "沪B-12345",
        "caller": {"name": "Li", "phone": "13812345678"},
        "contacts": [{"email": "a@example.cn", "role": "owner"}, {"role": "agent"}],
        "tags": ["x", "y"],
        "delay_s": 42,
    }
    assert visible(record) == {
        "id": 1,
        "caller": {"name": "Li"},
        "contacts": [{"role": "owner"}, {"role": "agent"}],
        "tags": [None, None],  # items of a sensitive array: positions stay, values go
        "delay_s": 42,
    }
    # A record not of the shape the path expects loses the whole field rather than show it.
    assert visible({"id": 2, "caller": "13812345678"}) == {"id": 2}


def test_a_path_feeds_cannot_read_leaves_out_its_whole_field() -> None:
    visible = open_record(["caller..phone", "vehicle_id"])
    assert visible({"caller": {"phone": "1"}, "vehicle_id": "x", "stop_id": "S1"}) == {"stop_id": "S1"}


def test_without_sensitive_fields_the_record_is_as_the_event_carries_it() -> None:
    record = bus_arrival_record()
    assert open_record([])(record) == record


# --- the bound and the per-partition seek ---------------------------------------------------------


def test_each_partition_is_read_from_its_end_minus_the_limit_and_not_before_its_start() -> None:
    assert snapshot_starts({0: 0, 1: 40, 2: 0}, {0: 100, 1: 45, 2: 3}, 10) == {0: 90, 1: 40, 2: 0}
    assert snapshot_starts({}, {0: 7}, 10) == {0: 0}


def test_newest_keeps_the_latest_records_newest_last() -> None:
    def at(partition: int, offset: int, ms: int) -> Message:
        return Message(TOPIC, partition, offset, None, b"{}", (), ms)

    messages = [at(0, 0, 10), at(1, 0, 30), at(0, 1, 20), at(2, 0, 40), at(1, 1, 30)]
    assert [(m.partition, m.offset) for m in newest(messages, 3)] == [(1, 0), (1, 1), (2, 0)]
    assert len(newest(messages, 100)) == 5


class SpyConsumer:
    """A consumer that notes its seeks and whether it committed; everything else is the real one's."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.seeks: dict[int, int] = {}
        self.committed = False

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp.partition] = offset
        self.consumer.seek(tp, offset)

    def commit(self, offsets: Any = None) -> None:
        self.committed = True
        self.consumer.commit(offsets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


class SpyBus:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.consumers: list[SpyConsumer] = []
        self.groups: list[str | None] = []

    def consumer(self, group_id: str | None, topics: Sequence[str] = (), **options: Any) -> SpyConsumer:
        self.groups.append(group_id)
        spy = SpyConsumer(self.bus.consumer(group_id, topics, **options))
        self.consumers.append(spy)
        return spy

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    opened = EmbeddedBus(tmp_path / "bus.db")
    opened.admin().ensure_topic(TopicSpec(TOPIC, partitions=3))
    yield opened
    opened.close()


def _publish(bus: Bus, per_partition: dict[int, int]) -> list[tuple[int, int]]:
    """Records in the given partitions, each a millisecond later than the one before (in the
    order written); returns (partition, n) in time order."""
    records, order, ms = [], [], 1_700_000_000_000
    for partition, count in per_partition.items():
        for n in range(count):
            ms += 1
            value = json.dumps({"partition": partition, "n": n}).encode()
            records.append(OutgoingRecord(TOPIC, value, partition=partition, timestamp_ms=ms))
            order.append((partition, n))
    bus.producer().publish(records)
    return order


def test_the_latest_records_come_from_every_partition_newest_last_without_a_group(bus: EmbeddedBus) -> None:
    order = _publish(bus, {0: 30, 1: 4, 2: 12})
    spy = SpyBus(bus)

    latest = latest_records(spy, TOPIC, 20, timeout_s=10)  # type: ignore[arg-type]

    read = [(json.loads(m.value or b"")["partition"], json.loads(m.value or b"")["n"]) for m in latest]
    assert read == order[-20:]
    assert spy.groups == [None]
    (consumer,) = spy.consumers
    assert consumer.seeks == {0: 10, 1: 0, 2: 0}  # end - 20 per partition, never before the start
    assert not consumer.committed


def test_the_snapshot_never_holds_more_than_its_limit_and_a_missing_topic_has_none(bus: EmbeddedBus) -> None:
    _publish(bus, {0: 5, 1: 5, 2: 5})
    assert len(latest_records(bus, TOPIC, 7, timeout_s=10)) == 7
    assert len(latest_records(bus, TOPIC, 100, timeout_s=10)) == 15
    assert latest_records(bus, "ds.transport.nothing-yet", 10, timeout_s=10) == []


def test_a_snapshot_not_read_in_time_is_refused(bus: EmbeddedBus) -> None:
    _publish(bus, {0: 5})
    with pytest.raises(SnapshotTimeout):
        latest_records(bus, TOPIC, 5, timeout_s=1e-9)


# --- CSV ---------------------------------------------------------------------------------------------------


def test_csv_has_one_column_per_field_nested_values_as_json_and_no_formula() -> None:
    body = csv_body(
        [
            {"id": "e1", "time": "2026-11-24T08:00:00Z", "data": {"stop_id": "S1", "delay_s": 4}},
            {"id": "e2", "time": None, "data": {"stop_id": "S2", "where": {"lat": 31.2}, "ok": True}},
            {"id": "e3", "time": None, "data": {"stop_id": '=HYPERLINK("x")', "delay_s": -5}},
        ]
    )
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows == [
        ["id", "time", "stop_id", "delay_s", "where", "ok"],
        ["e1", "2026-11-24T08:00:00Z", "S1", "4", "", ""],
        ["e2", "", "S2", "", '{"lat":31.2}', "true"],
        ["e3", "", '\'=HYPERLINK("x")', "-5", "", ""],  # no formula runs; a number stays one
    ]


# --- what feeds' read model says is open ----------------------------------------------------------------


def _dataset(dataset_id: str, **changes: Any) -> dict[str, Any]:
    return {**dataset_event_state(dataset_id), "classification": "open", "publicly_listed": True, **changes}


@pytest.mark.parametrize(
    ("changes", "open_to_all"),
    [
        ({}, True),
        ({"status": "deprecated"}, True),
        ({"publicly_listed": False}, False),
        ({"classification": "conditional"}, False),
        ({"classification": "restricted"}, False),
        ({"status": "draft"}, False),
        ({"status": "retired"}, False),
        ({"publicly_listed": None}, False),  # an event without it is not public
    ],
)
def test_only_a_published_listed_open_dataset_is_open_to_all(
    changes: dict[str, Any], open_to_all: bool
) -> None:
    catalog = FeedsCatalog()
    for offset, record in enumerate(catalog_records(datasets=[_dataset("transport.open", **changes)])):
        catalog.apply(message(record, offset))
    dataset = catalog.dataset("transport.open")
    assert dataset is not None and dataset.open_to_all is open_to_all


def test_the_sensitive_fields_are_the_union_of_the_contract_versions() -> None:
    catalog = FeedsCatalog()
    assert catalog.sensitive_fields("health.open-visits") is None  # no contract known: nothing to serve

    def plate_sensitive(document: dict[str, Any]) -> None:
        document["schema"][0]["properties"][1]["classification"] = "personal"

    first = contract_state("health.open-visits")
    second = contract_state("health.open-visits", version="1.1.0", change=plate_sensitive)
    for offset, record in enumerate(catalog_records(contracts=[first, second])):
        catalog.apply(message(record, offset))
    second_field = next(iter(set(second["sensitive_fields"]) - set(first["sensitive_fields"])))
    assert catalog.sensitive_fields("health.open-visits") == {"patient_id", second_field}

    tombstone = catalog_events.entity_key(catalog_events.CONTRACT_VERSION, "health.open-visits:1.1.0")
    catalog.apply(Message(catalog_events.TOPIC, 0, 9, tombstone, None, (), 0))
    assert catalog.sensitive_fields("health.open-visits") == {"patient_id"}
