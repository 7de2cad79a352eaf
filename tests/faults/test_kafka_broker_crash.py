"""The Kafka broker dies (kill -9) under sustained HTTP ingest and comes back on the same data.

Ingest runs as the operator runs it (``citybase serve ingest``) on a private broker; a few client
threads publish batches of records that carry their own event ids, each batch under its own
Idempotency-Key. A batch is either answered 202 (every record acknowledged by the broker) or
reported failed (503/429 problem+json with Retry-After, or a connection error or timeout); a
failed batch is retried with the same key and body, as the API tells publishers to. Afterwards
``ds.<dataset>`` is read in full with a plain Kafka consumer and compared, id by id, with what
was acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from services.common.bus import OutgoingRecord, Producer, TopicSpec
from services.common.bus.kafka import KafkaBus, KafkaTuning
from services.common.worker import wait_until
from tests.factories import bus_arrival_record
from tests.support.infra import PrivateKafka
from tests.support.kafka_topics import read_event_ids
from tests.support.processes import Catalog, Dataset, ServiceProcess, running_catalog

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(420)]

CLIENTS = 3
BATCH = 40
BEFORE_KILL_S = 4.0
DOWN_S = 22.0
"""With the restart (~10 s), longer than the producer's delivery timeout (30 s): batches in flight
at the kill, and those sent during the outage, are answered 503 rather than waiting it out."""
AFTER_RESTART_S = 12.0
REQUEST_TIMEOUT_S = 60.0
"""Above ingest's ack timeout (30 s): a request that takes longer than this is a hang."""
FAILED = (429, 503)


@dataclass
class Batch:
    key: str
    event_ids: list[str]
    body: bytes
    attempts: list[str] = field(default_factory=list)
    """Per attempt: the status code, or the name of the transport error."""
    acknowledged: bool = False


@dataclass
class Outcomes:
    batches: list[Batch] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    """Every attempt: when it started and ended, and its status or transport error."""
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _attempt(http: httpx.Client, dataset: Dataset, batch: Batch, outcomes: Outcomes) -> None:
    started = time.monotonic()
    try:
        response = http.post(
            f"/v1/datasets/{dataset.id}/records",
            content=batch.body,
            headers={
                "Authorization": f"Bearer {dataset.key}",
                "Content-Type": "application/json",
                "Idempotency-Key": batch.key,
            },
        )
    except httpx.TransportError as error:
        _record(outcomes, batch, started, type(error).__name__)
        return
    _record(outcomes, batch, started, str(response.status_code))
    if response.status_code == 202:
        answer = response.json()
        if answer["accepted"] != len(batch.event_ids) or answer["event_ids"] != batch.event_ids:
            outcomes.unexpected.append(f"{batch.key}: 202 that does not claim the batch: {answer}")
        batch.acknowledged = True
        return
    if response.status_code == 409 and response.json()["type"].endswith("/idempotency-key-in-progress"):
        return  # the first attempt (timed out on our side) still runs; ask again later
    if response.status_code in FAILED:
        problem_ok = (
            response.headers.get("content-type") == "application/problem+json"
            and int(response.headers.get("retry-after", "0")) > 0
            and "accepted" not in response.json()
        )
        if not problem_ok:
            outcomes.unexpected.append(
                f"{batch.key}: {response.status_code} {response.headers} {response.text}"
            )
        return
    outcomes.unexpected.append(f"{batch.key}: unexpected {response.status_code} {response.text}")


def _record(outcomes: Outcomes, batch: Batch, started: float, outcome: str) -> None:
    ended = time.monotonic()
    with outcomes.lock:
        outcomes.durations.append(ended - started)
        outcomes.timeline.append((started, ended, outcome))
    batch.attempts.append(outcome)


def _publish_until(
    url: str, dataset: Dataset, client: int, stop: threading.Event, outcomes: Outcomes
) -> None:
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        number = 0
        while not stop.is_set():
            event_ids = [f"c{client}-b{number}-r{index}" for index in range(BATCH)]
            records = [bus_arrival_record(_event_id=event_id) for event_id in event_ids]
            batch = Batch(f"c{client}-b{number}", event_ids, json.dumps(records).encode())
            with outcomes.lock:
                outcomes.batches.append(batch)
            _attempt(http, dataset, batch, outcomes)
            if not batch.acknowledged:
                time.sleep(0.5)
            number += 1


