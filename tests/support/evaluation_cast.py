"""The people and deliveries of the console's evaluation stories, made through the platform's API:
the console's principals, an evaluator, and records of market inspections delivered to the
scenario under a grant, so that its delivery objectives have something to measure."""

from __future__ import annotations

import time

from tests.support.http import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform
from tests.support.principals import APPROVER, SCENARIO, populate

EVALUATOR = "city-evaluator"
DATASET = "market.inspections"
FIELDS = ["inspection_id", "district", "result"]
DELIVERED = 30
FAST = {
    **SHORT_QUALITY_WINDOWS,
    "CITYBASE_FEEDS_LAG_INTERVAL_S": "0.3",
    "CITYBASE_QUALITY_UTILIZATION_REFRESH_S": "0.3",
}


def evaluation_cast(platform: Platform) -> None:
    """The console's people, an evaluator, and ``DELIVERED`` records of market inspections
    delivered to the scenario (its subscription's id in ``platform.context``)."""
    populate(platform)
    platform.principal(EVALUATOR, "evaluator")
    asked = platform.request_access(SCENARIO, dataset_id=DATASET, fields=FIELDS)
    platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{asked['id']}/approve",
        platform.keys[APPROVER],
        json={"reason": "street-level results"},
    )
    key = platform.keys[SCENARIO]

    def subscribed() -> str | None:
        answer = platform.call(
            "POST", "/feeds/v1/subscriptions", key, json={"dataset": DATASET, "start": "earliest"}
        )
        return str(answer.json()["id"]) if answer.status_code == 201 else None

    found: list[str] = []
    assert wait_until(lambda: bool((s := subscribed()) and not found.append(s)), 15), "no grant in feeds"
    platform.demo_traffic(DATASET, DELIVERED)
    got, deadline = 0, time.monotonic() + 20
    while got < DELIVERED and time.monotonic() < deadline:
        batch = platform.ok(
            "GET",
            f"/feeds/v1/subscriptions/{found[0]}/records",
            key,
            params={"max": DELIVERED - got, "wait": 1},
        )
        got += len(batch["records"])
    assert got == DELIVERED, f"{got} records delivered"
    platform.context["subscription_id"] = found[0]
