"""The citybase event envelope: CloudEvents 1.0, Kafka protocol binding, binary content mode.

The record value is the event data (JSON); the context attributes travel as ``ce_*`` headers and
the content type as ``content-type``, so any CloudEvents SDK reads a citybase record and any Kafka
consumer can still read the plain JSON value. Extensions: ``ce_dataset`` and ``ce_contractversion``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.common.bus import Message, OutgoingRecord
from services.common.clock import as_utc

SPEC_VERSION = "1.0"
JSON = "application/json"
HEADER_PREFIX = "ce_"
_REQUIRED = ("id", "source", "type", "specversion")


class EnvelopeError(ValueError):
    """A record is not a valid CloudEvent in binary mode."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One event. ``data`` is JSON-serialisable; ``extensions`` hold lower-case alphanumeric names."""

    type: str
    source: str
    data: Any
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    dataschema: str | None = None
    datacontenttype: str = JSON
    extensions: dict[str, str] = field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        attributes = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "specversion": SPEC_VERSION,
            "time": format_time(self.time),
        }
        if self.subject is not None:
            attributes["subject"] = self.subject
        if self.dataschema is not None:
            attributes["dataschema"] = self.dataschema
        attributes.update(self.extensions)
        return attributes

    def to_record(
        self, topic: str, key: bytes | None = None, *, value: bytes | None = None
    ) -> OutgoingRecord:
        """The Kafka record in binary mode; ``value`` may carry pre-serialised data."""
        headers = [(HEADER_PREFIX + name, text.encode()) for name, text in self.attributes().items()]
        headers.append(("content-type", self.datacontenttype.encode()))
        if value is None:
            value = encode_json(self.data)
        return OutgoingRecord(
            topic=topic,
            key=key,
            value=value,
            headers=tuple(headers),
            timestamp_ms=int(self.time.timestamp() * 1000),
        )

    @classmethod
    def from_message(cls, message: Message) -> CloudEvent:
        """Read a binary-mode record back; raises :class:`EnvelopeError` if it is not one."""
        attributes: dict[str, str] = {}
        content_type = JSON
        for name, raw in message.headers:
            if name.startswith(HEADER_PREFIX):
                attributes[name[len(HEADER_PREFIX) :]] = raw.decode("utf-8", errors="replace")
            elif name == "content-type":
                content_type = raw.decode("utf-8", errors="replace")
        missing = [name for name in _REQUIRED if name not in attributes]
        if missing:
            raise EnvelopeError(f"not a CloudEvent: missing {', '.join('ce_' + m for m in missing)}")
        if attributes.pop("specversion") != SPEC_VERSION:
            raise EnvelopeError("unsupported CloudEvents specversion")
        data: Any = message.value
        if message.value is not None and content_type.startswith(JSON):
            try:
                data = json.loads(message.value)
            except ValueError as error:
                raise EnvelopeError(f"data is not JSON: {error}") from error
        time_text = attributes.pop("time", None)
        return cls(
            id=attributes.pop("id"),
            source=attributes.pop("source"),
            type=attributes.pop("type"),
            time=parse_time(time_text)
            if time_text
            else datetime.fromtimestamp(message.timestamp_ms / 1000, UTC),
            subject=attributes.pop("subject", None),
            dataschema=attributes.pop("dataschema", None),
            datacontenttype=content_type,
            data=data,
            extensions=attributes,
        )


def encode_json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as CloudEvents prefers."""
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


EVENT_TIME_KEYWORD = "x-citybase-event-time"
"""The record-schema keyword the catalog puts on a property its contract marks ``citybase.eventTime``
(the value is its rank: 1 first)."""


def event_time_fields(record_schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields a contract names as a record's occurrence time, by rank (then as declared);
    empty when it names none."""
    properties = record_schema.get("properties")
    if not isinstance(properties, Mapping):
        return ()
    marked = sorted(
        (rank, position, name)
        for position, (name, sub) in enumerate(properties.items())
        if isinstance(sub, Mapping)
        and isinstance(rank := sub.get(EVENT_TIME_KEYWORD), int)
        and not isinstance(rank, bool)
    )
    return tuple(name for _, _, name in marked)


def occurrence_time(record: Any, fields: Sequence[str]) -> datetime | None:
    """When the record's event happened: the first of ``fields`` holding a date-time (a date is
    its midnight, a time without offset is UTC); None when none does, or ``fields`` is empty.

    This is a ``ds.`` record's CloudEvents ``time``; without it the ingest time stands in.
    """
    if not fields or not isinstance(record, Mapping):
        return None
    for name in fields:
        value = record.get(name)
        if not isinstance(value, str):
            continue
        try:
            moment = parse_time(value)
        except ValueError:
            continue
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None
