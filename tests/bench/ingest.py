"""Ingest benchmarks: a real catalog and ingest, as their own processes, on Kafka and PostgreSQL.

Each figure is compared with a baseline measured in the same run, on the same records:

- throughput of :data:`RECORDS` ``transport.bus-arrivals`` records POSTed as JSON arrays of
  :data:`BATCH` over HTTP (first send to last 202), against a plain ``kafka.KafkaProducer`` with
  ingest's producer settings (``KafkaTuning``) sending the same records, pre-serialized, one Kafka
  record each, keyed by the primary key, to a topic with as many partitions, waiting for every ack
  (:data:`THROUGHPUT_ROUNDS` alternating runs of each, the best counts);
- the same runs as CPU time per record, ingest's whole process against the raw producer's;
- the ingest process's peak RSS during those runs, against its RSS when idle after start;
- validation alone (the compiled validator of the contract over the parsed records, one thread)
  against ``json.loads`` of the same records' bytes;
- publish-to-``ds.`` latency p50 and p99 at a steady :data:`LATENCY_RATE` records/s, against a raw
  producer to a raw consumer at the same rate, measured the same way.

The database is PostgreSQL (a fresh :data:`BENCH_DATABASE`), as in a deployment: ingest touches
it only for Idempotency-Keys, and the HTTP batches here carry one each, as a publisher that
retries safely sends them. Every run registers its own dataset
(``transport.bus-arrivals-bench-<hex>``), retires it at the end (``platform.catalog`` outlives the
run; a later ingest must not subscribe to its raw topic) and deletes its topics.
"""

from __future__ import annotations

import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.catalog import models as catalog_models
from services.catalog.events import CatalogEvents
from services.catalog.principals.service import bootstrap_admin
from services.common import db
from services.common.bus import TopicSpec
from services.common.bus.kafka import KafkaBus, KafkaTuning
from services.common.outbox import Outbox
from services.ingest.settings import IngestSettings
from services.ingest.validation import RecordValidator
from tests.bench.report import Figure
from tests.factories import evolve_contract, example_contract
from tests.support.kafka_topics import KAFKA_BOOTSTRAP
from tests.support.postgres import POSTGRES_URL

RECORDS = int(os.environ.get("CITYBASE_BENCH_INGEST_RECORDS", "200000"))
BATCH = 1000
WORKERS = int(os.environ.get("CITYBASE_BENCH_INGEST_WORKERS", str(min(2, os.cpu_count() or 1))))
"""Ingest worker processes (``citybase serve ingest --workers N``), by default one per core up to
two: ingest scales out by processes, as it is deployed. The raw producer is always one process, so
the CPU figure (records per CPU-second, ingest against raw) is reported beside the wall-clock one."""
CLIENT_THREADS = int(os.environ.get("CITYBASE_BENCH_INGEST_CLIENTS", "4"))
"""Concurrent HTTP clients. Ingest is CPU-bound in one process, so more clients mostly overlap one
batch's acknowledgement wait with the next batch's parsing; 1 to 8 measured within the noise of
a shared two-core machine, and 4 never idles ingest between batches."""
LATENCY_RATE = 1000
LATENCY_SECONDS = float(os.environ.get("CITYBASE_BENCH_INGEST_LATENCY_S", "20"))
LATENCY_BATCH = 50
SENDER_THREADS = 8
"""Batches of the latency runs in flight at once: enough that a slow answer never delays the next."""
BENCH_DATABASE = "citybase_bench_ingest"
CONTRACT = "transport.bus-arrivals"
CONTRACT_VERSION = "1.1.0"
DEPARTMENT = "transport-bureau"
THROUGHPUT_ROUNDS = 2
"""Raw and ingest runs alternate this often, and the best of each counts: the machine is shared,
and a burst of someone else's work during one short run should not decide the ratio."""
START_TIMEOUT_S = 60.0
RSS_SAMPLE_S = 0.02

# --- records ---------------------------------------------------------------------------------

