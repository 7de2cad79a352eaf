"""Server-Sent Events of feeds, on both buses: masked batches, resumption with Last-Event-ID, a
revocation or expiry cutting an open stream within a second, and a stream acknowledging what it
delivered (its lag, in the API and the gauge, moves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.worker import wait_until
from services.feeds.app import refresh_lag
from services.feeds.runtime import FeedsRuntime
from tests.factories import grant_record, next_grant_version
from tests.support.services import (
    FeedsPlatform,
    IngestPlatform,
    feeds_settings_for_tests,
    running_feeds,
)
from tests.support.sse import SseReader, open_stream


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests()) as running:
        yield running


def test_a_stream_delivers_masked_batches_and_resumes_after_last_event_id(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(
        scenario, dataset.id, fields=["arrival_id", "vehicle_id"], masking={"vehicle_id": {"kind": "hash"}}
    )
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    first = feeds.publish(dataset, 3)
    with open_stream(feeds, scenario, subscription["id"]) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        batches = reader.records(3)
    delivered = [r for b in batches for r in b.json()["records"]]
    assert {r["id"] for r in delivered} == {r["_event_id"] for r in first}
    assert all(set(r["data"]) == {"arrival_id", "vehicle_id"} for r in delivered)
    assert all(r["data"]["vehicle_id"].startswith("h:") for r in delivered)
    last_id = batches[-1].id
    assert last_id == batches[-1].json()["cursor"]

    second = feeds.publish(dataset, 2)
    with open_stream(feeds, scenario, subscription["id"], **{"Last-Event-ID": last_id or ""}) as response:
        reader = SseReader(response)
        resumed = [r for b in reader.records(2) for r in b.json()["records"]]
    assert {r["id"] for r in resumed} == {r["_event_id"] for r in second}


@pytest.mark.parametrize("stop", ["revoked", "expired"])
def test_revocation_or_expiry_cuts_an_open_stream_within_a_second(feeds: FeedsPlatform, stop: str) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    with open_stream(feeds, scenario, subscription["id"]) as response:
        reader = SseReader(response)
        feeds.publish(dataset, 2)
        reader.records(2)
        announced: list[float] = []

        def stop_delivery() -> None:
            time.sleep(0.3)
            if stop == "revoked":
                announced.append(time.monotonic())
                feeds.platform.bus.producer().publish(
                    [grant_record(next_grant_version(grant, status="revoked"))]
                )
            else:
                # The grant expires by the clock: no event announces it.
                soon = datetime.now(UTC) + timedelta(seconds=2)
                feeds.change_grant(grant, expires_at=soon.isoformat())
                announced.append(time.monotonic() + max(0.0, (soon - datetime.now(UTC)).total_seconds()))

        threading.Thread(target=stop_delivery, daemon=True).start()
        end = reader.next()
        while end is not None and end.event == "records":
            end = reader.next()
        assert end is not None and end.event == "end", end
        elapsed = end.received - announced[0]
        assert elapsed < 1.0, f"delivery stopped {elapsed:.2f}s after the grant was {stop}"
        problem = end.json()
        assert problem["status"] == 403 and problem["reason"] == stop
        assert reader.next() is None  # the stream is over
    # A new stream or a pull is refused up front.
    with open_stream(feeds, scenario, subscription["id"]) as response:
        assert response.status_code == 403


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
        value: int | None = feeds.call("GET", f"/v1/subscriptions/{subscription['id']}", scenario).json()[
            "lag"
        ]
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
