"""Quality benchmarks: does scoring keep up with ingest, and what does Great Expectations cost?

- **Scoring throughput vs ingest throughput, same run.** A real catalog, ingest and quality, each
  its own process, on Kafka and PostgreSQL, and a ``health.outpatient-visits`` dataset of the run.
  :data:`RECORDS` demo records (2 % faults) are POSTed to ingest at full speed (JSON arrays of
  :data:`BATCH`, :data:`CLIENTS` clients): that is ingest's throughput. Quality is stopped
  meanwhile, so the records wait on ``ds.``/``dlq.``; then quality starts and drains them, windows
  of 10,000 records: its throughput is the records stored from its first window to its last over
  that time (the first window also pays for GX's import, which is left out this way). Then a second
  round of the same size is POSTed with quality running: its consumer-group lag is sampled while
  ingest runs at full speed, and the time quality needs after ingest's last 202 to store the
  last window is reported (bounded lag: it does not grow with the run's length).
- **The GX step on a 100,000-row window** (the dataset's compiled suite, BASIC result format),
  against the same checks written as vectorised pandas on the same DataFrame: best of 3, CPU time.
"""

from __future__ import annotations

import os
import queue
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa

from citybase.demo import FLAVOURS, FaultRates, RecordGenerator
from services.common.bus import TopicPartition
from services.quality.expectations import GreatExpectations, Rule
from tests.bench.ingest import (
    BenchPlatform,
    _admin_key,
    _citybase,
    _delete_topics,
    _serve,
    _wait,
    fresh_database,
    json_array,
    kafka_admin,
    register_dataset,
    serialized,
)
from tests.bench.report import Figure
from tests.factories import contract_state
from tests.support.kafka_topics import KAFKA_BOOTSTRAP
from tests.support.postgres import POSTGRES_URL

RECORDS = int(os.environ.get("CITYBASE_BENCH_QUALITY_RECORDS", "100000"))
BATCH = 1000
CLIENTS = 4
GX_ROWS = 100_000
WINDOW_RECORDS = 10_000
WINDOW_SECONDS = 2.0
CONTRACT = "health.outpatient-visits"
VERSION = "1.1.0"
DEPARTMENT = "health-commission"
BENCH_DATABASE = "citybase_bench_quality"
FAULTS = FaultRates(null=0.005, bad_enum=0.005, duplicate=0.005, late=0.005)


def health_records(
    record_schema: dict[str, Any], count: int, seed: int, faults: FaultRates = FAULTS
) -> list[dict[str, Any]]:
    generator = RecordGenerator(
        record_schema, CONTRACT, random.Random(seed), faults=faults, flavour=FLAVOURS.get(CONTRACT)
    )
    return generator.records(count)


# --- the platform: catalog, ingest, quality -----------------------------------------------------


HEALTH_COMMISSION = {
    "id": DEPARTMENT,
    "name": "Municipal Health Commission",
    "kind": "commission",
    "domains": ["health"],
}


@dataclass
class QualityBench:
    platform: BenchPlatform
    env: dict[str, str]
    directory: Path
    database_url: str
    group_id: str

    def stored(self, engine: sa.Engine) -> tuple[int, int]:
        """(records in stored windows of the bench dataset, windows)."""
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT COALESCE(SUM(records), 0), COUNT(*) FROM quality_windows "
                    "WHERE dataset_id = :d AND kind = 'window'"
                ),
                {"d": self.platform.dataset_id},
            ).one()
        return int(row[0]), int(row[1])


