"""Open data without a key, in one process (``citybase up``'s app on SQLite and the embedded bus):
an open, publicly listed dataset's latest records download as NDJSON or CSV without its sensitive
fields; a hidden, a conditional and an unknown dataset are refused alike; a flood from one address
gets 429; each snapshot served is metered on platform.usage and in the catalog's audit trail."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from services.common import usage_events
from services.common.envelope import CloudEvent
from services.common.public_reads import PublicRateLimit, PublicReadSettings
from services.common.worker import wait_until
from services.feeds.runtime import FeedsRuntime
from tests.factories import bus_arrival_record, ingest_contract
from tests.support.platform import Platform, in_process
from tests.support.problems import expect_problem

EVENTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
OPEN = "transport.tram-arrivals"
"""An open dataset whose contract marks ``vehicle_id`` (a licence plate) personal."""
HIDDEN = "transport.bus-arrivals"
"""Open too, but its department hides it from the public catalog."""
CONDITIONAL = "market.inspections"
UNKNOWN = "transport.nothing"
SCENARIO = "open-reader"


def _feeds(platform: Platform) -> FeedsRuntime:
    assert platform.app is not None
    return platform.app.state.services["feeds"].state.runtime.service_as(FeedsRuntime)


def _open_contract() -> str:
    document = yaml.safe_load(ingest_contract(OPEN, "transport-bureau"))
    plate = next(p for p in document["schema"][0]["properties"] if p["name"] == "vehicle_id")
    plate["classification"] = "personal"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _publish(platform: Platform, records: list[dict[str, Any]]) -> list[str]:
    """Records through ingest's API, once ingest knows the dataset; their CloudEvents ids."""
    answers: list[Any] = []

    def accepted() -> bool:
        answer = platform.call("POST", f"/ingest/v1/datasets/{OPEN}/records", json=records)
        answers.append(answer)
        return answer.status_code == 202

    assert wait_until(accepted, 15, 0.2), answers[-1].text
    body = answers[-1].json()
    assert body["accepted"] == len(records), body
    return list(body["event_ids"])


def _prepare(platform: Platform) -> None:
    registered = platform.call("POST", "/catalog/v1/contracts", content=_open_contract())
    assert registered.status_code == 201, registered.text
    hidden = platform.call("PATCH", f"/catalog/v1/datasets/{HIDDEN}", json={"publicly_listed": False})
    assert hidden.status_code == 200, hidden.text
    platform.scenario(SCENARIO)
    catalog = _feeds(platform).catalog

    def feeds_know() -> bool:
        open_dataset, hidden_dataset = catalog.dataset(OPEN), catalog.dataset(HIDDEN)
        return (
            open_dataset is not None
            and open_dataset.open_to_all
            and catalog.sensitive_fields(OPEN) is not None
            and hidden_dataset is not None
            and not hidden_dataset.publicly_listed
        )

    assert wait_until(feeds_know, 15, 0.1), "feeds did not learn of the datasets"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(tmp_path_factory.mktemp("open-snapshot"), prepare_platform=_prepare) as platform:
        yield platform


@pytest.fixture(autouse=True)
def generous_limit(platform: Platform) -> None:
    """Each test starts with a limit it does not reach, unless it sets its own."""
    _feeds(platform).feeds.snapshots.rate_limit = PublicRateLimit(
        PublicReadSettings(requests_per_minute=600, burst=100)
    )


@pytest.fixture(scope="module")
def published(platform: Platform) -> tuple[list[dict[str, Any]], list[str]]:
    """Eight older records, then five newer ones (the snapshot's latest five): records and ids."""
    older = [bus_arrival_record(vehicle_id=f"沪B-1000{n}") for n in range(8)]
    older_ids = _publish(platform, older)
    time.sleep(0.05)  # the newer records are written later by the clock, not only by the offset
    newer = [bus_arrival_record(vehicle_id=f"沪B-2000{n}", delay_s=n) for n in range(5)]
    return older + newer, older_ids + _publish(platform, newer)


def _snapshot(platform: Platform, dataset_id: str, key: str | None = None, **params: Any) -> Any:
    return platform.call("GET", f"/feeds/v1/open/{dataset_id}/snapshot", key, params=params)


def test_an_open_datasets_latest_records_download_without_a_key_and_without_its_sensitive_fields(
    platform: Platform, published: tuple[list[dict[str, Any]], list[str]]
) -> None:
    records, ids = published
    by_id = dict(zip(ids, records, strict=True))

    answer = _snapshot(platform, OPEN, limit=5)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    assert f'filename="{OPEN}-snapshot.ndjson"' in answer.headers["content-disposition"]
    assert answer.headers["x-citybase-withheld-fields"] == "vehicle_id"
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert {line["id"] for line in lines} == set(ids[-5:])  # the latest five, none older
    for line in lines:
        original = by_id[line["id"]]
        assert line["dataset"] == OPEN
        assert "vehicle_id" not in line["data"] and "沪B" not in json.dumps(line, ensure_ascii=False)
        assert line["data"] == {k: v for k, v in original.items() if k != "vehicle_id"}
    times = [(line["time"], line["partition"], line["offset"]) for line in lines]
    assert times == sorted(times)  # newest last

    everything = _snapshot(platform, OPEN)  # the default (1,000) holds all thirteen
    assert everything.status_code == 200
    assert {json.loads(line)["id"] for line in everything.text.splitlines()} == set(ids)

    table = _snapshot(platform, OPEN, limit=5, format="csv")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert {row["id"] for row in rows} == set(ids[-5:])
    assert rows[0].keys() == {"id", "time", *(k for k in records[0] if k != "vehicle_id")}
    assert "沪B" not in table.text


