"""A catalog with the example datasets, two scenarios and a grant of one of them (market
inspections to the one-stop visit), for the evaluation's service functions (SQLite, the real audit
chain)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.catalog.access import requests, scenarios
from services.catalog.access.context import Collaborators
from services.catalog.access.schemas import AccessRequestApproval, AccessRequestCreate, ScenarioCreate
from services.catalog.access.settings import AccessSettings
from services.catalog.examples import load_examples
from services.common.auth import Principal, PrincipalKind
from tests.factories import EXAMPLES, access_request_create, scenario_create
from tests.support.catalog_units import ADMIN, CatalogWorld, new_catalog_world

NOW = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)
VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "One-stop visit")
COMMUNITY = Principal("ai-community", PrincipalKind.scenario, "AI + community")
OPERATOR = Principal("city-ops", PrincipalKind.operator, "Operator")
EVALUATOR = Principal("city-evaluator", PrincipalKind.evaluator, "Evaluator")
MARKET = Principal("market-publisher", PrincipalKind.department, "MP", "market-supervision")
EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@dataclass
class EvaluationWorld:
    catalog: CatalogWorld
    grant_id: str
    """The one-stop visit's grant of market.inspections."""
    community_grant_id: str
    """The AI + community scenario's grant of market.inspections."""

    def ctx(self, actor: Principal) -> Collaborators:
        return Collaborators(
            session=self.catalog.session,
            events=self.catalog.events,
            audit=self.catalog.auditor(actor),
            settings=AccessSettings(),
            clock=lambda: NOW,
        )


def _grant(ctx: Collaborators, scenario: Principal) -> str:
    request = requests.create_access_request(
        ctx, actor=scenario, payload=AccessRequestCreate.model_validate(access_request_create())
    )
    approved = requests.approve_access_request(
        ctx, actor=ADMIN, request_id=request.id, approval=AccessRequestApproval(reason="fits")
    )
    assert approved.grant_id is not None
    return approved.grant_id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[EvaluationWorld]:
    catalog = new_catalog_world(tmp_path)
    load_examples(catalog.session, events=catalog.events, directory=EXAMPLES)
    ctx = Collaborators(
        catalog.session, catalog.events, catalog.auditor(ADMIN), AccessSettings(), lambda: NOW
    )
    for scenario in (VISIT, COMMUNITY):
        scenarios.create_scenario(ctx, payload=ScenarioCreate.model_validate(scenario_create(scenario.id)))
    grant_id, community_grant_id = _grant(ctx, VISIT), _grant(ctx, COMMUNITY)
    catalog.session.commit()
    try:
        yield EvaluationWorld(catalog, grant_id, community_grant_id)
    finally:
        catalog.session.close()


def schema_errors(event_type: str, states: list[dict[str, Any]]) -> list[str]:
    """What the JSON Schema of ``event_type`` under contracts/events/ finds wrong in ``states``."""
    schemas = [json.loads(path.read_text()) for path in EVENT_SCHEMAS.glob("catalog.*.json")]
    [schema] = [schema for schema in schemas if schema["x-citybase-event-type"] == event_type]
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [error.message for state in states for error in validator.iter_errors(state)]
