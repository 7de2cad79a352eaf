"""The platform as deployed: catalog, ingest, feeds (and quality) as their own ``citybase serve``
processes on real Kafka and PostgreSQL, with a scenario granted the bench dataset by an approver,
through the catalog's API as a data owner would.

Used by the feeds bench (ingest's 202 to a subscriber, memory of open streams) and ``make soak``.
The grant delivers every field of the bench dataset with two masks (``vehicle_id`` partial,
``stop_id`` hashed); ``arrival_id`` stays clear, so that a subscriber can match what it receives
with what was sent.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.common.bus.kafka import KafkaBus
from tests.bench.ingest import (
    DEPARTMENT,
    BenchPlatform,
    Service,
    _created,
    _serve,
    _wait,
    bench_platform,
    process_tree,
)
from tests.factories import access_request_create, scenario_create
from tests.support.kafka_topics import KAFKA_BOOTSTRAP

GRANTED_FIELDS = ["arrival_id", "stop_id", "route_id", "vehicle_id", "arrived_at", "delay_s", "occupancy"]
MASKING = {"vehicle_id": {"kind": "partial"}, "stop_id": {"kind": "hash"}}


@dataclass
class Pipeline:
    """The running services and the granted scenario's key."""

    platform: BenchPlatform
    feeds: Service
    quality: Service | None
    scenario_key: str
    directory: Path
    quality_group: str | None = None
    """Quality's consumer group of ``ds.`` (when quality runs): its lag is quality's."""
    service_env: dict[str, str] = field(default_factory=dict)
    """What feeds and quality run with beyond the platform's environment (for more replicas)."""
    feeds_env: dict[str, str] = field(default_factory=dict)
    """What feeds alone runs with (its secret, the same on every replica)."""

    @property
    def services(self) -> list[Service]:
        running = [self.platform.catalog, self.platform.ingest, self.feeds]
        return running + ([self.quality] if self.quality is not None else [])

    @property
    def scenario_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.scenario_key}"}

    def feeds_client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.feeds.url, headers=self.scenario_headers, **options)

    def subscribe(self, start: str = "latest", timeout_s: float = 60.0) -> str:
        """A new subscription of the scenario; waits until feeds knows the key and the grant."""
        deadline = time.monotonic() + timeout_s
        with self.feeds_client(timeout=60) as client:
            while True:
                response = client.post(
                    "/v1/subscriptions", json={"dataset": self.platform.dataset_id, "start": start}
                )
                if response.status_code == 201:
                    return str(response.json()["id"])
                if time.monotonic() > deadline or response.status_code not in (401, 403, 503):
                    raise RuntimeError(f"subscription refused: {response.status_code} {response.text}")
                time.sleep(0.2)


