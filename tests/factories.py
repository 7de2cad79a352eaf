"""Factories for test data of the shared kernel: settings, infrastructure and events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from services.common.envelope import CloudEvent
from services.common.policy import encode_hash_key, new_hash_key
from services.common.settings import Settings


def embedded_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an app on SQLite and the embedded bus, all under ``tmp_path``."""
    return Settings(data_dir=tmp_path, **overrides)


def bus_arrival_event(**overrides: Any) -> CloudEvent:
    data = {
        "arrival_id": str(uuid.uuid4()),
        "stop_id": "S0042",
        "route_id": "71",
        "vehicle_id": "沪B-12345",
        "arrived_at": "2026-11-24T08:15:30Z",
        "delay_s": 42,
        "occupancy": "MANY_SEATS_AVAILABLE",
    }
    fields: dict[str, Any] = {
        "type": "city.citybase.record.v1",
        "source": "/ingest/datasets/transport.bus-arrivals",
        "data": data,
        "subject": data["arrival_id"],
        "dataschema": "/catalog/v1/datasets/transport.bus-arrivals/contract/versions/1.0.0",
        "extensions": {"dataset": "transport.bus-arrivals", "contractversion": "1.0.0"},
    }
    fields.update(overrides)
    return CloudEvent(**fields)


EXAMPLES = Path(__file__).resolve().parent.parent / "contracts"


def example_contract(dataset_id: str, version: str = "1.0.0") -> str:
    """The text of one of the example ODCS contracts shipped in ``contracts/datasets``."""
    return (EXAMPLES / "datasets" / dataset_id / f"{version}.yaml").read_text(encoding="utf-8")


def evolve_contract(text: str, version: str, change: Callable[[dict[str, Any]], None] | None = None) -> str:
    """A new version of a contract: ``change`` edits the parsed document in place."""
    document = yaml.safe_load(text)
    document["version"] = version
    if change is not None:
        change(document)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def contract_property(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The property ``name`` of the contract's first schema object, for ``evolve_contract`` edits."""
    return next(prop for prop in document["schema"][0]["properties"] if prop["name"] == name)


# --- ingest -------------------------------------------------------------------------------------


def ingest_contract(dataset_id: str, department_id: str, version: str = "1.0.0") -> str:
    """The bus-arrivals example contract (``version`` of it) for another dataset and owner.

    Tests that share a Kafka broker each register a dataset of their own, so that their ds., dlq.
    and raw. topics never meet.
    """
    return renamed_contract("transport.bus-arrivals", dataset_id, department_id, version)


def renamed_contract(example: str, dataset_id: str, department_id: str, version: str = "1.0.0") -> str:
    """The ``example`` contract (``version`` of it) for another dataset and owner."""

    def rename(document: dict[str, Any]) -> None:
        document["id"] = dataset_id
        if document.get("domain"):
            # The ODCS domain is the dataset's domain: the one its id names.
            document["domain"] = dataset_id.split(".", 1)[0]
        for custom in document.get("customProperties") or []:
            if custom["property"] == "citybase.department":
                custom["value"] = department_id
        for schema_object in document.get("schema") or []:
            schema_object["physicalName"] = f"ds.{dataset_id}"

    return evolve_contract(example_contract(example, version), version, rename)


def bus_arrival_record(**overrides: Any) -> dict[str, Any]:
    """One valid record of the bus-arrivals contract (1.0.0 and later)."""
    record: dict[str, Any] = {
        "arrival_id": str(uuid.uuid4()),
        "stop_id": "S0042",
        "route_id": "71",
        "vehicle_id": "沪B-12345",
        "arrived_at": "2026-11-24T08:15:30+08:00",
        "delay_s": 42,
        "occupancy": "MANY_SEATS_AVAILABLE",
    }
    record.update(overrides)
    return record


# --- feeds: grant events as the catalog publishes them -----------------------------------------


def feeds_grant_state(scenario_id: str, dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """The payload of a ``city.citybase.catalog.grant.v1`` event: the whole current state of a grant.

    Valid from an hour ago for a day, every bus-arrivals field, no masking, no filter, no quota.
    """
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    state: dict[str, Any] = {
        "id": "gr-" + uuid.uuid4().hex[:22],
        "version": 1,
        "scenario_id": scenario_id,
        "dataset_id": dataset_id,
        "request_id": "ar-" + uuid.uuid4().hex[:22],
        "status": "active",
        "fields": ["arrival_id", "stop_id", "route_id", "vehicle_id", "arrived_at", "delay_s", "occupancy"],
        "masking": {},
        "row_filter": None,
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=1)).isoformat(),
        "quota": None,
        "purpose": "one-stop hospital visit: arrival times near hospitals",
        "purpose_category": "public_service",
        "updated_at": now.isoformat(),
        "hash_key": encode_hash_key(new_hash_key()),
    }
    state.update(overrides)
    return state


