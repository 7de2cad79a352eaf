"""Every event type the catalog publishes on platform.catalog has its JSON Schema under
contracts/events/, and every catalog schema there describes a type the catalog publishes."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from services.common import catalog_events

EVENT_SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "events"


def test_every_catalog_event_type_has_a_json_schema_and_every_schema_a_type() -> None:
    schemas = [json.loads(path.read_text()) for path in sorted(EVENT_SCHEMAS.glob("catalog.*.json"))]
    described = {schema["x-citybase-event-type"] for schema in schemas}
    assert sorted(catalog_events.EVENT_TYPES - described) == [], "write their schemas in contracts/events/"
    assert sorted(described - catalog_events.EVENT_TYPES) == []
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


def test_the_evaluation_events_are_keyed_by_their_entity() -> None:
    assert (
        catalog_events.entity_key(catalog_events.OBJECTIVE, "obj_0123456789ab")
        == b"objective:obj_0123456789ab"
    )
    assert (
        catalog_events.entity_key(catalog_events.OUTCOME, "out_0123456789ab") == b"outcome:out_0123456789ab"
    )
    assert (
        catalog_events.entity_key(catalog_events.VERDICT, "ver_0123456789ab") == b"verdict:ver_0123456789ab"
    )
