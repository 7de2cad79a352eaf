"""The Python Subscriber against a running feeds, on both buses: a crash of feeds between delivery
and acknowledgement redelivers the batch and the client drops the duplicates."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from citybase.client import Delivery, Subscriber
from services.common.worker import wait_until
from services.feeds.runtime import FeedsRuntime
from tests.support.services import FeedsPlatform, IngestPlatform, feeds_settings_for_tests, running_feeds


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests()) as running:
        yield running


class CrashBeforeAck(httpx.HTTPTransport):
    """Feeds "crashes" when the first acknowledgement of delivered records is on its way: the ack
    is lost and the process's readers are gone (as after a restart)."""

    def __init__(self, feeds: FeedsPlatform, subscription_id: str) -> None:
        super().__init__()
        self.feeds = feeds
        self.subscription_id = subscription_id
        self.crashed = False
        self.delivered: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ack") and self.delivered and not self.crashed:
            self.crashed = True
            self.feeds.runtime.service_as(FeedsRuntime).pool.discard(self.subscription_id)
            raise httpx.ConnectError("connection reset", request=request)
        response = super().handle_request(request)
        if request.url.path.endswith("/records") and response.status_code == 200:
            response.read()
            self.delivered += [r["id"] for r in response.json()["records"]]
        return response


def test_a_crash_between_delivery_and_ack_redelivers_and_the_client_drops_duplicates(
    feeds: FeedsPlatform,
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id, fields=["arrival_id", "delay_s"])
    created = feeds.subscribe(scenario, dataset.id, start="earliest")
    published = feeds.publish(dataset, 6)
    transport = CrashBeforeAck(feeds, created["id"])
    received: list[Delivery] = []
    subscriber = Subscriber(
        feeds.url, scenario.key, created["id"], max_records=3, wait_s=1, backoff_s=0.05, transport=transport
    )

    def read() -> None:
        with contextlib.suppress(Exception):
            received.extend(subscriber)

    threading.Thread(target=read, daemon=True).start()
    # The batch whose ack was lost comes again (perhaps once the partitions of the reader that
    # "crashed" have moved), and the subscriber drops what it has seen.
    assert wait_until(lambda: len(received) == 6 and len(transport.delivered) > 6, 30), transport.delivered
    subscriber.close()
    assert transport.crashed
    assert sorted(r.id for r in received) == sorted(r["_event_id"] for r in published)
    assert subscriber.duplicates > 0  # the redelivered records were dropped, not handed over twice
    assert all(set(r.data) == {"arrival_id", "delay_s"} for r in received)


def test_subscriber_create_and_resume_from_a_kept_cursor(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    published = feeds.publish(dataset, 4)
    with Subscriber.create(
        feeds.url, scenario.key, dataset.id, start="earliest", max_records=2, wait_s=2
    ) as first:
        batches = first.batches()
        got = list(next(batches))
        while len(got) < 4:
            got += next(batches)
        kept = first.cursor  # acknowledged: every batch but the last
        assert kept is not None
        subscription_id = first.subscription_id
    assert {r.id for r in got} == {r["_event_id"] for r in published}
    # Another process resumes from the kept cursor: what came after it comes again.
    with Subscriber(feeds.url, scenario.key, subscription_id, cursor=kept, wait_s=2, max_retries=0) as second:
        again = list(next(second.batches()))
    assert again and {r.id for r in again} <= {r.id for r in got}
