"""The principals, keys, grants and subscriptions suites call the platform as, made through its API.

- :func:`cast`: every role of the authorization table (docs/authorization.md), as a principal the
  rows concern and as one they do not, with a grant, a pending request, a revocable key and a
  subscription; the hostile suites use the same cast.
- :func:`populate`: the people of the console's stories.
"""

from __future__ import annotations

from services.common.worker import wait_until
from tests.factories import objective_create, opening_create, proposal_create
from tests.support.platform import Platform

APPROVER = "market-approver"
PUBLISHER = "market-publisher"
OPERATOR = "city-ops"
SCENARIO = "one-stop-visit"
OTHER_SCENARIO = "ai-community"


def cast(platform: Platform) -> None:
    """The principals every row of the table is called as (two vetted organisations and an
    evaluator among them), a grant of the scenario's, a pending request, a revocable key, a
    subscription, a published opportunity list with an opening of market supervision, a proposal
    of ``city-lab`` and an objective of the scenario's; their ids in ``platform.context``."""
    platform.principal("market-publisher", "department", "market-supervision")
    platform.principal("health-publisher", "department", "health-commission")
    platform.principal("market-approver", "approver", "market-supervision")
    platform.principal("health-approver", "approver", "health-commission")
    platform.principal("city-ops", "operator")
    platform.principal("city-evaluator", "evaluator")
    platform.scenario("one-stop-visit")
    platform.scenario("ai-community")
    request_id = platform.pending_request()
    granted = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{platform.pending_request()}/approve",
        platform.keys["market-approver"],
        json={"reason": "serves residents"},
    )
    revocable = platform.ok(
        "POST", "/catalog/v1/principals/market-publisher/keys", json={"name": "to revoke"}
    )
    platform.organisation("city-lab")
    platform.organisation("other-lab")
    platform.ok("POST", "/catalog/v1/opportunity-lists", json={"id": "matrix-list", "title": "Matrix list"})
    platform.ok(
        "POST",
        "/catalog/v1/opportunity-lists/matrix-list/openings",
        json=opening_create(
            owner_department_id="market-supervision", datasets=["market.inspections"], domains=[]
        ),
    )
    [opening] = platform.ok("POST", "/catalog/v1/opportunity-lists/matrix-list/publish")["openings"]
    proposal = platform.ok(
        "POST",
        f"/catalog/v1/openings/{opening['id']}/proposals",
        platform.keys["city-lab"],
        json=proposal_create(
            datasets=[{"dataset_id": "market.inspections", "fields": ["inspection_id", "result"]}]
        ),
    )
    platform.context.update(
        list_id="matrix-list",
        opening_id=str(opening["id"]),
        proposal_id=str(proposal["id"]),
        applicant_id="city-lab",
        dataset_id="market.inspections",
        version="1.0.0",
        department_id="market-supervision",
        principal_id="market-publisher",
        prefix=str(revocable["prefix"]),
        scenario_id="one-stop-visit",
        request_id=request_id,
        grant_id=str(granted["grant_id"]),
    )
    # A need of the scenario's in the market's domain (so the market's department answers it), and
    # a comment on it for the moderation row.
    need = platform.ok(
        "POST",
        "/catalog/v1/needs",
        platform.keys["one-stop-visit"],
        json={
            "title": "Inspection results near hospitals",
            "domains": ["market"],
            "data_wanted": "Inspection results of pharmacies near hospitals.",
            "purpose": "Tell patients which pharmacies passed inspection.",
            "purpose_category": "public_service",
            "serves": "Outpatients",
            "frequency": "medium",
            "urgency": "normal",
        },
    )["need"]
    comment = platform.ok(
        "POST", f"/catalog/v1/needs/{need['id']}/comments", platform.keys["ai-community"], json={"body": "+1"}
    )
    platform.context.update(need_id=str(need["id"]), comment_id=str(comment["id"]))
    objective = platform.ok(
        "POST", "/catalog/v1/scenarios/one-stop-visit/objectives", json=objective_create()
    )
    platform.context["objective_id"] = str(objective["id"])
    # A subscription of the scenario's, once its grant has reached feeds. The table pauses it
    # before the stream row, so that a stream answers at once (409) instead of streaming.
    subscribe = lambda: platform.call(  # noqa: E731
        "POST",
        "/feeds/v1/subscriptions",
        platform.keys["one-stop-visit"],
        json={"dataset": "market.inspections"},
    )
    assert wait_until(lambda: subscribe().status_code == 201, 15.0), "the grant did not reach feeds"
    subscriptions = platform.ok("GET", "/feeds/v1/subscriptions", platform.keys["one-stop-visit"])["items"]
    platform.context["subscription_id"] = str(subscriptions[0]["id"])


def populate(platform: Platform) -> None:
    """The principals of the console's stories, each with a key."""
    platform.principal(APPROVER, "approver", "market-supervision")
    platform.principal(PUBLISHER, "department", "market-supervision")
    platform.principal(OPERATOR, "operator")
    platform.scenario(SCENARIO)
    platform.scenario(OTHER_SCENARIO)
