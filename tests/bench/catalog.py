"""Catalog benchmarks: search and get over HTTP on a large catalog, contract registration, DCAT export.

Each figure is compared with a baseline measured in the same run:

- search and get-by-id p95 over HTTP against ``GET /healthz`` p95 on the same server, with the
  catalog holding :data:`DATASETS` datasets in PostgreSQL, and the same searches with their facet
  counts (``facets=true``) against the plain searches;
- registering the 21st version of a 200-property contract under FULL_TRANSITIVE (parse, derive,
  check against the 20 earlier versions, write) against ``yaml.safe_load`` + ``json.dumps`` of the
  same document, the least any registry does with it;
- streaming the DCAT-AP export of :data:`DATASETS` datasets against ``json.dumps`` of the same
  datasets streamed the same way, and its peak memory at 100,000 against 10,000 datasets.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
import yaml

from services.catalog import models
from services.catalog.app import SPEC
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.service import add_contract
from services.catalog.domains.service import CITY_DOMAINS, ensure_city_domains
from services.catalog.events import CatalogEvents
from services.catalog.principals.service import bootstrap_admin
from services.catalog.search.index import search_text
from services.catalog.standards import dcat_serialization
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)
from services.common import db
from services.common.outbox import Outbox
from tests.bench.report import Figure

DATASETS = int(os.environ.get("CITYBASE_BENCH_DATASETS", "100000"))
REQUESTS = int(os.environ.get("CITYBASE_BENCH_REQUESTS", "2000"))
CLIENT_THREADS = int(os.environ.get("CITYBASE_BENCH_CLIENT_THREADS", "4"))
REGISTRATION_REPEATS = int(os.environ.get("CITYBASE_BENCH_REGISTRATION_REPEATS", "7"))
BENCH_DATABASE = "citybase_bench"

# --- a realistic city catalog ----------------------------------------------------------------

DISTRICTS = (
    "huangpu", "xuhui", "changning", "jingan", "putuo", "hongkou", "yangpu", "minhang",
    "baoshan", "jiading", "pudong", "jinshan", "songjiang", "qingpu", "fengxian", "chongming",
)  # fmt: skip

# domain -> (subjects its departments publish, the fields their records carry)
SUBJECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "transport": (
        ("bus arrivals", "metro ridership", "taxi trips", "parking occupancy", "traffic flow",
         "bike sharing", "road works", "ferry schedules"),
        ("stop_id", "route_id", "vehicle_id", "arrival_time", "delay_seconds", "occupancy", "line_code",
         "station_id", "passenger_count", "speed_kmh", "lane", "plate_hash", "dock_id", "trip_minutes"),
    ),
    "health": (
        ("outpatient visits", "hospital beds", "vaccinations", "ambulance dispatches", "pharmacy stock",
         "clinic queues", "blood donations"),
        ("visit_id", "hospital_id", "clinic", "patient_id", "age_band", "wait_minutes", "registered_at",
         "bed_count", "dose_number", "vaccine_code", "dispatch_minutes", "stock_level", "triage_level"),
    ),
    "market": (
        ("inspections", "business licences", "food safety checks", "price monitoring", "consumer complaints",
         "enterprise registrations"),
        ("inspection_id", "licence_number", "result", "inspector_phone", "enterprise_name", "category",
         "price_cny", "complaint_type", "registered_capital", "risk_level", "sample_id"),
    ),
    "spatial": (
        ("building permits", "land parcels", "street lights", "construction sites", "zoning changes",
         "manhole covers"),
        ("permit_id", "parcel_id", "latitude", "longitude", "floor_area", "issued_at", "height_m",
         "zoning_code", "light_status", "site_manager", "noise_db"),
    ),
    "community": (
        ("service requests", "elderly care visits", "volunteer hours", "neighbourhood events",
         "waste collection", "resident feedback"),
        ("request_id", "category", "street", "status", "resident_phone", "handled_at", "visit_minutes",
         "volunteer_id", "bin_weight_kg", "satisfaction", "channel"),
    ),
    "education": (
        ("school enrolment", "teacher assignments", "exam centres", "school buses", "library loans"),
        ("school_id", "grade", "student_count", "teacher_id", "subject", "exam_room", "bus_route",
         "loan_id", "isbn", "returned_at"),
    ),
    "culture": (
        ("venue bookings", "museum visitors", "sport facility usage", "festival attendance",
         "library events"),
        ("venue_id", "booking_id", "visitor_count", "facility", "event_id", "ticket_type", "entered_at",
         "capacity", "sport"),
    ),
}  # fmt: skip

FREQUENCIES = ("PT1M", "PT5M", "PT15M", "PT1H", "P1D")
CLASSIFICATIONS = ("open", "conditional", "restricted")
FIELD_TYPES = ("string", "integer", "number", "timestamp")

# What people type into the search box: common words (up to a quarter of the catalog), rare ones
# and combinations (a few dozen datasets), words that match nothing, prefixes as typed (down to two
# letters, which expand to many words), with and without filters, and filters alone (browsing).
SEARCHES: tuple[dict[str, str], ...] = (
    {"q": "bus"},
    {"q": "hospital"},
    {"q": "wait"},
    {"q": "permit"},
    {"q": "xuhui"},
    {"q": "occupancy"},
    {"q": "licence"},
    {"q": "inspection"},
    {"q": "school"},
    {"q": "delay"},
    {"q": "vaccin"},
    {"q": "parking"},
    {"q": "museum"},
    {"q": "complaints"},
    {"q": "arrival time"},
    {"q": "ferry chongming"},
    {"q": "patient", "classification": "restricted"},
    {"q": "delay", "domain": "transport"},
    {"q": "parking", "classification": "open"},
    {"q": "wait", "domain": "health", "classification": "restricted"},
    {"q": "requests", "domain": "community"},
    {"q": "price", "domain": "market", "classification": "open"},
    {"q": "museum jinshan"},
    {"q": "manhole covers fengxian"},
    {"q": "tram"},
    {"q": "pa"},
    {"q": "sto"},
    {"q": "bus", "tag": "pudong"},
    {"q": "stop", "department": "transport-bureau"},
    {"q": "beds", "domain": "health", "status": "active"},
    {"domain": "culture"},
    {"department": "xuhui-health"},
    {"tag": "pudong", "classification": "restricted"},
    {"classification": "open", "status": "active"},
)


def _slug(text: str) -> str:
    return text.replace(" ", "-")


@dataclass(frozen=True)
class _Department:
    id: str
    name: str
    kind: str
    domain: str


def _departments() -> list[_Department]:
    departments = []
    for domain in SUBJECTS:
        departments.append(_Department(f"{domain}-bureau", f"Municipal {domain} bureau", "bureau", domain))
        for district in DISTRICTS[:4]:
            departments.append(
                _Department(
                    f"{district}-{domain}", f"{district.title()} district {domain} office", "district", domain
                )
            )
    return departments


@dataclass(frozen=True)
class _GeneratedDataset:
    id: str
    domain: str
    department: _Department
    title: str
    description: str
    tags: list[str]
    classification: str
    frequency: str
    fields: list[tuple[str, str]]
    created_at: datetime


def _generated_datasets(count: int, seed: int = 7) -> Iterator[_GeneratedDataset]:
    """``count`` datasets of the city's departments, deterministic for a seed."""
    rng = random.Random(seed)
    departments = _departments()
    by_domain = {domain: [d for d in departments if d.domain == domain] for domain in SUBJECTS}
    domains = list(SUBJECTS)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(count):
        domain = domains[n % len(domains)]
        subjects, fields = SUBJECTS[domain]
        subject = rng.choice(subjects)
        district = rng.choice(DISTRICTS)
        department = rng.choice(by_domain[domain])
        chosen = rng.sample(fields, rng.randint(5, min(10, len(fields))))
        yield _GeneratedDataset(
            id=f"{domain}.{_slug(subject)}-{district}-{n:06d}",
            domain=domain,
            department=department,
            title=f"{subject.capitalize()}, {district.title()} district",
            description=(
                f"{subject.capitalize()} in {district.title()} district, published by the "
                f"{department.name} as a live stream: one record per event, with "
                f"{', '.join(name.replace('_', ' ') for name in chosen[:3])} and more."
            ),
            tags=[domain, *subject.split(), district],
            classification=rng.choice(CLASSIFICATIONS),
            frequency=rng.choice(FREQUENCIES),
            fields=[(name, rng.choice(FIELD_TYPES)) for name in chosen],
            created_at=start + timedelta(minutes=n),
        )