def _retry_failed(url: str, dataset: Dataset, outcomes: Outcomes, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        for batch in outcomes.batches:
            while not batch.acknowledged and time.monotonic() < deadline:
                _attempt(http, dataset, batch, outcomes)
                if not batch.acknowledged:
                    time.sleep(1.0)


def test_every_acknowledged_record_survives_a_broker_kill_exactly_once(
    private_kafka: PrivateKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bus_url = f"kafka://{private_kafka.bootstrap}"
    with running_catalog(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'catalog.db'}", bus_url=bus_url
    ) as catalog:
        dataset = catalog.dataset("crash")
        catalog.relayed()
        ingest = ServiceProcess(
            "ingest",
            tmp_path,
            {"CITYBASE_BUS_URL": bus_url, "CITYBASE_INGEST_RAW_ENABLED": "false"},
        )
        try:
            ingest.start()
            _run_the_crash(catalog, ingest, private_kafka, dataset, capsys)
        finally:
            ingest.stop()


def _run_the_crash(
    catalog: Catalog,
    ingest: ServiceProcess,
    broker: PrivateKafka,
    dataset: Dataset,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcomes = Outcomes()
    stop = threading.Event()
    clients = [
        threading.Thread(target=_publish_until, args=(ingest.url, dataset, n, stop, outcomes), daemon=True)
        for n in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(BEFORE_KILL_S)
    acknowledged_before_kill = sum(b.acknowledged for b in outcomes.batches)
    killed_at = time.monotonic()
    broker.kill9()
    time.sleep(DOWN_S)
    broker.start()
    restarted_at = time.monotonic()
    outage_s = restarted_at - killed_at
    time.sleep(AFTER_RESTART_S)
    stop.set()
    for client in clients:
        client.join(REQUEST_TIMEOUT_S + 10)
        assert not client.is_alive(), "a client is stuck past its request timeout"
    failed_first = [b for b in outcomes.batches if not b.acknowledged]
    _retry_failed(ingest.url, dataset, outcomes, timeout_s=90)

    after = [end for start, end, outcome in outcomes.timeline if start > restarted_at and outcome == "202"]
    recovery_s = min(after) - restarted_at if after else float("nan")
    failed_503 = [end - start for start, end, outcome in outcomes.timeline if outcome == "503"]
    found = Counter(read_event_ids(broker.bootstrap, f"ds.{dataset.id}"))
    sent = {event_id for batch in outcomes.batches for event_id in batch.event_ids}
    acknowledged = {e for b in outcomes.batches if b.acknowledged for e in b.event_ids}
    retried = {e for b in outcomes.batches if len(b.attempts) > 1 for e in b.event_ids}
    once = acknowledged - retried
    lost = sorted(acknowledged - set(found))
    duplicates = {e: n for e, n in found.items() if n > 1}
    unexpected_duplicates = sorted(e for e in duplicates if e not in retried)
    strangers = sorted(set(found) - sent)
    attempts = Counter(a for b in outcomes.batches for a in b.attempts)
    figures = (
        f"broker kill -9 under ingest: outage {outage_s:.1f}s (restart took {broker.starts[-1]:.1f}s); "
        f"batches {len(outcomes.batches)} of {BATCH} records ({acknowledged_before_kill} acknowledged before the kill, "
        f"{len(failed_first)} failed at first: retried with the same Idempotency-Key); attempts {dict(attempts)}; "
        f"records sent {len(sent)}, acknowledged (202) {len(acknowledged)}, found on ds. {len(set(found))} "
        f"({sum(found.values())} messages), duplicates {len(duplicates)} (all from retried batches: "
        f"{not unexpected_duplicates}), lost {len(lost)}; "
        f"503 answers took {min(failed_503, default=0):.1f}-{max(failed_503, default=0):.1f}s; "
        f"first 202 of a new batch {recovery_s:.1f}s after the broker was back; "
        f"max request {max(outcomes.durations):.1f}s"
    )
    with capsys.disabled():
        print("\n" + figures)

    assert after, f"no attempt started after the restart was acknowledged: {figures}"
    assert not outcomes.unexpected, outcomes.unexpected[:5]
    assert failed_first or max(outcomes.durations) > DOWN_S, f"the kill disturbed no batch: {figures}"
    assert acknowledged == sent, f"batches still unacknowledged after 90 s of retries: {figures}"
    assert not lost, f"acknowledged but not on ds.: {lost[:10]} — {figures}"
    assert not strangers, f"records on ds. that no client sent: {strangers[:10]}"
    assert not unexpected_duplicates, (
        f"records acknowledged on their only attempt appear more than once: {unexpected_duplicates[:10]} — {figures}"
    )
    assert all(found[e] == 1 for e in once), figures
    assert max(outcomes.durations) < REQUEST_TIMEOUT_S, figures


def test_the_producer_sends_again_after_an_outage_longer_than_its_delivery_timeout(
    private_kafka: PrivateKafka,
) -> None:
    """Batches in flight when the broker dies expire while they are retried; kafka-python then
    drops the producer id and, unless the bus replaces the producer, never sends again."""
    tuning = KafkaTuning(
        connect_timeout_ms=2_000, request_timeout_ms=1_000, max_block_ms=1_000, delivery_timeout_ms=2_000
    )
    bus = KafkaBus([private_kafka.bootstrap], client_id="citybase-faults", tuning=tuning)
    topic = f"faults-expiry-{uuid.uuid4().hex[:8]}"
    try:
        bus.admin().ensure_topic(TopicSpec(topic, 3))
        producer = bus.producer()

        def batch() -> list[OutgoingRecord]:
            return [OutgoingRecord(topic, b"x" * 200, str(n).encode(), ()) for n in range(200)]

        producer.send_batch(batch()).result(30)
        # Enough batches (30,000 records) that some are still on their way when the broker dies,
        # however fast it acknowledged the first ones; and a few more queued right after the kill.
        in_flight = [producer.send_batch(batch()) for _ in range(150)]
        private_kafka.kill9()
        for _ in range(3):
            with contextlib.suppress(Exception):
                in_flight.append(producer.send_batch(batch()))
        for future in in_flight:
            with contextlib.suppress(Exception):
                future.result(10)
        assert any(f.exception() is not None for f in in_flight), "nothing was in flight at the kill"
        time.sleep(3)  # past the delivery timeout: the retried batches expire
        private_kafka.start()
        delivered = wait_until(lambda: _sends(producer, batch()), 30)
    finally:
        bus.close()
    assert delivered, "the producer did not send again within 30 s of the broker's return"


def _sends(producer: Producer, records: list[OutgoingRecord]) -> bool:
    try:
        producer.send_batch(records).result(3)
        return True
    except Exception:
        return False
