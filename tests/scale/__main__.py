"""``make scale``: the platform as processes with 1, then 2, replicas of ingest, feeds and quality.

Each round starts a fresh PostgreSQL database, one catalog, and ``n`` processes each of ingest,
feeds and quality (:func:`tests.bench.pipeline.pipeline` plus replicas) on Kafka, the dataset's
topics made with :data:`PARTITIONS` partitions. A publisher spreads :data:`RECORDS` records in JSON
arrays of :data:`BATCH` over the ingest replicas (round-robin, :data:`SENDERS` clients); one
subscription of the granted scenario is long-polled through the feeds replicas in turn
(acknowledging every batch); quality's replicas share one group. The round then checks that
nothing was lost or doubled:

    records acknowledged by ingest (202) = records on ds. (end offsets)
                                         = records scored by quality (sum over replicas)
                                         = distinct records delivered to the subscription

and prints throughput (records/s from the first publish until every record is scored and
delivered) and each service's CPU seconds per 1,000 records (all its replicas). The last line
gives the 2-replica figures against the 1-replica ones, raw and CPU-normalised (throughput per
CPU-second of the whole platform), since on a 2-core machine two replicas share the same cores.
The figures go under ``scale`` in ``bench/results.json``. Exit 1 if any count disagrees.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.common.bus.kafka import KafkaBus
from services.common.topics import records_topic
from tests.bench.ingest import Service, _serve, _wait, bus_arrivals, json_array, serialized
from tests.bench.pipeline import Pipeline, cpu_s, pipeline
from tests.support.kafka_topics import KAFKA_BOOTSTRAP, created_topics_removed

RECORDS = int(os.environ.get("CITYBASE_SCALE_RECORDS", "100000"))
PARTITIONS = 6
BATCH = 1000
SENDERS = 4
DRAIN_S = float(os.environ.get("CITYBASE_SCALE_DRAIN_S", "300"))
RESULTS = Path("bench/results.json")
QUALITY_ENV = {"CITYBASE_QUALITY_WINDOW": '{"records": 1000, "seconds": 5}'}
"""Windows of 1,000 records (or 5 s for the last, partial one): the round ends when the records
are scored, not when a long window's time runs out."""
START_TIMEOUT_S = 300.0
ACK_ATTEMPTS = 10
"""Times the subscriber sends an acknowledgement that feeds refuses with 503 (the group rebalancing)."""


def _say(text: str) -> None:
    print(f"scale: {text}", flush=True)


def _fresh(values: list[bytes], round_: int) -> list[bytes]:
    """Unique arrival ids (the primary key, a UUID written first), so that every record counts once."""
    prefix = len(b'{"arrival_id":"')
    return [
        value[:prefix] + str(uuid.UUID(int=(round_ << 64) | index)).encode() + value[prefix + 36 :]
        for index, value in enumerate(values)
    ]


class Replicas:
    """The replicas of one round: the pipeline's first ones and the extra ones started here."""

    def __init__(
        self, pipe: Pipeline, ingest: list[Service], feeds: list[Service], quality: list[Service]
    ) -> None:
        self.pipe = pipe
        self.ingest, self.feeds, self.quality = ingest, feeds, quality

    @property
    def by_role(self) -> dict[str, list[Service]]:
        return {
            "catalog": [self.pipe.platform.catalog],
            "ingest": self.ingest,
            "feeds": self.feeds,
            "quality": self.quality,
        }

    def cpu(self) -> dict[str, float]:
        return {role: sum(cpu_s(service) for service in services) for role, services in self.by_role.items()}

    def scored(self) -> int:
        total = 0.0
        for service in self.quality:
            for line in httpx.get(f"{service.url}/metrics", timeout=30).text.splitlines():
                if line.startswith("citybase_quality_records_total{"):
                    total += float(line.rpartition(" ")[2])
        return int(total)


