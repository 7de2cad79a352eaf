"""Services killed with -9 and started again, on the shared Kafka (only service processes die here).

- Feeds dies between delivering a batch and its acknowledgement: the next poll after the restart
  starts again at the last acknowledged cursor; nothing is skipped and the only duplicates are
  the unacknowledged tail.
- Ingest is down while a new contract version is published, feeds while a grant is revoked: after
  the restart each one's read model has caught up from platform.catalog and enforces the new
  state (the new version validates; the revoked grant gets 403).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.common.worker import wait_until
from tests.factories import bus_arrival_record
from tests.support.fault_platform import Platform, ack, grant_for, poll, record_ids, subscribe
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]


def test_feeds_killed_between_delivery_and_ack_redelivers_from_the_last_ack(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = platform.catalog.dataset("redeliver")
    grant = grant_for(platform, dataset)
    sent = [f"ev-{n:04d}" for n in range(300)]
    for start in range(0, len(sent), 100):
        records = [bus_arrival_record(_event_id=event_id) for event_id in sent[start : start + 100]]
        answer = platform.publish(dataset, records)
        assert answer.status_code == 202, answer.text
    feeds = platform.process("feeds")
    feeds.start()
    try:
        subscription = subscribe(feeds, grant, dataset)
        acknowledged: list[dict[str, Any]] = []
        while len(acknowledged) < 120:
            batch = poll(feeds, grant, subscription, 40)
            assert batch.status_code == 200, batch.text
            ack(feeds, grant, subscription, batch.json()["cursor"])
            acknowledged += batch.json()["records"]
        # delivered, not acknowledged: the process dies before the ack
        tail = poll(feeds, grant, subscription, 50)
        assert tail.status_code == 200, tail.text
        unacknowledged: list[dict[str, Any]] = tail.json()["records"]
        assert unacknowledged, "the poll before the kill delivered nothing"
        feeds.kill9()
        killed_at = time.monotonic()
        feeds.start()
        restart_s = time.monotonic() - killed_at

        after: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(record_ids(acknowledged) | record_ids(after)) < len(sent) and time.monotonic() < deadline:
            batch = poll(feeds, grant, subscription, 100)
            assert batch.status_code == 200, batch.text
            after += batch.json()["records"]
            if batch.json()["records"]:
                ack(feeds, grant, subscription, batch.json()["cursor"])
    finally:
        feeds.stop()

    redelivered = record_ids(after) & (record_ids(acknowledged) | record_ids(unacknowledged))
    skipped = sorted(set(sent) - record_ids(acknowledged) - record_ids(after))
    figures = (
        f"feeds kill -9 between delivery and ack: {len(sent)} records, {len(acknowledged)} acknowledged and "
        f"{len(unacknowledged)} delivered unacknowledged before the kill; restart {restart_s:.1f}s; "
        f"{len(after)} delivered after, {len(redelivered)} of them again, skipped {len(skipped)}"
    )
    with capsys.disabled():
        print("\n" + figures)
    assert not skipped, figures
    assert redelivered == record_ids(unacknowledged), f"duplicates beyond the unacknowledged tail: {figures}"
    assert len(after) == len(record_ids(after)), figures
    # per partition, delivery after the restart starts right after the last acknowledged offset
    for partition in {r["partition"] for r in after}:
        acked = [r["offset"] for r in acknowledged if r["partition"] == partition]
        offsets = sorted(r["offset"] for r in after if r["partition"] == partition)
        start = max(acked) + 1 if acked else 0  # a new topic: its partitions start at 0
        assert offsets == list(range(start, start + len(offsets))), (partition, start, offsets[:5], figures)


def test_feeds_restarted_while_a_grant_is_revoked_refuses_it(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = platform.catalog.dataset("revoked")
    grant = grant_for(platform, dataset)
    answer = platform.publish(dataset, [bus_arrival_record() for _ in range(5)])
    assert answer.status_code == 202, answer.text
    feeds = platform.process("feeds")
    feeds.start()
    try:
        subscription = subscribe(feeds, grant, dataset)
        assert poll(feeds, grant, subscription, 10).status_code == 200
        feeds.kill9()
        revoked = platform.catalog.call(
            "POST", f"/v1/grants/{grant.grant_id}/revoke", grant.approver_key, json={"reason": "fault test"}
        )
        assert revoked.status_code == 200, revoked.text
        platform.catalog.relayed()
        feeds.start()
        refused = poll(feeds, grant, subscription, 10)
        again = httpx.post(
            f"{feeds.url}/v1/subscriptions",
            json={"dataset": dataset.id, "start": "earliest"},
            headers={"Authorization": f"Bearer {grant.scenario_key}"},
            timeout=30,
        )
    finally:
        feeds.stop()
    with capsys.disabled():
        print(
            f"\nfeeds restarted after a revocation: poll {refused.status_code}, subscribe {again.status_code}"
        )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert again.status_code == 403, again.text


def test_ingest_restarted_while_a_contract_version_is_published_validates_by_it(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = platform.catalog
    dataset = catalog.dataset("evolved")
    catalog.relayed()
    ingest = platform.process("ingest", CITYBASE_INGEST_RAW_ENABLED="false")
    ingest.start()
    publish = {"Authorization": f"Bearer {dataset.key}"}
    url = f"{ingest.url}/v1/datasets/{dataset.id}/records"
    try:
        before = httpx.post(url, json=[bus_arrival_record()], headers=publish, timeout=60)
        assert before.status_code == 202, before.text
        assert before.json()["contract_version"] == "1.0.0"
        # 1.1.0 adds the optional field `direction`; 1.0.0 refuses it
        refused = httpx.post(url, json=[bus_arrival_record(direction=1)], headers=publish, timeout=60)
        assert refused.status_code == 202 and refused.json()["rejected"] == 1, refused.text

        ingest.kill9()
        catalog.register_version(dataset, "1.1.0")
        catalog.relayed()
        ingest.start()
        after = httpx.post(
            url,
            json=[bus_arrival_record(direction=1)],
            headers={**publish, "CityBase-Contract-Version": "1.1.0"},
            timeout=60,
        )
        stale = httpx.post(
            url,
            json=[bus_arrival_record()],
            headers={**publish, "CityBase-Contract-Version": "1.0.0"},
            timeout=60,
        )
    finally:
        ingest.stop()
    with capsys.disabled():
        print(
            f"\ningest restarted after contract 1.1.0: 1.1.0 record {after.status_code} "
            f"{after.json().get('accepted')} accepted; batch claiming 1.0.0 {stale.status_code}"
        )
    assert after.status_code == 202, after.text
    assert after.json()["contract_version"] == "1.1.0"
    assert after.json()["accepted"] == 1, after.text
    assert stale.status_code == 409, stale.text
    assert stale.json()["type"].endswith("/contract-version-mismatch")


def _scored(database: Path, dataset_id: str) -> tuple[int, int]:
    """Windows stored for ``dataset_id`` and the records they scored, read from quality's tables."""
    with sqlite3.connect(database) as connection:
        windows, records = connection.execute(
            "SELECT count(*), coalesce(sum(records), 0) FROM quality_windows"
            " WHERE dataset_id = ? AND kind = 'window'",
            (dataset_id,),
        ).fetchone()
    return int(windows), int(records)


