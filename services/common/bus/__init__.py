"""One bus interface, two backends: Apache Kafka and an embedded SQLite log."""

from services.common.bus.base import (
    Admin,
    BufferFull,
    Bus,
    BusError,
    BusUnavailable,
    Consumer,
    GroupActive,
    GroupRebalancing,
    Headers,
    Message,
    OutgoingRecord,
    Producer,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
    read_from_beginning,
)
from services.common.bus.factory import bus_from_url

__all__ = [
    "Admin",
    "BufferFull",
    "Bus",
    "BusError",
    "BusUnavailable",
    "Consumer",
    "GroupActive",
    "GroupRebalancing",
    "Headers",
    "Message",
    "OutgoingRecord",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "UnknownTopic",
    "bus_from_url",
    "read_from_beginning",
]
