"""The events the catalog publishes on ``platform.catalog``: the contract between the catalog
and the read models of ingest, feeds and quality.

Each event carries the whole current state of one entity (not a delta), keyed by entity, on a
compacted topic: replaying the topic from the beginning yields the current state of everything.
A deleted entity is a tombstone (value None) under the same key. The JSON Schemas of the payloads
live in ``contracts/events/``.
"""

from __future__ import annotations

from typing import Any

from services.common import topics
from services.common.bus import Message, OutgoingRecord
from services.common.envelope import CloudEvent, encode_json

TOPIC = topics.CATALOG
TOPIC_SPEC = topics.CATALOG_SPEC
SOURCE = "/catalog"

DEPARTMENT = "city.citybase.catalog.department.v1"
DATASET = "city.citybase.catalog.dataset.v1"
CONTRACT_VERSION = "city.citybase.catalog.contract-version.v1"
PRINCIPAL = "city.citybase.catalog.principal.v1"
API_KEY = "city.citybase.catalog.api-key.v1"
AUDIT_CHECKPOINT = "city.citybase.catalog.audit-checkpoint.v1"
SCENARIO = "city.citybase.catalog.scenario.v1"
ACCESS_REQUEST = "city.citybase.catalog.access-request.v1"
GRANT = "city.citybase.catalog.grant.v1"
OPPORTUNITY_LIST = "city.citybase.catalog.opportunity-list.v1"
APPLICANT = "city.citybase.catalog.applicant.v1"
PROPOSAL = "city.citybase.catalog.proposal.v1"
NEED = "city.citybase.catalog.need.v1"
NEED_NOTICE = "city.citybase.catalog.need-notice.v1"
"""A need's followers told of a new answer, a fulfilment or a comment (keyed by the notice)."""
OBJECTIVE = "city.citybase.catalog.objective.v1"
"""What a scenario commits to achieve in a period, measured by quality or reported by the scenario."""
OUTCOME = "city.citybase.catalog.outcome.v1"
"""A value a scenario reports for an objective of kind ``outcome``; corrected by a new one."""
VERDICT = "city.citybase.catalog.verdict.v1"
"""An evaluator's verdict on a scenario's period, one reason per active objective."""

_KIND_BY_TYPE = {
    DEPARTMENT: "department",
    DATASET: "dataset",
    CONTRACT_VERSION: "contract",
    PRINCIPAL: "principal",
    API_KEY: "apikey",
    AUDIT_CHECKPOINT: "auditcheckpoint",
    SCENARIO: "scenario",
    ACCESS_REQUEST: "accessrequest",
    GRANT: "grant",
    OPPORTUNITY_LIST: "opportunitylist",
    APPLICANT: "applicant",
    PROPOSAL: "proposal",
    NEED: "need",
    NEED_NOTICE: "neednotice",
    OBJECTIVE: "objective",
    OUTCOME: "outcome",
    VERDICT: "verdict",
}
EVENT_TYPES = frozenset(_KIND_BY_TYPE)
"""Every event type the catalog publishes; each has a JSON Schema under ``contracts/events/``."""


def entity_key(event_type: str, entity_id: str) -> bytes:
    """The compaction key: one entity, one key, whatever its state."""
    return f"{_KIND_BY_TYPE[event_type]}:{entity_id}".encode()


def catalog_record(event_type: str, entity_id: str, state: dict[str, Any]) -> OutgoingRecord:
    """The record announcing the current ``state`` of one entity."""
    event = CloudEvent(type=event_type, source=SOURCE, subject=entity_id, data=state)
    return event.to_record(TOPIC, entity_key(event_type, entity_id), value=encode_json(state))


def read_catalog_event(message: Message) -> tuple[str, dict[str, Any]] | None:
    """(event type, state) of a catalog record, or None for a tombstone or a foreign record."""
    if message.value is None:
        return None
    event = CloudEvent.from_message(message)
    if event.type not in _KIND_BY_TYPE or not isinstance(event.data, dict):
        return None
    return event.type, event.data
