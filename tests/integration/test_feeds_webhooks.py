"""Webhook delivery of feeds on both buses: signed batches to a receiver on 127.0.0.1, retries
with backoff, the delivery log, and the subscription paused after repeated failures."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest

from services.common.worker import wait_until
from tests.support.services import FeedsPlatform, IngestPlatform, feeds_settings_for_tests, running_feeds
from tests.support.webhooks import Receiver


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    # The receiver listens on 127.0.0.1: loopback is refused unless allowed, as for local testing.
    with running_feeds(platform, feeds_settings_for_tests(webhook_allow_loopback=True)) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_batches_are_pushed_signed_and_retried_after_failures(
    feeds: FeedsPlatform, receiver: Receiver
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(
        scenario, dataset.id, fields=["arrival_id", "vehicle_id"], masking={"vehicle_id": {"kind": "redact"}}
    )
    receiver.statuses = [500, 503]  # two failures, then success
    subscription = feeds.subscribe(scenario, dataset.id, start="latest", webhook={"url": receiver.url})
    secret = subscription["webhook_secret"]
    assert subscription["mode"] == "webhook" and secret.startswith("whsec_")
    assert (
        "webhook_secret" not in feeds.call("GET", f"/v1/subscriptions/{subscription['id']}", scenario).json()
    )
    published = feeds.publish(dataset, 5)
    assert wait_until(lambda: len({r["id"] for r in receiver.accepted_records()}) == 5, 30), receiver.received
    for hit in receiver.received:
        assert verify(secret, hit["headers"]["CityBase-Signature"], hit["body"])
        assert hit["headers"]["CityBase-Subscription"] == subscription["id"]
    delivered = receiver.accepted_records()
    assert {r["id"] for r in delivered} == {r["_event_id"] for r in published}
    assert all(set(r["data"]) == {"arrival_id"} for r in delivered)
    failed = [hit for hit in receiver.received if hit["status"] >= 300]
    assert len(failed) == 2
    deliveries = f"/v1/subscriptions/{subscription['id']}/deliveries"
    # The receiver answers before feeds writes the attempt's outcome to the delivery log.
    assert wait_until(lambda: len(feeds.call("GET", deliveries, scenario).json()["items"]) >= 3, 10)
    log = feeds.call("GET", deliveries, scenario).json()["items"]
    outcomes = [entry["outcome"] for entry in reversed(log)]
    assert outcomes[:3] == ["failed", "failed", "delivered"]
    assert [entry["attempt"] for entry in reversed(log)][:3] == [1, 2, 3]
    assert log[-1]["http_status"] == 500
    detail = feeds.call("GET", f"/v1/subscriptions/{subscription['id']}", scenario).json()
    assert wait_until(
        lambda: feeds.call("GET", f"/v1/subscriptions/{subscription['id']}", scenario).json()["lag"] == 0, 10
    ), detail


def test_a_failing_webhook_is_paused_after_n_failures_and_resumes(
    feeds: FeedsPlatform, receiver: Receiver
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    receiver.statuses = [500] * 3
    subscription = feeds.subscribe(scenario, dataset.id, start="latest", webhook={"url": receiver.url})
    path = f"/v1/subscriptions/{subscription['id']}"
    published = feeds.publish(dataset, 2)
    assert wait_until(lambda: feeds.call("GET", path, scenario).json()["status"] == "paused", 30)
    detail = feeds.call("GET", path, scenario).json()
    assert "failed 3 times" in detail["status_reason"]
    assert len(receiver.received) == 3
    time.sleep(1.0)
    assert len(receiver.received) == 3  # nothing more while paused
    assert feeds.call("POST", path + "/resume", scenario).json()["status"] == "active"
    assert wait_until(lambda: len({r["id"] for r in receiver.accepted_records()}) == 2, 30)
    assert {r["id"] for r in receiver.accepted_records()} == {r["_event_id"] for r in published}
