"""Ingest's read model of platform.catalog: datasets, versions and keys; tombstones and foreign
records do not stop it."""

from __future__ import annotations

from services.common import catalog_events
from services.common.bus import Message, OutgoingRecord
from services.ingest.projection import CatalogProjection
from tests.support.ingest_units import (
    DATASET,
    PUBLISHER,
    api_key_event,
    as_message,
    catalog_message,
    contract_event,
    dataset_event,
    load,
)


def test_the_projection_follows_datasets_versions_and_keys() -> None:
    projection = CatalogProjection()
    changes: list[None] = []
    projection.on_datasets_changed(lambda: changes.append(None))
    principal_event, key_event, key = api_key_event(PUBLISHER)
    load(projection, contract_event(), dataset_event(), principal_event, key_event)
    assert projection.keyring.authenticate(key).id == PUBLISHER.id
    assert projection.writable_datasets() == [DATASET]
    assert len(changes) == 1
    load(projection, dataset_event(status="retired"))
    assert projection.writable_datasets() == []
    assert len(changes) == 2
    load(projection, dataset_event(status="retired", current_version="1.0.0"))
    assert len(changes) == 2, "a change that does not open or close the dataset is no change"


def test_tombstones_and_foreign_records_do_not_stop_the_read_model() -> None:
    projection = CatalogProjection()
    load(projection, contract_event(), dataset_event())
    foreign = [
        Message(catalog_events.TOPIC, 0, 10, b"x", b"not an event", (), 0),
        Message(
            catalog_events.TOPIC,
            0,
            11,
            f"dataset:{DATASET}".encode(),
            b"{}",
            (("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"another.type"), ("ce_specversion", b"1.0")),
            0,
        ),
        catalog_message(catalog_events.DATASET, "broken", {"id": "broken"}, 12),
        as_message(OutgoingRecord(catalog_events.TOPIC, None, f"contract:{DATASET}:1.0.0".encode()), 13),
        as_message(OutgoingRecord(catalog_events.TOPIC, None, f"dataset:{DATASET}".encode()), 14),
    ]
    for message in foreign[:3]:
        projection.apply(message)
    assert projection.dataset(DATASET) is not None, "an event of another type is no tombstone"
    assert projection.skipped == 2
    for message in foreign[3:]:
        projection.apply(message)
    assert projection.dataset(DATASET) is None
    assert projection.contract(DATASET, "1.0.0") is None