def rss_kib(service: Service) -> int:
    """Resident memory of a service's processes (a supervisor and its workers, if any)."""
    total = 0
    for pid in process_tree(service.process.pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:  # gone meanwhile
            continue
    return total


def cpu_s(service: Service) -> float:
    """CPU seconds (user and system) a service's processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(service.process.pid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def _once_known(call: Callable[[], httpx.Response], timeout_s: float = 30.0) -> httpx.Response:
    """``call`` again while it answers 401: a new key reaches the catalog's key ring through
    ``platform.catalog``, a moment after it was issued."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = call()
        if response.status_code != 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def _grant(platform: BenchPlatform, suffix: str) -> str:
    """An approver of the owning department, a scenario with a key, its access request approved
    and :data:`MASKING` set on its grant; the scenario's key."""
    admin = {"Authorization": f"Bearer {platform.admin_key}"}
    approver_id = f"{DEPARTMENT}-approver-{suffix}"
    scenario_id = f"bench-scenario-{suffix}"
    with httpx.Client(base_url=platform.catalog.url, timeout=30) as client:
        _created(
            client.post(
                "/v1/principals",
                json={
                    "id": approver_id,
                    "kind": "approver",
                    "name": approver_id,
                    "department_id": DEPARTMENT,
                },
                headers=admin,
            )
        )
        approver = {
            "Authorization": "Bearer "
            + _created(
                client.post(f"/v1/principals/{approver_id}/keys", json={"name": "bench"}, headers=admin)
            )["key"]
        }
        _created(client.post("/v1/scenarios", json=scenario_create(scenario_id), headers=admin))
        key = str(
            _created(client.post(f"/v1/scenarios/{scenario_id}/keys", json={"name": "bench"}, headers=admin))[
                "key"
            ]
        )
        asked = _created(
            _once_known(
                lambda: client.post(
                    "/v1/access-requests",
                    json=access_request_create(platform.dataset_id, GRANTED_FIELDS),
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
        )
        # An open dataset's request is approved by the catalog's policy at once; the approver then
        # sets the masks on the grant (a new version), as a data owner narrowing it would.
        grant_id = asked.get("grant_id")
        if grant_id is None:
            decided = _once_known(
                lambda: client.post(
                    f"/v1/access-requests/{asked['id']}/approve",
                    json={"reason": "measuring the platform"},
                    headers=approver,
                )
            )
            if decided.status_code != 200:
                raise RuntimeError(f"approval refused: {decided.status_code} {decided.text}")
            grant_id = decided.json()["grant_id"]
        masked = _once_known(
            lambda: client.patch(
                f"/v1/grants/{grant_id}",
                json={"reason": "measuring the platform", "masking": MASKING},
                headers=approver,
            )
        )
        if masked.status_code != 200:
            raise RuntimeError(f"masking refused: {masked.status_code} {masked.text}")
    return key


@contextmanager
def pipeline(
    directory: Path,
    *,
    database: str,
    ingest_workers: int = 1,
    quality: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[Pipeline]:
    """Catalog, ingest (``ingest_workers`` processes), feeds and, with ``quality``, quality, on a
    fresh ``database``; the bench dataset registered and a scenario granted it. Stopped on exit."""
    with ExitStack() as stack:
        platform = stack.enter_context(bench_platform(directory, database=database, workers=ingest_workers))
        suffix = platform.dataset_id.rsplit("-", 1)[-1]
        stack.callback(_delete_topics, platform.dataset_id)
        service_env = {**platform.env, **(env or {})}
        quality_group = f"quality-soak-{suffix}" if quality else None
        if quality:
            service_env.update(
                {
                    "CITYBASE_QUALITY_GROUP_ID": f"quality-soak-{suffix}",
                    "CITYBASE_QUALITY_USAGE_GROUP_ID": f"quality-soak-{suffix}-usage",
                    "CITYBASE_QUALITY_DATASET_PREFIX": platform.dataset_id,
                }
            )
        # Feeds on Kafka and PostgreSQL refuse to start without a secret of their own.
        feeds_env = {"CITYBASE_FEEDS_SECRET": secrets.token_hex(32), **service_env}
        feeds = stack.enter_context(_serve("feeds", feeds_env, directory))
        quality_service = stack.enter_context(_serve("quality", service_env, directory)) if quality else None
        key = _grant(platform, suffix)
        for service in [feeds] + ([quality_service] if quality_service is not None else []):
            _wait(
                lambda service=service: httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200,
                f"{service.name} not ready",
                service,
            )
        yield Pipeline(
            platform,
            feeds,
            quality_service,
            key,
            directory,
            quality_group,
            service_env={
                name: value for name, value in service_env.items() if platform.env.get(name) != value
            },
            feeds_env={"CITYBASE_FEEDS_SECRET": feeds_env["CITYBASE_FEEDS_SECRET"]},
        )


def _delete_topics(dataset_id: str) -> None:
    """The run's topics go with it (best effort): a soak leaves millions of records behind."""
    bus = KafkaBus([KAFKA_BOOTSTRAP], client_id="citybase-bench-cleanup")
    try:
        for topic in (f"ds.{dataset_id}", f"dlq.{dataset_id}", f"raw.{dataset_id}"):
            try:
                bus.admin().delete_topic(topic)
            except Exception as error:  # a leftover topic is harmless
                print(f"could not delete {topic}: {error}", file=sys.stderr)
    finally:
        bus.close()