def next_grant_version(grant: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The grant's next version with ``changes`` (the catalog bumps ``version`` on every change)."""
    from datetime import UTC, datetime

    return {**grant, **changes, "version": grant["version"] + 1, "updated_at": datetime.now(UTC).isoformat()}


def grant_record(grant: dict[str, Any]) -> Any:
    """The record on ``platform.catalog`` announcing ``grant``, keyed ``grant:<id>``."""
    from services.common import catalog_events

    return catalog_events.catalog_record(catalog_events.GRANT, grant["id"], grant)


# --- quality ------------------------------------------------------------------------------------
# Quality is tested on its own: these build what the catalog, ingest and feeds would put on the
# bus (catalog events, ds./dlq. records, usage events), from the example contracts and the demo
# generator, so that no other service has to run.

import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
from dataclasses import asdict, is_dataclass  # noqa: E402

from services.common import catalog_events  # noqa: E402
from services.common.auth import issue_key  # noqa: E402
from services.common.bus import OutgoingRecord  # noqa: E402

GRANT_EVENT = "city.citybase.catalog.grant.v1"
USAGE_EVENT = "city.citybase.feeds.usage.v1"


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def contract_state(
    dataset_id: str,
    *,
    example: str = "health.outpatient-visits",
    version: str = "1.0.0",
    change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The contract-version event data the catalog publishes, derived from an example contract
    renamed to ``dataset_id`` (``change`` edits the parsed ODCS document first)."""
    from services.catalog.contracts import parse_contract
    from services.catalog.contracts.expectations import expectation_suite
    from services.catalog.contracts.json_schema import record_schema
    from services.catalog.contracts.policy import primary_key, sensitive_fields
    from services.catalog.contracts.sla import sla_targets

    def rename(document: dict[str, Any]) -> None:
        document["id"] = dataset_id
        for schema_object in document.get("schema") or []:
            schema_object["physicalName"] = f"ds.{dataset_id}"
        if change is not None:
            change(document)

    parsed = parse_contract(evolve_contract(example_contract(example, version), version, rename))
    text = json.dumps(record_schema(parsed), sort_keys=True)
    return {
        "dataset_id": dataset_id,
        "version": version,
        "sequence": 1,
        "fingerprint": hashlib.sha256(text.encode()).hexdigest(),
        "record_schema": record_schema(parsed),
        "primary_key": primary_key(parsed),
        "sensitive_fields": _plain(sensitive_fields(parsed)),
        "sla": _plain(sla_targets(parsed)),
        "expectation_suite": expectation_suite(parsed),
        "created_at": datetime.now(UTC).isoformat(),
    }


def dataset_event_state(
    dataset_id: str,
    *,
    department_id: str = "health-commission",
    status: str = "active",
    current_version: str | None = "1.0.0",
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The dataset event data the catalog publishes."""
    return {
        "id": dataset_id,
        "domain_id": dataset_id.split(".", 1)[0],
        "owner_department_id": department_id,
        "title": dataset_id,
        "classification": "restricted",
        "status": status,
        "compatibility_mode": "BACKWARD",
        "current_version": current_version,
        "topics": {
            "records": f"ds.{dataset_id}",
            "dead_letter": f"dlq.{dataset_id}",
            "raw": f"raw.{dataset_id}",
        },
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
    }


def grant_state(
    scenario_id: str,
    dataset_id: str,
    *,
    grant_id: str | None = None,
    status: str = "active",
    version: int = 1,
    valid_from: datetime | None = None,
    expires_at: datetime | None = None,
    purpose_category: str = "public_service",
) -> dict[str, Any]:
    """The grant event data the catalog's access workflow publishes (contracts/events/catalog.grant.json)."""
    start = valid_from or datetime.now(UTC)
    return {
        "id": grant_id or f"gr-{uuid.uuid4().hex[:22]}",
        "version": version,
        "scenario_id": scenario_id,
        "dataset_id": dataset_id,
        "request_id": f"ar-{uuid.uuid4().hex[:22]}",
        "status": status,
        "fields": ["visit_id", "hospital_id", "clinic", "registered_at"],
        "masking": {},
        "row_filter": None,
        "valid_from": start.isoformat(),
        "expires_at": (expires_at or start + timedelta(days=365)).isoformat(),
        "quota": None,
        "purpose": "Show patients the least crowded clinic.",
        "purpose_category": purpose_category,
        "updated_at": datetime.now(UTC).isoformat(),
        "hash_key": encode_hash_key(new_hash_key()),
    }


def catalog_records(
    *,
    datasets: list[dict[str, Any]] = (),  # type: ignore[assignment]
    contracts: list[dict[str, Any]] = (),  # type: ignore[assignment]
    grants: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> list[OutgoingRecord]:
    """platform.catalog records announcing the given states (contracts before their datasets)."""
    records = [
        catalog_events.catalog_record(
            catalog_events.CONTRACT_VERSION, f"{contract['dataset_id']}:{contract['version']}", contract
        )
        for contract in contracts
    ]
    records += [
        catalog_events.catalog_record(catalog_events.DATASET, dataset["id"], dataset) for dataset in datasets
    ]
    for grant in grants:
        event = CloudEvent(type=GRANT_EVENT, source="/catalog", subject=grant["id"], data=grant)
        records.append(event.to_record(catalog_events.TOPIC, f"grant:{grant['id']}".encode()))
    return records


def operator_key(principal_id: str = "operator-1") -> tuple[str, list[OutgoingRecord]]:
    """An operator's API key and the platform.catalog records that make every key ring know it."""
    issued = issue_key()
    principal = {
        "id": principal_id,
        "kind": "operator",
        "name": principal_id,
        "department_id": None,
        "status": "active",
    }
    key = {
        "prefix": issued.prefix,
        "key_hash": issued.key_hash,
        "principal_id": principal_id,
        "revoked_at": None,
    }
    return issued.key, [
        catalog_events.catalog_record(catalog_events.PRINCIPAL, principal_id, principal),
        catalog_events.catalog_record(catalog_events.API_KEY, issued.prefix, key),
    ]


def routed_records(
    contract: dict[str, Any],
    count: int,
    *,
    seed: int = 7,
    ingest_time: datetime | None = None,
    flavour_of: str = "health.outpatient-visits",
    mutate: Callable[[int, dict[str, Any]], None] | None = None,
    **fault_rates: float,
) -> tuple[list[OutgoingRecord], list[Any]]:
    """``count`` demo records with faults at the given rates, routed as ingest routes them: valid
    ones to ``ds.<dataset>`` as CloudEvents, invalid ones to ``dlq.<dataset>`` with ingest's
    reason headers. Returns the records and the generated ones (with their faults). Values look
    like those of the example dataset ``flavour_of``."""
    from citybase.demo import FLAVOURS, FaultRates, RecordGenerator
    from services.ingest.envelopes import record_envelope
    from services.ingest.validation import RecordValidator

    dataset_id = contract["dataset_id"]
    generator = RecordGenerator(
        contract["record_schema"],
        dataset_id,
        random.Random(seed),
        faults=FaultRates(**fault_rates),
        primary_key=contract["primary_key"],
        flavour=FLAVOURS.get(flavour_of),
    )
    validator = RecordValidator(contract["record_schema"])
    moment = ingest_time or datetime.now(UTC)
    generated = generator.generate(count)
    out: list[OutgoingRecord] = []
    for index, item in enumerate(generated):
        if mutate is not None:
            mutate(index, item.record)
        value = json.dumps(item.record, ensure_ascii=False).encode()
        violations = validator.violations(item.record)
        key = "|".join(str(item.record.get(name)) for name in contract["primary_key"]) or None
        if not violations:
            out.append(
                record_envelope(
                    dataset_id=dataset_id,
                    contract_version=contract["version"],
                    event_id=f"{seed}-{index}",
                    key=key,
                    value=value,
                    time=moment,
                )
            )
            continue
        first = violations[0]
        errors = [{"path": v.path, "rule": v.rule, "message": v.message} for v in violations]
        out.append(
            OutgoingRecord(
                f"dlq.{dataset_id}",
                value,
                key.encode() if key else None,
                (
                    ("dlq_reason", first.rule.encode()),
                    ("dlq_path", first.path.encode()),
                    ("dlq_message", first.message.encode()),
                    ("dlq_contract_version", contract["version"].encode()),
                    ("dlq_errors", json.dumps(errors).encode()),
                    ("ce_dataset", dataset_id.encode()),
                    ("content-type", b"application/json"),
                ),
                timestamp_ms=int(moment.timestamp() * 1000),
            )
        )
    return out, generated


def usage_record(
    scenario_id: str,
    dataset_id: str,
    *,
    grant_id: str,
    subscription_id: str = "sub-1",
    records: int = 100,
    size: int = 10_000,
    delivered_at: datetime | None = None,
    event_id: str | None = None,
) -> OutgoingRecord:
    """A platform.usage event as feeds meters one delivered batch."""
    moment = delivered_at or datetime.now(UTC)
    data = {
        "scenario_id": scenario_id,
        "subscription_id": subscription_id,
        "consumer_group": f"feeds.sub.{subscription_id}",
        "grant_id": grant_id,
        "grant_version": 1,
        "dataset_id": dataset_id,
        "records": records,
        "bytes": size,
        "partitions": [{"partition": 0, "first_offset": 0, "last_offset": records - 1}],
        "delivered_at": moment.isoformat(),
        "mode": "poll",
    }
    event = CloudEvent(
        type=USAGE_EVENT,
        source="/feeds",
        subject=subscription_id,
        data=data,
        time=moment,
        **({"id": event_id} if event_id else {}),
    )
    return event.to_record("platform.usage", scenario_id.encode())


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


# --- authorized operation -----------------------------------------------------------------------


def scenario_create(scenario_id: str = "one-stop-visit", **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/scenarios."""
    body: dict[str, Any] = {
        "id": scenario_id,
        "name": scenario_id.replace("-", " ").title(),
        "organisation": "Shenkang Hospital Development Center",
        "description": "Books outpatient visits at the least crowded clinic.",
        "contact": "scenario-team@shdc.example.cn",
    }
    body.update(overrides)
    return body


OUTPATIENT_FIELDS = ["visit_id", "hospital_id", "clinic", "patient_id", "wait_minutes", "registered_at"]
INSPECTION_FIELDS = ["inspection_id", "district", "result", "inspected_at", "inspector_phone"]


def access_request_create(
    dataset_id: str = "market.inspections", fields: list[str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """The body of POST /v1/access-requests (a request of a market-inspections' fields by default)."""
    body: dict[str, Any] = {
        "dataset_id": dataset_id,
        "purpose": "Show residents the inspection results of the shops on their street.",
        "purpose_category": "public_service",
        "fields": list(fields or INSPECTION_FIELDS),
        "duration_days": 90,
    }
    body.update(overrides)
    return body


# --- the scenario programme ---------------------------------------------------------------


def need_create(**overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/needs: free hospital beds, in the health domain."""
    return {
        "title": "Free hospital beds in real time",
        "description": "Patients are sent to hospitals whose wards are full.",
        "domains": ["health"],
        "data_wanted": "Free beds per hospital and ward, every five minutes.",
        "purpose": "Route patients to a hospital with a free bed.",
        "purpose_category": "public_service",
        "serves": "Outpatients of the city's public hospitals",
        "frequency": "high",
        "urgency": "urgent",
        **overrides,
    }


def opening_create(deadline_in: timedelta = timedelta(days=30), **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/opportunity-lists/{id}/openings: an opening of the health commission."""
    body: dict[str, Any] = {
        "title": "Wait-aware outpatient booking",
        "description": "Book each outpatient visit at the clinic with the shortest wait.",
        "owner_department_id": "health-commission",
        "datasets": ["health.outpatient-visits"],
        "data_offered": "Waits per clinic every five minutes; patient ids hashed.",
        "conditions": "Free for residents; the data stays on the city's platform.",
        "deadline": (datetime.now(UTC) + deadline_in).isoformat(),
        "need_ids": [],
        "domains": ["health"],
        "serves_residents": True,
    }
    body.update(overrides)
    return body


def proposal_create(title: str = "Least-crowded clinic booking", **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/openings/{id}/proposals, asking for waits per clinic."""
    body: dict[str, Any] = {
        "title": title,
        "team": "Six engineers and two clinicians.",
        "approach": "Show each patient the current wait per clinic and book the shortest.",
        "objectives": "Halve the median wait at the three busiest hospitals.",
        "datasets": [
            {"dataset_id": "health.outpatient-visits", "fields": ["hospital_id", "clinic", "wait_minutes"]}
        ],
        "timeline": "Pilot in three months, city-wide in nine.",
        "purpose_category": "public_service",
        "duration_days": 180,
    }
    body.update(overrides)
    return body


def objective_create(**overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/scenarios/{id}/objectives: market inspections delivered, Q1 2027."""
    return {
        "title": "Inspection results reach the visit planner",
        "kind": "delivered-records",
        "datasets": ["market.inspections"],
        "target": 100,
        "kpi": None,
        "period_start": "2027-01-01T00:00:00Z",
        "period_end": "2027-04-01T00:00:00Z",
        **overrides,
    }


def outcome_objective_create(**overrides: Any) -> dict[str, Any]:
    """An objective of kind outcome: the median outpatient wait, at most 30 minutes a month."""
    body = {
        "title": "Median outpatient wait",
        "kind": "outcome",
        "datasets": [],
        "target": 30,
        "kpi": {"name": "median wait", "unit": "minutes", "direction": "at-most"},
    }
    return objective_create(**{**body, **overrides})


def outcome_create(objective_id: str, **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/scenarios/{id}/outcomes: January 2027's value of ``objective_id``."""
    return {
        "objective_id": objective_id,
        "period_start": "2027-01-01T00:00:00Z",
        "period_end": "2027-02-01T00:00:00Z",
        "value": 27.5,
        "grant_ids": [],
        "dataset_ids": [],
        "note": "Median of the booking service's visits.",
        "corrects": None,
        **overrides,
    }


def verdict_create(reasons: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/scenarios/{id}/verdicts on Q1 2027."""
    return {
        "period_start": "2027-01-01T00:00:00Z",
        "period_end": "2027-04-01T00:00:00Z",
        "result": "partly",
        "reasons": reasons,
        "report": {"checkpoint": None, "digest": "0" * 64},
        **overrides,
    }


def evaluation_report(
    scenario_id: str, checkpoint: dict[str, Any] | None, objectives: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """An evaluation report in the shape quality answers (GET /quality/v1/scenarios/{id}/evaluation), Q1 2027."""
    return {
        "scenario": {"id": scenario_id, "name": scenario_id, "stage": "live"},
        "period": {"start": "2027-01-01T00:00:00Z", "end": "2027-04-01T00:00:00Z"},
        "computed_at": "2027-04-01T08:00:00Z",
        "checkpoint": checkpoint,
        "objectives": objectives,
        "inputs": [],
        "outcomes": {"reported": 0, "periods": [], "none_reported": True},
        "verdict": None,
        "digest": "f" * 64,
        **overrides,
    }
