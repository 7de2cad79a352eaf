"""Ingest's read model of ``platform.catalog``: datasets, contract versions, API keys.

One :class:`~services.common.readmodel.ReadModel` per process replays the compacted topic into a
:class:`CatalogProjection` and then follows it, so that a record is checked without asking the
catalog anything. The topic is shared by the whole platform and grows with it; the projection
keeps only what ingest needs per dataset, and compiles a contract version's validator once, the
first time a record needs it (a replay of thousands of versions costs no compilation), or at once
when the version arrives live (:meth:`CatalogProjection.warm`), so that the first batch after a
contract change does not pay for it either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.common import catalog_events
from services.common.auth import KeyRing
from services.common.bus import Message
from services.common.envelope import EnvelopeError, event_time_fields
from services.ingest.validation import RecordValidator, field_types

log = logging.getLogger(__name__)

WRITABLE_STATUSES = frozenset({"active", "deprecated"})
"""A deprecated dataset still takes records (its publishers are migrating); draft and retired do not."""


@dataclass(frozen=True, slots=True)
class DatasetState:
    id: str
    status: str
    owner_department_id: str
    current_version: str | None

    @property
    def writable(self) -> bool:
        return self.status in WRITABLE_STATUSES


class ContractVersion:
    """One version of a dataset's contract, as ingest uses it."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.dataset_id: str = payload["dataset_id"]
        self.version: str = payload["version"]
        self.sequence: int = int(payload.get("sequence") or 0)
        self.fingerprint: str = payload.get("fingerprint") or ""
        self.record_schema: dict[str, Any] = payload.get("record_schema") or {}
        self.has_schema = bool(self.record_schema)
        self.event_time_fields = event_time_fields(self.record_schema)
        """The fields that give a record's CloudEvents ``time`` (none: the ingest time)."""
        """False for a contract without a schema (roles, SLA only): its stream stays closed."""
        self.primary_key: tuple[str, ...] = tuple(payload.get("primary_key") or ())
        retention = (payload.get("sla") or {}).get("retention_s")
        self.retention_ms: int | None = int(retention * 1000) if isinstance(retention, (int, float)) else None
        partitions = (payload.get("sla") or {}).get("partitions")
        self.partitions: int | None = (
            partitions
            if isinstance(partitions, int) and not isinstance(partitions, bool) and partitions > 0
            else None
        )
        """The partitions the contract asks for (``citybase.partitions`` or its expected rate)."""
        self._validator: RecordValidator | None = None
        self._compile_lock = threading.Lock()
        self.field_types = field_types(self.record_schema)
        self.required = frozenset(self.record_schema.get("required") or ())

    @property
    def validator(self) -> RecordValidator:
        """The compiled validator, built on first use, exactly once."""
        validator = self._validator
        if validator is None:
            with self._compile_lock:
                validator = self._validator
                if validator is None:
                    validator = self._validator = RecordValidator(self.record_schema)
                    if validator.fallback_reason:
                        log.warning(
                            "contract %s %s is validated with jsonschema: it %s",
                            self.dataset_id,
                            self.version,
                            validator.fallback_reason,
                        )
        return validator

    @property
    def compiled(self) -> bool:
        return self._validator is not None


DatasetsChanged = Callable[[], None]


class CatalogProjection:
    """Datasets and contract versions by id, and the key ring, from ``platform.catalog``.

    Written by the read model's thread only; read from any thread. Each entry is replaced whole,
    never mutated, so a reader sees either the old or the new state of a dataset.
    """

    def __init__(self, keyring: KeyRing | None = None) -> None:
        self.keyring = keyring or KeyRing()
        self._datasets: dict[str, DatasetState] = {}
        self._versions: dict[str, dict[str, ContractVersion]] = {}
        self._lock = threading.Lock()
        self._listeners: list[DatasetsChanged] = []
        self.skipped = 0

    def on_datasets_changed(self, listener: DatasetsChanged) -> None:
        self._listeners.append(listener)

    # --- applying events (the read model's thread) -----------------------------------------

    def apply(self, message: Message) -> None:
        try:
            self.keyring.apply(message)
            event = catalog_events.read_catalog_event(message)
        except (EnvelopeError, KeyError, TypeError, ValueError) as error:
            # platform.catalog is shared: one unreadable record must not stop the read model.
            self.skipped += 1
            log.warning("skipping unreadable record %s@%s: %s", message.topic, message.offset, error)
            return
        if event is None:
            if message.value is None:  # else a type of event ingest does not read
                self._tombstone(message.key)
            return
        event_type, payload = event
        try:
            if event_type == catalog_events.DATASET:
                self._apply_dataset(payload)
            elif event_type == catalog_events.CONTRACT_VERSION:
                self._apply_contract(payload)
        except (KeyError, TypeError, ValueError) as error:
            self.skipped += 1
            log.warning("skipping malformed %s event at offset %s: %s", event_type, message.offset, error)

    def _apply_dataset(self, payload: dict[str, Any]) -> None:
        dataset = DatasetState(
            id=payload["id"],
            status=payload["status"],
            owner_department_id=payload["owner_department_id"],
            current_version=payload.get("current_version"),
        )
        previous = self._datasets.get(dataset.id)
        with self._lock:
            self._datasets[dataset.id] = dataset
        if _takes_records(previous) != _takes_records(dataset):
            self._notify()

    def _apply_contract(self, payload: dict[str, Any]) -> None:
        dataset_id, version = payload["dataset_id"], payload["version"]
        known = self._versions.get(dataset_id, {}).get(version)
        if known is not None and known.fingerprint == payload.get("fingerprint"):
            return  # a replay of what we have: keep its compiled validator
        contract = ContractVersion(payload)
        with self._lock:
            self._versions.setdefault(dataset_id, {})[version] = contract

    def _tombstone(self, key: bytes | None) -> None:
        text = key.decode("utf-8", "replace") if key else ""
        kind, _, entity = text.partition(":")
        if kind == "dataset":
            with self._lock:
                removed = self._datasets.pop(entity, None)
            if removed is not None:
                self._notify()
        elif kind == "contract":
            dataset_id, _, version = entity.rpartition(":")
            with self._lock:
                self._versions.get(dataset_id, {}).pop(version, None)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("a datasets-changed listener failed")

    def warm(self, message: Message) -> None:
        """Compile the validator of a contract version that arrived live (a change listener)."""
        try:
            event = catalog_events.read_catalog_event(message)
        except (EnvelopeError, ValueError):
            return
        if event is not None and event[0] == catalog_events.CONTRACT_VERSION:
            contract = self.contract(event[1].get("dataset_id", ""), event[1].get("version", ""))
            if contract is not None:
                _ = contract.validator

    # --- reading (any thread) ---------------------------------------------------------------

    def dataset(self, dataset_id: str) -> DatasetState | None:
        return self._datasets.get(dataset_id)

    def contract(self, dataset_id: str, version: str) -> ContractVersion | None:
        return self._versions.get(dataset_id, {}).get(version)

    def versions(self, dataset_id: str) -> list[str]:
        """Known versions of a dataset, oldest first."""
        with self._lock:
            contracts = list(self._versions.get(dataset_id, {}).values())
        return [c.version for c in sorted(contracts, key=lambda c: c.sequence)]

    def writable_datasets(self) -> list[str]:
        """Ids of the datasets that take records (and so have a raw topic to consume)."""
        with self._lock:
            return sorted(d.id for d in self._datasets.values() if _takes_records(d))

    def __len__(self) -> int:
        return len(self._datasets)


def _takes_records(dataset: DatasetState | None) -> bool:
    return dataset is not None and dataset.writable and dataset.current_version is not None
