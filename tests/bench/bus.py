"""Bus benchmarks: citybase's producers against the raw clients under them, same records, same run."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from services.common.bus import OutgoingRecord, TopicSpec
from services.common.bus.embedded import EmbeddedBus
from services.common.bus.kafka import KafkaBus
from tests.bench.report import Figure

RECORDS = int(os.environ.get("CITYBASE_BENCH_BUS_RECORDS", "100000"))
PAYLOAD = (
    b'{"stop_id":"S0042","route_id":"71","vehicle_id":"B-12345","delay_s":42,"occupancy":"MANY_SEATS_AVAILABLE","arrived_at":"2026-11-24T08:15:30Z","pad":"'
    + b"x" * 40
    + b'"}'
)


def _records(topic: str) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(topic, PAYLOAD, f"S{n % 500:04d}".encode(), (("ce_id", str(n).encode()),))
        for n in range(RECORDS)
    ]


def kafka_producer(bootstrap: str) -> Figure:
    """KafkaBus.publish vs a plain KafkaProducer with the same settings (acks=all, idempotent, lz4)."""
    topic = f"bench.bus.{uuid.uuid4().hex[:8]}"
    bus = KafkaBus([bootstrap], client_id="bench")
    try:
        bus.admin().ensure_topic(TopicSpec(topic, partitions=3))
        records = _records(topic)
        raw = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=5,
            batch_size=256 * 1024,
        )
        started = time.perf_counter()
        futures = [raw.send(topic, r.value, r.key, headers=list(r.headers)) for r in records]
        raw.flush()
        for future in futures:
            future.get(timeout=30)
        raw_rate = RECORDS / (time.perf_counter() - started)
        raw.close()

        producer = bus.producer()
        started = time.perf_counter()
        producer.publish(records, timeout_s=120)
        rate = RECORDS / (time.perf_counter() - started)
    finally:
        bus.close()
    return Figure(
        "bus publish, Kafka backend",
        rate,
        "records/s",
        "raw kafka-python producer, same settings",
        raw_rate,
        aim=">= 0.9",
    )


def embedded_producer() -> Figure:
    """EmbeddedBus.publish vs plain sqlite3 executemany of the same rows in one WAL transaction."""
    with tempfile.TemporaryDirectory() as directory:
        records = _records("bench")
        connection = sqlite3.connect(Path(directory) / "raw.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE r (p INTEGER, o INTEGER, k BLOB, v BLOB, h BLOB, t INTEGER)")
        started = time.perf_counter()
        with connection:
            connection.executemany(
                "INSERT INTO r VALUES (?, ?, ?, ?, ?, ?)",
                ((0, n, r.key, r.value, b"", 0) for n, r in enumerate(records)),
            )
        raw_rate = RECORDS / (time.perf_counter() - started)
        connection.close()

        bus = EmbeddedBus(Path(directory) / "bus.db")
        try:
            bus.admin().ensure_topic(TopicSpec("bench", partitions=3))
            started = time.perf_counter()
            bus.producer().publish(records, timeout_s=300)
            rate = RECORDS / (time.perf_counter() - started)
        finally:
            bus.close()
    return Figure(
        "bus publish, embedded backend",
        rate,
        "records/s",
        "sqlite3 executemany, one transaction",
        raw_rate,
        aim="informative",
    )
