"""Quality's read model of platform.catalog, fed with events shaped as the catalog publishes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.common.bus import Message, OutgoingRecord
from services.quality.projection import QualityCatalog
from tests.evaluation_factories import (
    checkpoint_state,
    evaluation_records,
    objective_state,
    outcome_state,
    scenario_state,
    verdict_state,
)
from tests.factories import catalog_records, contract_state, dataset_event_state, grant_state

SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "events"


def apply(catalog: QualityCatalog, records: list[OutgoingRecord]) -> None:
    for offset, record in enumerate(records):
        catalog.apply(Message(record.topic, 0, offset, record.key, record.value, record.headers, 0))


@pytest.mark.parametrize(
    ("schema", "state"),
    [
        ("catalog.contract-version.json", contract_state("health.shapes")),
        ("catalog.dataset.json", dataset_event_state("health.shapes")),
        ("catalog.grant.json", grant_state("one-stop", "health.shapes")),
    ],
)
def test_the_factories_publish_what_the_catalog_publishes(schema: str, state: dict[str, Any]) -> None:
    Draft202012Validator(json.loads((SCHEMAS / schema).read_text(encoding="utf-8"))).validate(state)


def test_datasets_contracts_and_grants_are_projected() -> None:
    catalog = QualityCatalog()
    contract = contract_state("health.projected")
    apply(catalog, catalog_records(contracts=[contract], datasets=[dataset_event_state("health.projected")]))
    version = catalog.current_contract("health.projected")
    assert version is not None
    assert version.primary_key == ("visit_id",)
    assert version.event_time_fields == ("registered_at",)
    assert version.frequency_s == 900 and version.latency_s == 300
    assert version.sensitive_fields["patient_id"]["kind"] == "hash"
    dataset = catalog.dataset("health.projected")
    assert dataset is not None and dataset.domain_id == "health" and dataset.scored


def test_a_grant_keeps_its_highest_version_and_expires_by_the_clock() -> None:
    catalog = QualityCatalog()
    now = datetime.now(UTC)
    grant = grant_state(
        "one-stop",
        "health.g",
        version=3,
        valid_from=now - timedelta(days=2),
        expires_at=now + timedelta(days=1),
    )
    apply(catalog, catalog_records(grants=[grant, {**grant, "version": 2, "status": "revoked"}]))
    kept = catalog.grant(grant["id"])
    assert kept is not None and kept.version == 3 and kept.status == "active"
    assert kept.active_at(now)
    assert not kept.active_at(now + timedelta(days=2))  # expired, whatever the status says
    assert not kept.active_at(now - timedelta(days=3))  # not valid yet


def test_tombstones_remove_and_unreadable_records_are_skipped() -> None:
    catalog = QualityCatalog()
    apply(catalog, catalog_records(datasets=[dataset_event_state("health.gone")]))
    apply(catalog, [OutgoingRecord("platform.catalog", None, b"dataset:health.gone")])
    assert catalog.dataset("health.gone") is None
    apply(catalog, [OutgoingRecord("platform.catalog", b"{}", b"x", (("ce_id", b"1"),))])
    assert catalog.skipped == 1


def test_what_an_evaluation_reads_is_projected() -> None:
    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    objective = objective_state(
        "one-stop", "delivered-records", start=start, end=end, datasets=["a.b"], target=5
    )
    outcome_objective = objective_state("one-stop", "outcome", start=start, end=end, target=3)
    first = outcome_state(outcome_objective, 2, start=start, end=end)
    catalog = QualityCatalog()
    apply(
        catalog,
        catalog_records(grants=[grant_state("one-stop", "a.b", purpose_category="research")])
        + evaluation_records(
            scenarios=[scenario_state("one-stop", stage="building")],
            objectives=[
                objective,
                {**objective, "version": 2, "status": "withdrawn"},
                {**objective, "version": 1},
                outcome_objective,
            ],
            outcomes=[first, {**first, "superseded_by": "out_000000000002"}],
            verdicts=[verdict_state("one-stop", start=start, end=end)],
            checkpoints=[checkpoint_state(9), checkpoint_state(4)],
        ),
    )
    scenario = catalog.scenario("one-stop")
    assert scenario is not None and scenario.stage == "building" and scenario.past_proposed
    [kept, _outcome_kind] = sorted(catalog.objectives("one-stop"), key=lambda o: o.kind)
    assert (kept.version, kept.status, kept.target, kept.datasets) == (2, "withdrawn", 5, ("a.b",))
    [outcome] = catalog.outcomes("one-stop")
    assert outcome.superseded_by == "out_000000000002" and outcome.value == 2
    assert [v.read["result"] for v in catalog.verdicts("one-stop")] == ["meets"]
    point = catalog.checkpoint()
    assert point is not None and point.seq == 9  # a replayed older checkpoint does not go back
    assert catalog.grants()[0].purpose_category == "research"
    apply(catalog, [OutgoingRecord("platform.catalog", None, f"objective:{objective['id']}".encode())])
    assert [o.kind for o in catalog.objectives("one-stop")] == ["outcome"]
