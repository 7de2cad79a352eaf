"""The platform's promise end to end, in one process as ``citybase up`` runs it: a department
publishes, a scenario asks, an approver grants, feeds delivers only the granted fields with the
sensitive one masked, the delivery is in the audit trail, and a revocation stops delivery."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from citybase.demo import RecordGenerator
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import primary_key
from services.common.worker import wait_until
from tests.factories import EXAMPLES, access_request_create, scenario_create
from tests.support.platform import Platform, in_process

DATASET = "market.inspections"
GRANTED = ["inspection_id", "district", "result", "inspector_phone"]


@pytest.fixture
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(tmp_path_factory.mktemp("delivery"), key_name="e2e") as platform:
        yield platform


def _records(count: int) -> list[dict[str, Any]]:
    contract = parse_contract((EXAMPLES / "datasets" / DATASET / "1.1.0.yaml").read_text(encoding="utf-8"))
    generator = RecordGenerator(
        record_schema(contract), DATASET, random.Random(11), primary_key=primary_key(contract)
    )
    return generator.records(count)


def test_a_grant_decides_what_leaves_and_a_revocation_stops_it(platform: Platform) -> None:
    publisher = platform.principal("market-publisher", "department", "market-supervision")
    approver = platform.principal("market-approver", "approver", "market-supervision")
    platform.ok("POST", "/catalog/v1/scenarios", json=scenario_create("ai-community"))
    scenario = str(
        platform.ok("POST", "/catalog/v1/scenarios/ai-community/keys", json={"name": "e2e"})["key"]
    )
    platform.wait_for_key(scenario)

    # No grant, no subscription.
    refused = platform.call(
        "POST", "/feeds/v1/subscriptions", scenario, json={"dataset": DATASET, "start": "earliest"}
    )
    assert refused.status_code == 403, refused.text

    asked = platform.ok(
        "POST", "/catalog/v1/access-requests", scenario, json=access_request_create(DATASET, GRANTED)
    )
    decided = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{asked['id']}/approve",
        approver,
        json={"reason": "street-level results"},
    )
    grant_id = decided["grant_id"]
    grant = platform.ok("GET", f"/catalog/v1/grants/{grant_id}", scenario)
    assert grant["masking"]["inspector_phone"]["kind"] == "partial"  # the contract's rule, by default

    published = _records(20)
    answer = platform.ok("POST", f"/ingest/v1/datasets/{DATASET}/records", publisher, json=published)
    assert answer["accepted"] == 20, answer

    def subscribed() -> dict[str, Any] | None:
        response = platform.call(
            "POST", "/feeds/v1/subscriptions", scenario, json={"dataset": DATASET, "start": "earliest"}
        )
        return response.json() if response.status_code == 201 else None

    assert wait_until(lambda: subscribed() is not None, 10.0), "the grant never reached feeds"
    subscription = platform.ok("GET", "/feeds/v1/subscriptions", scenario)["items"][0]
    delivered: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(delivered) < 20 and time.monotonic() < deadline:
        batch = platform.ok(
            "GET", f"/feeds/v1/subscriptions/{subscription['id']}/records", scenario, params={"wait": 1}
        )
        delivered += batch["records"]
        if batch["records"]:
            platform.ok(
                "POST",
                f"/feeds/v1/subscriptions/{subscription['id']}/ack",
                scenario,
                json={"cursor": batch["cursor"]},
            )
    assert len(delivered) == 20

    originals = {record["inspection_id"]: record for record in published}
    for record in delivered:
        data = record["data"]
        assert set(data) <= set(GRANTED), data  # licence number, inspected_at: never
        original = originals[data["inspection_id"]]
        phone = original.get("inspector_phone")
        if phone:
            assert data["inspector_phone"] != phone
            assert re.fullmatch(r"\d{3}\*+\d{4}", data["inspector_phone"]), data["inspector_phone"]
            assert phone not in str(record)

    # The deliveries are on record, visible to the owning department.
    assert wait_until(
        lambda: bool(
            platform.ok("GET", "/catalog/v1/audit", publisher, params={"action": "feed.deliver"})["items"]
        ),
        10.0,
    )

    platform.ok("POST", f"/catalog/v1/grants/{grant_id}/revoke", approver, json={"reason": "scenario ended"})
    started = time.monotonic()

    def stopped() -> bool:
        response = platform.call(
            "GET", f"/feeds/v1/subscriptions/{subscription['id']}/records", scenario, params={"wait": 0}
        )
        return response.status_code == 403

    assert wait_until(stopped, 5.0)
    assert time.monotonic() - started < 1.5, "a revocation must stop delivery within about a second"
