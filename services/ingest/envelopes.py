"""Keys, event ids and envelopes of accepted records: the Kafka key from the contract's primary
key, the CloudEvents id (the record's own, derived from an Idempotency-Key or a raw offset, or
random), and the ``ds.<dataset>`` record in binary content mode. Pure functions; no session.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.common.bus import (
    Message,
    OutgoingRecord,
)
from services.common.envelope import HEADER_PREFIX, CloudEvent, format_time
from services.common.topics import (
    records_topic,
)

RECORD_EVENT_TYPE = "city.citybase.record.v1"

_EVENT_IDS = uuid.UUID("8f1d3c52-7c0e-5b7a-9d1e-2f6a4b8c0e13")
"""Namespace of the derived (UUIDv5) event ids."""


def _key_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def record_key(record: Any, primary_key: Sequence[str]) -> str | None:
    """The record's primary key as text: the value of a one-field key, else the values joined by
    ``/`` with ``%`` and ``/`` escaped (``%25``, ``%2F``) so that different keys stay different.

    None when the contract has no key or the record does not carry every key field as a scalar.
    """
    if not primary_key or not isinstance(record, dict):
        return None
    values = []
    for name in primary_key:
        value = record.get(name)
        if value is None or isinstance(value, (dict, list)):
            return None
        values.append(_key_text(value))
    if len(values) == 1:
        return values[0]
    return "/".join(value.replace("%", "%25").replace("/", "%2F") for value in values)


def kafka_key(key: str | None) -> bytes | None:
    if key is None:
        return None
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the record is rejected anyway
        return None


def _uuid_text(raw: bytes, version: int) -> str:
    """RFC 4122 text of 16 bytes with ``version`` and the variant set; what ``str(uuid.UUID)``
    gives, without building a UUID object per record (a third of the cost of routing one)."""
    octets = bytearray(raw[:16])
    octets[6] = (octets[6] & 0x0F) | (version << 4)
    octets[8] = (octets[8] & 0x3F) | 0x80
    text = octets.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_event_id() -> str:
    """A UUIDv4."""
    return _uuid_text(os.urandom(16), 4)


def derived_event_id(name: str) -> str:
    """The UUIDv5 of ``name`` in ingest's namespace (``uuid.uuid5(_EVENT_IDS, name)``)."""
    return _uuid_text(
        hashlib.sha1(_EVENT_IDS.bytes + name.encode("utf-8"), usedforsecurity=False).digest(), 5
    )


def batch_event_ids(principal_id: str, dataset_id: str, idempotency_key: str | None) -> Callable[[int], str]:
    """Event ids of a batch's records by index: random, or derived from the Idempotency-Key."""
    if idempotency_key is None:
        return lambda _index: random_event_id()
    base = f"http\x1f{principal_id}\x1f{dataset_id}\x1f{idempotency_key}\x1f"
    return lambda index: derived_event_id(base + str(index))


def raw_event_id(message: Message) -> str:
    """Stable across redeliveries, so a record consumed twice is published under one id."""
    return derived_event_id(f"raw\x1f{message.topic}\x1f{message.partition}\x1f{message.offset}")


class RecordEnvelopes:
    """The ``ds.<dataset>`` records of one batch (CloudEvents binary mode).

    Every attribute but ``id``, ``subject`` and ``time`` is the same for all records of a batch,
    so the kernel's :class:`CloudEvent` renders the headers once, and each record only adds its
    own. ``time`` is the batch's ingest time unless the record carries its occurrence time (the
    field its contract marks ``citybase.eventTime``).
    """

    _ID, _SUBJECT = "\x00id\x00", "\x00subject\x00"

    def __init__(self, dataset_id: str, contract_version: str, time: datetime) -> None:
        template = CloudEvent(
            type=RECORD_EVENT_TYPE,
            source=f"/ingest/datasets/{dataset_id}",
            data=None,
            id=self._ID,
            time=time,
            subject=self._SUBJECT,
            dataschema=f"/catalog/v1/datasets/{dataset_id}/contract-versions/{contract_version}",
            extensions={"dataset": dataset_id, "contractversion": contract_version},
        ).to_record(records_topic(dataset_id), None, value=b"")
        self.topic = template.topic
        self.timestamp_ms = template.timestamp_ms
        self._headers = template.headers
        self._id_at = next(i for i, (_, v) in enumerate(template.headers) if v == self._ID.encode())
        self._subject_at = next(i for i, (_, v) in enumerate(template.headers) if v == self._SUBJECT.encode())
        self._time_at = next(i for i, (k, _) in enumerate(template.headers) if k == HEADER_PREFIX + "time")

    def record(
        self, event_id: str, key: str | None, value: bytes, occurred_at: datetime | None = None
    ) -> OutgoingRecord:
        headers = list(self._headers)
        headers[self._id_at] = (HEADER_PREFIX + "id", event_id.encode())
        if occurred_at is not None:
            headers[self._time_at] = (HEADER_PREFIX + "time", format_time(occurred_at).encode())
        key_bytes = kafka_key(key)
        if key_bytes is None:
            del headers[self._subject_at]
        else:
            headers[self._subject_at] = (HEADER_PREFIX + "subject", key_bytes)
        return OutgoingRecord(self.topic, value, key_bytes, tuple(headers), timestamp_ms=self.timestamp_ms)


def record_envelope(
    *,
    dataset_id: str,
    contract_version: str,
    event_id: str,
    key: str | None,
    value: bytes,
    time: datetime,
) -> OutgoingRecord:
    """The ``ds.<dataset>`` record of one accepted record."""
    return RecordEnvelopes(dataset_id, contract_version, time).record(event_id, key, value)
