"""Quality's reader of platform.usage: a scenario's deliveries count, an open-data download does not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common import usage_events
from services.common.bus import Message, OutgoingRecord
from services.common.envelope import CloudEvent
from services.quality.consumer import UsageHandler
from tests.factories import usage_record


class Sessions:
    """A session factory that only counts how often a unit of work was asked for."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        raise RuntimeError("stored")


def _message(record: OutgoingRecord) -> Message:
    return Message(record.topic, 0, 0, record.key, record.value, record.headers, 0)


def _open_snapshot() -> OutgoingRecord:
    data = {
        "dataset_id": "transport.bus-arrivals",
        "records": 1000,
        "bytes": 250_000,
        "format": "ndjson",
        "limit": 1000,
        "withheld_fields": [],
        "client": "0" * 32,
        "principal_id": None,
        "served_at": datetime.now(UTC).isoformat(),
    }
    event = CloudEvent(
        type=usage_events.OPEN_SNAPSHOT, source="/feeds", subject="transport.bus-arrivals", data=data
    )
    return event.to_record(usage_events.TOPIC, b"transport.bus-arrivals")


def test_an_open_data_snapshot_is_no_scenarios_use() -> None:
    sessions = Sessions()
    handler = UsageHandler(sessions)  # type: ignore[arg-type]

    handler.handle(_message(_open_snapshot()))
    handler.flush()

    assert sessions.opened == 0  # nothing to store


def test_a_delivery_is_stored() -> None:
    sessions = Sessions()
    handler = UsageHandler(sessions)  # type: ignore[arg-type]

    handler.handle(_message(usage_record("sc-1", "transport.bus-arrivals", grant_id="g-1")))
    with pytest.raises(RuntimeError, match="stored"):
        handler.flush()

    assert sessions.opened == 1
