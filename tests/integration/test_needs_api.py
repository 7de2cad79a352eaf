"""The needs board through the catalog's HTTP API, on SQLite and PostgreSQL: two scenarios file and
join one need, the owning department commits, a contract naming the need registers and the need
closes as fulfilled with a draft access request for each scenario, every step on the audit trail
and on platform.catalog; and every refusal a precise problem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from services.catalog import examples as catalog_examples
from services.catalog.runtime import CatalogRuntime
from services.common import catalog_events, db
from services.common.worker import wait_until
from tests.factories import EXAMPLES, evolve_contract, example_contract, need_create, scenario_create
from tests.support.services import CatalogHarness

PROBLEM = "application/problem+json"
EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@dataclass
class Keys:
    visit: str
    community: str
    health: str
    health_approver: str
    market: str
    operator: str


@pytest.fixture
def keys(catalog: CatalogHarness) -> Keys:
    """The example catalog, two scenarios with keys, the health commission's publisher and
    approver, the market's approver and an operator."""
    with db.unit_of_work(catalog.runtime.sessions) as session:
        catalog_examples.load_examples(
            session, events=catalog.runtime.service_as(CatalogRuntime).events, directory=EXAMPLES
        )
    scenario_keys = []
    for scenario_id in ("one-stop-visit", "ai-community"):
        assert catalog.call("POST", "/v1/scenarios", json=scenario_create(scenario_id)).status_code == 201
        issued = catalog.call("POST", f"/v1/scenarios/{scenario_id}/keys", json={"name": "ci"})
        assert issued.status_code == 201, issued.text
        catalog.wait_for_key(issued.json()["key"])
        scenario_keys.append(issued.json()["key"])
    return Keys(
        visit=scenario_keys[0],
        community=scenario_keys[1],
        health=catalog.principal_key("health-publisher", "department", "health-commission"),
        health_approver=catalog.principal_key("health-approver", "approver", "health-commission"),
        market=catalog.principal_key("market-approver", "approver", "market-supervision"),
        operator=catalog.principal_key("city-ops", "operator"),
    )


def _need(**overrides: Any) -> dict[str, Any]:
    return need_create(**overrides)


def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + slug), body
    return body


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _bed_contract(need_ids: Any) -> str:
    """A new dataset of the health commission whose contract names the needs it answers."""

    def change(document: dict[str, Any]) -> None:
        document["id"] = "health.bed-availability"
        document["name"] = "Free hospital beds"
        document["customProperties"].append({"property": "citybase.needs", "value": need_ids})
        for schema_object in document["schema"]:
            schema_object["physicalName"] = "ds.health.bed-availability"

    return evolve_contract(example_contract("health.outpatient-visits"), "1.0.0", change)


def _platform_catalog(catalog: CatalogHarness) -> list[tuple[str, dict[str, Any]]]:
    relay = catalog.runtime.service_as(CatalogRuntime).outbox
    assert wait_until(lambda: relay.pending() == 0, timeout_s=10)
    events: list[tuple[str, dict[str, Any]]] = []
    consumer = catalog.runtime.bus.consumer(None, [catalog_events.TOPIC])
    try:
        while messages := consumer.poll(0.5, 1000):
            for message in messages:
                event = catalog_events.read_catalog_event(message)
                assert event is not None
                events.append(event)
    finally:
        consumer.close()
    return events


