"""``make soak``: ingest -> feeds -> quality as their own processes under a steady load.

Catalog, ingest, feeds and quality run as ``citybase serve`` processes on real Kafka and PostgreSQL
(a fresh :data:`DATABASE`; :mod:`tests.bench.pipeline`). A publisher POSTs the bench dataset's
records to ingest at half ingest's maximum rate in this deployment (measured first by a burst, with
every service running on the same cores; ``CITYBASE_SOAK_RATE`` sets a rate instead), in JSON arrays
of :data:`BATCH`; a scenario's subscriber long-polls them through feeds (acknowledging every batch)
and quality scores them.

After a warm-up (``CITYBASE_SOAK_WARMUP_S``, 30 s) the resident memory of each service is noted,
and again at the end of ``CITYBASE_SOAK_DURATION_S`` (300 s, warm-up included). The report gives
them, the consumer lag of the subscription and of quality at the end, and the error counts (HTTP
errors of the publisher and the subscriber, ERROR lines and tracebacks in the services' logs, a
service that exited), and the aims: quality's and feeds' CPU per record at most ingest's, quality's lag at the end
under two windows. The exit status is 1 when an aim is missed, a service's memory grew more than
:data:`MAX_GROWTH` after the warm-up or any error occurred.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.common.bus.kafka import KafkaBus
from tests.bench.ingest import WORKERS, bus_arrivals, json_array, serialized
from tests.bench.pipeline import Pipeline, cpu_s, pipeline, rss_kib
from tests.support.kafka_topics import KAFKA_BOOTSTRAP, created_topics_removed

DURATION_S = float(os.environ.get("CITYBASE_SOAK_DURATION_S", "300"))
WARMUP_S = float(os.environ.get("CITYBASE_SOAK_WARMUP_S", "30"))
RATE = os.environ.get("CITYBASE_SOAK_RATE")
"""Records/s to publish; default half the maximum (see the module docstring)."""
DATABASE = "citybase_soak"
BATCH = 100
SENDERS = 4
MAX_GROWTH = 0.10
RESULTS = Path("bench/results.json")
ROLLING_KEYS = int(os.environ.get("CITYBASE_SOAK_QUALITY_ROLLING_KEYS", "20000"))
QUALITY_ENV = {"CITYBASE_QUALITY_ROLLING_MAX_KEYS": str(ROLLING_KEYS)}
"""Quality remembers the primary keys of its rolling 24 h view up to a bound (2,000,000 by default,
a few hundred MiB at most), by design. The soak lowers the bound so that the view is full within
the warm-up: growth after it is then growth that no bound explains."""
QUALITY_DRAIN_S = 60.0
BURST_RECORDS = 60_000
WINDOW_RECORDS = 10_000
"""Quality's default window (``WindowSize.records``): the soak's one dataset closes one per 10,000."""
LAG_BOUND_WINDOWS = 2
"""Quality keeps up when its lag at the end of the load is under two windows of the dataset."""


def _say(text: str) -> None:
    print(f"soak: {text}", flush=True)


def _fresh(values: list[bytes]) -> list[bytes]:
    """``values`` with new arrival ids (the primary key, written first): ingest sees new records."""
    prefix = len(b'{"arrival_id":"')
    return [value[:prefix] + str(uuid.uuid4()).encode() + value[prefix + 36 :] for value in values]


class Publisher:
    """POSTs batches to ingest at ``rate`` records/s from :data:`SENDERS` threads, counting errors."""

    def __init__(self, pipe: Pipeline, rate: float) -> None:
        self._pipe = pipe
        self._rate = rate
        self._templates = serialized(bus_arrivals(10_000, seed=5))
        self.sent = 0
        self.errors: list[str] = []
        self.behind_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _send(self, client: httpx.Client, offset: int) -> None:
        batch = _fresh(self._templates[offset : offset + BATCH])
        platform = self._pipe.platform
        try:
            response = client.post(
                platform.records_url, content=json_array(batch), headers=platform.publisher_headers
            )
        except httpx.HTTPError as error:
            self.errors.append(repr(error))
            return
        if response.status_code != 202 or response.json().get("accepted") != len(batch):
            self.errors.append(f"{response.status_code} {response.text[:200]}")
        else:
            self.sent += len(batch)

    def _run(self) -> None:
        interval = BATCH / self._rate
        clients = [httpx.Client(timeout=30) for _ in range(SENDERS)]
        # At most SENDERS batches in flight: when ingest answers more slowly than the rate asks,
        # the publisher falls behind (reported) instead of queueing batches without end.
        in_flight = threading.BoundedSemaphore(SENDERS)

        def send(client: httpx.Client, offset: int) -> None:
            try:
                self._send(client, offset)
            finally:
                in_flight.release()

        try:
            with ThreadPoolExecutor(SENDERS, thread_name_prefix="soak-sender") as senders:
                started = time.perf_counter()
                n = 0
                while not self._stop.is_set():
                    due = started + n * interval
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        self.behind_s = max(self.behind_s, -delay)
                    in_flight.acquire()
                    offset = (n * BATCH) % (len(self._templates) - BATCH)
                    senders.submit(send, clients[n % SENDERS], offset)
                    n += 1
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


class Subscriber:
    """Long-polls a subscription through feeds and acknowledges every batch, counting records."""

    def __init__(self, pipe: Pipeline, subscription_id: str) -> None:
        self._pipe = pipe
        self.path = f"/v1/subscriptions/{subscription_id}"
        self.received = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._pipe.feeds_client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self.path}/records", params={"max": 5000, "wait": 1})
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                        time.sleep(0.5)
                        continue
                    batch = orjson.loads(response.content)
                    self.received += len(batch["records"])
                    if batch["records"]:
                        ack = client.post(f"{self.path}/ack", json={"cursor": batch["cursor"]})
                        if ack.status_code != 200:
                            self.errors.append(f"ack {ack.status_code} {ack.text[:200]}")
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def _max_rate(pipe: Pipeline) -> tuple[float, str]:
    """Ingest's maximum records/s in this deployment: a burst of :data:`BURST_RECORDS` records in
    arrays of 1,000 from :data:`SENDERS` clients while feeds, quality and the catalog run beside it
    on the same cores; then a wait until quality has scored the burst (its lag under one window).

    Not the ``make bench`` figure: that is ingest alone with the machine's cores to itself, and
    half of it is more than the whole platform can carry on the same two cores (ingest, quality,
    feeds, the catalog, Kafka and the soak's own clients)."""
    templates = serialized(bus_arrivals(BURST_RECORDS, seed=3))
    bodies = [json_array(_fresh(templates[n : n + 1000])) for n in range(0, len(templates), 1000)]
    platform = pipe.platform
    clients = [httpx.Client(timeout=60) for _ in range(SENDERS)]
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(SENDERS) as senders:
            answers = list(
                senders.map(
                    lambda n: clients[n % SENDERS].post(
                        platform.records_url, content=bodies[n], headers=platform.publisher_headers
                    ),
                    range(len(bodies)),
                )
            )
    finally:
        for client in clients:
            client.close()
    elapsed = time.perf_counter() - started
    if any(answer.status_code != 202 for answer in answers):
        raise RuntimeError(f"ingest refused the burst: {[a.status_code for a in answers]}")
    settled = time.monotonic() + QUALITY_DRAIN_S
    while time.monotonic() < settled and (_quality_lag(pipe) or 0) >= WINDOW_RECORDS:
        time.sleep(2)
    return len(templates) / elapsed, (
        f"measured now: {len(templates):,} records in arrays of 1,000 from {SENDERS} clients, "
        "feeds, quality and the catalog running"
    )


def _log_errors(pipe: Pipeline) -> tuple[dict[str, int], list[str]]:
    """ERROR lines and tracebacks in each service's log (an exited service counts one), and the
    first few of them."""
    counts: dict[str, int] = {}
    samples: list[str] = []
    for service in pipe.services:
        text = service.log.read_text(errors="replace") if service.log.exists() else ""
        lines = [line for line in text.splitlines() if " ERROR " in line or line.startswith("Traceback")]
        samples += [f"{service.name}: {line[:300]}" for line in lines[:3]]
        if service.process.poll() is not None:
            lines.append(f"exited with {service.process.returncode}")
            samples.append(f"{service.name}: exited with {service.process.returncode}")
        counts[service.name] = len(lines)
    return counts, samples


def _quality_lag(pipe: Pipeline) -> int | None:
    """Records on the dataset's ``ds.`` topic that the quality group has not committed."""
    if pipe.quality_group is None:
        return None
    bus = KafkaBus([KAFKA_BOOTSTRAP], client_id="citybase-soak")
    try:
        return sum(bus.admin().lag(pipe.quality_group, f"ds.{pipe.platform.dataset_id}").values())
    finally:
        bus.close()


def _lags(pipe: Pipeline, subscription: str) -> dict[str, int | None]:
    with pipe.feeds_client(timeout=30) as client:
        detail = client.get(f"/v1/subscriptions/{subscription}")
    return {
        "feeds subscription": detail.json().get("lag") if detail.status_code == 200 else None,
        "quality": _quality_lag(pipe),
    }


def _quality_scored(pipe: Pipeline) -> int:
    """Records quality has scored so far, from its metrics."""
    if pipe.quality is None:
        return 0
    text = httpx.get(f"{pipe.quality.url}/metrics", timeout=30).text
    return int(
        sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("citybase_quality_records_total{")
        )
    )


