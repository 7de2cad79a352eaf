"""What feeds says of a subscription is what it does: its status follows its grant, an admin sees
every subscription, and a stream acknowledges what it delivered so that its lag moves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.worker import wait_until
from services.feeds.app import refresh_lag
from services.feeds.runtime import FeedsRuntime
from tests.support.services import (
    FeedsPlatform,
    IngestPlatform,
    Scenario,
    feeds_settings_for_tests,
    running_feeds,
)
from tests.support.sse import SseReader, open_stream


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests()) as running:
        yield running


def _subscription(feeds: FeedsPlatform, scenario: Scenario, subscription_id: str) -> dict[str, Any]:
    response = feeds.call("GET", f"/v1/subscriptions/{subscription_id}", scenario)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("stop", ["revoked", "suspended"])
def test_a_subscription_whose_grant_stops_says_it_delivers_nothing(feeds: FeedsPlatform, stop: str) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id)
    assert subscription["status"] == "active" and subscription["delivering"] is True
    assert subscription["reason"] is None

    feeds.change_grant(grant, status=stop)
    detail = _subscription(feeds, scenario, subscription["id"])
    assert detail["status"] == stop and detail["delivering"] is False
    assert grant["id"] in detail["reason"] and stop in detail["reason"]
    [listed] = feeds.call("GET", "/v1/subscriptions", scenario).json()["items"]
    assert (listed["status"], listed["delivering"]) == (stop, False)
    # What it says is what delivery does.
    assert feeds.pull(scenario, subscription["id"], wait=0).status_code == 403


def test_a_paused_subscription_says_so_and_its_grant_comes_first(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id)
    paused = feeds.call("POST", f"/v1/subscriptions/{subscription['id']}/pause", scenario).json()
    assert (paused["status"], paused["delivering"], paused["paused"]) == ("paused", False, True)
    feeds.change_grant(grant, status="revoked")
    detail = _subscription(feeds, scenario, subscription["id"])
    assert (detail["status"], detail["delivering"], detail["paused"]) == ("revoked", False, True)


def test_an_admin_lists_every_subscription(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    first, second = feeds.scenario("first"), feeds.scenario("second")
    feeds.grant(first, dataset.id)
    feeds.grant(second, dataset.id)
    mine = feeds.subscribe(first, dataset.id)
    theirs = feeds.subscribe(second, dataset.id)
    admin = Scenario("admin", feeds.platform.catalog.admin_key)
    listed = feeds.call("GET", "/v1/subscriptions", admin)
    assert listed.status_code == 200, listed.text
    assert {mine["id"], theirs["id"]} <= {s["id"] for s in listed.json()["items"]}
    # A scenario still sees its own only.
    assert [s["id"] for s in feeds.call("GET", "/v1/subscriptions", first).json()["items"]] == [mine["id"]]


def _lag_gauge(feeds: FeedsPlatform, dataset_id: str) -> float | None:
    text = feeds.http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "citybase_feeds_lag_records":
            for sample in family.samples:
                if sample.labels.get("dataset") == dataset_id:
                    return sample.value
    return None


def test_a_stream_acknowledges_what_it_delivered_and_the_gauge_shows_the_same_lag(
    feeds: FeedsPlatform,
) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    feeds.publish(dataset, 4)

    def lag() -> int | None:
        value: int | None = _subscription(feeds, scenario, subscription["id"])["lag"]
        return value

    assert wait_until(lambda: lag() == 4, 10), lag()
    with open_stream(feeds, scenario, subscription["id"]) as response:
        SseReader(response).records(4)
        # The batches went out: the stream acknowledges them while it waits for more.
        assert wait_until(lambda: lag() == 0, 10), f"the lag stayed at {lag()} after delivery"

    runtime = feeds.runtime
    refresh_lag(runtime, runtime.service_as(FeedsRuntime).feeds)
    assert _lag_gauge(feeds, dataset.id) == 0.0
    feeds.publish(dataset, 3)
    assert wait_until(lambda: lag() == 3, 10)
    refresh_lag(runtime, runtime.service_as(FeedsRuntime).feeds)
    assert _lag_gauge(feeds, dataset.id) == lag() == 3