def test_two_scenarios_file_and_join_a_need_that_a_contract_fulfils(
    catalog: CatalogHarness, keys: Keys
) -> None:
    filed = _ok(catalog.call("POST", "/v1/needs", keys.visit, json=_need()), 201)
    need = filed["need"]
    need_id = need["id"]
    assert (need["status"], need["department_id"], filed["similar"]) == ("open", "health-commission", [])

    # The second organisation starts to file the same need, is shown the first, and joins it.
    second = _ok(
        catalog.call(
            "POST",
            "/v1/needs",
            keys.community,
            json=_need(title="Hospital beds free now", purpose="Tell residents where a bed is free."),
        ),
        201,
    )
    assert second["similar"][0]["id"] == need_id
    joined = _ok(
        catalog.call(
            "POST",
            f"/v1/needs/{need_id}/join",
            keys.community,
            json={"purpose": "Tell residents where a bed is free."},
        )
    )
    assert [r["principal_id"] for r in joined["requesters"]] == ["one-stop-visit", "ai-community"]
    assert joined["followers"] == 2

    due = (date.today() + timedelta(days=30)).isoformat()
    committed = _ok(
        catalog.call(
            "POST",
            f"/v1/needs/{need_id}/commit",
            keys.health,
            json={"commit_by": due, "dataset_id": "health.bed-availability", "note": "From the ward system."},
        )
    )
    assert (committed["status"], committed["commit_by"], committed["overdue"]) == ("committed", due, False)

    registered = catalog.call(
        "POST",
        "/v1/contracts",
        keys.health,
        content=_bed_contract([need_id]),
        headers={"content-type": "application/yaml"},
    )
    assert registered.status_code == 201, registered.text

    fulfilled = _ok(catalog.call("GET", f"/v1/needs/{need_id}", keys.visit))
    assert fulfilled["status"] == "fulfilled"
    assert fulfilled["answer"]["fulfilled_by"] == {
        "dataset_id": "health.bed-availability",
        "version": "1.0.0",
    }
    drafts = fulfilled["answer"]["drafts"]
    assert drafts.keys() == {"one-stop-visit", "ai-community"}
    for scenario_id, key in (("one-stop-visit", keys.visit), ("ai-community", keys.community)):
        found = _ok(catalog.call("GET", "/v1/access-requests", key, params={"status": "draft"}))["items"]
        assert [(r["id"], r["dataset_id"], r["origin"], r["scenario_id"]) for r in found] == [
            (drafts[scenario_id], "health.bed-availability", f"need:{need_id}", scenario_id)
        ]

    steps = _ok(catalog.call("GET", f"/v1/needs/{need_id}/history", keys.community))
    assert [(s["action"], s["status"]) for s in steps] == [
        ("need.file", "open"),
        ("need.join", "open"),
        ("need.commit", "committed"),
        ("need.fulfil", "fulfilled"),
    ]
    trail = _ok(catalog.call("GET", "/v1/audit", params={"resource_id": need_id, "limit": 500}))["items"]
    assert sorted(entry["action"] for entry in trail) == sorted(
        ["need.file", "need.join", "need.commit", "need.fulfil"]
    )
    assert {entry["outcome"] for entry in trail} == {"success"}
    prepared = _ok(
        catalog.call("GET", "/v1/audit", params={"action": "access_request.prepare", "limit": 500})
    )
    assert {entry["resource_id"] for entry in prepared["items"]} == set(drafts.values())

    schemas = {
        schema["x-citybase-event-type"]: Draft202012Validator(schema)
        for schema in (json.loads(path.read_text()) for path in EVENT_SCHEMAS.glob("catalog.need*.json"))
    }
    assert schemas.keys() == {catalog_events.NEED, catalog_events.NEED_NOTICE}
    asyncapi = _ok(catalog.call("GET", "/v1/asyncapi", keys.visit))
    documented = json.dumps(asyncapi)
    assert catalog_events.NEED in documented and catalog_events.NEED_NOTICE in documented
    events = _platform_catalog(catalog)
    problems = [
        f"{kind}: {error.message}"
        for kind, payload in events
        if kind in schemas
        for error in schemas[kind].iter_errors(payload)
    ]
    assert problems == []
    need_states = [
        payload["status"]
        for kind, payload in events
        if kind == catalog_events.NEED and payload["id"] == need_id
    ]
    assert need_states == ["open", "open", "committed", "fulfilled"]
    notices = [payload for kind, payload in events if kind == catalog_events.NEED_NOTICE]
    assert [(n["kind"], n["status"], n["followers"]) for n in notices] == [
        ("answer", "committed", ["one-stop-visit", "ai-community"]),
        ("fulfilled", "fulfilled", ["one-stop-visit", "ai-community"]),
    ]
    announced_drafts = {
        payload["id"]
        for kind, payload in events
        if kind == catalog_events.ACCESS_REQUEST and payload["status"] == "draft"
    }
    assert announced_drafts == set(drafts.values())


