"""Feeds benchmarks on real Kafka and PostgreSQL, each against a baseline from the same run.

Feeds runs in this process (uvicorn on 127.0.0.1, its own fresh database :data:`BENCH_DATABASE`);
the catalog events it needs (a scenario, its key, a dataset, a grant) are published on
``platform.catalog`` as the catalog would, and :data:`RECORDS` bus-arrivals records are written to
the dataset's ``ds.`` topic as ingest writes them (CloudEvents, binary mode, keyed by primary key).

- delivery throughput over long-poll (batches of :data:`BATCH`, each acknowledged) with a grant of
  2 masked fields (hash, partial) and a row filter, first request to last record, against a plain
  ``kafka.KafkaConsumer`` reading the same topic from the beginning (values only, no parsing);
- delivery latency at a steady :data:`LATENCY_RATE` records/s, from a record's write to ``ds.`` to
  its arrival at a long-polling client (p50 and p99), against a plain consumer at the same rate.

The client shares the process (and the GIL) with feeds, so the figures are a lower bound.

Then the platform as deployed (:mod:`tests.bench.pipeline`: catalog, ingest, feeds as their own
processes on a fresh :data:`PIPELINE_DATABASE`, a scenario granted the dataset through the catalog):

- end-to-end latency at a steady :data:`LATENCY_RATE` records/s POSTed to ingest (batches of 50),
  from each batch's HTTP 202 to each record's arrival at a long-polling subscriber (p50, p99),
  against a plain consumer of ``ds.`` seeing the same records (from the same 202s);
- feeds' resident memory with :data:`STREAMS` Server-Sent Event streams open (one subscription
  each), while each stream receives :data:`STREAM_BURST` records, against feeds' idle RSS in the
  same run.

``CITYBASE_BENCH_FEEDS_ONLY=streams`` runs only the last, ``=long-poll`` the long-poll throughput
alone (see :data:`ONLY`).
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from kafka import KafkaConsumer, TopicPartition

from services.common import catalog_events
from services.common.auth import issue_key
from services.common.bus import OutgoingRecord, TopicSpec
from services.common.bus.kafka import KafkaBus
from services.common.envelope import CloudEvent, encode_json, parse_time
from services.common.settings import Settings
from services.feeds.app import create_app as create_feeds
from services.feeds.runtime import FeedsRuntime
from services.feeds.settings import FeedsSettings
from tests.bench.ingest import (
    _Arrivals,
    arrival_id,
    bus_arrivals,
    fresh_database,
    json_array,
    serialized,
)
from tests.bench.pipeline import Pipeline, pipeline, rss_kib
from tests.bench.report import Figure
from tests.factories import feeds_grant_state
from tests.support.http import serve
from tests.support.kafka_topics import KAFKA_BOOTSTRAP
from tests.support.postgres import POSTGRES_URL

RECORDS = int(os.environ.get("CITYBASE_BENCH_FEEDS_RECORDS", "100000"))
BATCH = 5000
PARTITIONS = 3
LATENCY_RATE = 1000
LATENCY_SECONDS = float(os.environ.get("CITYBASE_BENCH_FEEDS_LATENCY_S", "10"))
BENCH_DATABASE = "citybase_bench_feeds"
PIPELINE_DATABASE = "citybase_bench_feeds_pipeline"
STREAMS = int(os.environ.get("CITYBASE_BENCH_FEEDS_STREAMS", "200"))
STREAM_BURST = 500
ONLY = os.environ.get("CITYBASE_BENCH_FEEDS_ONLY", "")
"""``streams``: measure only feeds' memory with :data:`STREAMS` open streams (the pipeline, then
:func:`_streams_memory`); ``long-poll``: the long-poll throughput and nothing after it. A few
minutes less each, for work on delivery. Unset (as ``make bench`` runs it): every figure."""
SENDER_THREADS = 8
"""Batches of the end-to-end latency run in flight at once: a slow 202 never delays the next send."""


def _catalog_setup(
    bus: KafkaBus, suffix: str, *, row_filter: str | None = "delay_s > -100000"
) -> tuple[str, str, str]:
    """Publish a scenario with a key, a dataset and a grant (two masks, ``row_filter``), as the
    catalog would; (scenario key, dataset id, topic)."""
    scenario_id = f"bench-scenario-{suffix}"
    dataset_id = f"transport.bench-feeds-{suffix}"
    topic = f"ds.{dataset_id}"
    issued = issue_key()
    now = datetime.now(UTC).isoformat()
    dataset = {
        "id": dataset_id,
        "domain_id": "transport",
        "owner_department_id": "bench",
        "title": "feeds bench",
        "classification": "conditional",
        "status": "active",
        "compatibility_mode": "BACKWARD",
        "current_version": None,
        "topics": {"records": topic, "dead_letter": f"dlq.{dataset_id}", "raw": f"raw.{dataset_id}"},
        "created_at": now,
        "updated_at": now,
    }
    grant = feeds_grant_state(
        scenario_id,
        dataset_id,
        masking={"vehicle_id": {"kind": "partial"}, "arrival_id": {"kind": "hash"}},
        row_filter=row_filter,
    )
    records = [
        catalog_events.catalog_record(
            catalog_events.PRINCIPAL,
            scenario_id,
            {"id": scenario_id, "kind": "scenario", "name": scenario_id, "status": "active"},
        ),
        catalog_events.catalog_record(
            catalog_events.API_KEY,
            issued.prefix,
            {
                "prefix": issued.prefix,
                "principal_id": scenario_id,
                "key_hash": issued.key_hash,
                "revoked_at": None,
            },
        ),
        catalog_events.catalog_record(catalog_events.DATASET, dataset_id, dataset),
        catalog_events.catalog_record(catalog_events.GRANT, grant["id"], grant),
    ]
    bus.admin().ensure_topic(TopicSpec(catalog_events.TOPIC, partitions=1, compact=True))
    bus.admin().ensure_topic(TopicSpec(topic, partitions=PARTITIONS))
    bus.producer().publish(records)
    return issued.key, dataset_id, topic


def _record(dataset_id: str, topic: str, data: dict[str, Any]) -> OutgoingRecord:
    event = CloudEvent(
        type="city.citybase.record.v1",
        source=f"/ingest/datasets/{dataset_id}",
        data=data,
        subject=data["arrival_id"],
        extensions={"dataset": dataset_id, "contractversion": "1.0.0"},
    )
    return event.to_record(topic, data["arrival_id"].encode(), value=encode_json(data))


def _progress(text: str) -> None:
    print(f"  feeds bench: {text}", file=sys.stderr, flush=True)


def _raw_read(topic: str, count: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        seen = 0
        while seen < count:
            for records in consumer.poll(timeout_ms=1000, max_records=BATCH).values():
                seen += len(records)
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def _subscribe(client: httpx.Client, dataset_id: str, start: str) -> str:
    response = client.post("/v1/subscriptions", json={"dataset": dataset_id, "start": start}, timeout=120)
    if response.status_code != 201:
        raise RuntimeError(f"subscription refused: {response.status_code} {response.text}")
    return str(response.json()["id"])


def _long_poll(client: httpx.Client, subscription_id: str, count: int) -> float:
    started = time.perf_counter()
    seen = 0
    while seen < count:
        response = client.get(
            f"/v1/subscriptions/{subscription_id}/records", params={"max": BATCH, "wait": 5}
        )
        response.raise_for_status()
        batch = orjson.loads(response.content)  # the client's parsing shares feeds' GIL: keep it small
        seen += len(batch["records"])
        if batch["records"]:
            client.post(f"/v1/subscriptions/{subscription_id}/ack", json={"cursor": batch["cursor"]})
    return count / (time.perf_counter() - started)


def _paced(bus: KafkaBus, dataset_id: str, topic: str, count: int) -> threading.Thread:
    """Writes ``count`` records at :data:`LATENCY_RATE`/s, 50 at a time; each one's CloudEvents
    time is the moment it is sent."""
    records = list(bus_arrivals(count, seed=7))

    def run() -> None:
        producer = bus.producer()
        interval = 50 / LATENCY_RATE
        next_at = time.perf_counter()
        for start in range(0, count, 50):
            for data in records[start : start + 50]:
                producer.send(_record(dataset_id, topic, data))
            producer.flush()
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    return threading.Thread(target=run, daemon=True)


def _raw_watch(topic: str, count: int, latencies: list[float]) -> threading.Thread:
    """A plain consumer from the topic's end, noting each record's age (now - its ce_time)."""

    def run() -> None:
        consumer = KafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, enable_auto_commit=False, group_id=None)
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            consumer.seek_to_end(*partitions)
            for partition in partitions:
                consumer.position(partition)
            deadline = time.monotonic() + LATENCY_SECONDS + 30
            while len(latencies) < count and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    now = time.time()
                    for record in records:
                        stamp = dict(record.headers)["ce_time"].decode()
                        latencies.append(now - parse_time(stamp).timestamp())
        finally:
            consumer.close()

    return threading.Thread(target=run, daemon=True)


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


@contextmanager
def _feeds(directory: Path, database_url: str) -> Iterator[str]:
    settings = Settings(
        data_dir=directory,
        database_url=database_url,
        bus_url=f"kafka://{KAFKA_BOOTSTRAP}",
    )
    app = create_feeds(
        settings, feeds_settings=FeedsSettings(webhook_enabled=False, secret=secrets.token_hex(32))
    )
    with serve(app) as url:
        read_model = app.state.runtime.service_as(FeedsRuntime).read_model
        if not read_model.wait_caught_up(120):
            raise RuntimeError("feeds did not catch up with platform.catalog")
        yield url


def run_all() -> list[Figure]:
    if ONLY == "streams":
        return _pipeline_figures(end_to_end=False)
    if ONLY not in ("", "long-poll"):
        raise SystemExit(f"CITYBASE_BENCH_FEEDS_ONLY={ONLY!r}: 'streams' or 'long-poll'")
    suffix = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="citybase-bench-feeds-")))
        bus = KafkaBus([KAFKA_BOOTSTRAP], client_id="citybase-bench-feeds")
        stack.callback(bus.close)
        key, dataset_id, topic = _catalog_setup(bus, suffix)
        stack.callback(lambda: bus.admin().delete_topic(topic))
        producer = bus.producer()
        passing = 0  # records the grant's row filter lets through (delay_s is sometimes null)
        for start in range(0, RECORDS, 10_000):
            chunk = list(bus_arrivals(min(10_000, RECORDS - start), seed=start))
            passing += sum(1 for data in chunk if data["delay_s"] is not None)
            producer.publish([_record(dataset_id, topic, data) for data in chunk])
        _progress(f"{RECORDS:,} records written to {topic}")
        raw_rate = _raw_read(topic, RECORDS)
        _progress(f"raw consumer: {raw_rate:,.0f} records/s")
        url = stack.enter_context(_feeds(directory, fresh_database(POSTGRES_URL, BENCH_DATABASE)))
        client = stack.enter_context(
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        )
        time.sleep(1.0)  # the key and grant reach feeds' read model
        # Two rounds each, alternating, best of each: the machine is shared, a round may be unlucky.
        feeds_rate = 0.0
        for _round in range(2):
            subscription_id = _subscribe(client, dataset_id, "earliest")
            rate = _long_poll(client, subscription_id, passing) * RECORDS / passing
            _progress(f"feeds long-poll: {rate:,.0f} records/s")
            feeds_rate = max(feeds_rate, rate)
            raw_rate = max(raw_rate, _raw_read(topic, RECORDS))
            _progress(f"raw consumer: {raw_rate:,.0f} records/s (best so far)")
        if ONLY == "long-poll":
            return [_long_poll_figure(feeds_rate, raw_rate)]

        latency_count = int(LATENCY_RATE * LATENCY_SECONDS)
        live = _subscribe(client, dataset_id, "latest")
        raw_latencies: list[float] = []
        watcher = _raw_watch(topic, latency_count, raw_latencies)
        watcher.start()
        time.sleep(2.0)  # the raw watcher has its partitions at their ends
        sender = _paced(bus, dataset_id, topic, latency_count)
        latencies: list[float] = []
        sender.start()
        deadline = time.monotonic() + LATENCY_SECONDS + 30
        empty_after_send = False
        while not empty_after_send and time.monotonic() < deadline:
            sending = sender.is_alive()
            response = client.get(f"/v1/subscriptions/{live}/records", params={"max": 1000, "wait": 1})
            now = time.time()
            batch = response.json()
            latencies += [now - parse_time(record["time"]).timestamp() for record in batch["records"]]
            if batch["records"]:
                client.post(f"/v1/subscriptions/{live}/ack", json={"cursor": batch["cursor"]})
            empty_after_send = not sending and not batch["records"]
        sender.join(30)
        watcher.join(30)
    figures = [_long_poll_figure(feeds_rate, raw_rate)]
    figures += _latency_figures(latencies, raw_latencies)
    return figures + _pipeline_figures(end_to_end=True)


def _pipeline_figures(*, end_to_end: bool) -> list[Figure]:
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="citybase-bench-pipeline-") as pipeline_directory,
        # The streams are all the bench scenario's: feeds' cap per scenario (16, fairness between
        # scenarios) would refuse all but 16 of them with 429, and the memory be that of 16 streams.
        pipeline(
            Path(pipeline_directory),
            database=PIPELINE_DATABASE,
            env={"CITYBASE_FEEDS_MAX_STREAMS_PER_SCENARIO": str(STREAMS)},
        ) as pipe,
    ):
        if end_to_end:
            _progress("pipeline up (catalog, ingest, feeds); ingest -> subscriber latency")
            figures += _end_to_end_figures(pipe)
        _progress(f"opening {STREAMS} streams")
        figures += _streams_memory(pipe)
    return figures


def _long_poll_figure(feeds_rate: float, raw_rate: float) -> Figure:
    return Figure(
        "feeds long-poll delivery, grant applied (2 masks + row filter)",
        round(feeds_rate),
        "records/s",
        "raw kafka-python consumer, same topic",
        round(raw_rate),
        aim=">= 0.6",
        notes=f"{RECORDS:,} records, batches of {BATCH}, each acknowledged; client in the same process; "
        "best of 2 rounds each",
    )


def _latency_figures(latencies: list[float], raw: list[float]) -> list[Figure]:
    if not latencies or not raw:
        return []
    p50, p99 = _percentiles(latencies)
    raw50, raw99 = _percentiles(raw)
    paced = f"{LATENCY_RATE:,} records/s for {LATENCY_SECONDS:g} s, written to ds. as ingest does"
    return [
        Figure(
            "feeds delivery latency p50 (ds. write -> long-poll client)",
            round(p50, 1),
            "ms",
            "raw consumer p50",
            round(raw50, 1),
            higher_is_better=False,
            notes=paced,
        ),
        Figure(
            "feeds delivery latency p99 (ds. write -> long-poll client)",
            round(p99, 1),
            "ms",
            "raw consumer p99",
            round(raw99, 1),
            aim="< 250 ms (with ingest)",
            higher_is_better=False,
            notes=paced,
        ),
    ]


# --- the platform as deployed ---------------------------------------------------------------


class _Subscriber:
    """Long-polls a subscription in a thread (acknowledging each batch), noting when each
    ``arrival_id`` arrived."""

    def __init__(self, pipe: Pipeline, subscription_id: str) -> None:
        self._pipe = pipe
        self._path = f"/v1/subscriptions/{subscription_id}"
        self.received: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._pipe.feeds_client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self._path}/records", params={"max": 1000, "wait": 1})
                    now = time.perf_counter()
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                        time.sleep(0.2)
                        continue
                    batch = orjson.loads(response.content)
                    for record in batch["records"]:
                        self.received.setdefault(record["data"]["arrival_id"], now)
                    if batch["records"]:
                        client.post(f"{self._path}/ack", json={"cursor": batch["cursor"]}).raise_for_status()
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _end_to_end_figures(pipe: Pipeline) -> list[Figure]:
    """Records POSTed to ingest at :data:`LATENCY_RATE`/s; from each batch's 202 to each record at a
    long-polling subscriber of feeds, and to a plain consumer of ``ds.``."""
    platform = pipe.platform
    count = int(LATENCY_RATE * LATENCY_SECONDS)
    values = serialized(bus_arrivals(count, seed=int(time.time())))
    batches = [values[n : n + 50] for n in range(0, count, 50)]
    warm_up = serialized(bus_arrivals(50, seed=1))
    with httpx.Client(timeout=60) as client:  # ingest creates ds. on its first batch
        response = client.post(
            platform.records_url, content=json_array(warm_up), headers=platform.publisher_headers
        )
        if response.status_code != 202:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
    topic = f"ds.{platform.dataset_id}"
    subscriber = _Subscriber(pipe, pipe.subscribe("latest"))
    raw = _Arrivals(topic, platform.partitions)
    accepted: dict[str, float] = {}
    answers: list[float] = []
    clients: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    try:
        with ExitStack() as stack:
            for _ in range(SENDER_THREADS):
                clients.put(stack.enter_context(httpx.Client(timeout=30)))

            def send(batch: list[bytes]) -> None:
                client = clients.get()
                try:
                    posted = time.perf_counter()
                    response = client.post(
                        platform.records_url, content=json_array(batch), headers=platform.publisher_headers
                    )
                finally:
                    clients.put(client)
                now = time.perf_counter()
                if response.status_code != 202:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
                answers.append(now - posted)
                for value in batch:
                    accepted[arrival_id(value).decode()] = now

            time.sleep(2.0)  # the subscriber's first long-poll holds the partitions
            with ThreadPoolExecutor(SENDER_THREADS, thread_name_prefix="bench-sender") as senders:
                interval = 50 / LATENCY_RATE
                started = time.perf_counter()
                sends = []
                for n, batch in enumerate(batches):
                    time.sleep(max(0.0, started + n * interval - time.perf_counter()))
                    sends.append(senders.submit(send, batch))
                for done in sends:
                    done.result()
        deadline = time.monotonic() + 30
        while (
            len(subscriber.received.keys() & accepted.keys()) < len(accepted) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
    finally:
        subscriber.close()
        raw.close()
    missing = len(accepted) - len(subscriber.received.keys() & accepted.keys())
    if missing:
        raise RuntimeError(
            f"{missing} of {len(accepted)} records never reached the subscriber: {subscriber.errors[:3]}"
        )
    delivered = [subscriber.received[key] - at for key, at in accepted.items()]
    seen = [raw.received[key.encode()] - at for key, at in accepted.items() if key.encode() in raw.received]
    p50, p99 = _percentiles(delivered)
    raw50, raw99 = _percentiles(seen)
    post50, post99 = _percentiles(answers)
    _progress(
        f"ingest 202 -> subscriber p50 {p50:.1f} ms, p99 {p99:.1f} ms; POST -> 202 {post50:.1f}/{post99:.1f} ms; "
        f"202 -> plain ds. consumer {raw50:.1f}/{raw99:.1f} ms"
    )
    paced = (
        f"{LATENCY_RATE:,} records/s POSTed to ingest in batches of 50 for {LATENCY_SECONDS:g} s; catalog, "
        f"ingest and feeds as their own processes; 202 -> a plain consumer of ds.: p50 {raw50:.1f} ms, "
        f"p99 {raw99:.1f} ms (negative: the record was readable before its 202 reached the publisher)"
    )
    return [
        Figure(
            "end-to-end latency p50 (ingest 202 -> long-poll subscriber of feeds)",
            round(p50, 1),
            "ms",
            "the publisher's wait for the 202 p50 (same batches)",
            round(post50, 1),
            higher_is_better=False,
            notes=paced,
        ),
        Figure(
            "end-to-end latency p99 (ingest 202 -> long-poll subscriber of feeds)",
            round(p99, 1),
            "ms",
            "the publisher's wait for the 202 p99 (same batches)",
            round(post99, 1),
            aim="< 250 ms",
            higher_is_better=False,
            notes=paced,
        ),
    ]


class _Streams:
    """Raw sockets reading Server-Sent Event streams in one thread, counting delivered records.

    A stream refused with 503 (feeds busy: every database connection taken while 200 streams
    open at once on two cores) is opened again after its Retry-After, as an EventSource would.
    """

    MARK = b'"arrival_id":'

    def __init__(self, pipe: Pipeline, subscription_ids: list[str]) -> None:
        host, port = pipe.feeds.url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self._key = pipe.scenario_key
        self.selector = selectors.DefaultSelector()
        self.records: dict[str, int] = dict.fromkeys(subscription_ids, 0)
        self._tails: dict[str, bytes] = {}
        self.heads: dict[str, bytes] = {}
        """The first bytes of each stream's current response (its status line and headers)."""
        self._reopen: list[tuple[float, str]] = []
        self.retried = 0
        self.closed = 0
        for subscription_id in subscription_ids:
            self._open(subscription_id)

    def _open(self, subscription_id: str) -> None:
        host = self._address[0]
        connection = socket.create_connection(self._address, timeout=30)
        connection.sendall(
            f"GET /v1/subscriptions/{subscription_id}/stream HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {self._key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        connection.setblocking(False)
        self.selector.register(connection, selectors.EVENT_READ, subscription_id)
        self._tails[subscription_id] = b""
        self.heads[subscription_id] = b""

    def _refused(self, connection: socket.socket, subscription_id: str) -> None:
        head = self.heads[subscription_id].lower()
        retry = re.search(rb"\r\nretry-after: *([0-9]+)", head)
        self.selector.unregister(connection)
        connection.close()
        self.retried += 1
        self._reopen.append((time.monotonic() + (int(retry.group(1)) if retry else 1), subscription_id))

    def streaming(self) -> int:
        """How many streams answered 200 and are open."""
        return sum(1 for head in self.heads.values() if head.startswith(b"HTTP/1.1 200"))

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            due = [entry for entry in self._reopen if entry[0] <= now]
            for entry in due:
                self._reopen.remove(entry)
                self._open(entry[1])
            for key, _ in self.selector.select(0.1):
                connection: socket.socket = key.fileobj  # type: ignore[assignment]
                subscription_id: str = key.data
                try:
                    chunk = connection.recv(262_144)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.selector.unregister(connection)
                    self.closed += 1
                    continue
                if len(self.heads[subscription_id]) < 600:
                    self.heads[subscription_id] += chunk[:600]
                    head = self.heads[subscription_id]
                    if head.startswith(b"HTTP/1.1 503") and b"\r\n\r\n" in head:
                        self._refused(connection, subscription_id)
                        continue
                data = self._tails[subscription_id] + chunk
                self.records[subscription_id] += data.count(self.MARK)
                # Keep a tail shorter than the mark, so that a mark split by the read counts once.
                self._tails[subscription_id] = data[-(len(self.MARK) - 1) :]

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            with suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


def _streams_memory(pipe: Pipeline) -> list[Figure]:
    """Feeds' RSS idle, then with :data:`STREAMS` open streams while each gets :data:`STREAM_BURST`
    records; and what each open stream costs at the peak."""
    time.sleep(2.0)
    idle_kib = rss_kib(pipe.feeds)
    with ThreadPoolExecutor(8) as pool:
        subscriptions = list(pool.map(lambda _: pipe.subscribe("latest"), range(STREAMS)))
    streams = _Streams(pipe, subscriptions)
    peak_kib = 0
    try:
        connect_by = time.monotonic() + 120
        settle = 10  # the streams connect (again, when refused) and join their groups
        while settle > 0 and time.monotonic() < connect_by:
            streams.read(0.5)
            peak_kib = max(peak_kib, rss_kib(pipe.feeds))
            settle = settle - 1 if streams.streaming() == STREAMS else 10
        if pipe.feeds.process.poll() is not None:
            raise RuntimeError(f"feeds exited:\n{pipe.feeds.log_tail()}")
        open_kib = rss_kib(pipe.feeds)
        values = serialized(bus_arrivals(STREAM_BURST, seed=99))
        with httpx.Client(timeout=60) as client:
            for n in range(0, STREAM_BURST, 100):
                response = client.post(
                    pipe.platform.records_url,
                    content=json_array(values[n : n + 100]),
                    headers=pipe.platform.publisher_headers,
                )
                if response.status_code != 202:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and min(streams.records.values()) < STREAM_BURST:
            streams.read(0.5)
            peak_kib = max(peak_kib, rss_kib(pipe.feeds))
        complete = sum(1 for n in streams.records.values() if n >= STREAM_BURST)
        refused = STREAMS - streams.streaming()
        _progress(
            f"feeds RSS idle {idle_kib / 1024:.0f} MiB, {STREAMS} streams open {open_kib / 1024:.0f} MiB, "
            f"peak while delivering {peak_kib / 1024:.0f} MiB; {complete}/{STREAMS} streams got all "
            f"{STREAM_BURST} records, {streams.closed} closed, {refused} not streaming, "
            f"{streams.retried} opens refused with 503 and retried"
        )
    finally:
        streams.close()
    opened = max(1, STREAMS - refused)
    return [
        Figure(
            f"feeds RSS with {STREAMS} SSE streams open, each receiving {STREAM_BURST} records (peak)",
            round(peak_kib / 1024, 1),
            "MiB",
            "feeds idle RSS, same run",
            round(idle_kib / 1024, 1),
            higher_is_better=False,
            notes=f"one subscription per stream; {STREAMS} streams open, idle: {open_kib / 1024:.0f} MiB; "
            f"{complete}/{STREAMS} streams received all {STREAM_BURST} records; {streams.retried} opens were "
            f"refused with 503 (feeds busy) and opened again after Retry-After, as an EventSource does; "
            f"{refused} never streamed",
        ),
        Figure(
            "feeds RSS per open SSE stream while each receives its records ((peak - idle) / streams)",
            round((peak_kib - idle_kib) / 1024 / opened, 3),
            "MiB",
            "per open stream before the records came ((open - idle) / streams)",
            round((open_kib - idle_kib) / 1024 / opened, 3),
            aim="<= 0.5 MiB per stream",
            higher_is_better=False,
            notes=f"{opened} streams streaming, one subscription each, {STREAM_BURST} records each; feeds "
            f"idle {idle_kib / 1024:.0f} MiB, {STREAMS} streams open {open_kib / 1024:.0f} MiB, "
            f"peak {peak_kib / 1024:.0f} MiB",
        ),
    ]


if __name__ == "__main__":
    for figure in run_all():
        print(json.dumps(figure.__dict__))
