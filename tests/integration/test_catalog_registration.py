"""Registering contract versions on SQLite and PostgreSQL: a transitive check reads every earlier
version's record schema, from the process's cache or from the database, with the same verdict."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog.app import SPEC
from services.catalog.contracts import service as contracts_service
from services.catalog.contracts.odcs import parse_contract
from services.catalog.datasets.service import change_dataset, get_dataset
from services.catalog.domains.service import ensure_city_domains
from services.catalog.events import CatalogEvents
from services.catalog.models import Department, outbox
from services.catalog.schemas import DatasetUpdate
from services.common import db
from services.common.outbox import Outbox
from tests.factories import evolve_contract, example_contract

BUS = "transport.bus-arrivals"
EVENTS = CatalogEvents(Outbox(outbox))


def _add_optional(name: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["schema"][0]["properties"].append(
            {"name": name, "logicalType": "number", "description": "optional, added later"}
        )

    return change


def _add_required(document: dict[str, Any]) -> None:
    document["schema"][0]["properties"].append(
        {"name": "driver_badge", "logicalType": "string", "required": True, "description": "required"}
    )


def test_a_transitive_check_reads_the_same_history_from_the_cache_and_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_db_engine(database_url)
    db.migrate(database_url, SPEC.migrations, SPEC.version_table, engine)  # type: ignore[arg-type]
    sessions = db.session_factory(engine)
    first = example_contract(BUS, "1.0.0")
    second = evolve_contract(first, "1.2.0", _add_optional("crowding"))
    third = evolve_contract(second, "1.3.0", _add_optional("temperature"))
    breaking = evolve_contract(third, "2.0.0", _add_required)
    try:
        with db.unit_of_work(sessions) as session:
            ensure_city_domains(session)
            session.add(
                Department(id="transport-bureau", name="Transport", kind="bureau", domains=["transport"])
            )
            session.flush()
            contracts_service.add_contract(session, events=EVENTS, document=first, created_by="test")
            change_dataset(
                session,
                events=EVENTS,
                dataset_id=BUS,
                payload=DatasetUpdate(compatibility_mode="FULL_TRANSITIVE"),
            )
        for document in (second, third):
            with db.unit_of_work(sessions) as session:
                version = contracts_service.add_contract(
                    session, events=EVENTS, document=document, created_by="test"
                )
        assert version.sequence == 3

        def report() -> dict[str, Any]:
            with db.unit_of_work(sessions) as session:
                dataset = get_dataset(session, BUS)
                contract = parse_contract(breaking)
                return contracts_service.check_version(
                    session, dataset=dataset, contract=contract
                ).model_dump(mode="json")

        warm = report()
        monkeypatch.setattr(contracts_service, "RECORD_SCHEMAS", contracts_service.RecordSchemaCache())
        cold = report()
        assert warm == cold
        assert cold["checked_against"] == ["1.0.0", "1.2.0", "1.3.0"]
        assert [(c["against_version"], c["rule"]) for c in cold["breaking_changes"]] == [
            ("1.0.0", "field-added-required"),
            ("1.2.0", "field-added-required"),
            ("1.3.0", "field-added-required"),
        ]
        # A compatible version is accepted against the history read back from the database.
        fourth = evolve_contract(third, "1.4.0", _add_optional("humidity"))
        with db.unit_of_work(sessions) as session:
            assert (
                contracts_service.add_contract(
                    session, events=EVENTS, document=fourth, created_by="t"
                ).sequence
                == 4
            )
    finally:
        engine.dispose()


def test_the_cache_keys_a_schema_by_its_document_and_forgets_the_least_recently_used() -> None:
    cache = contracts_service.RecordSchemaCache(size=2)
    cache.put(("a.b", "1.0.0", "f1"), {"title": "one"})
    assert cache.get(("a.b", "1.0.0", "f2")) is None  # another document under the same version
    cache.put(("a.b", "1.1.0", "f3"), {"title": "two"})
    assert cache.get(("a.b", "1.0.0", "f1")) == {"title": "one"}  # now the most recently used
    cache.put(("a.b", "1.2.0", "f4"), {"title": "three"})
    assert cache.get(("a.b", "1.1.0", "f3")) is None
    assert cache.get(("a.b", "1.0.0", "f1")) == {"title": "one"}
    assert cache.get(("a.b", "1.2.0", "f4")) == {"title": "three"}
