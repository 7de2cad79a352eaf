"""Subscriptions of feeds on both buses: who may subscribe, ownership (an admin sees every one),
pause, delete, replay, a status that follows the grant, and precise 4xx answers to bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator

from services.common.worker import wait_until
from services.feeds.models import Replay
from services.feeds.runtime import FeedsRuntime
from tests.support.services import (
    FeedsPlatform,
    IngestPlatform,
    Scenario,
    feeds_settings_for_tests,
    running_feeds,
)

EVENTS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@pytest.fixture
def feeds(platform: IngestPlatform) -> Iterator[FeedsPlatform]:
    with running_feeds(platform, feeds_settings_for_tests(max_batch=1000, max_wait_s=20)) as running:
        yield running


def test_subscribing_needs_a_grant_that_allows_delivery_now(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    refused = feeds.call("POST", "/v1/subscriptions", scenario, json={"dataset": dataset.id})
    assert refused.status_code == 403 and refused.json()["reason"] == "no_grant"
    grant = feeds.grant(scenario, dataset.id, status="suspended")
    refused = feeds.call("POST", "/v1/subscriptions", scenario, json={"dataset": dataset.id})
    assert refused.status_code == 403 and refused.json()["reason"] == "suspended"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    feeds.change_grant(grant, status="active", valid_from=later)
    refused = feeds.call("POST", "/v1/subscriptions", scenario, json={"dataset": dataset.id})
    assert refused.status_code == 403 and refused.json()["reason"] == "pending"
    unknown = feeds.call("POST", "/v1/subscriptions", scenario, json={"dataset": "transport.nothing-here"})
    assert unknown.status_code == 404
    # A department key is not a scenario.
    department = feeds.call(
        "POST",
        "/v1/subscriptions",
        None,
        json={"dataset": dataset.id},
        headers={"Authorization": f"Bearer {dataset.key}"},
    )
    assert department.status_code == 403
    assert feeds.call("POST", "/v1/subscriptions", None, json={"dataset": dataset.id}).status_code == 401


def test_subscriptions_are_private_to_their_scenario(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    owner, other = feeds.scenario("owner"), feeds.scenario("other")
    feeds.grant(owner, dataset.id)
    feeds.grant(other, dataset.id)
    subscription = feeds.subscribe(owner, dataset.id)
    path = f"/v1/subscriptions/{subscription['id']}"
    assert [s["id"] for s in feeds.call("GET", "/v1/subscriptions", owner).json()["items"]] == [
        subscription["id"]
    ]
    assert feeds.call("GET", "/v1/subscriptions", other).json()["items"] == []
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/records", None),
        ("POST", "/ack", {"cursor": "x"}),
        ("POST", "/pause", None),
        ("POST", "/replay", {"to": "earliest"}),
        ("DELETE", "", None),
    ]:
        response = feeds.call(method, path + suffix, other, json=body)
        assert response.status_code == 403, (method, suffix, response.text)
        assert dataset.id not in response.text
    missing = feeds.call("GET", "/v1/subscriptions/sub-00000000000000000000aa", owner)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/subscription-not-found")


def test_bad_input_gets_precise_answers(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    path = f"/v1/subscriptions/{subscription['id']}"
    for params, where in [
        ({"max": 0}, "/query/max"),
        ({"max": 1001}, "/query/max"),
        ({"wait": 21}, "/query/wait"),
    ]:
        response = feeds.call("GET", path + "/records", scenario, params=params)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["path"] == where
    assert feeds.call("GET", path + "/records", scenario, params={"wait": "soon"}).status_code == 422
    garbage = feeds.call("POST", path + "/ack", scenario, json={"cursor": "not-a-cursor"})
    assert garbage.status_code == 400 and garbage.json()["type"].endswith("/invalid-cursor")
    # A cursor edited to acknowledge beyond what was delivered breaks its signature.
    feeds.publish(dataset, 2)
    batch = feeds.pull(scenario, subscription["id"], wait=5).json()
    raw = base64.urlsafe_b64decode(batch["cursor"] + "=" * (-len(batch["cursor"]) % 4))
    forged = raw.replace(b'"o":{', b'"o":{"9":99999,', 1)
    forged_text = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    beyond = feeds.call("POST", path + "/ack", scenario, json={"cursor": forged_text})
    assert beyond.status_code == 400 and beyond.json()["type"].endswith("/invalid-cursor")
    # Another subscription's cursor is refused too.
    second = feeds.subscribe(scenario, dataset.id)
    foreign = feeds.call(
        "POST", f"/v1/subscriptions/{second['id']}/ack", scenario, json={"cursor": batch["cursor"]}
    )
    assert foreign.status_code == 400
    assert feeds.call("POST", path + "/ack", scenario, json={"cursor": batch["cursor"]}).status_code == 200
    bad_start = feeds.call(
        "POST", "/v1/subscriptions", scenario, json={"dataset": dataset.id, "start": "middle"}
    )
    assert bad_start.status_code == 422
    out_of_range = feeds.call(
        "POST",
        "/v1/subscriptions",
        scenario,
        json={"dataset": dataset.id, "start": {"offsets": {"0": 10**9}}},
    )
    assert out_of_range.status_code == 422
    assert out_of_range.json()["type"].endswith("/invalid-position")
    no_partition = feeds.call("POST", path + "/replay", scenario, json={"to": {"offsets": {"57": 0}}})
    assert no_partition.status_code == 422
    webhook = feeds.call(
        "POST",
        "/v1/subscriptions",
        scenario,
        json={"dataset": dataset.id, "webhook": {"url": "http://example.com/x"}},
    )
    assert webhook.status_code == 422 and webhook.json()["type"].endswith("/invalid-webhook")


def test_pause_resume_and_delete(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    path = f"/v1/subscriptions/{subscription['id']}"
    paused = feeds.call("POST", path + "/pause", scenario)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    refused = feeds.pull(scenario, subscription["id"], wait=0)
    assert refused.status_code == 409 and refused.json()["reason"] == "paused"
    assert feeds.call("POST", path + "/resume", scenario).json()["status"] == "active"
    feeds.publish(dataset, 1)
    feeds.pull_all(scenario, subscription["id"], 1)
    assert feeds.call("DELETE", path, scenario).status_code == 204
    assert feeds.call("GET", path, scenario).status_code == 404


def test_replay_to_offsets_and_to_a_time_is_recorded(feeds: FeedsPlatform) -> None:
    dataset = feeds.dataset()
    scenario = feeds.scenario()
    feeds.grant(scenario, dataset.id)
    subscription = feeds.subscribe(scenario, dataset.id, start="earliest")
    first = feeds.publish(dataset, 4)
    delivered = feeds.pull_all(scenario, subscription["id"], 4)
    old_cursor = feeds.pull(scenario, subscription["id"], wait=0).json()["cursor"]
    path = f"/v1/subscriptions/{subscription['id']}"

    replayed = feeds.call("POST", path + "/replay", scenario, json={"to": "earliest"})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["replays"] == 1
    again = feeds.pull_all(scenario, subscription["id"], 4)
    assert {r["id"] for r in again} == {r["id"] for r in delivered} == {r["_event_id"] for r in first}
    stale = feeds.call("POST", path + "/ack", scenario, json={"cursor": old_cursor})
    assert stale.status_code == 409 and stale.json()["type"].endswith("/stale-cursor")

    one = delivered[0]
    replayed = feeds.call(
        "POST", path + "/replay", scenario, json={"to": {"offsets": {str(one["partition"]): one["offset"]}}}
    )
    assert replayed.status_code == 200
    assert replayed.json()["positions"][str(one["partition"])] == one["offset"]

    cut = datetime.now(UTC)
    second = feeds.publish(dataset, 3)
    replayed = feeds.call("POST", path + "/replay", scenario, json={"to": {"timestamp": cut.isoformat()}})
    assert replayed.status_code == 200 and replayed.json()["replays"] == 3
    after = feeds.pull_all(scenario, subscription["id"], 3)
    assert {r["id"] for r in after} == {r["_event_id"] for r in second}

    with feeds.runtime.sessions() as session:
        replays = session.scalars(sa.select(Replay).where(Replay.subscription_id == subscription["id"])).all()
    assert [r.epoch for r in replays] == [1, 2, 3] and {r.principal_id for r in replays} == {scenario.id}
    events = [
        e for e in feeds.usage_events(3, subscription["id"]) if e["type"] == "city.citybase.feeds.replay.v1"
    ]
    # The replays' events left through the outbox: once they are on the bus, none is left in it.
    relay = feeds.runtime.service_as(FeedsRuntime).outbox
    assert wait_until(lambda: relay.pending() == 0, 10), f"{relay.pending()} events still in the outbox"
    schema = json.loads((EVENTS / "feeds.replay.json").read_text(encoding="utf-8"))
    for event in events:
        Draft202012Validator(schema).validate(event["data"])
    assert [e["data"]["epoch"] for e in events if e["data"]["subscription_id"] == subscription["id"]] == [
        1,
        2,
        3,
    ]


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
