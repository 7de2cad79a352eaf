"""Two replicas of ingest, and of feeds, behind one address, on the shared Kafka and one PostgreSQL
schema; one replica of each is killed with -9 in the middle of the work.

- Ingest: a client sends batches with an Idempotency-Key to either replica in turn; one replica
  dies half-way, and the batches it never answered are sent again, with the same key, to the other
  one. Every record is on ``ds.`` and the only copies are of batches that were sent twice.
- Feeds: one subscription is read through both replicas in turn (its consumer group gives each
  replica some of the partitions), each batch acknowledged where it was delivered. One replica
  dies holding a delivered, unacknowledged batch. The survivor takes its partitions and delivers
  from the last acknowledgement: nothing is skipped, and the only records delivered twice are that
  batch and those whose acknowledgement could not be committed because a rebalance had moved
  their partition (the ack answer says which).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from services.common.topics import records_topic
from tests.factories import bus_arrival_record
from tests.support.fault_platform import Grant, Platform, grant_for, poll, record_ids, subscribe
from tests.support.kafka_topics import read_event_ids
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

BATCH = 40


def _replicas(platform: Platform, service: str, database_url: str, **env: str) -> list[ServiceProcess]:
    settings = {"CITYBASE_BUS_URL": f"kafka://{platform.kafka}", "CITYBASE_DATABASE_URL": database_url, **env}
    return [ServiceProcess(service, platform.root, settings) for _ in range(2)]


def test_two_ingest_replicas_lose_and_double_nothing_when_one_dies(
    platform: Platform, schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = platform.catalog.dataset("ingest-replicas")
    platform.catalog.relayed()
    first, second = _replicas(
        platform,
        "ingest",
        schema_url,
        CITYBASE_INGEST_RAW_ENABLED="false",
        # A key the dead replica claimed is free again after this long (it never completes it).
        CITYBASE_INGEST_IDEMPOTENCY_STALE_S="5",
    )
    first.start()  # one replica migrates the schema before the other starts
    second.start()
    batches: dict[str, list[str]] = {}
    answered_by: Counter[str] = Counter()
    sent_twice: set[str] = set()
    attempts: Counter[str] = Counter()

    def send(replica: ServiceProcess, key: str) -> int | None:
        records = [bus_arrival_record(_event_id=event_id) for event_id in batches[key]]
        attempts[key] += 1
        try:
            answer = httpx.post(
                f"{replica.url}/v1/datasets/{dataset.id}/records",
                content=json.dumps(records).encode(),
                headers={
                    "Authorization": f"Bearer {dataset.key}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                },
                timeout=60,
            )
        except httpx.TransportError:
            return None
        if answer.status_code == 202:
            assert answer.json()["accepted"] == BATCH, answer.text
            answered_by[replica.url] += 1
        return answer.status_code

    unanswered: list[str] = []
    try:
        for number in range(60):
            key = f"b{number:03d}"
            batches[key] = [f"{key}-r{index}" for index in range(BATCH)]
            replica = (first, second)[number % 2]
            if number == 30:
                first.kill9()  # every second batch now meets a dead replica
            if send(replica, key) != 202:
                unanswered.append(key)
        # The client sends what was not answered again, with the same key, to the replica that lives.
        deadline = time.monotonic() + 60
        while unanswered and time.monotonic() < deadline:
            key = unanswered.pop(0)
            sent_twice.add(key)
            status = send(second, key)
            if status != 202:
                assert status == 409, f"{key}: {status}"  # the dead replica's claim is not stale yet
                unanswered.append(key)
                time.sleep(1)
    finally:
        first.stop()
        second.stop()

    on_topic = Counter(read_event_ids(platform.kafka, records_topic(dataset.id)))
    sent = {event_id for ids in batches.values() for event_id in ids}
    # ce_id is derived from (principal, dataset, key, index): map each back to its batch by count.
    copies = sorted(n for n in on_topic.values() if n > 1)
    figures = (
        f"two ingest replicas, one killed -9 after 30 of 60 batches of {BATCH}: answered 202 by "
        f"{sorted(answered_by.values())}, sent again {len(sent_twice)}, still unanswered {len(unanswered)}; "
        f"{sum(on_topic.values())} messages on ds. for {len(sent)} records, {len(on_topic)} distinct, "
        f"{len(copies)} with copies"
    )
    with capsys.disabled():
        print("\n" + figures)
    assert not unanswered, figures
    assert len(answered_by) == 2, figures
    assert len(on_topic) == len(sent), f"lost records: {figures}"
    # The only copies are of batches sent twice (a batch the dead replica wrote but never answered).
    assert len(copies) <= BATCH * len(sent_twice), figures


def _batch(feeds: ServiceProcess, grant: Grant, subscription: str, size: int) -> dict[str, Any]:
    answer = poll(feeds, grant, subscription, size)
    assert answer.status_code == 200, answer.text
    batch: dict[str, Any] = answer.json()
    return batch


def test_two_feeds_replicas_share_a_subscription_and_a_killed_one_loses_nothing(
    platform: Platform, schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = platform.catalog.dataset("feeds-replicas")
    grant = grant_for(platform, dataset)
    sent = [f"fr-{n:04d}" for n in range(1200)]
    for start in range(0, len(sent), 100):
        answer = platform.publish(
            dataset, [bus_arrival_record(_event_id=e) for e in sent[start : start + 100]]
        )
        assert answer.status_code == 202, answer.text
    first, second = _replicas(platform, "feeds", schema_url)
    first.start()  # one replica migrates the schema before the other starts
    second.start()
    delivered: list[dict[str, Any]] = []
    served: Counter[str] = Counter()
    uncommitted: set[str] = set()
    """Records of batches whose acknowledgement a rebalance kept from committing (they come again)."""

    def read_and_ack(replica: ServiceProcess, name: str) -> int:
        batch = _batch(replica, grant, subscription, 40)
        records = batch["records"]
        delivered.extend(records)
        served[name] += len(records)
        if records:
            acked = httpx.post(
                f"{replica.url}/v1/subscriptions/{subscription}/ack",
                json={"cursor": batch["cursor"]},
                headers={"Authorization": f"Bearer {grant.scenario_key}"},
                timeout=30,
            )
            assert acked.status_code == 200, acked.text
            committed = {int(p) for p in acked.json()["committed"]}
            uncommitted.update(r["id"] for r in records if r["partition"] not in committed)
        return len(records)

    tail: list[dict[str, Any]] = []
    try:
        subscription = subscribe(first, grant, dataset)
        deadline = time.monotonic() + 90
        # Until each replica has served some and a quarter is read: the rest stays for the kill.
        while (served["first"] < 40 or served["second"] < 40 or len(record_ids(delivered)) < 300) and (
            time.monotonic() < deadline
        ):
            read_and_ack(first, "first")
            read_and_ack(second, "second")
        # Delivered by the first replica, never acknowledged: it dies holding this batch.
        deadline_tail = time.monotonic() + 30
        while not tail and time.monotonic() < deadline_tail:
            tail = _batch(first, grant, subscription, 40)["records"]
        delivered.extend(tail)
        first.kill9()
        killed_at = time.monotonic()
        deadline = time.monotonic() + 90
        while len(record_ids(delivered)) < len(sent) and time.monotonic() < deadline:
            read_and_ack(second, "second")
        took_over_s = time.monotonic() - killed_at
    finally:
        first.stop()
        second.stop()

    counts = Counter(record["id"] for record in delivered)
    twice = {event_id for event_id, n in counts.items() if n > 1}
    skipped = set(sent) - set(counts)
    figures = (
        f"two feeds replicas on one subscription of {len(sent)} records: served {dict(served)} "
        f"(tail of {len(tail)} unacknowledged at the kill), all delivered {took_over_s:.1f}s after the "
        f"kill; skipped {len(skipped)}, delivered twice {len(twice)} (the tail {len(twice & record_ids(tail))}, "
        f"after an ack a rebalance kept from committing {len(twice & uncommitted - record_ids(tail))})"
    )
    with capsys.disabled():
        print("\n" + figures)
    assert tail, figures
    assert served["first"] and served["second"], f"one replica read everything: {figures}"
    assert not skipped, figures
    assert twice <= record_ids(tail) | uncommitted, (
        f"delivered twice beyond what was not committed: {figures}"
    )
    assert record_ids(tail) <= twice, f"the dead replica's unacknowledged batch did not come again: {figures}"
