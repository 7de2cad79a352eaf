"""Reading fetched record batches straight into :class:`Message` tuples.

kafka-python reads each record of a fetched batch into a ``DefaultRecord``, then a
``ConsumerRecord`` (adding up the size of its headers on the way, for metrics), which the bus then
copied into a ``Message``: three objects, a function call per varint and an ``encode`` per header,
for every record. citybase's records carry ten CloudEvents headers, so that reading was more than
half of what feeds spent per delivered record, and a quarter of quality's time.

:func:`read_into_messages` gives one consumer's fetcher a reader of its own for the batches it
fetched: the same batches, checked the same way (the batch's CRC-32C when ``check_crcs``; the
record's framing against its length), in the same order, at the same positions, each record read
once into the ``Message`` the bus hands out. Only the per-record work changes: what kafka-python
does per batch (decompression, the batch header, its CRC) is still its own.

It applies to consumers that read uncommitted records and deserialize nothing (every consumer of
the bus); any other consumer, or a kafka-python whose fetcher is not what this was written
against, keeps kafka-python's reader.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache
from typing import Any

import kafka.errors as kafka_errors

from services.common.bus.base import Message

log = logging.getLogger(__name__)

_LOG_APPEND_TIME = 1
"""The batch attribute's timestamp type: the broker's append time (the batch's max timestamp)."""


def read_into_messages(consumer: Any) -> bool:
    """Give ``consumer`` (a ``KafkaConsumer``) the one-pass reader; True when it applies."""
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(consumer, "config", {})
    base = getattr(fetcher, "PartitionRecords", None)
    if (
        fetcher is None
        or base is None
        or not hasattr(base, "_unpack_records")
        or config.get("key_deserializer") is not None
        or config.get("value_deserializer") is not None
        or config.get("isolation_level", "read_uncommitted") != "read_uncommitted"
    ):
        return False
    fetcher.PartitionRecords = _message_records(base)
    return True


@cache
def _message_records(base: type) -> type:
    """``base`` (kafka-python's ``Fetcher.PartitionRecords``) reading its batches into Messages."""

    class MessageRecords(base):
        def _unpack_records(
            self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
        ) -> Iterator[Message]:
            topic, partition = tp.topic, tp.partition
            last = None
            batch = records.next_batch()
            while batch is not None:
                last = batch
                if self.check_crcs and not batch.validate_crc():
                    raise kafka_errors.CorruptRecordError(
                        f"Record batch for partition {tp} at offset {batch.base_offset} failed crc check"
                    )
                if batch.magic == 2:
                    self.leader_epoch = batch.leader_epoch
                    if batch.is_control_batch:  # transaction markers: not records
                        self.next_fetch_offset = batch.next_offset
                        batch = records.next_batch()
                        continue
                    messages = batch_messages(batch, topic, partition)
                else:  # the message formats before Kafka 0.11, read by kafka-python
                    messages = [
                        Message(
                            topic,
                            partition,
                            record.offset,
                            record.key,
                            record.value,
                            tuple(record.headers or ()),
                            record.timestamp,
                        )
                        for record in batch
                    ]
                self.records_read += len(messages)
                for message in messages:
                    # Where a poll that stops after this record goes on from, as kafka-python's.
                    self.next_fetch_offset = message.offset + 1
                    yield message
                batch = records.next_batch()
            if last is not None and last.magic == 2:
                # A compacted batch's last offset may have no record: fetch on after the batch.
                self.next_fetch_offset = last.next_offset
            self.drain()

    MessageRecords.__qualname__ = MessageRecords.__name__ = "MessageRecords"
    return MessageRecords


def batch_messages(batch: Any, topic: str, partition: int) -> list[Message]:
    """The records of one message-format-2 batch (``DefaultRecordBatch``) as Messages.

    A record is its length, an attribute byte, its timestamp and offset deltas, key, value and
    headers, integers as zigzag varints. Most of them fit in one byte, read here without a call.
    """
    iter(batch)  # decompresses the records, if the batch is compressed
    # One copy of the batch as bytes: a slice of it is then the record's key or value itself
    # (a slice of kafka-python's bytearray would be copied twice).
    buffer = bytes(batch._buffer)
    pos: int = batch._pos
    base_offset = batch.base_offset
    log_append = batch.timestamp_type == _LOG_APPEND_TIME
    first_timestamp, max_timestamp = batch.first_timestamp, batch.max_timestamp
    messages: list[Message] = []
    append = messages.append
    try:
        for _ in range(batch.records_count):
            b = buffer[pos]
            if b < 0x80:
                length, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                length, pos = _varint(buffer, pos)
            end = pos + length
            pos += 1  # attributes: none are defined for records
            b = buffer[pos]
            if b < 0x80:
                timestamp_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                timestamp_delta, pos = _varint(buffer, pos)
            b = buffer[pos]
            if b < 0x80:
                offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                offset_delta, pos = _varint(buffer, pos)
            b = buffer[pos]
            if b < 0x80:
                size, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                size, pos = _varint(buffer, pos)
            if size >= 0:
                key: bytes | None = buffer[pos : pos + size]
                pos += size
            else:
                key = None
            b = buffer[pos]
            if b < 0x80:
                size, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                size, pos = _varint(buffer, pos)
            if size >= 0:
                value: bytes | None = buffer[pos : pos + size]
                pos += size
            else:
                value = None
            b = buffer[pos]
            if b < 0x80:
                count, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                count, pos = _varint(buffer, pos)
            if count < 0:
                raise kafka_errors.CorruptRecordError(f"invalid number of record headers {count}")
            headers: list[tuple[str, bytes | None]] = []
            for _ in range(count):
                b = buffer[pos]
                if b < 0x80:
                    size, pos = (b >> 1) ^ -(b & 1), pos + 1
                else:
                    size, pos = _varint(buffer, pos)
                if size < 0:
                    raise kafka_errors.CorruptRecordError(f"invalid record header key size {size}")
                name = buffer[pos : pos + size].decode()
                pos += size
                b = buffer[pos]
                if b < 0x80:
                    size, pos = (b >> 1) ^ -(b & 1), pos + 1
                else:
                    size, pos = _varint(buffer, pos)
                if size >= 0:
                    headers.append((name, buffer[pos : pos + size]))
                    pos += size
                else:
                    headers.append((name, None))
            if pos != end:
                raise kafka_errors.CorruptRecordError(
                    f"invalid record size: {length} bytes announced, {length + pos - end} read"
                )
            append(
                Message(
                    topic,
                    partition,
                    base_offset + offset_delta,
                    key,
                    value,
                    # A header without a value (none of citybase's) stays None, as kafka-python reads it.
                    tuple(headers),  # type: ignore[arg-type]
                    max_timestamp if log_append else first_timestamp + timestamp_delta,
                )
            )
    except (IndexError, ValueError) as error:  # the buffer ends inside a record
        raise kafka_errors.CorruptRecordError(f"invalid record structure: {error!r}") from error
    if pos != len(buffer):
        raise kafka_errors.CorruptRecordError(f"{len(buffer) - pos} bytes after the batch's records")
    return messages


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint at ``pos`` of more than one byte, and the position after it."""
    value = 0
    shift = 0
    while True:
        b = buffer[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift >= 64:
            raise ValueError("a varint beyond 64 bits")
