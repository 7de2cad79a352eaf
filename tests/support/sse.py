"""Reading Server-Sent Events of feeds in tests: one stream on a connection of its own, and its
events as they arrive."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.services import FeedsPlatform, Scenario


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None
    received: float

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads one SSE response in the calling thread (so that leaving the ``with`` really closes
    the socket), noting when each event arrived."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def next(self) -> SseEvent | None:
        """The next event, or None once the stream is over."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if "data" in fields:
                    return SseEvent(
                        fields.get("event", "message"), fields["data"], fields.get("id"), time.monotonic()
                    )
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        return None

    def records(self, expected: int) -> list[SseEvent]:
        batches: list[SseEvent] = []
        count = 0
        while count < expected:
            event = self.next()
            assert event is not None, "the stream ended"
            assert event.event == "records", event
            batches.append(event)
            count += len(event.json()["records"])
        return batches


@contextlib.contextmanager
def open_stream(
    feeds: FeedsPlatform, scenario: Scenario, subscription_id: str, **headers: str
) -> Iterator[Any]:
    """A stream on a connection of its own, really closed on exit (as a client going away)."""
    with (
        httpx.Client(base_url=feeds.url, timeout=httpx.Timeout(60, read=60)) as client,
        client.stream(
            "GET",
            f"/v1/subscriptions/{subscription_id}/stream",
            headers={"Authorization": f"Bearer {scenario.key}", **headers},
        ) as response,
    ):
        yield response