def _record_schema(dataset: _GeneratedDataset) -> dict[str, Any]:
    """The record schema ``json_schema.record_schema`` would build for the dataset's contract."""
    formats = {"timestamp": ("string", "date-time")}
    properties: dict[str, Any] = {}
    for index, (name, logical) in enumerate(dataset.fields):
        json_type, json_format = formats.get(logical, (logical, None))
        prop: dict[str, Any] = {"type": json_type if index == 0 else [json_type, "null"]}
        if json_format:
            prop["format"] = json_format
        prop["description"] = f"The {name.replace('_', ' ')} of the record."
        if index == 0:
            prop["x-citybase-primary-key"] = True
        properties[name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:citybase:dataset:{dataset.id}:1.0.0",
        "title": dataset.title,
        "type": "object",
        "properties": properties,
        "required": [dataset.fields[0][0]],
        "additionalProperties": False,
    }


def _contract_document(dataset: _GeneratedDataset) -> str:
    """A compact ODCS document for the dataset, as a department would submit it."""
    lines = [
        "apiVersion: v3.1.0",
        "kind: DataContract",
        f"id: {dataset.id}",
        f"name: {dataset.title}",
        "version: 1.0.0",
        "status: active",
        f"domain: {dataset.domain}",
        "description:",
        f"  purpose: {dataset.description}",
        f"tags: [{', '.join(dataset.tags)}]",
        "customProperties:",
        f"  - {{property: citybase.classification, value: {dataset.classification}}}",
        f"  - {{property: citybase.department, value: {dataset.department.id}}}",
        "schema:",
        f"  - name: {dataset.id.split('.', 1)[1].replace('-', '_')}",
        "    properties:",
    ]
    for index, (name, logical) in enumerate(dataset.fields):
        lines.append(f"      - name: {name}")
        lines.append(f"        logicalType: {logical}")
        lines.append(f"        description: The {name.replace('_', ' ')} of the record.")
        if index == 0:
            lines.append("        primaryKey: true")
            lines.append("        required: true")
    lines += ["slaProperties:", f"  - {{property: frequency, value: {dataset.frequency}}}"]
    return "\n".join(lines) + "\n"


