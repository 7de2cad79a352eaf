"""Streams sharing one consumer per dataset (services.feeds.fanout), on both buses: many streams of
one dataset each get exactly their records, a stream's acknowledgements are its subscription
group's positions, Last-Event-ID resumes, and two streams of one subscription deliver each record
once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.worker import wait_until
from services.feeds.runtime import FeedsRuntime
from services.feeds.service import Feeds
from tests.support.services import (
    FeedsPlatform,
    IngestPlatform,
    Scenario,
    feeds_settings_for_tests,
    running_feeds,
)
from tests.support.sse import SseEvent, SseReader, open_stream


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests()) as running:
        yield running


def _service(feeds: FeedsPlatform) -> Feeds:
    return feeds.runtime.service_as(FeedsRuntime).feeds


def _ids(batches: list[SseEvent]) -> list[str]:
    return [record["id"] for batch in batches for record in batch.json()["records"]]


class _Listener:
    """One stream read on a thread of its own until it delivered ``expected`` records."""

    def __init__(self, feeds: FeedsPlatform, scenario: Scenario, subscription_id: str, expected: int) -> None:
        self.ids: list[str] = []
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(feeds, scenario, subscription_id, expected))
        self._thread.start()

    def _run(self, feeds: FeedsPlatform, scenario: Scenario, subscription_id: str, expected: int) -> None:
        try:
            with open_stream(feeds, scenario, subscription_id) as response:
                assert response.status_code == 200, response.text
                self.connected.set()
                self.ids = _ids(SseReader(response).records(expected))
        except BaseException as error:
            self.error = error
            self.connected.set()

    def join(self) -> list[str]:
        self._thread.join(60)
        assert not self._thread.is_alive(), "the stream did not deliver its records"
        if self.error is not None:
            raise self.error
        return self.ids


def test_many_streams_of_one_dataset_each_get_exactly_their_records_through_one_reader(
    feeds: FeedsPlatform,
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    before = feeds.publish(dataset, 3)
    live = [feeds.subscribe(scenario, dataset.id, start="latest") for _ in range(5)]
    behind = feeds.subscribe(scenario, dataset.id, start="earliest")
    listeners = [_Listener(feeds, scenario, s["id"], 6) for s in live]
    assert all(listener.connected.wait(30) for listener in listeners)
    assert wait_until(lambda: _service(feeds).fanout.feeds() == 1, 10)
    after = feeds.publish(dataset, 6)
    late = _Listener(feeds, scenario, behind["id"], 9)
    expected = sorted(r["_event_id"] for r in after)
    for listener in listeners:
        assert sorted(listener.join()) == expected
    # Behind the others: it caught up on its own, from the beginning, and got every record once.
    assert sorted(late.join()) == sorted(r["_event_id"] for r in before + after)
    assert _service(feeds).fanout.feeds() <= 1


def test_a_streams_acknowledgement_is_the_groups_position_and_a_long_poll_resumes_after_it(
    feeds: FeedsPlatform,
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    path = f"/v1/subscriptions/{subscription['id']}"
    feeds.publish(dataset, 3)

    def lag() -> Any:
        return feeds.call("GET", path, scenario).json()["lag"]

    with open_stream(feeds, scenario, subscription["id"]) as response:
        SseReader(response).records(3)
        assert wait_until(lambda: lag() == 0, 10), f"the lag stayed at {lag()} after delivery"
    later = feeds.publish(dataset, 2)
    got: list[str] = []
    for _ in range(5):
        page = feeds.call("GET", path + "/records", scenario, params={"max": 100, "wait": 2}).json()
        got += [r["id"] for r in page["records"]]
        if len(got) >= 2:
            break
    assert sorted(got) == sorted(r["_event_id"] for r in later)


def test_last_event_id_resumes_after_that_event_even_behind_what_was_delivered(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    feeds.publish(dataset, 2)
    with open_stream(feeds, scenario, subscription["id"]) as response:
        reader = SseReader(response)
        first = reader.records(2)
        second_records = feeds.publish(dataset, 3)
        reader.records(3)
    # The client kept only the first batches' id: what came after it comes again.
    resume_from = first[-1].id or ""
    with open_stream(feeds, scenario, subscription["id"], **{"Last-Event-ID": resume_from}) as response:
        again = _ids(SseReader(response).records(3))
    assert sorted(again) == sorted(r["_event_id"] for r in second_records)


def test_two_streams_of_one_subscription_deliver_each_record_once(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    group_id = f"feeds.sub.{subscription['id']}"
    admin = feeds.platform.bus.admin()
    ids: list[str] = []
    lock = threading.Lock()
    responses: list[Any] = []

    def read() -> None:
        try:
            with open_stream(feeds, scenario, subscription["id"]) as response:
                assert response.status_code == 200
                responses.append(response)
                reader = SseReader(response)
                while (event := reader.next()) is not None:
                    if event.event == "records":
                        with lock:
                            ids.extend(record["id"] for record in event.json()["records"])
        except Exception:  # closed from the test's thread once the records are in
            return

    threads = [threading.Thread(target=read, daemon=True) for _ in range(2)]
    threads[0].start()
    assert wait_until(lambda: len(responses) == 1, 30)
    threads[1].start()
    assert wait_until(lambda: len(responses) == 2, 30)
    # Both read as members of the subscription's group once the second opened, and once the group
    # settled each holds some of the partitions (a record delivered but not acknowledged when a
    # partition moves comes again: at-least-once, not what this test is about).
    assert wait_until(lambda: admin.group_members(group_id) == 2, 30)
    partitions = len(subscription["positions"])

    def settled() -> bool:
        held = [r.assigned() for r in _service(feeds).fanout.readers(subscription["id"])]
        return len(held) == 2 and all(held) and not held[0] & held[1] and len(held[0] | held[1]) == partitions

    assert wait_until(lambda: settled() and not wait_until(lambda: not settled(), 1), 30)
    published = feeds.publish(dataset, 20)
    assert wait_until(lambda: len(ids) >= 20, 30), len(ids)
    assert not wait_until(lambda: len(ids) > 20, 3), "a record was delivered twice"
    for response in responses:
        response.close()
    for thread in threads:
        thread.join(10)
    assert sorted(ids) == sorted(r["_event_id"] for r in published)