def test_quality_killed_in_the_middle_of_a_window_scores_every_record(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = platform.catalog.dataset("quality")
    platform.catalog.relayed()
    database = platform.root / f"quality-{uuid.uuid4().hex[:6]}.db"
    group = f"quality-faults-{uuid.uuid4().hex[:8]}"
    quality = ServiceProcess(
        "quality",
        platform.root,
        {
            "CITYBASE_BUS_URL": f"kafka://{platform.kafka}",
            "CITYBASE_DATABASE_URL": f"sqlite:///{database}",
            "CITYBASE_QUALITY_GROUP_ID": group,
            "CITYBASE_QUALITY_USAGE_GROUP_ID": f"{group}-usage",
            "CITYBASE_QUALITY_DATASET_PREFIX": dataset.id,
            # windows close by count only here: 50 records, never by time during the test
            "CITYBASE_QUALITY_WINDOW": '{"records": 50, "seconds": 600}',
        },
    )

    def publish(count: int) -> None:
        answer = platform.publish(dataset, [bus_arrival_record() for _ in range(count)])
        assert answer.status_code == 202 and answer.json()["accepted"] == count, answer.text

    publish(200)
    quality.start()
    try:
        assert wait_until(lambda: database.exists() and _scored(database, dataset.id)[1] == 200, 60), (
            f"quality did not score the first 200 records: {_scored(database, dataset.id)}\n{quality.tail()}"
        )
        publish(30)  # an open window of 30, not stored
        time.sleep(4)
        before_kill = _scored(database, dataset.id)
        quality.kill9()
        quality.start()
        publish(20)  # the re-read 30 and these 20 fill the window
        total = 250
        scored = wait_until(lambda: _scored(database, dataset.id)[1] >= total, 60)
        windows, records = _scored(database, dataset.id)
    finally:
        quality.stop()
    figures = (
        f"quality kill -9 mid-window: {total} records published, {before_kill[1]} scored in "
        f"{before_kill[0]} windows before the kill (30 open); after the restart {records} scored in "
        f"{windows} windows; restart {quality.starts[-1]:.1f}s"
    )
    with capsys.disabled():
        print("\n" + figures)
    assert before_kill == (4, 200), figures
    assert scored, f"records of the open window were not scored after the restart: {figures}"
    assert records == total, f"a stored window was read and scored again: {figures}"


def _scored_in(database_url: str, dataset_id: str) -> tuple[int, int, set[int]]:
    """Windows stored for ``dataset_id``, the records they scored and the window sizes."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            sizes = [
                int(row[0])
                for row in connection.execute(
                    sa.text("SELECT records FROM quality_windows WHERE dataset_id = :d AND kind = 'window'"),
                    {"d": dataset_id},
                )
            ]
    except sa.exc.ProgrammingError:  # the tables are not there yet
        return 0, 0, set()
    finally:
        engine.dispose()
    return len(sizes), sum(sizes), set(sizes)


def _held(replica: ServiceProcess) -> dict[str, float]:
    """Partitions per dataset the group gave ``replica``, from its metrics."""
    text = httpx.get(f"{replica.url}/metrics", timeout=10).text
    held = {}
    for line in text.splitlines():
        if line.startswith("citybase_quality_assigned_partitions{"):
            labels, _, value = line.rpartition(" ")
            held[labels.split('dataset="', 1)[1].split('"', 1)[0]] = float(value)
    return {dataset: count for dataset, count in held.items() if count}


@pytest.mark.postgres
def test_two_quality_replicas_score_each_dataset_whole_and_a_killed_one_loses_and_doubles_nothing(
    platform: Platform, schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"replicas-{uuid.uuid4().hex[:6]}"
    datasets = [platform.catalog.dataset(prefix), platform.catalog.dataset(prefix)]
    platform.catalog.relayed()
    group = f"quality-replicas-{uuid.uuid4().hex[:8]}"

    def replica() -> ServiceProcess:
        return ServiceProcess(
            "quality",
            platform.root,
            {
                "CITYBASE_BUS_URL": f"kafka://{platform.kafka}",
                "CITYBASE_DATABASE_URL": schema_url,
                "CITYBASE_QUALITY_GROUP_ID": group,
                "CITYBASE_QUALITY_USAGE_GROUP_ID": f"{group}-usage",
                "CITYBASE_QUALITY_DATASET_PREFIX": f"transport.{prefix}",
                "CITYBASE_QUALITY_WINDOW": '{"records": 50, "seconds": 600}',
                "CITYBASE_QUALITY_RESUBSCRIBE_INTERVAL_S": "1",
            },
        )

    def publish(count: int) -> None:
        for dataset in datasets:
            answer = platform.publish(dataset, [bus_arrival_record() for _ in range(count)])
            assert answer.status_code == 202 and answer.json()["accepted"] == count, answer.text

    def scored(total: int) -> bool:
        return all(_scored_in(schema_url, dataset.id)[1] >= total for dataset in datasets)

    first, second = replica(), replica()
    publish(200)  # keys spread over every partition of each dataset (and its topics exist)
    first.start()  # one replica migrates the schema before the other starts
    second.start()
    try:
        # Each replica holds one dataset whole: all its ds./dlq. partitions.
        assert wait_until(lambda: len(_held(first)) == 1 and len(_held(second)) == 1, 60), (
            f"{_held(first)} {_held(second)}\n{first.tail()}\n{second.tail()}"
        )
        assert set(_held(first)) | set(_held(second)) == {dataset.id for dataset in datasets}
        assert wait_until(lambda: scored(200), 60), [_scored_in(schema_url, d.id) for d in datasets]
        publish(30)  # an open window of 30 in each dataset, on both replicas
        time.sleep(4)
        killed = first
        lost = set(_held(first))
        killed.kill9()
        # The survivor takes the killed replica's dataset and reads its open window again.
        assert wait_until(lambda: len(_held(second)) == 2, 60), f"{_held(second)}\n{second.tail()}"
        publish(20)
        total = 250
        assert wait_until(lambda: scored(total), 60), [_scored_in(schema_url, d.id) for d in datasets]
        time.sleep(2)
        results = {dataset.id: _scored_in(schema_url, dataset.id) for dataset in datasets}
    finally:
        first.stop()
        second.stop()
    figures = (
        f"two quality replicas, {len(datasets)} datasets, {total} records each, windows of 50; "
        f"the replica holding {sorted(lost)} killed -9 with 30 records open: "
        + "; ".join(
            f"{dataset}: {windows} windows, {records} records"
            for dataset, (windows, records, _) in results.items()
        )
    )
    with capsys.disabled():
        print("\n" + figures)
    for windows, records, sizes in results.values():
        # Exactly what one replica scores: every window whole (50 records from all partitions),
        # none twice, none lost.
        assert (windows, records, sizes) == (5, total, {50}), figures