@dataclass
class Work:
    """CPU seconds of every service and the records each handled, at one moment."""

    cpu: dict[str, float]
    published: int
    delivered: int
    scored: int

    @classmethod
    def now(cls, pipe: Pipeline, publisher: Publisher, subscriber: Subscriber) -> Work:
        return cls(
            {service.name: cpu_s(service) for service in pipe.services},
            publisher.sent,
            subscriber.received,
            _quality_scored(pipe),
        )


def cpu_per_1000(start: Work, end: Work) -> dict[str, float | None]:
    """CPU seconds per 1,000 records of each service between two moments: ingest and the catalog
    per record published, feeds per record delivered, quality per record scored."""
    handled = {
        "ingest": end.published - start.published,
        "catalog": end.published - start.published,
        "feeds": end.delivered - start.delivered,
        "quality": end.scored - start.scored,
    }
    return {
        name: (
            round((end.cpu[name] - start.cpu[name]) / handled[name] * 1000, 4) if handled.get(name) else None
        )
        for name in end.cpu
    }


def _memory(pipe: Pipeline) -> dict[str, int]:
    return {service.name: rss_kib(service) for service in pipe.services}


def _store(report: dict[str, object]) -> None:
    """Keep the soak's figures in bench/results.json beside the benchmarks (key ``soak``)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["soak"] = {key: value for key, value in report.items() if key not in ("error_samples", "logs")}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def _ratio(figures: dict[str, float | None], name: str, baseline: str) -> float | None:
    value, base = figures.get(name), figures.get(baseline)
    return round(value / base, 3) if value is not None and base else None


def aims(
    cpu_per_1000_records: dict[str, float | None], lag_at_end: dict[str, int | None]
) -> dict[str, dict[str, Any]]:
    """The soak's aims, each with its figure and whether it holds: quality's and feeds' CPU per
    record at most ingest's, and quality's lag at the end of the load (not after a drain) under
    :data:`LAG_BOUND_WINDOWS` windows of the dataset."""
    quality_cpu = _ratio(cpu_per_1000_records, "quality", "ingest")
    feeds_cpu = _ratio(cpu_per_1000_records, "feeds", "ingest")
    lag = lag_at_end.get("quality")
    bound = LAG_BOUND_WINDOWS * WINDOW_RECORDS
    return {
        "quality cpu per record / ingest's (<= 1.0)": {
            "ratio": quality_cpu,
            "holds": quality_cpu is not None and quality_cpu <= 1.0,
        },
        "feeds cpu per record / ingest's (<= 1.0)": {
            "ratio": feeds_cpu,
            "holds": feeds_cpu is not None and feeds_cpu <= 1.0,
        },
        f"quality lag at the end < {LAG_BOUND_WINDOWS} windows ({bound:,} records)": {
            "records": lag,
            "windows": round(lag / WINDOW_RECORDS, 2) if lag is not None else None,
            "holds": lag is not None and lag < bound,
        },
    }


def main() -> int:
    # Kept after the run: the services' logs are where an error count is explained.
    directory = os.environ.get("CITYBASE_SOAK_DIR") or tempfile.mkdtemp(prefix="citybase-soak-")
    Path(directory).mkdir(parents=True, exist_ok=True)
    with (
        created_topics_removed(KAFKA_BOOTSTRAP),
        pipeline(
            Path(directory), database=DATABASE, ingest_workers=WORKERS, quality=True, env=QUALITY_ENV
        ) as pipe,
    ):
        maximum, source = _max_rate(pipe)
        rate = float(RATE) if RATE else maximum / 2
        _say(
            f"ingest maximum {maximum:,.0f} records/s ({source}); publishing {rate:,.0f} records/s "
            f"for {DURATION_S:g} s, warm-up {WARMUP_S:g} s"
        )
        subscription = pipe.subscribe("latest")
        subscriber = Subscriber(pipe, subscription)
        publisher = Publisher(pipe, rate)
        started = time.monotonic()
        publisher.start()
        time.sleep(WARMUP_S)
        start_kib = _memory(pipe)
        work_start = Work.now(pipe, publisher, subscriber)
        _say("after the warm-up: " + ", ".join(f"{n} {k / 1024:.0f} MiB" for n, k in start_kib.items()))
        peak_kib = dict(start_kib)
        while time.monotonic() - started < DURATION_S:
            time.sleep(min(10.0, max(0.0, DURATION_S - (time.monotonic() - started))))
            for name, kib in _memory(pipe).items():
                peak_kib[name] = max(peak_kib[name], kib)
            _say(
                f"{time.monotonic() - started:.0f} s: {publisher.sent:,} published, {subscriber.received:,} received"
            )
        publisher.stop()
        end_kib = _memory(pipe)
        lags_at_end = _lags(pipe, subscription)
        drain = time.monotonic() + 30
        while time.monotonic() < drain and subscriber.received < publisher.sent:
            time.sleep(1)
        subscriber.stop()
        # Quality scores behind the stream when the machine is busy: give it time to catch up.
        drain = time.monotonic() + QUALITY_DRAIN_S
        while time.monotonic() < drain and (_quality_lag(pipe) or 0) > 0:
            time.sleep(2)
        lags_drained = _lags(pipe, subscription)
        work_end = Work.now(pipe, publisher, subscriber)
        log_errors, log_samples = _log_errors(pipe)
    elapsed = DURATION_S
    cpu = cpu_per_1000(work_start, work_end)
    verdicts = aims(cpu, lags_at_end)
    growth = {n: round(end_kib[n] / start_kib[n] - 1, 3) for n in start_kib}
    report = {
        "rate_records_per_s": round(rate),
        "maximum_records_per_s": round(maximum),
        "maximum_from": source,
        "duration_s": elapsed,
        "warmup_s": WARMUP_S,
        "published": publisher.sent,
        "published_records_per_s": round(publisher.sent / elapsed),
        "received_by_subscriber": subscriber.received,
        "publisher_behind_s_max": round(publisher.behind_s, 2),
        "rss_mib_after_warmup": {n: round(k / 1024, 1) for n, k in start_kib.items()},
        "rss_mib_at_end": {n: round(k / 1024, 1) for n, k in end_kib.items()},
        "rss_mib_peak": {n: round(k / 1024, 1) for n, k in peak_kib.items()},
        "growth": growth,
        "cpu_s_per_1000_records": cpu,
        "lag_at_end": lags_at_end,
        "aims": verdicts,
        "lag_after_drain": lags_drained,
        "errors": {
            "publisher": len(publisher.errors),
            "subscriber": len(subscriber.errors),
            "service logs": log_errors,
        },
        "error_samples": (publisher.errors + subscriber.errors)[:5] + log_samples,
        "logs": directory,
    }
    print(json.dumps(report, indent=2))
    _store(report)
    grown = [n for n, g in growth.items() if g > MAX_GROWTH]
    failed = publisher.errors or subscriber.errors or any(log_errors.values())
    if grown:
        _say(f"FAILED: memory grew more than {MAX_GROWTH:.0%} after the warm-up: {', '.join(grown)}")
    if failed:
        _say("FAILED: errors occurred (see above)")
    missed = [name for name, aim in verdicts.items() if not aim["holds"]]
    for name in missed:
        _say(f"FAILED aim: {name}: {verdicts[name]}")
    if not grown and not failed and not missed:
        _say("passed: no service grew more than 10% after the warm-up, no errors, every aim held")
    return 1 if grown or failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
