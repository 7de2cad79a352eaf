"""Who may publish what: the owning department or an admin, datasets that take records, the
contract version a batch claims."""

from __future__ import annotations

import pytest

from services.common.auth import Principal, PrincipalKind
from services.common.problems import Problem
from services.ingest.exceptions import (
    ContractVersionMismatch,
    DatasetNotFound,
    DatasetNotWritable,
    NotDatasetPublisher,
    StreamClosed,
)
from services.ingest.projection import CatalogProjection
from services.ingest.publishers import (
    authorize_publisher,
    check_claimed_version,
    current_contract,
    writable_dataset,
)
from tests.support.ingest_units import (
    ADMIN,
    DATASET,
    OWNER,
    PUBLISHER,
    contract_event,
    dataset_event,
    load,
)


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (PUBLISHER, True),
        (ADMIN, True),
        (Principal("other", PrincipalKind.department, "o", department_id="health-commission"), False),
        (Principal("approver", PrincipalKind.approver, "a", department_id=OWNER), False),
        (Principal("scenario", PrincipalKind.scenario, "s"), False),
    ],
)
def test_only_the_owning_department_or_an_admin_publishes(
    projection: CatalogProjection, principal: Principal, allowed: bool
) -> None:
    dataset = projection.dataset(DATASET)
    assert dataset is not None
    if allowed:
        authorize_publisher(principal, dataset)
    else:
        with pytest.raises(NotDatasetPublisher) as raised:
            authorize_publisher(principal, dataset)
        assert raised.value.status == 403


@pytest.mark.parametrize(
    ("status", "error"),
    [("active", None), ("deprecated", None), ("draft", DatasetNotWritable), ("retired", DatasetNotWritable)],
)
def test_draft_and_retired_datasets_take_no_records(
    projection: CatalogProjection, status: str, error: type[Problem] | None
) -> None:
    load(projection, dataset_event(status=status))
    if error is None:
        assert writable_dataset(projection, DATASET).status == status
    else:
        with pytest.raises(error) as raised:
            writable_dataset(projection, DATASET)
        assert raised.value.status == 409
    with pytest.raises(DatasetNotFound):
        writable_dataset(projection, "transport.nothing")


def test_a_batch_claiming_another_version_is_a_409(projection: CatalogProjection) -> None:
    contract = projection.contract(DATASET, "1.0.0")
    assert contract is not None
    check_claimed_version(projection, contract, None)
    check_claimed_version(projection, contract, "1.0.0")
    with pytest.raises(ContractVersionMismatch) as raised:
        check_claimed_version(projection, contract, "1.1.0")
    assert raised.value.status == 409
    assert raised.value.body()["current_version"] == "1.0.0"


def _schemaless_version(projection: CatalogProjection) -> None:
    """Version 1.1.0 of the dataset, made current and from a contract without a schema (roles, SLA only)."""
    event_type, entity_id, payload = contract_event(version="1.1.0", sequence=2)
    payload.update(record_schema={}, primary_key=[], fingerprint="0" * 64)
    load(projection, (event_type, entity_id, payload), dataset_event(current_version="1.1.0"))


def test_a_contract_without_a_schema_keeps_the_stream_closed_with_a_409(
    projection: CatalogProjection,
) -> None:
    _schemaless_version(projection)
    dataset = writable_dataset(projection, DATASET)
    with pytest.raises(StreamClosed) as raised:
        current_contract(projection, dataset)
    assert raised.value.status == 409
    assert "has no schema" in (raised.value.detail or "")
    assert raised.value.body()["type"].endswith("stream-closed")
