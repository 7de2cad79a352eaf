"""Streams sharing one consumer per topic (services.feeds.fanout), on the embedded bus: each stream
gets exactly the records at or after its own positions, catches up on its own when behind, and
turns into a group member when another reader of its subscription appears."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.bus import GroupActive, OutgoingRecord, TopicPartition, TopicSpec
from services.common.bus.embedded import EmbeddedBus
from services.feeds import fanout as fanout_module
from services.feeds.fanout import Fanout, StreamReader
from services.feeds.readers import Reader

TOPIC = "ds.fanout"
PARTITIONS = 2


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    opened = EmbeddedBus(tmp_path / "bus.db")
    opened.admin().ensure_topic(TopicSpec(TOPIC, partitions=PARTITIONS))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def fanout(bus: EmbeddedBus) -> Iterator[Fanout]:
    opened = Fanout(bus)
    try:
        yield opened
    finally:
        opened.close()


def _publish(bus: EmbeddedBus, count: int, start: int = 0) -> None:
    bus.producer().publish(
        [OutgoingRecord(TOPIC, b"%d" % n, partition=n % PARTITIONS) for n in range(start, start + count)]
    )


def _open(fanout: Fanout, bus: EmbeddedBus, name: str, resume: dict[int, int] | None = None) -> StreamReader:
    group_id = f"feeds.sub.{name}"

    def member() -> Reader:
        return Reader(bus, group_id=group_id, topic=TOPIC, epoch=0, client_id="test")

    return fanout.open(
        subscription_id=name, group_id=group_id, topic=TOPIC, epoch=0, resume=resume, member=member
    )


def _read(reader: StreamReader, count: int, timeout_s: float = 10.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        values += [m.value or b"" for m in reader.poll(0.2, 100)]
    return values


def _ends(bus: EmbeddedBus) -> dict[int, int]:
    return bus.admin().end_offsets(TOPIC)


def test_streams_of_one_topic_share_one_consumer_each_from_its_own_positions(
    bus: EmbeddedBus, fanout: Fanout
) -> None:
    _publish(bus, 6)
    bus.admin().commit_offsets("feeds.sub.late", TOPIC, _ends(bus))
    bus.admin().commit_offsets("feeds.sub.early", TOPIC, {0: 0, 1: 0})
    late, early = _open(fanout, bus, "late"), _open(fanout, bus, "early")
    assert late.shared and early.shared
    assert late.poll(0.2, 10) == []  # the feed starts at the first attached stream's positions
    assert late.feed is not None and fanout.feeds() == 1
    # Behind the feed: catches up on its own consumer, then attaches.
    assert sorted(_read(early, 6)) == [b"%d" % n for n in range(6)]
    _publish(bus, 10, start=6)
    expected = sorted(b"%d" % n for n in range(6, 16))
    assert sorted(_read(late, 10)) == expected
    assert sorted(_read(early, 10)) == expected
    assert early.feed is late.feed is not None
    assert late.poll(0.1, 10) == [] and early.poll(0.1, 10) == []
    assert late.cursor_offsets() == early.cursor_offsets() == _ends(bus)


def test_a_stream_ahead_of_the_feed_skips_what_is_before_its_positions(
    bus: EmbeddedBus, fanout: Fanout
) -> None:
    bus.admin().commit_offsets("feeds.sub.first", TOPIC, {0: 0, 1: 0})
    first = _open(fanout, bus, "first")
    assert first.poll(0.1, 10) == []
    bus.admin().commit_offsets("feeds.sub.ahead", TOPIC, {0: 1, 1: 1})
    ahead = _open(fanout, bus, "ahead")
    assert ahead.poll(0.1, 10) == []
    assert ahead.feed is first.feed is not None
    _publish(bus, 4)
    assert sorted(_read(first, 4)) == [b"0", b"1", b"2", b"3"]
    assert sorted(_read(ahead, 2)) == [b"2", b"3"]
    assert ahead.poll(0.1, 10) == []


def test_a_stream_whose_buffer_overflows_catches_up_on_its_own_without_gaps(
    bus: EmbeddedBus, fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout_module, "STREAM_BUFFER", 15)
    monkeypatch.setattr(fanout_module, "FEED_POLL", 10)
    bus.admin().commit_offsets("feeds.sub.quick", TOPIC, {0: 0, 1: 0})
    bus.admin().commit_offsets("feeds.sub.slow", TOPIC, {0: 0, 1: 0})
    quick, slow = _open(fanout, bus, "quick"), _open(fanout, bus, "slow")
    assert quick.poll(0.1, 1) == [] and slow.poll(0.1, 1) == []
    assert quick.feed is slow.feed is not None
    _publish(bus, 30)
    assert len(_read(quick, 30)) == 30
    assert slow.feed is None  # left behind: its buffer went over STREAM_BUFFER
    values = _read(slow, 30)
    assert sorted(values) == sorted(b"%d" % n for n in range(30))
    assert slow.poll(0.2, 10) == []


def test_acknowledging_commits_to_the_group_and_a_new_reader_resumes_there(
    bus: EmbeddedBus, fanout: Fanout
) -> None:
    bus.admin().commit_offsets("feeds.sub.ack", TOPIC, {0: 0, 1: 0})
    stream = _open(fanout, bus, "ack")
    _publish(bus, 4)
    assert len(_read(stream, 4)) == 4
    assert stream.commit(stream.cursor_offsets()) == _ends(bus)
    stream.close()
    assert fanout.feeds() == 0  # the last stream of the topic closed its feed
    _publish(bus, 2, start=4)
    again = _open(fanout, bus, "ack")
    assert sorted(_read(again, 2)) == [b"4", b"5"]


def test_a_resumed_stream_starts_after_its_last_event_and_commits_it(
    bus: EmbeddedBus, fanout: Fanout
) -> None:
    _publish(bus, 6)
    bus.admin().commit_offsets("feeds.sub.resume", TOPIC, _ends(bus))
    stream = _open(fanout, bus, "resume", resume={0: 1, 1: 2})
    assert stream.shared
    assert sorted(_read(stream, 3)) == [b"2", b"4", b"5"]
    assert bus.admin().committed_offsets("feeds.sub.resume", TOPIC) == {
        TopicPartition(TOPIC, 0): 1,
        TopicPartition(TOPIC, 1): 2,
    }


def test_seeking_back_delivers_again_what_follows(bus: EmbeddedBus, fanout: Fanout) -> None:
    bus.admin().commit_offsets("feeds.sub.back", TOPIC, {0: 0, 1: 0})
    stream = _open(fanout, bus, "back")
    _publish(bus, 4)
    assert len(_read(stream, 4)) == 4
    stream.seek({0: 1})
    assert _read(stream, 1) == [b"2"]


def test_a_second_stream_of_a_subscription_makes_both_group_members(bus: EmbeddedBus, fanout: Fanout) -> None:
    bus.admin().commit_offsets("feeds.sub.twice", TOPIC, {0: 0, 1: 0})
    first = _open(fanout, bus, "twice")
    assert first.shared
    second = _open(fanout, bus, "twice")
    assert not second.shared
    first.poll(0.0, 1)  # a batch being built is not switched in its middle
    assert first.shared
    first.poll(0.1, 1)  # the next batch is read as a member
    assert not first.shared
    _publish(bus, 20)
    got = _read(first, 20, timeout_s=3) + _read(second, 20, timeout_s=3)
    got += _read(first, 20, timeout_s=1)
    assert sorted(got) == sorted(b"%d" % n for n in range(20))  # each record once
    first.close()
    second.close()


def test_a_commit_refused_because_the_group_has_a_member_makes_the_stream_one(
    bus: EmbeddedBus, fanout: Fanout
) -> None:
    bus.admin().commit_offsets("feeds.sub.contended", TOPIC, {0: 0, 1: 0})
    stream = _open(fanout, bus, "contended")
    _publish(bus, 4)
    assert len(_read(stream, 4)) == 4
    other = Reader(bus, group_id="feeds.sub.contended", topic=TOPIC, epoch=0, client_id="test")
    try:
        other.poll(0.5, 1)
        with pytest.raises(GroupActive):
            stream.commit(stream.cursor_offsets())
        assert not stream.shared  # not acknowledged: as a member it reads from the group's offsets
    finally:
        other.close()
        stream.close()


def test_an_admin_commits_for_an_empty_group_only(bus: EmbeddedBus) -> None:
    admin = bus.admin()
    assert admin.group_members("feeds.sub.nobody") == 0
    admin.commit_offsets("feeds.sub.nobody", TOPIC, {0: 3})
    assert admin.committed_offsets("feeds.sub.nobody", TOPIC) == {TopicPartition(TOPIC, 0): 3}
    member = bus.consumer("feeds.sub.nobody", [TOPIC])
    try:
        member.poll(0.2, 1)
        assert admin.group_members("feeds.sub.nobody") == 1
        with pytest.raises(GroupActive):
            admin.commit_offsets("feeds.sub.nobody", TOPIC, {0: 0})
    finally:
        member.close()
    with pytest.raises(ValueError):
        admin.commit_offsets("feeds.sub.nobody", TOPIC, {0: -1})


def test_a_stream_far_behind_catches_up_on_its_own_and_does_not_hold_the_feed_back(
    bus: EmbeddedBus, fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout_module, "CATCH_UP_GAP", 3)
    monkeypatch.setattr(fanout_module, "ATTACH_RETRY_S", 0.0)
    _publish(bus, 10)
    bus.admin().commit_offsets("feeds.sub.old", TOPIC, {0: 0, 1: 0})
    bus.admin().commit_offsets("feeds.sub.live", TOPIC, _ends(bus))
    old, live = _open(fanout, bus, "old"), _open(fanout, bus, "live")
    first = old.poll(0.5, 2)
    assert len(first) == 2 and old.feed is None  # not the feed's position: 10 records behind
    assert live.poll(0.1, 10) == []
    assert live.feed is not None and live.feed.positions == _ends(bus)
    _publish(bus, 4, start=10)
    assert sorted(_read(live, 4)) == [b"10", b"11", b"12", b"13"]
    rest = _read(old, 12)
    assert sorted([m.value for m in first] + rest) == sorted(b"%d" % n for n in range(14))
    _publish(bus, 2, start=14)
    assert sorted(_read(old, 2)) == [b"14", b"15"]
    assert old.feed is live.feed  # caught up, then attached
