"""The bus's one-pass reader of fetched batches gives exactly the Messages kafka-python's reader
gives, at the same positions, and refuses a damaged batch as kafka-python does."""

from __future__ import annotations

import struct
from typing import Any

import kafka.errors as kafka_errors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import calc_crc32c
from kafka.structs import TopicPartition

from services.common.bus.base import Message
from services.common.bus.kafka_records import _message_records, read_into_messages

TP = TopicPartition("ds.transport.bus-arrivals", 2)
MessageRecords = _message_records(Fetcher.PartitionRecords)

_bytes = st.one_of(st.none(), st.binary(max_size=300))
records = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**40),  # timestamp delta: one byte to several
        _bytes,  # key
        _bytes,  # value
        st.lists(st.tuples(st.text(max_size=20), _bytes), max_size=12),  # headers
    ),
    min_size=1,
    max_size=40,
)


def _batches(batches: list[list[Any]], *, compression: int = 0, base_offset: int = 0) -> bytes:
    """Message-format-2 batches of ``(timestamp delta, key, value, headers)`` records, one after
    the other as a fetch returns them."""
    out = b""
    offset = base_offset
    for batch in batches:
        builder = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=10**8, offset=offset)
        for delta, key, value, headers in batch:
            builder.append(timestamp=1_700_000_000_000 + delta, key=key, value=value, headers=headers)
        builder.close()
        out += bytes(builder.buffer())
        offset += len(batch)
    return out


def _kafka_pythons(
    buffer: bytes, fetch_offset: int = 0, take: int | None = None
) -> tuple[list[Message], int]:
    part = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(buffer), None, None, True)
    taken = [
        Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)
        for r in part.take(take)
    ]
    return taken, part.next_fetch_offset


def _ours(buffer: bytes, fetch_offset: int = 0, take: int | None = None) -> tuple[list[Message], int]:
    part = MessageRecords(fetch_offset, TP, MemoryRecords(buffer), None, None, True)
    return part.take(take), part.next_fetch_offset


@settings(max_examples=300, deadline=None)
@given(st.lists(records, min_size=1, max_size=3), st.sampled_from([0, 1]), st.data())
def test_the_same_messages_and_positions_as_kafka_python(
    batches: list[list[Any]], compression: int, data: st.DataObject
) -> None:
    buffer = _batches(batches, compression=compression, base_offset=1_000)
    total = sum(len(batch) for batch in batches)
    # From the start or from the middle of a batch, everything or the first few (a poll's limit).
    fetch_offset = data.draw(st.integers(min_value=1_000, max_value=1_000 + total - 1))
    take = data.draw(st.one_of(st.none(), st.integers(min_value=1, max_value=total)))
    assert _ours(buffer, fetch_offset, take) == _kafka_pythons(buffer, fetch_offset, take)


def test_the_broker_s_append_time_is_every_record_s_timestamp() -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=False, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=10**6,
    )  # fmt: skip
    for n in range(3):
        builder.append(n, timestamp=1_700_000_000_000 + n, key=None, value=b"v", headers=[])
    buffer = bytearray(builder.build())
    # The attributes (int16 at byte 21 of the batch): bit 3 is the timestamp type, append time.
    attributes = struct.unpack_from(">h", buffer, 21)[0] | 0x08
    struct.pack_into(">h", buffer, 21, attributes)
    # The CRC covers the attributes onwards: checked, so the batch is fixed up as a broker would.
    struct.pack_into(">I", buffer, 17, calc_crc32c(memoryview(buffer)[21:]))
    ours, _ = _ours(bytes(buffer))
    assert [m.timestamp_ms for m in ours] == [1_700_000_000_002] * 3
    assert ours == _kafka_pythons(bytes(buffer))[0]


def test_a_damaged_batch_is_refused() -> None:
    buffer = bytearray(_batches([[(0, b"k", b"value", [("ce_id", b"1")])] * 5]))
    buffer[-3] ^= 0xFF  # a byte of the last record
    with pytest.raises(kafka_errors.CorruptRecordError, match="crc"):
        _ours(bytes(buffer))
    # Unchecked, a record whose framing does not add up is refused all the same.
    part = MessageRecords(0, TP, MemoryRecords(_truncated_record()), None, None, False)
    with pytest.raises(kafka_errors.CorruptRecordError):
        part.take(None)


def _truncated_record() -> bytes:
    """A batch whose last record announces more header bytes than it holds (CRC not checked)."""
    buffer = bytearray(_batches([[(0, None, b"v", [("a", b"x")])]]))
    buffer[-2] = 0x04  # the header value's length: 2 instead of 1, one byte past the record
    return bytes(buffer)


class _Consumer:
    def __init__(self, **config: Any) -> None:
        self.config = {"key_deserializer": None, "value_deserializer": None, **config}
        self._fetcher = type("F", (), {"PartitionRecords": Fetcher.PartitionRecords})()


def test_only_consumers_of_raw_uncommitted_records_read_into_messages() -> None:
    plain = _Consumer(isolation_level="read_uncommitted")
    assert read_into_messages(plain)
    assert plain._fetcher.PartitionRecords is MessageRecords
    for config in ({"isolation_level": "read_committed"}, {"value_deserializer": bytes.decode}):
        other = _Consumer(**config)
        assert not read_into_messages(other)
        assert other._fetcher.PartitionRecords is Fetcher.PartitionRecords