_OCCUPANCY = (
    "EMPTY",
    "MANY_SEATS_AVAILABLE",
    "FEW_SEATS_AVAILABLE",
    "STANDING_ROOM_ONLY",
    "CRUSHED_STANDING_ROOM_ONLY",
    "FULL",
    "NOT_ACCEPTING_PASSENGERS",
)
_PLATES = "沪京苏浙"


def bus_arrivals(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` valid records of bus-arrivals 1.1.0, the same for a seed: a morning of a city's
    buses, with the optional fields left out or null as often as a real AVL feed does."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    for n in range(count):
        record: dict[str, Any] = {
            "arrival_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "stop_id": f"S{rng.randrange(10_000):04d}",
            "route_id": str(rng.randrange(1, 1200)),
            "vehicle_id": f"{rng.choice(_PLATES)}B-{rng.randrange(100_000):05d}",
            "arrived_at": (start + timedelta(seconds=n // 20)).strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "delay_s": None if rng.random() < 0.01 else rng.randint(-300, 1800),
            "occupancy": None if rng.random() < 0.1 else rng.choice(_OCCUPANCY),
        }
        if rng.random() < 0.5:
            record["direction"] = rng.randrange(2)
        yield record


def serialized(records: Iterator[dict[str, Any]]) -> list[bytes]:
    """Each record as the JSON ingest publishes for it (compact, UTF-8), so that the raw producer
    sends byte for byte the values ingest writes to ``ds.``."""
    return [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() for r in records]


def json_array(values: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(values) + b"]"


def arrival_id(value: bytes) -> bytes:
    """The record's primary key, which ingest makes the Kafka key: the generator writes it first."""
    return value[len(b'{"arrival_id":"') :][:36]


# --- the platform ----------------------------------------------------------------------------


def _database_url(server_url: str, database: str) -> str:
    return sa.make_url(server_url).set(database=database).render_as_string(hide_password=False)


def fresh_database(server_url: str, database: str) -> str:
    """Drop and create ``database`` on the server of ``server_url``; its SQLAlchemy URL."""
    engine = sa.create_engine(_database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return _database_url(server_url, database)


def _admin_key(url: str) -> str:
    engine = db.create_db_engine(url)
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            issued = bootstrap_admin(session, events=CatalogEvents(Outbox(catalog_models.outbox)))
    finally:
        engine.dispose()
    if issued is None:
        raise RuntimeError("the bench database already has principals")
    return issued.key


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    """One ``citybase serve`` process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])


def _citybase(arguments: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "citybase.cli", *arguments],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def _serve(name: str, env: dict[str, str], directory: Path, workers: int = 1) -> Iterator[Service]:
    """``citybase serve <name>`` on a free port of 127.0.0.1; terminated on the way out, whatever happens."""
    port = _free_port()
    log = directory / f"{name}.log"
    arguments = ["serve", name, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    process = _citybase(arguments, env, log)
    try:
        yield Service(name, f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(
    condition: Callable[[], bool], what: str, service: Service, timeout_s: float = START_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited ({service.process.returncode}):\n{service.log_tail()}")
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout_s:.0f}s; {service.name} log:\n{service.log_tail()}")


@dataclass
class BenchPlatform:
    """A running catalog and ingest with one registered bench dataset and its publisher's key."""

    catalog: Service
    ingest: Service
    admin_key: str
    publisher_key: str
    dataset_id: str
    record_schema: dict[str, Any]
    partitions: int
    env: dict[str, str] = field(default_factory=dict)
    """The environment the services run with (database, bus, data directory): for more of them."""

    @property
    def records_url(self) -> str:
        return f"{self.ingest.url}/v1/datasets/{self.dataset_id}/records"

    @property
    def publisher_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.publisher_key}", "Content-Type": "application/json"}

    def probe(self) -> int:
        """The status of an empty batch: 400 once ingest knows the key, the dataset and its contract
        (an empty array is refused after all of those are checked, and publishes nothing)."""
        return httpx.post(
            self.records_url, content=b"[]", headers=self.publisher_headers, timeout=5
        ).status_code


TRANSPORT_BUREAU = {
    "id": DEPARTMENT,
    "name": "Municipal Transport Bureau",
    "kind": "bureau",
    "domains": ["transport"],
}


def register_dataset(
    catalog: Service,
    admin_key: str,
    suffix: str,
    *,
    contract_id: str = CONTRACT,
    version: str = CONTRACT_VERSION,
    department: dict[str, Any] = TRANSPORT_BUREAU,
) -> tuple[str, str, dict[str, Any]]:
    """``department``, a publisher of it with a key, and the example contract ``contract_id``
    ``version`` under a dataset id of this run; its id, the publisher's key and the record schema
    the catalog derived."""
    dataset_id = f"{contract_id}-bench-{suffix}"
    publisher = f"{department['id']}-bench-{suffix}"

    def rename(document: dict[str, Any]) -> None:
        document["id"] = dataset_id
        for schema_object in document.get("schema") or []:
            schema_object["physicalName"] = f"ds.{dataset_id}"

    contract = evolve_contract(example_contract(contract_id, version), version, rename)
    with httpx.Client(
        base_url=catalog.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as client:
        _created(
            client.post(
                "/v1/departments",
                json=department,
            )
        )
        _created(
            client.post(
                "/v1/principals",
                json={
                    "id": publisher,
                    "kind": "department",
                    "name": publisher,
                    "department_id": department["id"],
                },
            )
        )
        key = _created(client.post(f"/v1/principals/{publisher}/keys", json={"name": "bench"}))["key"]
        version = _created(
            client.post(
                "/v1/contracts", content=contract.encode(), headers={"Content-Type": "application/yaml"}
            )
        )
    return dataset_id, key, version["record_schema"]


def _created(response: httpx.Response) -> Any:
    if response.status_code != 201:
        request = response.request
        raise RuntimeError(f"{request.method} {request.url.path}: {response.status_code} {response.text}")
    return response.json()


@contextmanager
def bench_platform(
    directory: Path, *, database: str = BENCH_DATABASE, workers: int = WORKERS
) -> Iterator[BenchPlatform]:
    """A fresh database, ``citybase migrate``, then catalog and ingest (``workers`` processes) as
    their own processes on real Kafka, the bench dataset registered and known to ingest. Stopped and
    cleaned up on the way out."""
    url = fresh_database(POSTGRES_URL, database)
    suffix = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "CITYBASE_DATABASE_URL": url,
        "CITYBASE_BUS_URL": f"kafka://{KAFKA_BOOTSTRAP}",
        "CITYBASE_DATA_DIR": str(directory),
        "CITYBASE_MIGRATE_ON_START": "false",
        "CITYBASE_LOG_LEVEL": "WARNING",
        "CITYBASE_INGEST_RAW_GROUP_ID": f"citybase-ingest-raw-bench-{suffix}",
    }
    migrate = _citybase(["migrate"], env, directory / "migrate.log")
    if migrate.wait(timeout=60) != 0:
        raise RuntimeError(
            "citybase migrate failed:\n" + (directory / "migrate.log").read_text(errors="replace")
        )
    admin_key = _admin_key(url)
    with ExitStack() as stack:
        catalog = stack.enter_context(_serve("catalog", env, directory))
        ingest = stack.enter_context(_serve("ingest", env, directory, workers))
        _wait(
            lambda: httpx.get(f"{catalog.url}/readyz", timeout=2).status_code == 200,
            "catalog not ready",
            catalog,
        )
        # The catalog's key ring follows platform.catalog: on a Kafka that has just been formatted
        # the admin key can reach it a moment after /readyz does.
        _wait(
            lambda: (
                httpx.get(
                    f"{catalog.url}/v1/principals/admin",
                    headers={"Authorization": f"Bearer {admin_key}"},
                    timeout=5,
                ).status_code
                == 200
            ),
            "the admin key not accepted by the catalog",
            catalog,
        )
        dataset_id, publisher_key, record_schema = register_dataset(catalog, admin_key, suffix)
        platform = BenchPlatform(
            catalog,
            ingest,
            admin_key,
            publisher_key,
            dataset_id,
            record_schema,
            IngestSettings().topic_partitions,
            env,
        )
        stack.callback(_clean_up, platform)
        _wait(
            lambda: httpx.get(f"{ingest.url}/readyz", timeout=2).status_code == 200,
            "ingest not ready",
            ingest,
        )
        _wait(lambda: platform.probe() == 400, "the key and dataset did not reach ingest", ingest)
        yield platform


def _clean_up(platform: BenchPlatform) -> None:
    """Retire the dataset and wait until ingest has seen it (so the event is on ``platform.catalog``).

    Best effort: a failure here is reported, not allowed to lose the figures of the run.
    """
    try:
        retired = httpx.patch(
            f"{platform.catalog.url}/v1/datasets/{platform.dataset_id}",
            json={"status": "retired"},
            headers={"Authorization": f"Bearer {platform.admin_key}"},
            timeout=10,
        )
        retired.raise_for_status()
        if platform.ingest.process.poll() is None:
            _wait(lambda: platform.probe() == 409, "the retirement did not reach ingest", platform.ingest, 15)
    except (httpx.HTTPError, RuntimeError) as error:
        print(f"could not retire {platform.dataset_id}: {error}", file=sys.stderr)


@contextmanager
def kafka_admin() -> Iterator[KafkaBus]:
    bus = KafkaBus([KAFKA_BOOTSTRAP], client_id="bench-ingest")
    try:
        yield bus
    finally:
        bus.close()


# --- measurements ----------------------------------------------------------------------------


@contextmanager
def closing_producer() -> Iterator[KafkaProducer]:
    """A plain kafka-python producer with the settings of ingest's (``KafkaBusProducer._build``)."""
    tuning = KafkaTuning()
    producer = KafkaProducer(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        client_id="bench-ingest-raw",
        acks="all",
        enable_idempotence=True,
        compression_type=tuning.compression_type,
        linger_ms=tuning.linger_ms,
        batch_size=tuning.batch_size,
        max_block_ms=tuning.max_block_ms,
        delivery_timeout_ms=tuning.delivery_timeout_ms,
        request_timeout_ms=tuning.request_timeout_ms,
    )
    try:
        yield producer
    finally:
        producer.close(timeout=10)


def raw_throughput(producer: KafkaProducer, topic: str, values: Sequence[bytes]) -> float:
    """Records/s from the first send to the last acknowledgement."""
    started = time.perf_counter()
    futures = [producer.send(topic, value, arrival_id(value)) for value in values]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    return len(values) / (time.perf_counter() - started)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (``serve --workers N`` forks N workers under a supervisor)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, ()))
    return tree


def _tree_kib(pid: int, field: str) -> int:
    total = 0
    for member in process_tree(pid):
        with suppress(OSError, KeyError):  # gone meanwhile
            total += _status_kib(member)[field]
    return total


def _tree_cpu_s(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with suppress(OSError):
            total += _cpu_s(member)
    return total


def _status_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        return {
            name: int(value.split()[0])
            for name, _, value in (line.partition(":") for line in status)
            if name in ("VmRSS", "VmHWM")
        }


def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat`` utime and stime)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples the resident memory of a process and its children (all ingest processes) while a
    measurement runs; ``peak`` is the largest total seen. With one process its VmHWM counts too
    (the kernel keeps it even between samples); with several, the sum of their VmHWMs, an upper
    bound of the peak total."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_kib = 0

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self.peak_kib = max(self.peak_kib, _tree_kib(self._pid, "VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _tree_kib(self._pid, "VmHWM"))


def _post(client: httpx.Client, platform: BenchPlatform, body: bytes, expected: int) -> None:
    response = client.post(
        platform.records_url,
        content=body,
        headers={**platform.publisher_headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    if response.status_code != 202:
        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:500]}")
    if (accepted := response.json()["accepted"]) != expected:
        raise RuntimeError(f"ingest accepted {accepted} of {expected} records: {response.text[:500]}")


def ingest_throughput(platform: BenchPlatform, bodies: Sequence[bytes], clients: int) -> float:
    """Records/s from the first POST to the last 202, ``clients`` keep-alive connections at once."""
    pending: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        pending.put(body)

    def client_loop(client: httpx.Client) -> None:
        while True:
            try:
                body = pending.get_nowait()
            except queue.Empty:
                return
            _post(client, platform, body, BATCH)

    with ExitStack() as stack:
        connections = [stack.enter_context(httpx.Client(timeout=60)) for _ in range(clients)]
        for client in connections:  # connect before the clock starts
            client.get(f"{platform.ingest.url}/healthz").raise_for_status()
        with ThreadPoolExecutor(clients, thread_name_prefix="bench-client") as pool:
            started = time.perf_counter()
            for done in [pool.submit(client_loop, client) for client in connections]:
                done.result()
            elapsed = time.perf_counter() - started
    return len(bodies) * BATCH / elapsed


@dataclass(frozen=True)
class Throughput:
    ingest_rate: float
    raw_rate: float
    ingest_cpu_us: float
    """CPU time of every ingest process per record."""
    raw_cpu_us: float
    """CPU time of this process per record while only the raw producer works in it."""


def alternating_throughput(
    platform: BenchPlatform,
    producer: KafkaProducer,
    raw_topic: str,
    values: Sequence[bytes],
    bodies: Sequence[bytes],
) -> Throughput:
    """:data:`THROUGHPUT_ROUNDS` of a raw run then an ingest run; the best rate and the least CPU time
    per record of each."""
    pid = platform.ingest.process.pid
    raw_rates, raw_cpu, ingest_rates, ingest_cpu = [], [], [], []
    for _ in range(THROUGHPUT_ROUNDS):
        started_cpu = time.process_time()
        raw_rates.append(raw_throughput(producer, raw_topic, values))
        raw_cpu.append((time.process_time() - started_cpu) / len(values) * 1e6)
        started_cpu = _tree_cpu_s(pid)
        ingest_rates.append(ingest_throughput(platform, bodies, CLIENT_THREADS))
        ingest_cpu.append((_tree_cpu_s(pid) - started_cpu) / (len(bodies) * BATCH) * 1e6)
    return Throughput(max(ingest_rates), max(raw_rates), min(ingest_cpu), min(raw_cpu))


def _best_rate(count: int, run: Callable[[], None], repeats: int = 3) -> float:
    """Records/s of the fastest of ``repeats`` runs, in CPU time of this thread (one core)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return count / best


def validation_rates(record_schema: dict[str, Any], values: Sequence[bytes]) -> tuple[float, float, str]:
    """Records/s of the contract's compiled validator over the parsed records, of ``json.loads``
    over their bytes, and the validator's engine."""
    validator = RecordValidator(record_schema)
    records = [json.loads(value) for value in values]
    if any(validator.violations(record) for record in records[:1000]):
        raise RuntimeError("the generated records do not satisfy the contract")

    def validate() -> None:
        for record in records:
            validator.violations(record)

    def parse() -> None:
        for value in values:
            json.loads(value)

    return _best_rate(len(records), validate), _best_rate(len(values), parse), validator.engine


@dataclass(frozen=True)
class Latencies:
    p50_ms: float
    p99_ms: float
    count: int


class _Arrivals:
    """A consumer of every partition of ``topic`` from its current end, noting when each key arrives."""

    def __init__(self, topic: str, partitions: int) -> None:
        self._consumer = KafkaConsumer(
            bootstrap_servers=KAFKA_BOOTSTRAP, client_id="bench-ingest-latency", enable_auto_commit=False
        )
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer.assign(assigned)
        self._consumer.seek_to_end()
        for partition in assigned:  # resolve the end offsets now, not after the first sends
            self._consumer.position(partition)
        self.received: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                now = time.perf_counter()
                for record in records:
                    self.received.setdefault(record.key, now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def paced_latency(
    topic: str, partitions: int, batches: Sequence[Sequence[bytes]], send: Callable[[Sequence[bytes]], None]
) -> Latencies:
    """Send one batch every ``LATENCY_BATCH / LATENCY_RATE`` s; for each record, the time from when
    its batch was due to when the consumer got it. Measured from the due time, not the moment the
    send started, so that a sender that falls behind shows as latency (no coordinated omission)."""
    interval = LATENCY_BATCH / LATENCY_RATE
    due: dict[bytes, float] = {}
    arrivals = _Arrivals(topic, partitions)
    try:
        with ThreadPoolExecutor(SENDER_THREADS, thread_name_prefix="bench-sender") as pool:
            sends = []
            started = time.perf_counter() + 0.1
            for n, batch in enumerate(batches):
                when = started + n * interval
                time.sleep(max(0.0, when - time.perf_counter()))
                for value in batch:
                    due[arrival_id(value)] = when
                sends.append(pool.submit(send, batch))
            for done in sends:
                done.result()
        deadline = time.monotonic() + 30
        while len(arrivals.received) < len(due) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        arrivals.close()
    missing = len(due) - len(arrivals.received.keys() & due.keys())
    if missing:
        raise RuntimeError(f"{missing} of {len(due)} records did not reach {topic}")
    latencies = sorted((arrivals.received[key] - when) * 1000 for key, when in due.items())
    centiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return Latencies(centiles[49], centiles[98], len(latencies))


def _partition_ends(topic: str, partitions: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=KAFKA_BOOTSTRAP, client_id="bench-ingest-count")
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        consumer.close()


# --- the figures -----------------------------------------------------------------------------


def run_all() -> list[Figure]:
    """Every ingest figure, from one catalog and ingest started for this run and stopped after it."""
    if RECORDS % BATCH:
        raise ValueError(f"CITYBASE_BENCH_INGEST_RECORDS must be a multiple of {BATCH:,}")
    values = serialized(bus_arrivals(RECORDS, seed=1))
    warm_up = serialized(bus_arrivals(BATCH, seed=2))
    latency_count = int(LATENCY_RATE * LATENCY_SECONDS)
    latency_values = serialized(bus_arrivals(2 * latency_count, seed=3))
    bodies = [json_array(values[n : n + BATCH]) for n in range(0, len(values), BATCH)]
    ingest_paced = [latency_values[n : n + LATENCY_BATCH] for n in range(0, latency_count, LATENCY_BATCH)]
    raw_paced = [
        latency_values[n : n + LATENCY_BATCH] for n in range(latency_count, 2 * latency_count, LATENCY_BATCH)
    ]

    with tempfile.TemporaryDirectory(prefix="citybase-bench-ingest-") as directory, ExitStack() as stack:
        bus = stack.enter_context(kafka_admin())
        topics: list[str] = []
        # Unwound in reverse: the topics go once the services are stopped, before the bus closes.
        stack.callback(_delete_topics, bus, topics)
        platform = stack.enter_context(bench_platform(Path(directory)))
        ds_topic, raw_topic = f"ds.{platform.dataset_id}", f"bench.ingest-raw.{platform.dataset_id}"
        topics += [ds_topic, f"dlq.{platform.dataset_id}", f"raw.{platform.dataset_id}", raw_topic]
        bus.admin().ensure_topic(TopicSpec(raw_topic, platform.partitions))

        validate_rate, loads_rate, engine = validation_rates(platform.record_schema, values)

        load = os.getloadavg()[0]
        producer = stack.enter_context(closing_producer())
        raw_throughput(producer, raw_topic, warm_up)
        with httpx.Client(timeout=60) as client:  # ingest creates ds. and dlq. on its first batch
            _post(client, platform, json_array(warm_up), BATCH)
        pid = platform.ingest.process.pid
        idle_kib = _tree_kib(pid, "VmRSS")
        with RssSampler(pid) as rss:
            throughput = alternating_throughput(platform, producer, raw_topic, values, bodies)
        on_topic = _partition_ends(ds_topic, platform.partitions)
        if on_topic != THROUGHPUT_ROUNDS * RECORDS + BATCH:
            raise RuntimeError(
                f"{ds_topic} holds {on_topic} records, not {THROUGHPUT_ROUNDS * RECORDS + BATCH}"
            )

        def raw_send(batch: Sequence[bytes]) -> None:
            for value in batch:
                producer.send(raw_topic, value, arrival_id(value))

        raw_latency = paced_latency(raw_topic, platform.partitions, raw_paced, raw_send)
        clients: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
        for _ in range(SENDER_THREADS):
            clients.put(stack.enter_context(httpx.Client(timeout=30)))

        def ingest_send(batch: Sequence[bytes]) -> None:
            client = clients.get()
            try:
                _post(client, platform, json_array(batch), len(batch))
            finally:
                clients.put(client)

        ingest_latency = paced_latency(ds_topic, platform.partitions, ingest_paced, ingest_send)

    paced = (
        f"{LATENCY_RATE:,} records/s as {LATENCY_BATCH} every {LATENCY_BATCH / LATENCY_RATE * 1000:.0f} ms"
    )
    processes = (
        "1 ingest process"
        if WORKERS == 1
        else f"{WORKERS} ingest worker processes (citybase serve ingest --workers {WORKERS})"
    )
    processes += "; the raw producer is 1 process"
    return [
        Figure(
            f"ingest throughput, {RECORDS:,} records over HTTP in JSON arrays of {BATCH:,}",
            throughput.ingest_rate,
            "records/s",
            "raw kafka-python producer, same settings, same records pre-serialized",
            throughput.raw_rate,
            aim=">= 0.6",
            notes=(
                f"{processes}; {CLIENT_THREADS} keep-alive HTTP clients, an Idempotency-Key per batch (PostgreSQL); "
                f"best of {THROUGHPUT_ROUNDS} alternating runs; load average {load:.1f} at the start"
            ),
        ),
        Figure(
            "ingest CPU time per record during the throughput run (all its processes and threads)",
            throughput.ingest_cpu_us,
            "us",
            "raw producer's CPU time per record",
            throughput.raw_cpu_us,
            aim="informative",
            higher_is_better=False,
            notes=f"{processes}; steadier than wall time on a shared machine",
        ),
        Figure(
            "ingest records per CPU-second during the throughput run (all its processes)",
            1e6 / throughput.ingest_cpu_us,
            "records/s",
            "raw producer's records per CPU-second",
            1e6 / throughput.raw_cpu_us,
            aim="informative",
            notes=(
                f"{processes}; the throughput ratio with the CPU each side used taken out: "
                "what several ingest processes cannot inflate"
            ),
        ),
        Figure(
            "ingest peak RSS during the throughput runs",
            rss.peak_kib / 1024,
            "MiB",
            "ingest RSS idle after start",
            idle_kib / 1024,
            aim="bounded",
            higher_is_better=False,
            notes=processes.partition(";")[0] + (", summed" if WORKERS > 1 else ""),
        ),
        Figure(
            "ingest validation alone (compiled contract validator), one core",
            validate_rate,
            "records/s",
            "json.loads of the same records",
            loads_rate,
            aim="informative",
            notes=f"engine {engine}; CPU time of one thread, best of 3",
        ),
        Figure(
            "publish-to-ds. latency p50",
            ingest_latency.p50_ms,
            "ms",
            "raw producer to consumer p50, same rate",
            raw_latency.p50_ms,
            aim="informative",
            higher_is_better=False,
            notes=f"{paced}, {ingest_latency.count:,} records",
        ),
        Figure(
            "publish-to-ds. latency p99",
            ingest_latency.p99_ms,
            "ms",
            "raw producer to consumer p99, same rate",
            raw_latency.p99_ms,
            aim="< 250 ms",
            higher_is_better=False,
            notes=f"{paced}, {ingest_latency.count:,} records",
        ),
    ]


def _delete_topics(bus: KafkaBus, topics: Sequence[str]) -> None:
    admin = bus.admin()
    for topic in topics:
        try:
            admin.delete_topic(topic)
        except Exception as error:  # best effort: a leftover topic is harmless
            print(f"could not delete {topic}: {error}", file=sys.stderr)
