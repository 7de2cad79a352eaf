"""A Server-Sent Events client that stops reading does not make feeds read ahead for it.

Feeds runs as its own process (``citybase serve feeds`` on real Kafka), so that its resident memory
is its own. The client is a raw socket with a small receive buffer: while it reads nothing, feeds
may only have produced what fits between it and the client (one event being written, the
transport's buffer, the kernel's), whatever the backlog; when it reads again, every record comes,
in order per partition.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import h11
import httpx
import pytest

from services.common.bus.kafka import KafkaBus
from tests.bench.feeds import _catalog_setup, _record
from tests.bench.ingest import Service, _serve, _wait, bus_arrivals
from tests.bench.pipeline import rss_kib

BACKLOG = 30_000
"""Records waiting for the stream: about 9 MB of events, far more than the bounds below."""
SSE_BATCH = 200
STALL_S = 6.0
PRODUCED_BOUND = 20 * SSE_BATCH
"""Records feeds may have turned into events while the client reads nothing: a few events in
the socket buffers on both sides, not the backlog."""
RSS_BOUND_KIB = 24 * 1024
"""Growth of feeds' RSS while the client stalls (Python's allocator keeps some noise)."""
DELIVERED = re.compile(rb'"id":"([^"]+)","dataset":"[^"]+","partition":(\d+),"offset":(\d+)')


@pytest.fixture
def feeds_process(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Service, str, str, KafkaBus, str]]:
    bus = KafkaBus([kafka_bootstrap], client_id="test-slow-stream")
    key, dataset_id, topic = _catalog_setup(bus, uuid.uuid4().hex[:8], row_filter=None)
    env = {
        "PATH": "/usr/bin:/bin",
        "CITYBASE_DATABASE_URL": f"sqlite:///{tmp_path / 'feeds.db'}",
        "CITYBASE_BUS_URL": f"kafka://{kafka_bootstrap}",
        "CITYBASE_DATA_DIR": str(tmp_path),
        "CITYBASE_LOG_LEVEL": "WARNING",
        "CITYBASE_FEEDS_SSE_BATCH": str(SSE_BATCH),
        "CITYBASE_FEEDS_WEBHOOK_ENABLED": "false",
        # feeds on Kafka refuse to start without a secret of their own
        "CITYBASE_FEEDS_SECRET": secrets.token_hex(32),
    }
    try:
        with _serve("feeds", env, tmp_path) as feeds:
            _wait(
                lambda: httpx.get(f"{feeds.url}/readyz", timeout=2).status_code == 200,
                "feeds not ready",
                feeds,
            )
            yield feeds, key, dataset_id, bus, topic
    finally:
        bus.admin().delete_topic(topic)
        bus.close()


def _subscribe(feeds: Service, key: str, dataset_id: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        response = httpx.post(
            f"{feeds.url}/v1/subscriptions",
            json={"dataset": dataset_id, "start": "earliest"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        if response.status_code == 201:
            return str(response.json()["id"])
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)


def _produced(feeds: Service) -> float:
    """Records feeds turned into stream events so far (its delivery counter, mode sse)."""
    text = httpx.get(f"{feeds.url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("citybase_feeds_records_delivered_total{") and 'mode="sse"' in line
    )


class SlowClient:
    """One stream over a socket with a small receive buffer, read only when asked to."""

    def __init__(self, url: str, path: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect((host, int(port)))
        self.socket.settimeout(10)
        self.http = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=path,
            headers=[("Host", host), ("Authorization", f"Bearer {key}"), ("Accept", "text/event-stream")],
        )
        self.socket.sendall(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        self.body = bytearray()

    def read_until(self, done: object, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(self.socket.recv(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200, event
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                raise AssertionError(f"the stream ended: {bytes(self.body[-500:])!r}")

    def count(self) -> int:
        """Records received so far (a record delivered again counts again)."""
        return self.body.count(b'"partition":')

    def delivered(self) -> list[tuple[str, int, int]]:
        return [(i.decode(), int(p), int(o)) for i, p, o in DELIVERED.findall(self.body)]

    def close(self) -> None:
        self.socket.close()


def test_a_client_that_stops_reading_does_not_grow_feeds_and_then_gets_everything(
    feeds_process: tuple[Service, str, str, KafkaBus, str],
) -> None:
    feeds, key, dataset_id, bus, topic = feeds_process
    subscription_id = _subscribe(feeds, key, dataset_id)
    sent: set[str] = set()
    producer = bus.producer()
    for start in range(0, BACKLOG, 10_000):
        records = [_record(dataset_id, topic, data) for data in bus_arrivals(10_000, seed=start + 1)]
        producer.publish(records)
        sent.update(dict(r.headers)["ce_id"].decode() for r in records)

    client = SlowClient(feeds.url, f"/v1/subscriptions/{subscription_id}/stream", key)
    try:
        client.read_until(lambda: len(client.delivered()) >= SSE_BATCH, 60)
        time.sleep(1.0)  # what the first read let through settles
        produced_before, rss_before = _produced(feeds), rss_kib(feeds)
        peak = rss_before
        stalled_until = time.monotonic() + STALL_S
        while time.monotonic() < stalled_until:  # the client reads nothing
            time.sleep(0.2)
            peak = max(peak, rss_kib(feeds))
        produced = _produced(feeds) - produced_before
        print(f"stalled {STALL_S:g} s: {produced:.0f} records produced, RSS {rss_before} -> peak {peak} KiB")
        assert produced <= PRODUCED_BOUND, f"{produced:.0f} records produced for a client reading nothing"
        assert peak - rss_before <= RSS_BOUND_KIB, f"feeds grew {(peak - rss_before) / 1024:.1f} MiB"

        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # now read at full speed
        resumed = time.monotonic()
        client.read_until(lambda: client.count() >= BACKLOG, 240)
        print(f"resumed: {BACKLOG:,} records in {time.monotonic() - resumed:.1f} s")
    finally:
        client.close()
    delivered = client.delivered()
    missing = sent - {i for i, _, _ in delivered}
    assert not missing, f"{len(missing)} of {len(sent)} records never came"
    for partition in {p for _, p, _ in delivered}:
        offsets = [o for _, p, o in delivered if p == partition]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
