"""What quality's stream worker does when a rebalance moves or rewinds a dataset's partitions: the
windows holding those records are read again, none is counted twice."""

from __future__ import annotations

import json
from typing import Any

from services.common.bus import Message, TopicPartition
from services.quality.consumer import StreamWorker
from services.quality.settings import QualitySettings


def _record(topic: str, partition: int, offset: int) -> Message:
    return Message(
        topic, partition, offset, None, json.dumps({"id": f"{partition}-{offset}"}).encode(), (), 0
    )


class _Consumer:
    """Records where the worker sought each partition."""

    def __init__(self) -> None:
        self.sought: dict[TopicPartition, int] = {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset


def _worker() -> StreamWorker:
    settings = QualitySettings(window={"records": 1000, "seconds": 600})
    none: Any = None
    return StreamWorker(none, none, none, settings, none)


P0, P1 = TopicPartition("ds.a.b", 0), TopicPartition("ds.a.b", 1)


def test_a_rewound_partition_drops_the_open_window_and_seeks_its_other_partitions_back() -> None:
    worker, consumer = _worker(), _Consumer()
    positions: dict[TopicPartition, int] = {}
    committed: dict[TopicPartition, int] = {}
    both = {P0, P1}
    worker._take(consumer, [_record("ds.a.b", 0, n) for n in range(10, 15)], both, positions, committed)  # type: ignore[arg-type]
    worker._take(consumer, [_record("ds.a.b", 1, n) for n in range(20, 23)], both, positions, committed)  # type: ignore[arg-type]
    assert worker.windows.open["a.b"].size == 8

    # The group gave partition 0 back rewound to its committed offset (10), and in the same poll
    # partition 1 goes on at 23: the window is dropped, partition 1 is sought back to 20 and its
    # record at 23 is left for the read after the seek.
    rewound = [_record("ds.a.b", 0, n) for n in range(10, 13)] + [_record("ds.a.b", 1, 23)]
    worker._take(consumer, rewound, both, positions, committed)  # type: ignore[arg-type]
    assert consumer.sought == {P1: 20}
    window = worker.windows.open["a.b"]
    assert window.size == 3 and window.first_offsets == {P0: 10}
    assert worker.dropped_windows == 1
    # After the seek partition 1 is read again from 20: nothing counted twice.
    worker._take(consumer, [_record("ds.a.b", 1, n) for n in range(20, 24)], both, positions, committed)  # type: ignore[arg-type]
    assert worker.windows.open["a.b"].size == 7
    assert positions == {P0: 13, P1: 24}


def test_a_dataset_taken_away_loses_its_open_window_and_commits_nothing_for_it() -> None:
    worker, consumer = _worker(), _Consumer()
    positions: dict[TopicPartition, int] = {}
    committed: dict[TopicPartition, int] = {P0: 10}
    worker._take(consumer, [_record("ds.a.b", 0, n) for n in range(10, 15)], {P0}, positions, committed)  # type: ignore[arg-type]
    worker._take(consumer, [], set(), positions, committed)  # type: ignore[arg-type]
    assert "a.b" not in worker.windows.open
    assert positions == {} and committed == {}
    assert consumer.sought == {}
    assert worker.windows.committable(positions) == {}