@contextmanager
def _replicas(pipe: Pipeline, n: int, directory: Path) -> Iterator[Replicas]:
    assert pipe.quality is not None
    env = {**pipe.platform.env, **pipe.service_env}
    with ExitStack() as stack:
        ingest = [pipe.platform.ingest]
        feeds = [pipe.feeds]
        quality = [pipe.quality]
        for index in range(1, n):
            for role in ("ingest", "feeds", "quality"):
                (directory / f"{role}-{index}").mkdir(parents=True, exist_ok=True)
            ingest.append(stack.enter_context(_serve("ingest", env, directory / f"ingest-{index}")))
            feeds.append(
                stack.enter_context(_serve("feeds", {**env, **pipe.feeds_env}, directory / f"feeds-{index}"))
            )
            quality.append(stack.enter_context(_serve("quality", env, directory / f"quality-{index}")))
        for service in ingest + feeds + quality:
            _wait(
                lambda service=service: httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200,
                f"{service.name} not ready",
                service,
                START_TIMEOUT_S,
            )
        yield Replicas(pipe, ingest, feeds, quality)


class Subscriber:
    """Long-polls one subscription through every feeds replica in turn, acknowledging each batch."""

    def __init__(self, replicas: Replicas, subscription: str) -> None:
        self._replicas = replicas
        self.path = f"/v1/subscriptions/{subscription}"
        self.ids: set[bytes] = set()
        self.received = 0
        self.errors: list[str] = []
        self.acks_retried = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = self._replicas.pipe.scenario_headers
        clients = [httpx.Client(base_url=s.url, headers=headers, timeout=60) for s in self._replicas.feeds]
        try:
            for client in itertools.cycle(clients):
                if self._stop.is_set():
                    return
                try:
                    response = client.get(f"{self.path}/records", params={"max": 5000, "wait": 1})
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                        time.sleep(0.5)
                        continue
                    batch = orjson.loads(response.content)
                    for record in batch["records"]:
                        self.ids.add(str(record["data"]["arrival_id"]).encode())
                    self.received += len(batch["records"])
                    if batch["records"]:
                        self._acknowledge(client, batch["cursor"])
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
        finally:
            for client in clients:
                client.close()

    def _acknowledge(self, client: httpx.Client, cursor: str) -> None:
        """POST the cursor; an acknowledgement refused with 503 while the replicas' group
        rebalances is sent again after its Retry-After, as the citybase subscriber does."""
        for _attempt in range(ACK_ATTEMPTS):
            ack = client.post(f"{self.path}/ack", json={"cursor": cursor})
            if ack.status_code == 200:
                return
            if ack.status_code != 503:
                break
            self.acks_retried += 1
            time.sleep(float(ack.headers.get("Retry-After", "1")))
        self.errors.append(f"ack {ack.status_code} {ack.text[:200]}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)


def _publish(replicas: Replicas, bodies: list[bytes]) -> tuple[int, list[str]]:
    """Every body to the ingest replicas in turn; the records acknowledged, and the errors."""
    platform = replicas.pipe.platform
    urls = [f"{service.url}/v1/datasets/{platform.dataset_id}/records" for service in replicas.ingest]
    clients = [httpx.Client(timeout=120) for _ in range(SENDERS)]
    acked, errors, lock = 0, [], threading.Lock()

    def send(index: int) -> None:
        nonlocal acked
        response = clients[index % SENDERS].post(
            urls[index % len(urls)], content=bodies[index], headers=platform.publisher_headers
        )
        with lock:
            answer = response.json() if response.status_code == 202 else {}
            acked += int(answer.get("accepted", 0))
            if response.status_code != 202 or answer.get("rejected"):
                errors.append(f"{response.status_code} {response.text[:200]}")

    try:
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="scale-sender") as senders:
            list(senders.map(send, range(len(bodies))))
    finally:
        for client in clients:
            client.close()
    return acked, errors


