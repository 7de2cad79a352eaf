"""What ingest's unit tests build: catalog events as ingest reads them, a loaded projection,
settings, and an Ingestor on SQLite with a scripted producer (the only fakes: unit level)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import primary_key
from services.catalog.contracts.sla import sla_targets
from services.common import catalog_events, db
from services.common.auth import Principal, PrincipalKind, issue_key
from services.common.bus import (
    BufferFull,
    BusUnavailable,
    Message,
    OutgoingRecord,
    Producer,
    RecordMetadata,
)
from services.common.bus.embedded import EmbeddedBus
from services.common.metrics import ServiceMetrics
from services.ingest.metrics import IngestMetrics
from services.ingest.projection import CatalogProjection
from services.ingest.service import Ingestor
from services.ingest.settings import IngestSettings
from services.ingest.topic_registry import TopicRegistry
from tests.factories import ingest_contract

DATASET = "transport.unit-arrivals"
OWNER = "transport-bureau"
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "ingest" / "migrations"


def contract_state(document: str, sequence: int = 1) -> dict[str, Any]:
    """The payload of a contract-version event, as the catalog publishes it."""
    parsed = parse_contract(document)
    sla = sla_targets(parsed)
    return {
        "dataset_id": parsed.id,
        "version": parsed.version,
        "sequence": sequence,
        "fingerprint": parsed.fingerprint,
        "record_schema": record_schema(parsed),
        "primary_key": list(primary_key(parsed)),
        "sensitive_fields": {},
        "sla": {"frequency_s": sla.frequency_s, "latency_s": sla.latency_s, "retention_s": sla.retention_s},
        "expectation_suite": [],
        "created_at": datetime.now(UTC).isoformat(),
    }


def dataset_state(
    dataset_id: str = DATASET,
    *,
    owner: str = OWNER,
    status: str = "active",
    current_version: str | None = "1.0.0",
) -> dict[str, Any]:
    return {
        "id": dataset_id,
        "owner_department_id": owner,
        "status": status,
        "current_version": current_version,
        "title": dataset_id,
    }


def as_message(record: OutgoingRecord, offset: int = 0) -> Message:
    return Message(
        record.topic, 0, offset, record.key, record.value, record.headers, record.timestamp_ms or 0
    )


def catalog_message(event_type: str, entity_id: str, state: dict[str, Any], offset: int = 0) -> Message:
    return as_message(catalog_events.catalog_record(event_type, entity_id, state), offset)


def load(projection: CatalogProjection, *states: tuple[str, str, dict[str, Any]]) -> None:
    for offset, (event_type, entity_id, state) in enumerate(states):
        projection.apply(catalog_message(event_type, entity_id, state, offset))


def contract_event(
    dataset_id: str = DATASET, version: str = "1.0.0", sequence: int = 1
) -> tuple[str, str, dict[str, Any]]:
    return (
        catalog_events.CONTRACT_VERSION,
        f"{dataset_id}:{version}",
        contract_state(ingest_contract(dataset_id, OWNER, version), sequence),
    )


def dataset_event(dataset_id: str = DATASET, **fields: Any) -> tuple[str, str, dict[str, Any]]:
    return (catalog_events.DATASET, dataset_id, dataset_state(dataset_id, **fields))


@pytest.fixture
def projection() -> CatalogProjection:
    """A projection that knows ``transport.unit-arrivals`` at 1.0.0 (and its 1.1.0, not yet current)."""
    loaded = CatalogProjection()
    load(loaded, contract_event(), dataset_event(), contract_event(version="1.1.0", sequence=2))
    return loaded


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings()


PUBLISHER = Principal(id="bureau-publisher", kind=PrincipalKind.department, name="p", department_id=OWNER)
ADMIN = Principal(id="admin", kind=PrincipalKind.admin, name="admin")


class ScriptedProducer(Producer):
    """Acknowledges records as told: all, the first ``ack_first`` then failures, or never."""

    def __init__(self) -> None:
        self.sent: list[OutgoingRecord] = []
        self.ack_first: int | None = None
        self.hang = False
        self.buffer_full_after: int | None = None
        self.fill = 0.0

    def send(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        if self.buffer_full_after is not None and len(self.sent) >= self.buffer_full_after:
            raise BufferFull("scripted: buffer full")
        future: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()
        position = len(self.sent)
        self.sent.append(record)
        if self.hang:
            return future
        if self.ack_first is not None and position >= self.ack_first:
            future.set_exception(BusUnavailable("scripted: broker gone"))
        else:
            future.set_result(RecordMetadata(record.topic, 0, position, 0))
        return future

    def send_many(self, records: Iterable[OutgoingRecord]) -> list[concurrent.futures.Future[RecordMetadata]]:
        return [self.send(record) for record in records]

    def flush(self, timeout_s: float | None = None) -> None:
        return None

    def buffer_fill(self) -> float:
        return self.fill

    def close(self, timeout_s: float = 10.0) -> None:
        return None


@dataclass
class IngestorKit:
    ingestor: Ingestor
    producer: ScriptedProducer
    metrics: IngestMetrics
    registry: CollectorRegistry


@pytest.fixture
def kit(tmp_path: Path, projection: CatalogProjection) -> Iterator[IngestorKit]:
    """An Ingestor on SQLite and an embedded bus (topics), publishing through a scripted producer."""
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    engine = db.create_db_engine(url)
    db.migrate(url, MIGRATIONS, "alembic_version_ingest", engine)
    bus = EmbeddedBus(tmp_path / "bus.db")
    service_metrics = ServiceMetrics("ingest")
    metrics = IngestMetrics.of(service_metrics)
    producer = ScriptedProducer()
    settings = IngestSettings(ack_timeout_s=0.5)
    ingestor = Ingestor(
        catalog=projection,
        producer=producer,
        topics=TopicRegistry(bus, settings),
        sessions=db.session_factory(engine),
        metrics=metrics,
        settings=settings,
    )
    yield IngestorKit(ingestor, producer, metrics, service_metrics.registry)
    bus.close()
    engine.dispose()


def api_key_event(
    principal: Principal,
) -> tuple[tuple[str, str, dict[str, Any]], tuple[str, str, dict[str, Any]], str]:
    """Events that give ``principal`` a key (principal, api key) and the key itself."""
    issued = issue_key()
    principal_state = {
        "id": principal.id,
        "kind": principal.kind.value,
        "name": principal.name,
        "department_id": principal.department_id,
        "status": "active",
    }
    key_state = {
        "prefix": issued.prefix,
        "principal_id": principal.id,
        "key_hash": issued.key_hash,
        "revoked_at": None,
    }
    return (
        (catalog_events.PRINCIPAL, principal.id, principal_state),
        (catalog_events.API_KEY, issued.prefix, key_state),
        issued.key,
    )


def sample_value(kit: IngestorKit, name: str, **labels: str) -> float:
    """A metric's value in the kit's registry (0 when it has no sample yet)."""
    return kit.registry.get_sample_value(name, labels) or 0.0