@contextmanager
def bench_platform(directory: Path) -> Iterator[QualityBench]:
    url = fresh_database(POSTGRES_URL, BENCH_DATABASE)
    suffix = uuid.uuid4().hex[:10]
    group_id = f"quality-bench-{suffix}"
    env = {
        **os.environ,
        "CITYBASE_DATABASE_URL": url,
        "CITYBASE_BUS_URL": f"kafka://{KAFKA_BOOTSTRAP}",
        "CITYBASE_DATA_DIR": str(directory),
        "CITYBASE_MIGRATE_ON_START": "false",
        "CITYBASE_LOG_LEVEL": "WARNING",
        "CITYBASE_INGEST_RAW_GROUP_ID": f"citybase-ingest-raw-bench-{suffix}",
        "CITYBASE_QUALITY_GROUP_ID": group_id,
        "CITYBASE_QUALITY_USAGE_GROUP_ID": f"{group_id}-usage",
        "CITYBASE_QUALITY_WINDOW": f'{{"records": {WINDOW_RECORDS}, "seconds": {WINDOW_SECONDS}}}',
        "CITYBASE_QUALITY_DATASET_PREFIX": f"{CONTRACT}-bench-{suffix}",
    }
    migrate = _citybase(["migrate"], env, directory / "migrate.log")
    if migrate.wait(timeout=120) != 0:
        raise RuntimeError(
            "citybase migrate failed:\n" + (directory / "migrate.log").read_text(errors="replace")
        )
    admin_key = _admin_key(url)
    with ExitStack() as stack:
        catalog = stack.enter_context(_serve("catalog", env, directory))
        ingest = stack.enter_context(_serve("ingest", env, directory))
        _wait(
            lambda: httpx.get(f"{catalog.url}/readyz", timeout=2).status_code == 200,
            "catalog not ready",
            catalog,
        )
        dataset_id, key, record_schema = register_dataset(
            catalog, admin_key, suffix, contract_id=CONTRACT, version=VERSION, department=HEALTH_COMMISSION
        )
        platform = BenchPlatform(catalog, ingest, admin_key, key, dataset_id, record_schema, 3)
        stack.callback(_retire, platform)
        _wait(
            lambda: httpx.get(f"{ingest.url}/readyz", timeout=2).status_code == 200,
            "ingest not ready",
            ingest,
        )
        _wait(lambda: platform.probe() == 400, "the key and dataset did not reach ingest", ingest)
        yield QualityBench(platform, env, directory, url, group_id)


def _retire(platform: BenchPlatform) -> None:
    try:
        httpx.patch(
            f"{platform.catalog.url}/v1/datasets/{platform.dataset_id}",
            json={"status": "retired"},
            headers={"Authorization": f"Bearer {platform.admin_key}"},
            timeout=10,
        )
    except httpx.HTTPError as error:
        print(f"could not retire {platform.dataset_id}: {error}")


def _bodies(record_schema: dict[str, Any], count: int, seed: int) -> list[bytes]:
    values = serialized(iter(health_records(record_schema, count, seed)))
    return [json_array(values[n : n + BATCH]) for n in range(0, len(values), BATCH)]


