"""Quality's read model of ``platform.catalog``: datasets, contract versions, grants, API keys,
and what an evaluation reads: scenarios (their stage), objectives, outcomes, verdicts and the
latest audit checkpoint.

Each contract version keeps what scoring needs: the record schema (its fields, which are
required, which one holds the event time), the primary key, the sensitive fields, the SLA and the
expectation suite, compiled to a GX suite once, the first time a window of that version is scored.
Grants come as ``city.citybase.catalog.grant.v1`` events (whole state, keyed ``grant:<id>``).
Written by the read model's thread only, read from any: entries are replaced whole, never mutated.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import catalog_events
from services.common.auth import KeyRing
from services.common.bus import Message
from services.common.clock import aware
from services.common.envelope import CloudEvent, EnvelopeError, event_time_fields, parse_time
from services.quality.expectations import CompiledSuite, GreatExpectations

log = logging.getLogger(__name__)

GRANT = "city.citybase.catalog.grant.v1"
"""Grant events on platform.catalog (published by the catalog's access workflow)."""

SCORED_STATUSES = frozenset({"active", "deprecated"})


@dataclass(frozen=True, slots=True)
class DatasetState:
    id: str
    status: str
    domain_id: str
    owner_department_id: str
    classification: str
    title: str
    current_version: str | None
    created_at: datetime | None

    @property
    def scored(self) -> bool:
        return self.status in SCORED_STATUSES


@dataclass(frozen=True, slots=True)
class GrantState:
    id: str
    scenario_id: str
    dataset_id: str
    status: str
    version: int
    valid_from: datetime | None
    expires_at: datetime | None
    purpose: str
    purpose_category: str = "other"

    def active_at(self, moment: datetime) -> bool:
        if self.status != "active":
            return False
        if self.valid_from is not None and moment < self.valid_from:
            return False
        return self.expires_at is None or moment < self.expires_at


@dataclass(frozen=True, slots=True)
class ScenarioState:
    id: str
    name: str
    stage: str

    @property
    def past_proposed(self) -> bool:
        return self.stage != "proposed"


OUTCOME_KIND = "outcome"
DELIVERY_KINDS = frozenset({"dataset-use", "delivered-records", "active-days"})


@dataclass(frozen=True, slots=True)
class ObjectiveState:
    """What a scenario set out to achieve over a period (``city.citybase.catalog.objective.v1``)."""

    id: str
    scenario_id: str
    title: str
    kind: str
    datasets: tuple[str, ...]
    target: float | None
    kpi: dict[str, Any] | None
    period_start: datetime
    period_end: datetime
    status: str
    version: int
    set_at: datetime | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.period_start < end and self.period_end > start


@dataclass(frozen=True, slots=True)
class OutcomeState:
    """A KPI value a scenario reported for one reporting period; a correction supersedes it."""

    id: str
    scenario_id: str
    objective_id: str
    period_start: datetime
    period_end: datetime
    value: float
    grant_ids: tuple[str, ...]
    dataset_ids: tuple[str, ...]
    corrects: str | None
    superseded_by: str | None
    reported_at: datetime | None

    def inside(self, start: datetime, end: datetime) -> bool:
        return start <= self.period_start and self.period_end <= end


@dataclass(frozen=True, slots=True)
class VerdictState:
    """An evaluator's verdict on a scenario for a period; ``read`` is the catalog's whole state."""

    id: str
    scenario_id: str
    period_start: datetime
    period_end: datetime
    recorded_at: datetime | None
    read: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """A checkpoint of the catalog's audit chain, as published on platform.catalog."""

    seq: int
    hash: str
    at: str | None


class ContractVersion:
    """One version of a dataset's contract, as quality scores it."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.dataset_id: str = payload["dataset_id"]
        self.version: str = payload["version"]
        self.sequence = int(payload.get("sequence") or 0)
        self.fingerprint: str = payload.get("fingerprint") or ""
        schema = payload.get("record_schema")
        self.record_schema: dict[str, Any] = schema if isinstance(schema, dict) else {}
        properties = self.record_schema.get("properties")
        self.properties: dict[str, dict[str, Any]] = (
            {name: sub if isinstance(sub, dict) else {} for name, sub in properties.items()}
            if isinstance(properties, dict)
            else {}
        )
        self.required: tuple[str, ...] = tuple(
            name for name in self.record_schema.get("required") or () if isinstance(name, str)
        )
        self.primary_key: tuple[str, ...] = tuple(str(name) for name in payload.get("primary_key") or ())
        sensitive = payload.get("sensitive_fields")
        self.sensitive_fields: dict[str, Any] = sensitive if isinstance(sensitive, dict) else {}
        sla: dict[str, Any] = payload["sla"] if isinstance(payload.get("sla"), dict) else {}
        self.frequency_s = _seconds(sla.get("frequency_s"))
        self.latency_s = _seconds(sla.get("latency_s"))
        self.expectation_items: Any = payload.get("expectation_suite")
        self.event_time_fields = self._event_time_fields()
        self._compiled: CompiledSuite | None = None
        self._lock = threading.Lock()

    def _event_time_fields(self) -> tuple[str, ...]:
        """The fields that say when the event happened, the first with a value winning: those the
        contract marks ``citybase.eventTime`` by rank, else the first required date-time, else the
        first date-time."""
        marked = event_time_fields(self.record_schema)
        if marked:
            return marked
        times = [name for name, sub in self.properties.items() if sub.get("format") == "date-time"]
        required = [name for name in times if name in self.required]
        return tuple(required or times)[:1]

    def suite(self, engine: GreatExpectations) -> CompiledSuite:
        """The compiled GX suite, built on first use, exactly once per version."""
        compiled = self._compiled
        if compiled is None:
            with self._lock:
                compiled = self._compiled
                if compiled is None:
                    compiled = self._compiled = engine.compile(
                        self.dataset_id, self.version, self.expectation_items
                    )
                    if compiled.problems:
                        log.warning(
                            "suite of %s %s: %s", self.dataset_id, self.version, "; ".join(compiled.problems)
                        )
        return compiled


def _seconds(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        else None
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _required_time(value: Any) -> datetime:
    moment = _time(value)
    if moment is None:
        raise ValueError(f"not a time: {value!r}")
    return moment


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_time(value)
    except ValueError:
        return None
    return aware(moment)


class QualityCatalog:
    """Datasets, contract versions, grants and the key ring, from ``platform.catalog``."""

    def __init__(self, keyring: KeyRing | None = None) -> None:
        self.keyring = keyring or KeyRing()
        self._datasets: dict[str, DatasetState] = {}
        self._versions: dict[str, dict[str, ContractVersion]] = {}
        self._grants: dict[str, GrantState] = {}
        self._scenarios: dict[str, ScenarioState] = {}
        self._objectives: dict[str, ObjectiveState] = {}
        self._outcomes: dict[str, OutcomeState] = {}
        self._verdicts: dict[str, VerdictState] = {}
        self._checkpoint: CheckpointState | None = None
        self._lock = threading.Lock()
        self.skipped = 0

    def apply(self, message: Message) -> None:
        try:
            self.keyring.apply(message)
            if message.value is None:
                self._tombstone(message.key)
                return
            event = CloudEvent.from_message(message)
        except (EnvelopeError, KeyError, TypeError, ValueError) as error:
            self.skipped += 1
            log.warning("skipping unreadable record %s@%s: %s", message.topic, message.offset, error)
            return
        if not isinstance(event.data, dict):
            return
        try:
            if event.type == catalog_events.DATASET:
                self._apply_dataset(event.data)
            elif event.type == catalog_events.CONTRACT_VERSION:
                self._apply_contract(event.data)
            elif event.type == GRANT:
                self._apply_grant(event.data)
            elif event.type == catalog_events.SCENARIO:
                self._apply_scenario(event.data)
            elif event.type == catalog_events.OBJECTIVE:
                self._apply_objective(event.data)
            elif event.type == catalog_events.OUTCOME:
                self._apply_outcome(event.data)
            elif event.type == catalog_events.VERDICT:
                self._apply_verdict(event.data)
            elif event.type == catalog_events.AUDIT_CHECKPOINT:
                self._apply_checkpoint(event.data)
        except (KeyError, TypeError, ValueError) as error:
            self.skipped += 1
            log.warning("skipping malformed %s event at offset %s: %s", event.type, message.offset, error)

    def _apply_dataset(self, payload: dict[str, Any]) -> None:
        dataset = DatasetState(
            id=payload["id"],
            status=payload["status"],
            domain_id=payload.get("domain_id") or payload["id"].split(".", 1)[0],
            owner_department_id=payload.get("owner_department_id") or "",
            classification=payload.get("classification") or "open",
            title=payload.get("title") or payload["id"],
            current_version=payload.get("current_version"),
            created_at=_time(payload.get("created_at")),
        )
        with self._lock:
            self._datasets[dataset.id] = dataset

    def _apply_contract(self, payload: dict[str, Any]) -> None:
        dataset_id, version = payload["dataset_id"], payload["version"]
        known = self._versions.get(dataset_id, {}).get(version)
        if known is not None and known.fingerprint == (payload.get("fingerprint") or ""):
            return  # a replay of what we have: keep its compiled suite
        contract = ContractVersion(payload)
        with self._lock:
            self._versions.setdefault(dataset_id, {})[version] = contract

    def _apply_grant(self, payload: dict[str, Any]) -> None:
        grant = GrantState(
            id=str(payload["id"]),
            scenario_id=str(payload["scenario_id"]),
            dataset_id=str(payload["dataset_id"]),
            status=str(payload.get("status") or "active"),
            version=int(payload.get("version") or 1),
            valid_from=_time(payload.get("valid_from")),
            expires_at=_time(payload.get("expires_at")),
            purpose=str(payload.get("purpose") or ""),
            purpose_category=str(payload.get("purpose_category") or "other"),
        )
        with self._lock:
            known = self._grants.get(grant.id)
            if known is None or grant.version >= known.version:  # versions only go up
                self._grants[grant.id] = grant

    def _apply_scenario(self, payload: dict[str, Any]) -> None:
        scenario = ScenarioState(
            id=str(payload["id"]),
            name=str(payload.get("name") or payload["id"]),
            stage=str(payload.get("stage") or "live"),
        )
        with self._lock:
            self._scenarios[scenario.id] = scenario

    def _apply_objective(self, payload: dict[str, Any]) -> None:
        kpi = payload.get("kpi")
        objective = ObjectiveState(
            id=str(payload["id"]),
            scenario_id=str(payload["scenario_id"]),
            title=str(payload.get("title") or payload["id"]),
            kind=str(payload["kind"]),
            datasets=tuple(str(d) for d in payload.get("datasets") or ()),
            target=_number(payload.get("target")),
            kpi=dict(kpi) if isinstance(kpi, dict) else None,
            period_start=_required_time(payload["period_start"]),
            period_end=_required_time(payload["period_end"]),
            status=str(payload.get("status") or "active"),
            version=int(payload.get("version") or 1),
            set_at=_time(payload.get("set_at")),
        )
        with self._lock:
            known = self._objectives.get(objective.id)
            if known is None or objective.version >= known.version:
                self._objectives[objective.id] = objective

    def _apply_outcome(self, payload: dict[str, Any]) -> None:
        value = _number(payload["value"])
        if value is None:
            raise ValueError(f"outcome value is not a number: {payload['value']!r}")
        outcome = OutcomeState(
            id=str(payload["id"]),
            scenario_id=str(payload["scenario_id"]),
            objective_id=str(payload["objective_id"]),
            period_start=_required_time(payload["period_start"]),
            period_end=_required_time(payload["period_end"]),
            value=value,
            grant_ids=tuple(str(g) for g in payload.get("grant_ids") or ()),
            dataset_ids=tuple(str(d) for d in payload.get("dataset_ids") or ()),
            corrects=payload.get("corrects") or None,
            superseded_by=payload.get("superseded_by") or None,
            reported_at=_time(payload.get("reported_at")),
        )
        with self._lock:
            self._outcomes[outcome.id] = outcome

    def _apply_verdict(self, payload: dict[str, Any]) -> None:
        verdict = VerdictState(
            id=str(payload["id"]),
            scenario_id=str(payload["scenario_id"]),
            period_start=_required_time(payload["period_start"]),
            period_end=_required_time(payload["period_end"]),
            recorded_at=_time(payload.get("recorded_at")),
            read=dict(payload),
        )
        with self._lock:
            self._verdicts[verdict.id] = verdict

    def _apply_checkpoint(self, payload: dict[str, Any]) -> None:
        seq, digest, at = payload.get("seq"), payload.get("hash"), payload.get("at")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
            raise ValueError("a checkpoint names its seq and hash")
        point = CheckpointState(seq=seq, hash=digest, at=at if isinstance(at, str) else None)
        with self._lock:
            # The latest the chain reached: a replay of older checkpoints never goes back.
            if self._checkpoint is None or point.seq >= self._checkpoint.seq:
                self._checkpoint = point

    def _tombstone(self, key: bytes | None) -> None:
        kind, _, entity = (key or b"").decode("utf-8", "replace").partition(":")
        with self._lock:
            if kind == "dataset":
                self._datasets.pop(entity, None)
            elif kind == "contract":
                dataset_id, _, version = entity.rpartition(":")
                self._versions.get(dataset_id, {}).pop(version, None)
            elif kind == "grant":
                self._grants.pop(entity, None)
            elif kind == "scenario":
                self._scenarios.pop(entity, None)
            elif kind == "objective":
                self._objectives.pop(entity, None)
            elif kind == "outcome":
                self._outcomes.pop(entity, None)
            elif kind == "verdict":
                self._verdicts.pop(entity, None)

    # --- reading (any thread) ---------------------------------------------------------------

    def dataset(self, dataset_id: str) -> DatasetState | None:
        return self._datasets.get(dataset_id)

    def datasets(self) -> list[DatasetState]:
        with self._lock:
            return sorted(self._datasets.values(), key=lambda d: d.id)

    def contract(self, dataset_id: str, version: str | None) -> ContractVersion | None:
        if version is None:
            return None
        return self._versions.get(dataset_id, {}).get(version)

    def current_contract(self, dataset_id: str) -> ContractVersion | None:
        dataset = self._datasets.get(dataset_id)
        return self.contract(dataset_id, dataset.current_version) if dataset is not None else None

    def grants(self) -> list[GrantState]:
        with self._lock:
            return sorted(self._grants.values(), key=lambda g: g.id)

    def grant(self, grant_id: str) -> GrantState | None:
        return self._grants.get(grant_id)

    def scenario(self, scenario_id: str) -> ScenarioState | None:
        return self._scenarios.get(scenario_id)

    def scenarios(self) -> list[ScenarioState]:
        with self._lock:
            return sorted(self._scenarios.values(), key=lambda s: s.id)

    def objectives(self, scenario_id: str | None = None) -> list[ObjectiveState]:
        """Objectives (of one scenario when given), withdrawn ones included, in the order they were
        set (as the catalog lists them)."""
        with self._lock:
            found = [o for o in self._objectives.values() if scenario_id in (None, o.scenario_id)]
        return sorted(found, key=lambda o: (o.set_at or o.period_start, o.id))

    def outcomes(self, scenario_id: str | None = None) -> list[OutcomeState]:
        """Outcome reports (of one scenario when given), superseded ones included."""
        with self._lock:
            found = [o for o in self._outcomes.values() if scenario_id in (None, o.scenario_id)]
        return sorted(found, key=lambda o: (o.period_start, o.reported_at or o.period_start, o.id))

    def verdicts(self, scenario_id: str) -> list[VerdictState]:
        """The scenario's verdicts, the latest recorded last."""
        with self._lock:
            found = [v for v in self._verdicts.values() if v.scenario_id == scenario_id]
        return sorted(found, key=lambda v: (v.recorded_at or v.period_start, v.id))

    def checkpoint(self) -> CheckpointState | None:
        """The latest audit checkpoint the catalog published that this read model has seen."""
        return self._checkpoint
