"""The catalog shows each dataset's latest quality score, from what quality announces on
platform.quality (SQLite and PostgreSQL, embedded bus)."""

from __future__ import annotations

from typing import Any

from services.common.envelope import CloudEvent, encode_json
from services.common.quality_events import SCORE, SLA_BREACH, UTILIZATION
from services.common.quality_events import TOPIC as QUALITY_TOPIC
from services.common.worker import wait_until
from tests.factories import ingest_contract
from tests.support.services import CatalogHarness


def _announce(catalog: CatalogHarness, event_type: str, data: dict[str, Any]) -> None:
    event = CloudEvent(type=event_type, source="/quality", subject=data["dataset_id"], data=data)
    record = event.to_record(QUALITY_TOPIC, data["dataset_id"].encode(), value=encode_json(data))
    catalog.runtime.bus.producer().publish([record])


def _score(dataset_id: str, overall: float, closed_at: str, **scores: float | None) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "window_id": 7,
        "kind": "window",
        "contract_version": "1.0.0",
        "closed_at": closed_at,
        "records": 10_000,
        "scores": {
            "validity": 99.0,
            "completeness": 95.0,
            "uniqueness": 100.0,
            "conformity": 97.5,
            "timeliness": 80.0,
            **scores,
        },
        "overall": overall,
        "previous_overall": None,
        "problems": [],
    }


def _quality(catalog: CatalogHarness, dataset_id: str) -> dict[str, Any] | None:
    response = catalog.call("GET", f"/v1/datasets/{dataset_id}")
    assert response.status_code == 200, response.text
    quality: dict[str, Any] | None = response.json()["quality"]
    return quality


def test_the_dataset_carries_its_latest_score_and_open_breaches(catalog: CatalogHarness) -> None:
    catalog.department("transit", ["transport"])
    contract = ingest_contract("transport.scored", "transit")
    assert catalog.call("POST", "/v1/contracts", content=contract).status_code == 201
    assert _quality(catalog, "transport.scored") is None

    _announce(catalog, SCORE, _score("transport.scored", 92.4, "2026-11-24T10:01:00+00:00"))
    assert wait_until(lambda: _quality(catalog, "transport.scored") is not None, 10.0)
    quality = _quality(catalog, "transport.scored")
    assert quality is not None
    assert quality["overall"] == 92.4
    assert quality["scores"]["completeness"] == 95.0
    assert quality["open_breaches"] == []

    breach = {
        "dataset_id": "transport.scored",
        "kind": "freshness",
        "state": "open",
        "opened_at": "2026-11-24T10:05:00+00:00",
        "resolved_at": None,
    }
    _announce(catalog, SLA_BREACH, breach)
    # An older window arriving late changes nothing; a newer one replaces the score.
    _announce(catalog, SCORE, _score("transport.scored", 40.0, "2026-11-24T09:00:00+00:00"))
    _announce(catalog, SCORE, _score("transport.scored", 61.0, "2026-11-24T10:06:00+00:00", timeliness=0.0))

    def settled() -> bool:
        current = _quality(catalog, "transport.scored") or {}
        return current.get("overall") == 61.0 and current.get("open_breaches") == ["freshness"]

    assert wait_until(settled, 10.0), _quality(catalog, "transport.scored")
    _announce(
        catalog, SLA_BREACH, {**breach, "state": "resolved", "resolved_at": "2026-11-24T10:09:00+00:00"}
    )
    assert wait_until(lambda: (_quality(catalog, "transport.scored") or {}).get("open_breaches") == [], 10.0)


def test_scores_of_unknown_datasets_are_ignored(catalog: CatalogHarness) -> None:
    _announce(catalog, SCORE, _score("transport.elsewhere", 50.0, "2026-11-24T10:01:00+00:00"))
    catalog.department("transit", ["transport"])
    contract = ingest_contract("transport.after", "transit")
    assert catalog.call("POST", "/v1/contracts", content=contract).status_code == 201
    _announce(catalog, SCORE, _score("transport.after", 88.0, "2026-11-24T10:01:00+00:00"))
    assert wait_until(lambda: _quality(catalog, "transport.after") is not None, 10.0)
    assert catalog.call("GET", "/v1/datasets/transport.elsewhere").status_code == 404


def _utilization(dataset_id: str, score: float, computed_at: str) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "score": score,
        "active_grants": 3,
        "grants_used": 2,
        "active_subscribers": 2,
        "records_last_day": 1200,
        "last_use": "2026-12-07T10:00:00+00:00",
        "computed_at": computed_at,
    }


def test_the_dataset_carries_its_latest_utilization_with_a_key_and_without(catalog: CatalogHarness) -> None:
    catalog.department("transit", ["transport"])
    contract = ingest_contract("transport.used", "transit")
    assert catalog.call("POST", "/v1/contracts", content=contract).status_code == 201
    assert catalog.call("GET", "/v1/datasets/transport.used").json()["utilization"] is None

    def utilization() -> dict[str, Any] | None:
        found: dict[str, Any] | None = catalog.call("GET", "/v1/datasets/transport.used").json()[
            "utilization"
        ]
        return found

    _announce(catalog, UTILIZATION, _utilization("transport.used", 61.5, "2026-12-07T10:05:00+00:00"))
    assert wait_until(lambda: utilization() is not None, 10.0)
    # An older announcement arriving late changes nothing; a newer one replaces it.
    _announce(catalog, UTILIZATION, _utilization("transport.used", 12.0, "2026-12-07T10:00:00+00:00"))
    _announce(catalog, UTILIZATION, _utilization("transport.used", 74.0, "2026-12-07T10:10:00+00:00"))
    assert wait_until(lambda: (utilization() or {}).get("score") == 74.0, 10.0), utilization()
    shown = utilization()
    assert shown is not None
    assert (shown["active_subscribers"], shown["grants_used"], shown["records_last_day"]) == (2, 2, 1200)
    public = catalog.client.get("/v1/datasets/transport.used")
    assert public.status_code == 200 and public.json()["utilization"]["score"] == 74.0