def _post_all(platform: BenchPlatform, bodies: list[bytes]) -> float:
    """Ingest's records/s from the first POST to the last 202, :data:`CLIENTS` clients at once
    (faulty records are rejected to ``dlq.``: a 202 either way, every record counted)."""
    pending: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        pending.put(body)

    def client_loop(client: httpx.Client) -> None:
        while True:
            try:
                body = pending.get_nowait()
            except queue.Empty:
                return
            response = client.post(
                platform.records_url,
                content=body,
                headers={**platform.publisher_headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            result = response.json() if response.status_code == 202 else {}
            if (
                response.status_code != 202
                or result["accepted"] + result["rejected"] + result.get("duplicates", 0) != BATCH
            ):
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")

    with ExitStack() as stack:
        connections = [stack.enter_context(httpx.Client(timeout=60)) for _ in range(CLIENTS)]
        for client in connections:
            client.get(f"{platform.ingest.url}/healthz").raise_for_status()
        with ThreadPoolExecutor(CLIENTS, thread_name_prefix="bench-client") as pool:
            started = time.perf_counter()
            for done in [pool.submit(client_loop, client) for client in connections]:
                done.result()
            elapsed = time.perf_counter() - started
    return len(bodies) * BATCH / elapsed


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(what)


@dataclass(frozen=True)
class StreamFigures:
    ingest_rate: float
    drain_rate: float
    drained: int
    max_lag: int
    catch_up_s: float
    live_ingest_rate: float


def stream_figures() -> StreamFigures:
    with tempfile.TemporaryDirectory(prefix="citybase-bench-quality-") as directory, ExitStack() as stack:
        bus = stack.enter_context(kafka_admin())
        topics: list[str] = []
        stack.callback(_delete_topics, bus, topics)
        bench = stack.enter_context(bench_platform(Path(directory)))
        platform = bench.platform
        ds_topic = f"ds.{platform.dataset_id}"
        topics += [ds_topic, f"dlq.{platform.dataset_id}", f"raw.{platform.dataset_id}"]
        engine = sa.create_engine(bench.database_url)
        stack.callback(engine.dispose)
        first = _bodies(platform.record_schema, RECORDS, seed=1)
        second = _bodies(platform.record_schema, RECORDS, seed=2)

        # Round 1: a backlog written at ingest's full speed, then drained by quality.
        ingest_rate = _post_all(platform, first)
        posted = _partition_total(bus, ds_topic) + _partition_total(bus, f"dlq.{platform.dataset_id}")
        quality = stack.enter_context(_serve("quality", bench.env, bench.directory))
        _wait(
            lambda: httpx.get(f"{quality.url}/readyz", timeout=2).status_code == 200,
            "quality not ready",
            quality,
        )
        _wait_for(lambda: bench.stored(engine)[1] >= 1, 180, "quality stored no window")
        first_records, _ = bench.stored(engine)
        started = time.perf_counter()
        _wait_for(lambda: bench.stored(engine)[0] >= posted, 600, f"quality did not drain {posted} records")
        drain_rate = (posted - first_records) / (time.perf_counter() - started)

        # Round 2: ingest at full speed with quality running; its lag sampled meanwhile.
        lags: list[int] = []
        stop = [False]

        def sample() -> None:
            admin = bus.admin()
            while not stop[0]:
                with suppress(Exception):
                    lags.append(sum(admin.lag(bench.group_id, ds_topic).values()))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        live_rate = _post_all(platform, second)
        ingest_done = time.perf_counter()
        total = _partition_total(bus, ds_topic) + _partition_total(bus, f"dlq.{platform.dataset_id}")
        _wait_for(lambda: bench.stored(engine)[0] >= total, 600, "quality did not catch up")
        catch_up = time.perf_counter() - ingest_done
        stop[0] = True
        sampler.join()
    return StreamFigures(ingest_rate, drain_rate, posted, max(lags or [0]), catch_up, live_rate)


def _partition_total(bus: Any, topic: str) -> int:
    consumer = bus.consumer(None, [topic], client_id="bench-quality-ends")
    try:
        ends: dict[TopicPartition, int] = consumer.end_offsets()
        return sum(ends.values())
    finally:
        consumer.close()


# --- GX against plain pandas --------------------------------------------------------------------


def pandas_checks(rules: list[Rule], frame: pd.DataFrame) -> dict[int, int | bool]:
    """The suite's checks as vectorised pandas: unexpected counts of the map rules (nulls left out,
    as GX leaves them out), pass/fail of the aggregate ones."""
    out: dict[int, int | bool] = {}
    for rule in rules:
        kwargs, column = rule.kwargs, rule.column
        series = frame[column] if column is not None and column in frame.columns else None
        if rule.type == "expect_table_row_count_to_be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            out[rule.index] = (low is None or len(frame) >= low) and (high is None or len(frame) <= high)
        elif rule.type == "expect_column_to_exist":
            out[rule.index] = series is not None
        elif rule.type == "expect_column_values_to_not_be_null":
            out[rule.index] = int(series.isna().sum()) if series is not None else len(frame)
        elif series is None:
            out[rule.index] = False
        elif rule.type == "expect_column_values_to_be_in_set":
            present = series.notna()
            out[rule.index] = int((present & ~series.isin(kwargs["value_set"])).sum())
        elif rule.type == "expect_column_values_to_be_between":
            present = series.dropna()
            bad = np.zeros(len(present), dtype=bool)
            if kwargs.get("min_value") is not None:
                bad |= (present < kwargs["min_value"]).to_numpy()
            if kwargs.get("max_value") is not None:
                bad |= (present > kwargs["max_value"]).to_numpy()
            out[rule.index] = int(bad.sum())
        elif rule.type == "expect_column_values_to_match_regex":
            present = series.dropna().astype(str)
            out[rule.index] = int((~present.str.contains(kwargs["regex"], regex=True)).sum())
        elif rule.type == "expect_column_value_lengths_to_be_between":
            lengths = series.dropna().astype(str).str.len()
            bad = (lengths < kwargs.get("min_value", 0)) | (lengths > kwargs.get("max_value", np.inf))
            out[rule.index] = int(bad.sum())
        elif rule.type == "expect_column_values_to_be_unique":
            out[rule.index] = int(series.dropna().duplicated(keep=False).sum())
        elif rule.type == "expect_column_median_to_be_between":
            median = series.median()
            out[rule.index] = bool(
                kwargs.get("min_value", -np.inf) <= median <= kwargs.get("max_value", np.inf)
            )
        else:
            raise ValueError(f"no pandas equivalent written for {rule.type}")
    return out


def _best_cpu(run: Callable[[], Any], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best


def gx_figures() -> tuple[float, float, int]:
    """(GX seconds, pandas seconds, rules) on one window of :data:`GX_ROWS` rows."""
    contract = contract_state(f"{CONTRACT}-gx", example=CONTRACT, version=VERSION)
    frame = pd.DataFrame.from_records(
        health_records(contract["record_schema"], GX_ROWS, seed=5, faults=FaultRates()),
        columns=list(contract["record_schema"]["properties"]),
    )
    engine = GreatExpectations()
    compiled = engine.compile(contract["dataset_id"], VERSION, contract["expectation_suite"])
    if compiled.problems:
        raise RuntimeError(f"the suite did not compile: {compiled.problems}")
    results = engine.validate(compiled, frame, 5)  # warm: GX's import and context are paid once
    reference = pandas_checks(compiled.rules, frame)
    for result in results:
        expected = reference[result.rule.index]
        got = result.success if result.aggregate else result.unexpected_count
        if got != expected:
            raise RuntimeError(
                f"pandas and GX disagree on {result.rule.type} {result.rule.column}: {expected} != {got}"
            )
    gx_s = _best_cpu(lambda: engine.validate(compiled, frame, 5))
    pandas_s = _best_cpu(lambda: pandas_checks(compiled.rules, frame))
    return gx_s, pandas_s, len(compiled.rules)


def run_all() -> list[Figure]:
    gx_s, pandas_s, rules = gx_figures()
    stream = stream_figures()
    return [
        Figure(
            f"quality scoring throughput, ds./dlq. to stored score, {CONTRACT}",
            stream.drain_rate,
            "records/s",
            f"ingest throughput in the same run ({RECORDS:,} records over HTTP, arrays of {BATCH:,})",
            stream.ingest_rate,
            aim=">= 1.0",
            notes=(
                f"quality drained a backlog of {stream.drained:,} records in windows of {WINDOW_RECORDS:,}, "
                "GX suite per window, results in PostgreSQL before each commit"
            ),
        ),
        Figure(
            "quality consumer lag while ingest runs at full speed (max, records)",
            stream.max_lag,
            "records",
            "records of the run",
            RECORDS,
            aim="bounded (a few windows)",
            higher_is_better=False,
            notes=(
                f"ingest at {stream.live_ingest_rate:,.0f} records/s; quality stored the last window "
                f"{stream.catch_up_s:.1f} s after ingest's last 202 (window time {WINDOW_SECONDS:g} s)"
            ),
        ),
        Figure(
            f"GX validation of one {GX_ROWS:,}-row window ({rules} expectations, BASIC)",
            gx_s * 1000,
            "ms",
            "the same checks as vectorised pandas",
            pandas_s * 1000,
            aim="< 3x",
            higher_is_better=False,
            notes="CPU time of one thread, best of 3; suite compiled once; counts checked equal",
        ),
    ]