def _on_ds(dataset_id: str) -> int:
    bus = KafkaBus([KAFKA_BOOTSTRAP], client_id="citybase-scale")
    try:
        return sum(bus.admin().end_offsets(records_topic(dataset_id)).values())
    finally:
        bus.close()


def run_round(n: int, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["CITYBASE_INGEST_TOPIC_PARTITIONS"] = str(PARTITIONS)
    os.environ["CITYBASE_FEEDS_TOPIC_PARTITIONS"] = str(PARTITIONS)
    templates = serialized(bus_arrivals(RECORDS, seed=11))
    values = _fresh(templates, n)
    bodies = [json_array(values[i : i + BATCH]) for i in range(0, len(values), BATCH)]
    with (
        pipeline(directory, database=f"citybase_scale_{n}", quality=True, env=QUALITY_ENV) as pipe,
        _replicas(pipe, n, directory) as replicas,
    ):
        subscription = pipe.subscribe("latest")
        subscriber = Subscriber(replicas, subscription)
        cpu_before = replicas.cpu()
        started = time.perf_counter()
        acked, errors = _publish(replicas, bodies)
        published_s = time.perf_counter() - started
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and (replicas.scored() < acked or len(subscriber.ids) < acked):
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        cpu_after = replicas.cpu()
        scored = replicas.scored()
        subscriber.stop()
        on_ds = _on_ds(pipe.platform.dataset_id)
    cpu = {role: cpu_after[role] - cpu_before[role] for role in cpu_after}
    return {
        "replicas": n,
        "records": RECORDS,
        "acknowledged": acked,
        "on_ds": on_ds,
        "scored": scored,
        "delivered_distinct": len(subscriber.ids),
        "delivered_total": subscriber.received,
        "errors": errors[:5] + subscriber.errors[:5],
        "acks_retried_while_rebalancing": subscriber.acks_retried,
        "publish_s": round(published_s, 2),
        "elapsed_s": round(elapsed, 2),
        "records_per_s": round(acked / elapsed, 1),
        "cpu_s": {role: round(value, 2) for role, value in cpu.items()},
        "cpu_s_per_1000_records": {
            role: round(value / acked * 1000, 4) if acked else None for role, value in cpu.items()
        },
        "records_per_cpu_s": round(acked / sum(cpu.values()), 1) if sum(cpu.values()) else None,
    }


def _exact(result: dict[str, Any]) -> bool:
    return (
        result["acknowledged"] == RECORDS
        and result["on_ds"] == result["acknowledged"]
        and result["scored"] == result["acknowledged"]
        and result["delivered_distinct"] == result["acknowledged"]
    )


def main() -> int:
    directory = Path(os.environ.get("CITYBASE_SCALE_DIR") or tempfile.mkdtemp(prefix="citybase-scale-"))
    results = []
    with created_topics_removed(KAFKA_BOOTSTRAP):
        for n in (1, 2):
            _say(f"{n} replica(s) of ingest, feeds and quality, {RECORDS:,} records, {PARTITIONS} partitions")
            result = run_round(n, directory / f"replicas-{n}")
            _say(json.dumps(result))
            results.append(result)
    one, two = results
    summary = {
        "throughput_ratio": round(two["records_per_s"] / one["records_per_s"], 3),
        "cpu_normalised_ratio": round(two["records_per_cpu_s"] / one["records_per_cpu_s"], 3)
        if one["records_per_cpu_s"] and two["records_per_cpu_s"]
        else None,
        "cores": os.cpu_count(),
    }
    report = {"rounds": results, **summary, "logs": str(directory)}
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored["scale"] = {key: value for key, value in report.items() if key != "logs"}
    RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
    exact = all(_exact(result) for result in results)
    _say(
        f"2 replicas against 1: throughput x{summary['throughput_ratio']}, per CPU-second "
        f"x{summary['cpu_normalised_ratio']} on {summary['cores']} cores; "
        + ("every count agrees" if exact else "FAILED: a count disagrees (see the rounds above)")
    )
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