# --- PostgreSQL ----------------------------------------------------------------------------------


def _database_url(server_url: str, database: str) -> str:
    return sa.make_url(server_url).set(database=database).render_as_string(hide_password=False)


def fresh_database(server_url: str, database: str = BENCH_DATABASE) -> str:
    """Drop and create ``database`` on the server of ``server_url``; its SQLAlchemy URL."""
    engine = sa.create_engine(_database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return _database_url(server_url, database)


def _migrations() -> Path:
    if SPEC.migrations is None:
        raise RuntimeError("the catalog has no migrations")
    return SPEC.migrations


def _psycopg_dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load_catalog(url: str, count: int) -> list[str]:
    """Migrate the catalog's tables and bulk-load ``count`` datasets, each with a contract version.

    This is the data setup, not what is measured: COPY straight into the tables (with the
    ``search_text`` the service would compute), not through the API. On PostgreSQL the search
    column and posting lists (migration catalog_0005) follow from the rows: a generated column
    and a trigger fill them during the COPY, as they do for the service's own writes.
    """
    db.migrate(url, _migrations(), SPEC.version_table)
    departments = _departments()
    now = datetime.now(UTC)
    ids: list[str] = []
    with psycopg.connect(_psycopg_dsn(url)) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY catalog_domains (id, name, description) FROM STDIN") as copy_in:
            for domain_id, name, description in CITY_DOMAINS:
                copy_in.write_row((domain_id, name, description))
        with cursor.copy(
            "COPY catalog_departments (id, name, kind, domains, contact_email, created_at, updated_at) FROM STDIN"
        ) as copy_in:
            for department in departments:
                copy_in.write_row(
                    (
                        department.id,
                        department.name,
                        department.kind,
                        json.dumps([department.domain]),
                        f"data@{department.id}.example.gov.cn",
                        now,
                        now,
                    )
                )
        dataset_columns = (
            "id, domain_id, owner_department_id, title, description, tags, classification, status, "
            "update_frequency, compatibility_mode, current_version, search_text, created_at, updated_at"
        )
        version_columns = (
            "dataset_id, version, sequence, api_version, document, document_format, fingerprint, "
            "record_schema, primary_key, sensitive_fields, sla, expectation_suite, created_by, created_at"
        )
        generated = list(_generated_datasets(count))
        with cursor.copy(f"COPY catalog_datasets ({dataset_columns}) FROM STDIN") as copy_in:
            for dataset in generated:
                row = models.Dataset(
                    id=dataset.id, title=dataset.title, description=dataset.description, tags=dataset.tags
                )
                schema = _record_schema(dataset)
                version = models.ContractVersion(record_schema=schema)
                copy_in.write_row(
                    (
                        dataset.id,
                        dataset.domain,
                        dataset.department.id,
                        dataset.title,
                        dataset.description,
                        json.dumps(dataset.tags),
                        dataset.classification,
                        "active",
                        dataset.frequency,
                        "BACKWARD",
                        "1.0.0",
                        search_text(row, version),
                        dataset.created_at,
                        dataset.created_at,
                    )
                )
                ids.append(dataset.id)
        with cursor.copy(f"COPY catalog_contract_versions ({version_columns}) FROM STDIN") as copy_in:
            for dataset in generated:
                document = _contract_document(dataset)
                copy_in.write_row(
                    (
                        dataset.id,
                        "1.0.0",
                        1,
                        "v3.1.0",
                        document,
                        "yaml",
                        hashlib.sha256(document.encode()).hexdigest(),
                        json.dumps(_record_schema(dataset)),
                        json.dumps([dataset.fields[0][0]]),
                        "{}",
                        json.dumps({"frequency_s": 60.0, "latency_s": None, "retention_s": None}),
                        json.dumps(
                            [
                                {
                                    "type": "expect_column_values_to_not_be_null",
                                    "kwargs": {"column": dataset.fields[0][0]},
                                }
                            ]
                        ),
                        "bench",
                        dataset.created_at,
                    )
                )
        # Three datasets in four scored, spread over the quality bands, so that the quality-band
        # facet counts what a city's catalog holds rather than one "unscored".
        quality_columns = "dataset_id, overall, scores, problems, window_closed_at, contract_version, open_breaches, updated_at"
        rng = random.Random(3)
        with cursor.copy(f"COPY catalog_dataset_quality ({quality_columns}) FROM STDIN") as copy_in:
            for index, dataset in enumerate(generated):
                if index % 4:
                    copy_in.write_row(
                        (dataset.id, round(rng.uniform(40, 100), 1), "{}", "[]", now, "1.0.0", "[]", now)
                    )
        connection.commit()
        connection.autocommit = True
        cursor.execute("VACUUM ANALYZE")
    return ids


# --- search and get over HTTP ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _admin_key(url: str) -> str:
    engine = db.create_db_engine(url)
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            issued = bootstrap_admin(session, events=CatalogEvents(Outbox(models.outbox)))
    finally:
        engine.dispose()
    if issued is None:
        raise RuntimeError("the bench database already has principals")
    return issued.key


@contextmanager
def catalog_server(url: str, directory: Path, *, launcher: Sequence[str] = ()) -> Iterator[str]:
    """``citybase serve catalog`` on a free port, as its own process; yields its base URL.

    ``launcher`` replaces the Python code that starts the CLI (to try a variant of a module).
    """
    port = _free_port()
    env = {
        **os.environ,
        "CITYBASE_DATABASE_URL": url,
        "CITYBASE_BUS_URL": f"embedded://{directory / 'bus.db'}",
        "CITYBASE_DATA_DIR": str(directory),
        "CITYBASE_LOG_LEVEL": "WARNING",
    }
    code = "\n".join([*launcher, "from citybase.cli import main", "main()"])
    log = (directory / "catalog.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "catalog", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_ready(base_url: str, key: str, timeout_s: float = 60.0) -> None:
    """Until /readyz answers 200 and the key authenticates (the key ring follows the bus)."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(f"{base_url}/readyz", timeout=2)
            if ready.status_code == 200:
                probe = httpx.get(f"{base_url}/v1/datasets", params={"limit": 1}, headers=headers, timeout=10)
                if probe.status_code == 200:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the catalog at {base_url} did not become ready in {timeout_s} s")


@dataclass(frozen=True)
class Latencies:
    """Latencies of one kind of request, in milliseconds."""

    p50: float
    p95: float
    p99: float
    count: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latencies:
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return cls(statistics.median(samples), cuts[94], cuts[98], len(samples))

    def text(self) -> str:
        return f"p50 {self.p50:.1f} ms, p95 {self.p95:.1f} ms, p99 {self.p99:.1f} ms, n={self.count}"


Request = tuple[str, dict[str, str]]


def measure(
    base_url: str,
    key: str,
    requests: Sequence[Request],
    *,
    threads: int = CLIENT_THREADS,
    budget_s: float = 90.0,
) -> list[tuple[Request, float]]:
    """GET every (path, params) from ``threads`` keep-alive clients: each request with its latency (ms).

    Stops issuing requests after ``budget_s`` seconds, so that a slow endpoint cannot hold the
    whole benchmark; the caller reports how many were measured.
    """
    deadline = time.monotonic() + budget_s

    def run(share: Sequence[Request]) -> list[tuple[Request, float]]:
        timed = []
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            for request in share:
                if time.monotonic() > deadline:
                    break
                path, params = request
                started = time.perf_counter()
                response = client.get(path, params=params)
                timed.append((request, (time.perf_counter() - started) * 1000))
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
        return timed

    shares = [requests[index::threads] for index in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [sample for share in pool.map(run, shares) for sample in share]


def _latencies(samples: Sequence[tuple[Request, float]]) -> Latencies:
    return Latencies.of([latency for _, latency in samples])


def _search_requests(count: int, rng: random.Random, *, facets: bool = False) -> list[Request]:
    extra = {"facets": "true"} if facets else {}
    return [("/v1/datasets", {**rng.choice(SEARCHES), "limit": "20", **extra}) for _ in range(count)]


def _get_requests(ids: Sequence[str], count: int, rng: random.Random) -> list[Request]:
    return [(f"/v1/datasets/{rng.choice(ids)}", {}) for _ in range(count)]


def _slowest_searches(samples: Sequence[tuple[Request, float]], shown: int = 3) -> str:
    by_search: dict[str, list[float]] = {}
    for (_, params), latency in samples:
        label = " ".join(f"{key}={value}" for key, value in params.items() if key not in ("limit", "facets"))
        by_search.setdefault(label, []).append(latency)
    medians = sorted(((statistics.median(v), k) for k, v in by_search.items()), reverse=True)
    return "; ".join(f"{label}: p50 {median:.0f} ms" for median, label in medians[:shown])


@dataclass(frozen=True)
class HttpRun:
    healthz: Latencies
    get: Latencies
    search: Latencies
    slowest: str
    faceted: Latencies
    slowest_faceted: str


def http_latencies(
    url: str, ids: Sequence[str], key: str, directory: Path, *, launcher: Sequence[str] = ()
) -> HttpRun:
    """Warm the server up, then time /healthz, get-by-id and search, one kind after the other."""
    rng = random.Random(11)
    with catalog_server(url, directory, launcher=launcher) as base_url:
        _wait_until_ready(base_url, key)
        warm_up: list[Request] = [("/healthz", {})] * 200 + _get_requests(ids, 200, rng)
        warm_up += [("/v1/datasets", {**search, "limit": "20"}) for search in SEARCHES]
        measure(base_url, key, warm_up, budget_s=30)
        healthz = measure(base_url, key, [("/healthz", {})] * REQUESTS)
        get = measure(base_url, key, _get_requests(ids, REQUESTS, rng))
        search = measure(base_url, key, _search_requests(REQUESTS, rng))
        faceted = measure(base_url, key, _search_requests(REQUESTS, rng, facets=True))
    return HttpRun(
        _latencies(healthz),
        _latencies(get),
        _latencies(search),
        _slowest_searches(search),
        _latencies(faceted),
        _slowest_searches(faceted),
    )


def search_and_get(postgres_url: str, database: str = BENCH_DATABASE) -> list[Figure]:
    """Get-by-id and search p95 over HTTP on a catalog of :data:`DATASETS`, against /healthz p95,
    and faceted search p95 against plain search p95; in ``database`` (dropped and created)."""
    started = time.perf_counter()
    url = fresh_database(postgres_url, database)
    ids = load_catalog(url, DATASETS)
    setup_s = time.perf_counter() - started
    key = _admin_key(url)
    with tempfile.TemporaryDirectory() as directory:
        run = http_latencies(url, ids, key, Path(directory))
    setting = (
        f"{DATASETS:,} datasets (each with a contract version) bulk-loaded with COPY in {setup_s:.0f} s "
        f"(data setup, not measured); one `citybase serve catalog` process, {CLIENT_THREADS} keep-alive "
        f"client threads on the same machine ({os.cpu_count()} CPUs); /healthz {run.healthz.text()}"
    )
    return [
        Figure(
            f"catalog get-by-id p95 over HTTP, {DATASETS:,} datasets in PostgreSQL",
            run.get.p95,
            "ms",
            "GET /healthz p95, same server",
            run.healthz.p95,
            aim="<= 2x",
            higher_is_better=False,
            notes=f"random ids; {run.get.text()}; {setting}",
        ),
        Figure(
            f"catalog search p95 over HTTP, {DATASETS:,} datasets in PostgreSQL",
            run.search.p95,
            "ms",
            "GET /healthz p95, same server",
            run.healthz.p95,
            aim="<= 4x",
            higher_is_better=False,
            notes=(
                f"{len(SEARCHES)} kinds of query (common, rare and absent words, short prefixes, with and without filters), limit=20; "
                f"{run.search.text()}; slowest: {run.slowest}; {setting}"
            ),
        ),
        Figure(
            f"catalog faceted search p95 over HTTP, {DATASETS:,} datasets in PostgreSQL",
            run.faceted.p95,
            "ms",
            "the same searches without facets, p95",
            run.search.p95,
            aim="<= 4x",
            higher_is_better=False,
            notes=(
                "the same kinds of query with facets=true (counts per domain, department, classification, "
                f"status, quality band and the 20 most frequent tags of the whole query); {run.faceted.text()}; "
                f"slowest: {run.slowest_faceted}; {setting}"
            ),
        ),
    ]


# --- contract registration -------------------------------------------------------------------

WIDE_PROPERTIES = 200
EARLIER_VERSIONS = 20


def _wide_property(n: int) -> dict[str, Any]:
    """Property ``n`` of the wide contract: a mix of what real contracts declare."""
    kinds = ("string", "integer", "number", "timestamp", "string", "boolean", "date", "string")
    logical = kinds[n % len(kinds)]
    prop: dict[str, Any] = {
        "name": f"reading_{n:03d}",
        "logicalType": logical,
        "description": f"Reading {n} of the sensor station, as reported by the district platform.",
        "classification": "internal",
    }
    if logical == "string":
        prop["logicalTypeOptions"] = {"minLength": 1, "maxLength": 64}
        if n % 16 == 0:
            prop["quality"] = [
                {
                    "metric": "invalidValues",
                    "arguments": {"validValues": ["ok", "degraded", "offline"]},
                    "mustBe": 0,
                }
            ]
        elif n % 16 == 8:
            prop["logicalTypeOptions"] = {"pattern": "^[A-Z]{2}-[0-9]{4}$"}
    elif logical in ("integer", "number"):
        prop["logicalTypeOptions"] = {"minimum": 0, "maximum": 100000}
        if n % 5 == 0:
            prop["quality"] = [{"metric": "nullValues", "mustBeLessOrEqualTo": 5, "unit": "percent"}]
    if n % 20 == 7:
        prop["classification"] = "restricted"
        prop["customProperties"] = [{"property": "citybase.masking", "value": "hash"}]
    elif n % 20 == 13:
        prop["customProperties"] = [
            {"property": "citybase.masking", "value": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}}
        ]
    if n % 3 == 0:
        prop["required"] = True
    if n % 25 == 0:
        prop["examples"] = ["AB-1234"] if logical == "string" else [42]
    return prop


def wide_contract(dataset_id: str, version_index: int, properties: int = WIDE_PROPERTIES) -> dict[str, Any]:
    """An ODCS v3.1.0 contract of ``properties`` properties, plus one optional one per later version.

    Version ``1.<version_index>.0``; each version adds the optional ``added_<i>``, which keeps
    every pair of versions compatible both ways (FULL_TRANSITIVE).
    """
    key = {
        "name": "station_id",
        "logicalType": "string",
        "primaryKey": True,
        "primaryKeyPosition": 1,
        "required": True,
        "description": "Sensor station.",
        "logicalTypeOptions": {"pattern": "^ST[0-9]{6}$"},
        "quality": [{"metric": "duplicateValues", "mustBe": 0}],
    }
    added = [
        {"name": f"added_{index:02d}", "logicalType": "number", "description": f"Added in 1.{index}.0."}
        for index in range(1, version_index + 1)
    ]
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": dataset_id,
        "name": "Environmental sensor readings",
        "version": f"1.{version_index}.0",
        "status": "active",
        "domain": "spatial",
        "description": {
            "purpose": "Readings of the city's environmental sensor stations, one record per station and minute."
        },
        "tags": ["environment", "sensors", "iot"],
        "customProperties": [
            {"property": "citybase.classification", "value": "conditional"},
            {"property": "citybase.department", "value": "spatial-bureau"},
            {"property": "citybase.compatibility", "value": "FULL_TRANSITIVE"},
        ],
        "schema": [
            {
                "name": "readings",
                "physicalType": "topic",
                "properties": [key, *(_wide_property(n) for n in range(1, properties)), *added],
                "quality": [{"metric": "rowCount", "mustBeGreaterOrEqualTo": 1}],
            }
        ],
        "slaProperties": [
            {"property": "frequency", "value": 1, "unit": "m"},
            {"property": "latency", "value": 5, "unit": "m"},
            {"property": "retention", "value": 1, "unit": "y"},
        ],
    }


def _wide_versions(dataset_id: str) -> list[str]:
    return [
        yaml.safe_dump(wide_contract(dataset_id, index), sort_keys=False, allow_unicode=True)
        for index in range(EARLIER_VERSIONS + 1)
    ]


def _prepare_catalog(url: str) -> None:
    db.migrate(url, _migrations(), SPEC.version_table)
    engine = db.create_db_engine(url)
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            ensure_city_domains(session)
            if session.get(models.Department, "spatial-bureau") is None:
                session.add(
                    models.Department(
                        id="spatial-bureau", name="Spatial bureau", kind="bureau", domains=["spatial"]
                    )
                )
    finally:
        engine.dispose()


def registration_times(url: str, repeats: int = REGISTRATION_REPEATS) -> list[float]:
    """Seconds to register the 21st version, once per fresh dataset holding the first 20."""
    _prepare_catalog(url)
    engine = db.create_db_engine(url)
    sessions = db.session_factory(engine)
    events = CatalogEvents(Outbox(models.outbox))
    times = []
    try:
        for repeat in range(repeats):
            documents = _wide_versions(f"spatial.sensor-readings-{repeat:02d}")
            for document in documents[:-1]:
                with db.unit_of_work(sessions) as session:
                    add_contract(session, events=events, document=document, created_by="bench")
            started = time.perf_counter()
            with db.unit_of_work(sessions) as session:
                version = add_contract(session, events=events, document=documents[-1], created_by="bench")
            times.append(time.perf_counter() - started)
            if version.sequence != EARLIER_VERSIONS + 1:
                raise RuntimeError(f"registered as version {version.sequence}, not {EARLIER_VERSIONS + 1}")
    finally:
        engine.dispose()
    return times


def minimal_registry_times(repeats: int = 21) -> list[float]:
    """The baseline: ``yaml.safe_load`` + ``json.dumps`` of the same 21st document."""
    document = _wide_versions("spatial.sensor-readings-00")[-1]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        json.dumps(yaml.safe_load(document))
        times.append(time.perf_counter() - started)
    return times


def registration(postgres_url: str) -> list[Figure]:
    """Registering a 200-property version under FULL_TRANSITIVE against 20 earlier versions."""
    baseline = statistics.median(minimal_registry_times()) * 1000
    document = _wide_versions("spatial.sensor-readings-00")[-1]
    parse = statistics.median(_timed(lambda: parse_contract(document), 11)) * 1000
    figures = []
    with tempfile.TemporaryDirectory() as directory:
        for backend, url in (
            ("PostgreSQL", fresh_database(postgres_url, f"{BENCH_DATABASE}_contracts")),
            ("SQLite", f"sqlite:///{Path(directory) / 'catalog.db'}"),
        ):
            times = [seconds * 1000 for seconds in registration_times(url)]
            figures.append(
                Figure(
                    f"register a {WIDE_PROPERTIES + EARLIER_VERSIONS}-property contract version, FULL_TRANSITIVE "
                    f"against {EARLIER_VERSIONS}, {backend} (median of {len(times)})",
                    statistics.median(times),
                    "ms",
                    "yaml.safe_load + json.dumps of the same document",
                    baseline,
                    aim="well under 100 ms",
                    higher_is_better=False,
                    notes=(
                        f"service.register_contract in one unit of work, commit included; runs "
                        f"{', '.join(f'{t:.1f}' for t in times)} ms; parse_contract alone {parse:.1f} ms"
                    ),
                )
            )
    return figures


def _timed(action: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


# --- DCAT-AP export ----------------------------------------------------------------------------

DCAT_POOL = 1000
LINKS = PlatformLinks("https://data.city.example")
CATALOG = CatalogDescription(
    title="citybase: the city's public data",
    description="Datasets published by the city's departments as live streams.",
    publisher=PublisherDescription(id="city", name="City data administration", kind="city"),
    homepage="https://data.city.example/",
)


def _descriptions(count: int) -> Iterator[DatasetDescription]:
    """``count`` dataset descriptions, cycling through :data:`DCAT_POOL` distinct ones.

    Cycling keeps the input's own memory constant, so that what grows, if anything, is the export.
    """
    pool = []
    for dataset in _generated_datasets(min(count, DCAT_POOL), seed=5):
        department = dataset.department
        pool.append(
            DatasetDescription(
                id=dataset.id,
                title=dataset.title,
                description=dataset.description,
                publisher=PublisherDescription(
                    id=department.id,
                    name=department.name,
                    kind=department.kind,
                    email=f"data@{department.id}.example.gov.cn",
                ),
                domain=dataset.domain,
                classification=dataset.classification,  # type: ignore[arg-type]
                status="active",
                created_at=dataset.created_at,
                updated_at=dataset.created_at,
                tags=tuple(dataset.tags),
                update_frequency=dataset.frequency,
                contract_version="1.0.0",
                record_schema=_record_schema(dataset),
                primary_key=(dataset.fields[0][0],),
            )
        )
    for index in range(count):
        yield pool[index % len(pool)]


_DESCRIPTION_FIELDS = tuple(field.name for field in dataclass_fields(DatasetDescription))


def _naive_json(datasets: Iterator[DatasetDescription]) -> Iterator[str]:
    """The baseline: each dataset's fields as a JSON object, streamed as one array."""
    yield "["
    for index, dataset in enumerate(datasets):
        fields = {name: getattr(dataset, name) for name in _DESCRIPTION_FIELDS}
        fields["publisher"] = asdict(dataset.publisher)
        yield ("," if index else "") + json.dumps(fields, default=str, ensure_ascii=False)
    yield "]\n"


EXPORTS: dict[str, Callable[[Iterator[DatasetDescription]], Iterator[str]]] = {
    "turtle": lambda datasets: dcat_serialization.catalog_turtle(datasets, LINKS, CATALOG),
    "jsonld": lambda datasets: dcat_serialization.catalog_jsonld(datasets, LINKS, CATALOG),
    "json": _naive_json,
}


def stream_export(export: str, count: int) -> dict[str, float]:
    """Stream one export of ``count`` datasets into a byte counter: seconds, characters, peak memory.

    Run in a fresh process (see :func:`_export_in_process`) so that the high-water mark of its
    resident memory is this export's peak; ``tracemalloc`` would slow the export several times over.
    """
    datasets = _descriptions(count)
    first = next(datasets)  # builds the pool before memory is read
    gc.collect()
    before_kib = _peak_rss_kib()
    characters = 0
    started = time.perf_counter()
    for chunk in EXPORTS[export](_chain(first, datasets)):
        characters += len(chunk)
    seconds = time.perf_counter() - started
    peak_kib = _peak_rss_kib()
    return {
        "seconds": seconds,
        "characters": characters,
        "peak_mib": peak_kib / 1024,
        "growth_mib": (peak_kib - before_kib) / 1024,
    }


def _peak_rss_kib() -> int:
    """This process's peak resident memory in KiB: VmHWM, which (unlike ``ru_maxrss``, inherited
    from the parent on Linux) starts afresh in a new process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _chain(first: DatasetDescription, rest: Iterator[DatasetDescription]) -> Iterator[DatasetDescription]:
    yield first
    yield from rest


def _export_in_process(export: str, count: int) -> dict[str, float]:
    code = f"import json; from tests.bench.catalog import stream_export; print(json.dumps(stream_export({export!r}, {count})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def dcat_export(count: int = DATASETS) -> list[Figure]:
    """Records/s of the streamed DCAT-AP exports, and their peak memory at ``count`` vs a tenth of it."""
    small = max(count // 10, 1)
    baseline = _export_in_process("json", count)
    baseline_rate = count / baseline["seconds"]
    figures = []
    peaks = []
    for export, label in (("turtle", "Turtle"), ("jsonld", "JSON-LD")):
        large = _export_in_process(export, count)
        little = _export_in_process(export, small)
        peaks.append((label, little, large))
        figures.append(
            Figure(
                f"DCAT-AP export streamed as {label}, {count:,} datasets",
                count / large["seconds"],
                "records/s",
                "json.dumps of each dataset's fields, streamed the same way",
                baseline_rate,
                aim="informative",
                notes=(
                    f"{large['characters'] / count:,.0f} characters per dataset "
                    f"(baseline {baseline['characters'] / count:,.0f}); {large['seconds']:.1f} s"
                ),
            )
        )
    label, little, large = max(peaks, key=lambda item: item[2]["peak_mib"] / item[1]["peak_mib"])
    figures.append(
        Figure(
            f"DCAT-AP export peak memory (RSS), {count:,} datasets vs {small:,}",
            large["peak_mib"],
            "MiB",
            f"peak RSS exporting {small:,} datasets",
            little["peak_mib"],
            aim="<= 1.5",
            higher_is_better=False,
            notes=(
                "the larger ratio of the two formats ("
                + "; ".join(
                    f"{name}: peak {a['peak_mib']:.0f} -> {b['peak_mib']:.0f} MiB, growth during the export "
                    f"{a['growth_mib']:.1f} -> {b['growth_mib']:.1f} MiB"
                    for name, a, b in peaks
                )
                + f"); shown: {label}"
            ),
        )
    )
    return figures
