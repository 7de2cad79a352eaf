"""Quality's response models: every route has one, and they keep the JSON the queries build."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from pydantic import ValidationError

from services.quality.api import router
from services.quality.schemas import HistoryPoint, QualityRankings, RollingView


def test_every_quality_route_documents_its_response() -> None:
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    assert routes
    assert [route.path for route in routes if route.response_model is None] == []
    app = FastAPI()
    app.include_router(router)
    documented = {
        path: operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        for path, operation in app.openapi()["paths"].items()
    }
    assert len(documented) == len(routes)
    assert all(schema != {"type": "object"} and schema for schema in documented.values()), documented


def test_a_model_writes_the_json_the_query_built() -> None:
    point = {
        "at": datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
        "windows": 3,
        "records": 120,
        "scores": {"validity": 100, "completeness": 97.5, "overall": None},
        "min_overall": 90.0,
    }
    written = HistoryPoint.model_validate(point).model_dump(mode="json", by_alias=True)
    assert json.dumps(written) == json.dumps(jsonable_encoder(point)), "same keys, same order"
    assert written["at"] == "2026-11-01T08:30:00+00:00", "a time keeps its isoformat, not pydantic's Z"
    assert isinstance(written["scores"]["validity"], int), "an integer score stays an integer"


def test_rankings_tell_a_dataset_from_a_group() -> None:
    body = {
        "by": "department",
        "items": [
            {
                "key": "health-commission",
                "datasets": 2,
                "scored_datasets": 1,
                "overall": 79.5,
                "worst_dataset": "health.bad",
                "open_breaches": 0,
                "rank": 1,
            }
        ],
    }
    assert QualityRankings.model_validate(body).model_dump(mode="json", by_alias=True) == jsonable_encoder(
        body
    )


def test_a_key_the_model_does_not_declare_is_an_error_not_a_silent_drop() -> None:
    view = {
        "since": datetime(2026, 11, 1, tzinfo=UTC),
        "windows": 0,
        "records": 0,
        "duplicates": 0,
        "scores": {},
    }
    RollingView.model_validate(view)
    with pytest.raises(ValidationError):
        RollingView.model_validate({**view, "lag": 3})
