"""The Subscriber of citybase.client against a scripted feeds (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from citybase.client import SubscribeError, Subscriber


def record(event_id: str, offset: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "dataset": "transport.bus-arrivals",
        "partition": 0,
        "offset": offset,
        "time": None,
        "data": {"n": offset},
    }


class ScriptedFeeds:
    """Answers long-polls from a script of (status, body, headers) and records acks."""

    def __init__(self, script: list[tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        self.script = script
        self.acks: list[str] = []
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ack"):
            self.acks.append(json.loads(request.content)["cursor"])
            return httpx.Response(200, json={"committed": {}})
        self.polls += 1
        if not self.script:
            return httpx.Response(
                403, json={"type": "x/grant-not-active", "title": "t", "status": 403, "reason": "revoked"}
            )
        status, body, headers = self.script.pop(0)
        return httpx.Response(status, json=body, headers=headers)


def batch(cursor: str, *records: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, {"subscription_id": "sub-1", "grant": {}, "records": list(records), "cursor": cursor}, {}


def subscriber(feeds: ScriptedFeeds, sleeps: list[float], **options: Any) -> Subscriber:
    return Subscriber(
        "http://feeds.test",
        "cbk_x",
        "sub-1",
        transport=httpx.MockTransport(feeds),
        sleep=sleeps.append,
        **options,
    )


def test_records_are_acknowledged_batch_by_batch_and_duplicates_dropped() -> None:
    feeds = ScriptedFeeds(
        [
            batch("c1", record("a", 0), record("b", 1)),
            batch("c2", record("b", 1), record("c", 2)),  # b delivered again after a restart
            batch("c3", record("a", 0)),  # only duplicates: nothing to yield
            batch("c4", record("d", 3)),
        ]
    )
    sleeps: list[float] = []
    seen: list[str] = []
    with subscriber(feeds, sleeps) as feed, pytest.raises(SubscribeError) as refused:
        for delivered in feed:
            seen.append(delivered.id)
            if delivered.id == "a":
                assert feeds.acks == []  # not before the batch is processed
    assert seen == ["a", "b", "c", "d"]
    assert feeds.acks == ["c1", "c2", "c3", "c4"]
    assert refused.value.status == 403 and refused.value.reason == "revoked"
    assert feed.cursor == "c4" and feed.duplicates == 2


def test_429_and_503_are_retried_with_backoff_honouring_retry_after() -> None:
    feeds = ScriptedFeeds(
        [
            (429, {"title": "quota", "reason": "quota"}, {"Retry-After": "7"}),
            (503, {"title": "busy"}, {}),
            batch("c1", record("a", 0)),
        ]
    )
    sleeps: list[float] = []
    with subscriber(feeds, sleeps, backoff_s=0.5) as feed:
        first = next(iter(feed))
    assert first.id == "a"
    assert sleeps[0] >= 7 and 0.25 <= sleeps[1] <= 1.0


def test_resuming_from_a_kept_cursor_acknowledges_it_first() -> None:
    feeds = ScriptedFeeds([batch("c9", record("z", 9))])
    with subscriber(feeds, [], cursor="c8") as feed:
        assert next(iter(feed)).id == "z"
    assert feeds.acks == ["c8"]


def test_retries_stop_after_max_retries() -> None:
    feeds = ScriptedFeeds([(503, {"title": "busy"}, {})] * 5)
    with subscriber(feeds, [], max_retries=2) as feed, pytest.raises(SubscribeError) as failed:
        next(iter(feed))
    assert failed.value.status == 503 and feeds.polls == 3


def test_a_lost_acknowledgement_is_not_waited_for_and_the_redelivery_is_dropped() -> None:
    feeds = ScriptedFeeds([batch("c1", record("a", 0)), batch("c1b", record("a", 0), record("b", 1))])
    failing = {"left": 1}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ack") and failing["left"]:
            failing["left"] -= 1
            raise httpx.ConnectError("feeds restarting", request=request)
        return feeds(request)

    client = Subscriber(
        "http://feeds.test", "cbk_x", "sub-1", transport=httpx.MockTransport(handler), sleep=lambda _: None
    )
    with client as feed:
        records = iter(feed)
        assert [next(records).id, next(records).id] == ["a", "b"]
    assert feed.duplicates == 1 and feeds.acks == []