def test_only_the_answering_department_or_an_operator_answers(catalog: CatalogHarness, keys: Keys) -> None:
    need_id = _ok(catalog.call("POST", "/v1/needs", keys.visit, json=_need()), 201)["need"]["id"]
    due = (date.today() + timedelta(days=10)).isoformat()
    for key in (keys.visit, keys.market):
        _problem(
            catalog.call("POST", f"/v1/needs/{need_id}/commit", key, json={"commit_by": due}),
            403,
            "not-the-answering-department",
        )
    body = _problem(
        catalog.call("POST", f"/v1/needs/{need_id}/commit", keys.health, json={"commit_by": "2020-01-01"}),
        422,
        "validation-error",
    )
    assert body["errors"][0]["path"] == "/body/commit_by"
    # A department offers its own datasets only.
    _problem(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/offer", keys.health, json={"dataset_id": "market.inspections"}
        ),
        403,
        "not-the-answering-department",
    )
    # Routed to the market regulator, the need is answered there and no longer by health.
    _problem(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/route", keys.health, json={"department_id": "market-supervision"}
        ),
        403,
        "forbidden",
    )
    routed = _ok(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/route", keys.operator, json={"department_id": "market-supervision"}
        )
    )
    assert routed["department_id"] == "market-supervision"
    _problem(
        catalog.call("POST", f"/v1/needs/{need_id}/decline", keys.health, json={"reason": "no"}),
        403,
        "not-the-answering-department",
    )
    # A department joins too: it is told of the offer, a scenario gets a draft to submit.
    _ok(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/join", keys.health_approver, json={"purpose": "Plan inspections."}
        )
    )
    offered = _ok(
        catalog.call(
            "POST",
            f"/v1/needs/{need_id}/offer",
            keys.market,
            json={"dataset_id": "market.inspections", "note": "Inspections name the hospitals' licences."},
        )
    )
    assert offered["status"] == "offered"
    assert (list(offered["answer"]["drafts"]), offered["answer"]["told"]) == (
        ["one-stop-visit"],
        ["health-approver"],
    )
    draft_id = offered["answer"]["drafts"]["one-stop-visit"]
    draft = _ok(catalog.call("GET", f"/v1/access-requests/{draft_id}", keys.visit))
    assert (draft["status"], draft["purpose"]) == ("draft", "Route patients to a hospital with a free bed.")

    declined = _ok(
        catalog.call("POST", f"/v1/needs/{need_id}/decline", keys.operator, json={"reason": "Not collected."})
    )
    assert (declined["status"], declined["answer"]["reason"]) == ("declined", "Not collected.")
    for verb, body in (("join", {"purpose": "p"}), ("decline", {"reason": "again"})):
        _problem(
            catalog.call(
                "POST",
                f"/v1/needs/{need_id}/{verb}",
                keys.community if verb == "join" else keys.operator,
                json=body,
            ),
            409,
            "need-state-conflict",
        )


def test_refusals_of_filing_joining_and_the_thread(catalog: CatalogHarness, keys: Keys) -> None:
    _problem(catalog.client.request("GET", "/v1/needs"), 401, "unauthenticated")
    bad = _problem(
        catalog.call("POST", "/v1/needs", keys.visit, json=_need(domains=["health", "nowhere"])),
        422,
        "validation-error",
    )
    assert [error["path"] for error in bad["errors"]] == ["/body/domains/1"]
    bad = _problem(
        catalog.call("POST", "/v1/needs", keys.visit, json=_need(dataset_ids=["health.nothing"])),
        422,
        "validation-error",
    )
    assert [error["path"] for error in bad["errors"]] == ["/body/dataset_ids/0"]
    need_id = _ok(catalog.call("POST", "/v1/needs", keys.visit, json=_need()), 201)["need"]["id"]
    _problem(
        catalog.call("POST", f"/v1/needs/{need_id}/join", keys.visit, json={"purpose": "twice"}),
        409,
        "need-already-joined",
    )
    _problem(catalog.call("GET", "/v1/needs/nd-0000000000000000000000", keys.visit), 404, "need-not-found")

    comment = _ok(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/comments", keys.market, json={"body": "Call 138 0000 0000"}
        ),
        201,
    )
    _problem(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/comments/{comment['id']}/hide", keys.visit, json={"reason": "phone"}
        ),
        403,
        "forbidden",
    )
    hidden = _ok(
        catalog.call(
            "POST",
            f"/v1/needs/{need_id}/comments/{comment['id']}/hide",
            keys.operator,
            json={"reason": "A phone number."},
        )
    )
    assert (hidden["body"], hidden["hidden_reason"]) == (None, "A phone number.")
    thread = _ok(catalog.call("GET", f"/v1/needs/{need_id}/comments", keys.community))
    assert [(c["body"], c["hidden_reason"]) for c in thread] == [(None, "A phone number.")]
    _problem(
        catalog.call(
            "POST", f"/v1/needs/{need_id}/comments/{comment['id']}/hide", keys.operator, json={"reason": "x"}
        ),
        409,
        "need-state-conflict",
    )
    followed = _ok(catalog.call("POST", f"/v1/needs/{need_id}/follow", keys.market))
    assert followed["following"] is True
    assert _ok(catalog.call("GET", f"/v1/needs/{need_id}", keys.market))["followers"] == 2
    events = _platform_catalog(catalog)
    notices = [payload for kind, payload in events if kind == catalog_events.NEED_NOTICE]
    assert [(n["kind"], n["followers"], n["summary"]["comment_id"]) for n in notices] == [
        ("comment", ["one-stop-visit"], comment["id"])
    ]


