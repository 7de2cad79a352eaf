"""Feeds end to end on the embedded bus + SQLite and on Kafka + PostgreSQL: subscribe, long-poll,
acknowledge, enforcement of the grant on every batch, metering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from services.common.policy import HASH_PREFIX
from services.feeds.delivery import POLL_CHUNK
from services.feeds.runtime import FeedsRuntime
from tests.support.services import FeedsPlatform, IngestPlatform, feeds_settings_for_tests, running_feeds

EVENTS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests()) as running:
        yield running


def test_a_granted_scenario_receives_exactly_its_fields_and_masking(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(
        scenario,
        dataset.id,
        fields=["arrival_id", "stop_id", "vehicle_id", "delay_s"],
        masking={
            "vehicle_id": {"kind": "partial", "keepPrefix": 2, "keepSuffix": 1},
            "arrival_id": {"kind": "hash"},
        },
        row_filter="delay_s >= 0",
    )
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    assert subscription["mode"] == "pull" and subscription["status"] == "active"
    published = feeds.publish(dataset, 5) + feeds.publish(dataset, 2, delay_s=-5)
    records = feeds.pull_all(scenario, subscription["id"], 5)
    by_id = {record["id"]: record for record in records}
    assert set(by_id) == {r["_event_id"] for r in published[:5]}  # the row filter kept the late ones out
    for original in published[:5]:
        delivered = by_id[original["_event_id"]]
        assert delivered["dataset"] == dataset.id and isinstance(delivered["offset"], int)
        data = delivered["data"]
        assert set(data) == {"arrival_id", "stop_id", "vehicle_id", "delay_s"}
        assert data["arrival_id"].startswith(HASH_PREFIX) and data["arrival_id"] != original["arrival_id"]
        assert (
            data["vehicle_id"] == "沪B" + "*" * (len(original["vehicle_id"]) - 3) + original["vehicle_id"][-1]
        )
        assert data["stop_id"] == original["stop_id"] and data["delay_s"] == original["delay_s"]


def test_a_batch_larger_than_one_poll_comes_in_one_answer(feeds: FeedsPlatform) -> None:
    """A long-poll reads its batch from the consumer a chunk at a time: what is ready up to
    ``max`` comes in one answer, and its cursor stands after all of it."""
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    published = feeds.publish(dataset, 2 * POLL_CHUNK + 7)
    first = feeds.pull(scenario, subscription["id"], max=len(published), wait=5)
    assert first.status_code == 200, first.text
    batch = first.json()
    assert len(batch["records"]) > POLL_CHUNK
    acked = feeds.call(
        "POST", f"/v1/subscriptions/{subscription['id']}/ack", scenario, json={"cursor": batch["cursor"]}
    )
    assert acked.status_code == 200, acked.text
    rest = feeds.pull_all(scenario, subscription["id"], len(published) - len(batch["records"]))
    delivered = [record["id"] for record in batch["records"] + rest]
    assert sorted(delivered) == sorted(r["_event_id"] for r in published)


def test_unacknowledged_records_come_again_after_a_restart(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="latest")
    published = feeds.publish(dataset, 4)
    first = feeds.pull_all(scenario, subscription["id"], 4, ack=False)
    # A new feeds process (the old one "crashed" between delivery and ack) reads the same group.
    feeds.runtime.service_as(FeedsRuntime).pool.discard(subscription["id"])
    again = feeds.pull_all(scenario, subscription["id"], 4)
    assert {r["id"] for r in first} == {r["id"] for r in again} == {r["_event_id"] for r in published}
    # Acknowledged now: nothing more comes.
    feeds.runtime.service_as(FeedsRuntime).pool.discard(subscription["id"])
    response = feeds.pull(scenario, subscription["id"], wait=1.0)
    assert response.status_code == 200 and response.json()["records"] == []
    detail = feeds.call("GET", f"/v1/subscriptions/{subscription['id']}", scenario).json()
    assert detail["lag"] == 0 and sum(p["committed"] or 0 for p in detail["positions"]) >= 4


def test_a_revoked_expired_or_suspended_grant_stops_delivery_with_a_reason(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    feeds.publish(dataset, 2)
    feeds.pull_all(scenario, subscription["id"], 2)

    grant = feeds.change_grant(grant, status="suspended")
    refused = feeds.pull(scenario, subscription["id"], wait=0)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["reason"] == "suspended" and "suspended" in refused.json()["detail"]

    grant = feeds.change_grant(grant, status="active")
    assert feeds.pull(scenario, subscription["id"], wait=0).status_code == 200

    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    grant = feeds.change_grant(grant, expires_at=past)
    refused = feeds.pull(scenario, subscription["id"], wait=0)
    assert refused.status_code == 403 and refused.json()["reason"] == "expired"

    grant = feeds.change_grant(
        grant, status="revoked", expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )
    refused = feeds.pull(scenario, subscription["id"], wait=0)
    assert refused.status_code == 403 and refused.json()["reason"] == "revoked"


def test_a_new_grant_version_applies_from_the_next_batch(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    feeds.publish(dataset, 2)
    before = feeds.pull_all(scenario, subscription["id"], 2)
    assert "vehicle_id" in before[0]["data"] and "delay_s" in before[0]["data"]
    feeds.change_grant(grant, fields=["arrival_id", "vehicle_id"], masking={"vehicle_id": {"kind": "redact"}})
    feeds.publish(dataset, 2)
    after = feeds.pull_all(scenario, subscription["id"], 2)
    assert all(set(record["data"]) == {"arrival_id"} for record in after)


def test_the_daily_quota_is_enforced_with_429(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id, quota={"records_per_day": 3})
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    feeds.publish(dataset, 5)
    delivered = feeds.pull_all(scenario, subscription["id"], 3)
    assert len(delivered) == 3
    refused = feeds.pull(scenario, subscription["id"], wait=0)
    assert refused.status_code == 429 and refused.json()["reason"] == "quota"
    assert int(refused.headers["Retry-After"]) > 0
    metrics = feeds.http.get("/metrics").text
    assert f'citybase_feeds_records_delivered_total{{dataset="{dataset.id}",mode="poll"}} 3.0' in metrics
    assert 'citybase_feeds_batches_denied_total{reason="quota"}' in metrics
    assert "citybase_feeds_delivery_latency_seconds_count" in metrics


def test_usage_events_match_what_was_delivered(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    grant = feeds.grant(scenario, dataset.id, fields=["arrival_id", "delay_s"])
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    feeds.publish(dataset, 6)
    delivered = feeds.pull_all(scenario, subscription["id"], 6)
    relay = feeds.runtime.service_as(FeedsRuntime).outbox
    from services.common.worker import wait_until

    assert wait_until(lambda: relay.pending() == 0, 10)
    events = [
        e["data"]
        for e in feeds.usage_events(1, subscription["id"])
        if e["type"] == "city.citybase.feeds.usage.v1" and e["data"]["subscription_id"] == subscription["id"]
    ]
    schema = json.loads((EVENTS / "feeds.usage.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for event in events:
        validator.validate(event)
    assert sum(e["records"] for e in events) == len(delivered) == 6
    assert {e["grant_id"] for e in events} == {grant["id"]} and {e["mode"] for e in events} == {"poll"}
    assert all(e["scenario_id"] == scenario.id and e["dataset_id"] == dataset.id for e in events)
    offsets = {(r["partition"], r["offset"]) for r in delivered}
    for event in events:
        for span in event["partitions"]:
            assert (span["partition"], span["first_offset"]) in offsets
            assert (span["partition"], span["last_offset"]) in offsets