def test_a_limit_beyond_the_bound_is_refused_with_its_field(platform: Platform) -> None:
    for limit in (0, 10_001):
        problem = expect_problem(_snapshot(platform, OPEN, limit=limit), 422, "validation-error")
        assert problem["errors"][0]["path"] == "/query/limit"
    problem = expect_problem(_snapshot(platform, OPEN, format="xlsx"), 422, "validation-error")
    assert problem["errors"][0]["path"] == "/query/format"


def test_a_hidden_a_conditional_and_an_unknown_dataset_are_refused_alike(platform: Platform) -> None:
    key = platform.keys[SCENARIO]
    refusals = [_snapshot(platform, d, k) for d in (HIDDEN, CONDITIONAL, UNKNOWN) for k in (None, key)]
    # One problem, with a key or without: only the id in the detail differs.
    details = {expect_problem(r, 404, "dataset-not-found")["detail"].split("'")[2] for r in refusals}
    assert len(details) == 1
    chinese = platform.call(
        "GET", f"/feeds/v1/open/{HIDDEN}/snapshot", None, headers={"Accept-Language": "zh-CN"}
    )
    assert expect_problem(chinese, 404, "dataset-not-found")["detail"].startswith("没有开放数据集")
    assert _snapshot(platform, OPEN, key, limit=1).status_code == 200
    # A wrong key is refused, never read as no key, even for an open dataset.
    expect_problem(_snapshot(platform, OPEN, "cbk_00000000_wrong", limit=1), 401, "unauthenticated")


def test_a_flood_from_one_address_gets_429_with_retry_after(platform: Platform) -> None:
    feeds = _feeds(platform).feeds
    feeds.snapshots.rate_limit = PublicRateLimit(PublicReadSettings(requests_per_minute=6, burst=3))

    answers = [_snapshot(platform, OPEN, limit=1) for _ in range(3)] + [_snapshot(platform, UNKNOWN)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    expect_problem(answers[3], 429, "too-many-requests")  # a refused id is counted too
    assert 1 <= int(answers[3].headers["retry-after"]) <= 10
    # A caller with a key is counted by its principal, not by the address the flood came from.
    assert _snapshot(platform, OPEN, platform.keys[SCENARIO], limit=1).status_code == 200


def test_each_snapshot_served_is_metered_and_in_the_audit_trail(
    platform: Platform, published: tuple[list[dict[str, Any]], list[str]]
) -> None:
    answer = _snapshot(platform, OPEN, limit=3, format="csv")
    assert answer.status_code == 200

    def entries() -> list[dict[str, Any]]:
        page = platform.ok("GET", "/catalog/v1/audit", params={"action": "open.snapshot", "limit": 500})
        return [
            e for e in page["items"] if e["details"].get("format") == "csv" and e["details"]["limit"] == 3
        ]

    assert wait_until(lambda: bool(entries()), 15, 0.2), "no open.snapshot entry in the audit trail"
    (entry,) = entries()
    assert (entry["resource_type"], entry["resource_id"], entry["dataset_id"]) == ("dataset", OPEN, OPEN)
    assert entry["actor_id"] is None and entry["outcome"] == "success"
    details = entry["details"]
    assert details["records"] == 3 and details["bytes"] == len(answer.content)
    assert details["withheld_fields"] == ["vehicle_id"]
    assert len(details["client"]) == 32 and "testclient" not in json.dumps(entry)
    # Every open-snapshot event on platform.usage keeps to its schema and names no address.
    schema = json.loads((EVENTS / "feeds.open-snapshot.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    events = _usage_events(platform, usage_events.OPEN_SNAPSHOT)
    assert details["client"] in {event["client"] for event in events}
    for event in events:
        validator.validate(event)
    assert None in {event["principal_id"] for event in events} <= {None, SCENARIO}


def _usage_events(platform: Platform, event_type: str) -> list[dict[str, Any]]:
    """The data of every ``event_type`` event on platform.usage, read outside any group."""
    bus = _feeds(platform).feeds.bus
    consumer = bus.consumer(None, [usage_events.TOPIC])
    found = []
    try:
        while messages := consumer.poll(0.5, 1000):
            for message in messages:
                event = CloudEvent.from_message(message)
                if event.type == event_type and isinstance(event.data, dict):
                    found.append(event.data)
    finally:
        consumer.close()
    return found
