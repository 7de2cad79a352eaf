"""Contract versions: registered in order, listed oldest first, the current one read back, and a
publisher's registration authorized and audited before its document is even parsed."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog import exceptions
from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.contracts import service as contracts
from services.catalog.contracts.odcs import MAX_CONTRACT_BYTES, ContractTooLarge
from services.catalog.datasets.service import get_dataset
from services.common import catalog_events
from services.common.auth import Principal
from services.common.problems import Forbidden
from tests.factories import evolve_contract, example_contract
from tests.support.catalog_units import ADMIN, HEALTH, TRANSPORT, CatalogWorld

BUS = "transport.bus-arrivals"


def _add_optional(document: dict[str, Any]) -> None:
    document["schema"][0]["properties"].append({"name": "crowding", "logicalType": "number"})


def _ctx(world: CatalogWorld, actor: Principal = TRANSPORT) -> Collaborators:
    return Collaborators(world.session, world.events, world.auditor(actor), AccessSettings())


def test_versions_are_listed_oldest_first_and_the_current_one_is_the_last(catalog: CatalogWorld) -> None:
    first = example_contract(BUS, "1.0.0")
    second = evolve_contract(first, "1.1.0", _add_optional)
    for document in (first, second):
        contracts.add_contract(catalog.session, events=catalog.events, document=document, created_by="t")
    listed = contracts.list_versions(catalog.session, dataset_id=BUS)
    assert [(v.version, v.created_by) for v in listed] == [("1.0.0", "t"), ("1.1.0", "t")]
    current = contracts.get_version(catalog.session, dataset_id=BUS)
    assert current.version == "1.1.0" and current.sequence == 2
    assert "crowding" in current.record_schema["properties"]
    assert contracts.get_version(catalog.session, dataset_id=BUS, version="1.0.0").sequence == 1
    assert get_dataset(catalog.session, BUS).current_version == "1.1.0"
    announced = catalog.announced(catalog_events.CONTRACT_VERSION)
    assert [payload["version"] for payload in announced] == ["1.0.0", "1.1.0"]
    state = contracts.contract_state(current)
    assert {key: announced[-1][key] for key in state if key != "created_at"} == {
        key: value for key, value in state.items() if key != "created_at"
    }
    with pytest.raises(exceptions.ContractVersionNotFound):
        contracts.get_version(catalog.session, dataset_id=BUS, version="9.9.9")
    with pytest.raises(exceptions.VersionNotHigher):
        contracts.add_version(
            catalog.session, events=catalog.events, dataset_id=BUS, document=first, created_by="t"
        )


def test_a_check_reports_breaking_changes_without_storing_anything(catalog: CatalogWorld) -> None:
    first = example_contract(BUS, "1.0.0")
    contracts.add_contract(catalog.session, events=catalog.events, document=first, created_by="t")

    def add_required(document: dict[str, Any]) -> None:
        required = {"name": "driver_badge", "logicalType": "string", "required": True}
        document["schema"][0]["properties"].append(required)

    breaking = evolve_contract(first, "1.1.0", add_required).encode()
    report = contracts.check_contract(catalog.session, dataset_id=BUS, document=breaking)
    assert not report.compatible and report.checked_against == ["1.0.0"]
    assert [(c.rule, c.against_version) for c in report.breaking_changes] == [
        ("field-added-required", "1.0.0")
    ]
    assert [v.version for v in contracts.list_versions(catalog.session, dataset_id=BUS)] == ["1.0.0"]


def test_a_publisher_registers_the_next_version_of_its_own_dataset_only(catalog: CatalogWorld) -> None:
    first = example_contract(BUS, "1.0.0")
    read = contracts.register_contract(_ctx(catalog), actor=TRANSPORT, document=first.encode())
    assert (read.dataset_id, read.version) == (BUS, "1.0.0")
    catalog.session.commit()  # the request's unit of work
    second = evolve_contract(first, "1.1.0", _add_optional).encode()
    health = _ctx(catalog, HEALTH)
    with pytest.raises(Forbidden) as forbidden:
        contracts.register_version(health, actor=HEALTH, dataset_id=BUS, document=second)
    health.audit.failed(forbidden.value)
    refused = catalog.audit_entries()[-1]
    assert (refused.action, refused.outcome, refused.department_id) == (
        "contract_version.register",
        "denied",
        "transport-bureau",
    )
    read = contracts.register_version(_ctx(catalog, ADMIN), actor=ADMIN, dataset_id=BUS, document=second)
    entry = catalog.audit_entries()[-1]
    assert (entry.action, entry.resource_id, entry.actor_id) == (
        "contract_version.register",
        f"{BUS}@1.1.0",
        "admin",
    )


def test_an_oversized_document_is_refused_after_the_attempt_is_named(catalog: CatalogWorld) -> None:
    ctx = _ctx(catalog)
    with pytest.raises(ContractTooLarge) as refused:
        contracts.register_contract(ctx, actor=TRANSPORT, document=b"x" * (MAX_CONTRACT_BYTES + 1))
    ctx.audit.failed(refused.value)
    [entry] = catalog.audit_entries()
    assert (entry.action, entry.resource_type, entry.outcome) == (
        "contract_version.register",
        "contract",
        "denied",
    )
    assert entry.details["status"] == 413
    with pytest.raises(ContractTooLarge):
        contracts.check_contract(catalog.session, dataset_id=BUS, document=b"x" * (MAX_CONTRACT_BYTES + 1))