def test_residents_post_without_a_key_held_until_an_operator_accepts_and_a_flood_is_refused(
    catalog: CatalogHarness, keys: Keys
) -> None:
    resident = {
        "title": "Which pharmacies are open at night",
        "domains": ["health"],
        "data_wanted": "Opening hours of pharmacies, kept current.",
        "serves": "Residents with a sick child at night",
        "contact": "13812345678",
    }
    limit = catalog.runtime.service_as(CatalogRuntime).needs_settings.form_limit
    posted = [_ok(catalog.client.post("/v1/needs/residents", json=resident), 202) for _ in range(limit)]
    assert {(p["status"], p["from_resident"], p["filed_by"]) for p in posted} == {("held", True, None)}
    assert "13812345678" not in json.dumps(posted)
    flood = catalog.client.post("/v1/needs/residents", json=resident)
    _problem(flood, 429, "need-form-flood")
    assert 1 <= int(flood.headers["Retry-After"]) <= 3600

    held = posted[0]["id"]
    _problem(catalog.call("GET", f"/v1/needs/{held}", keys.visit), 404, "need-not-found")
    _problem(
        catalog.call("POST", f"/v1/needs/{held}/join", keys.visit, json={"purpose": "p"}),
        404,
        "need-not-found",
    )
    queue = _ok(catalog.call("GET", "/v1/needs", keys.operator, params={"status": "held"}))["items"]
    assert {item["id"] for item in queue} == {p["id"] for p in posted}
    _problem(catalog.call("POST", f"/v1/needs/{held}/accept", keys.visit, json={}), 403, "forbidden")
    accepted = _ok(catalog.call("POST", f"/v1/needs/{held}/accept", keys.operator, json={}))
    assert accepted["status"] == "open"
    _problem(
        catalog.call("POST", f"/v1/needs/{held}/reject", keys.operator, json={"reason": "late"}),
        409,
        "need-state-conflict",
    )
    rejected = _ok(
        catalog.call("POST", f"/v1/needs/{posted[1]['id']}/reject", keys.operator, json={"reason": "A copy."})
    )
    assert (rejected["status"], rejected["moderation_reason"]) == ("rejected", "A copy.")
    board = _ok(catalog.call("GET", "/v1/needs", keys.visit))["items"]
    assert [item["id"] for item in board] == [held]
    trail = _ok(catalog.call("GET", "/v1/audit", params={"action": "need.post", "limit": 500}))["items"]
    assert [entry["outcome"] for entry in trail].count("denied") == 1


def test_searches_that_find_nothing_are_candidate_needs_without_personal_data(
    catalog: CatalogHarness, keys: Keys
) -> None:
    for q in (
        "Bike  LANES",
        "bike lanes 13812345678",
        "bike lanes someone@example.cn",
        "bike lanes 31010119900101123X",
    ):
        assert _ok(catalog.call("GET", "/v1/datasets", keys.visit, params={"q": q}))["items"] == []
    assert _ok(catalog.call("GET", "/v1/datasets", keys.visit, params={"q": "outpatient"}))["items"]
    _problem(catalog.call("GET", "/v1/needs/candidates", keys.visit), 403, "forbidden")
    candidates = _ok(catalog.call("GET", "/v1/needs/candidates", keys.operator))
    assert [(c["query"], c["count"]) for c in candidates] == [("bike lanes", 4)]
