"""The scenario programme end to end, in one process (``citybase up``'s app on SQLite and the
embedded bus): an operator publishes an opportunity list, anyone reads it without a key (JSON,
CSV, Atom), vetted organisations propose, the owning department selects, and the selected proposal
becomes a scenario in stage ``approved`` with draft access requests while the other is told. Then
every refusal, and a scenario's way through its stages."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from services.common import catalog_events
from services.common.worker import wait_until
from tests.factories import need_create, opening_create, proposal_create
from tests.support.platform import Platform, in_process
from tests.support.problems import expect_problem as _problem

ATOM = "{http://www.w3.org/2005/Atom}"
OPERATOR, OWNER, OTHER_DEPARTMENT = "city-ops", "health-approver", "market-approver"


def _people(platform: Platform) -> None:
    platform.principal(OPERATOR, "operator")
    platform.principal(OWNER, "approver", "health-commission")
    platform.principal(OTHER_DEPARTMENT, "approver", "market-supervision")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(tmp_path_factory.mktemp("programme"), prepare_platform=_people) as platform:
        yield platform


def _published_list(platform: Platform, list_id: str, *openings: dict[str, Any]) -> dict[str, Any]:
    ops = platform.keys[OPERATOR]
    platform.ok(
        "POST", "/catalog/v1/opportunity-lists", ops, json={"id": list_id, "title": f"List {list_id}"}
    )
    for opening in openings or (opening_create(),):
        platform.ok("POST", f"/catalog/v1/opportunity-lists/{list_id}/openings", ops, json=opening)
    published: dict[str, Any] = platform.ok("POST", f"/catalog/v1/opportunity-lists/{list_id}/publish", ops)
    return published


def _vetted(platform: Platform, applicant_id: str) -> str:
    """An organisation registered without a key and vetted by the operator: its key."""
    return platform.organisation(applicant_id, vetted_by=OPERATOR)


def test_a_published_list_is_proposed_to_and_a_selection_becomes_an_approved_scenario(
    platform: Platform,
) -> None:
    # The opening answers a need a scenario posted on the needs board.
    need = platform.ok("POST", "/catalog/v1/needs", json=need_create(title="Shorter outpatient waits"))[
        "need"
    ]
    listing = _published_list(
        platform,
        "q1-2027-health",
        opening_create(need_ids=[need["id"]]),
        opening_create(title="Bus to clinic"),
    )
    assert listing["status"] == "published" and listing["number"] >= 1 and listing["published_at"]
    opening = listing["openings"][0]

    # Anyone reads the published list without a key: JSON, CSV and Atom.
    as_json = platform.call("GET", "/catalog/v1/opportunity-lists/q1-2027-health", None)
    assert as_json.status_code == 200
    assert [o["title"] for o in as_json.json()["openings"]] == [
        "Wait-aware outpatient booking",
        "Bus to clinic",
    ]
    assert "q1-2027-health" in [
        i["id"] for i in platform.call("GET", "/catalog/v1/opportunity-lists", None).json()["items"]
    ]
    as_csv = platform.call("GET", "/catalog/v1/opportunity-lists/q1-2027-health/openings.csv", None)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 2
    assert (rows[0]["opening_id"], rows[0]["datasets"], rows[0]["owner_department_id"]) == (
        opening["id"],
        "health.outpatient-visits",
        "health-commission",
    )
    assert rows[0]["deadline"].startswith(opening["deadline"][:16])
    as_atom = platform.call("GET", "/catalog/v1/opportunity-lists.atom", None)
    assert as_atom.status_code == 200 and as_atom.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(as_atom.content)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    entries = {entry.findtext(f"{ATOM}id"): entry for entry in feed.findall(f"{ATOM}entry")}
    entry = entries[f"urn:citybase:opening:{opening['id']}"]
    for required in ("title", "updated", "summary"):
        assert (entry.findtext(f"{ATOM}{required}") or "").strip(), required
    assert "Wait-aware outpatient booking" in (entry.findtext(f"{ATOM}title") or "")
    assert entry.find(f"{ATOM}link[@rel='alternate']") is not None

    # Two vetted organisations propose; the owner compares them side by side.
    first, second = _vetted(platform, "shenkang-lab"), _vetted(platform, "river-tech")
    path = f"/catalog/v1/openings/{opening['id']}/proposals"
    chosen = platform.ok("POST", path, first, json=proposal_create())
    other = platform.ok(
        "POST",
        path,
        second,
        json=proposal_create(
            "Clinic queue display",
            datasets=[
                {"dataset_id": "health.outpatient-visits", "fields": ["clinic", "wait_minutes", "age_band"]}
            ],
        ),
    )
    comparison = platform.ok("GET", path, platform.keys[OWNER])
    assert [p["id"] for p in comparison["proposals"]] == [chosen["id"], other["id"]]
    assert comparison["fields_asked"]["health.outpatient-visits"]["age_band"] == [other["id"]]
    assert comparison["fields_asked"]["health.outpatient-visits"]["clinic"] == [chosen["id"], other["id"]]

    # The owner selects one: an approved scenario with its draft access requests; the other is told.
    selection = platform.ok(
        "POST",
        f"/catalog/v1/openings/{opening['id']}/selection",
        platform.keys[OWNER],
        json={"proposal_ids": [chosen["id"]], "reason": "Clearest plan, fewest fields."},
    )
    [scenario] = selection["scenarios"]
    assert (scenario["stage"], scenario["status"], scenario["builder_id"]) == (
        "approved",
        "active",
        "shenkang-lab",
    )
    assert scenario["opening_id"] == opening["id"] and scenario["need_ids"] == [need["id"]]
    assert scenario["owning_body"] and scenario["serves_residents"] is True
    stored = platform.ok("GET", f"/catalog/v1/scenarios/{scenario['id']}")
    assert stored["stage"] == "approved"
    drafts = platform.ok(
        "GET", "/catalog/v1/access-requests", params={"scenario_id": scenario["id"], "status": "draft"}
    )["items"]
    assert [(d["dataset_id"], d["fields"], d["origin"]) for d in drafts] == [
        ("health.outpatient-visits", ["hospital_id", "clinic", "wait_minutes"], f"proposal:{chosen['id']}")
    ]
    history = platform.ok("GET", f"/catalog/v1/scenarios/{scenario['id']}/stages")
    assert [(h["stage"], h["changed_by"]) for h in history] == [("approved", OWNER)]
    told = platform.ok("GET", f"/catalog/v1/proposals/{other['id']}", second)
    assert (told["status"], told["decision_reason"]) == ("not_selected", "Clearest plan, fewest fields.")
    assert [p["status"] for p in platform.ok("GET", "/catalog/v1/proposals", first)] == ["selected"]
    decided = platform.call("GET", "/catalog/v1/opportunity-lists/q1-2027-health", None).json()
    assert [o["status"] for o in decided["openings"]] == ["decided", "open"]

    # Every step is on the audit trail and on platform.catalog.
    actions = {e["action"] for e in platform.ok("GET", "/catalog/v1/audit", params={"limit": 500})["items"]}
    assert {
        "opportunity_list.create",
        "opportunity_list.add_opening",
        "opportunity_list.publish",
        "applicant.register",
        "applicant.vet",
        "proposal.submit",
        "opening.select",
        "scenario.create",
        "access_request.prepare",
    } <= actions
    events = platform.catalog_events()
    proposals = {key: payload["status"] for kind, key, payload in events if kind == catalog_events.PROPOSAL}
    assert proposals[f"proposal:{other['id']}".encode()] == "not_selected"
    assert proposals[f"proposal:{chosen['id']}".encode()] == "selected"
    lists = [payload for kind, _, payload in events if kind == catalog_events.OPPORTUNITY_LIST]
    assert any(p["id"] == "q1-2027-health" and p["status"] == "published" for p in lists)
    assert any(kind == catalog_events.APPLICANT and p["status"] == "vetted" for kind, _, p in events)


def test_every_refusal_of_the_programme_is_a_precise_problem(platform: Platform) -> None:
    ops, owner = platform.keys[OPERATOR], platform.keys[OWNER]
    listing = _published_list(
        platform, "q2-2027-refusals", opening_create(), opening_create(deadline_in=timedelta(seconds=2))
    )
    opening, closing = listing["openings"]
    lab = _vetted(platform, "refusal-lab")

    # An opening answers needs of the needs board: one that does not exist is named.
    platform.ok("POST", "/catalog/v1/opportunity-lists", ops, json={"id": "q2-needs", "title": "Needs"})
    unknown = _problem(
        platform.call(
            "POST",
            "/catalog/v1/opportunity-lists/q2-needs/openings",
            ops,
            json=opening_create(need_ids=["nd-does-not-exist"]),
        ),
        422,
        "validation-error",
    )
    assert [error["path"] for error in unknown["errors"]] == ["/body/need_ids/0"]

    # Wrong role: only operators draft, add and publish; only the owner compares and selects.
    _problem(
        platform.call("POST", "/catalog/v1/opportunity-lists", owner, json={"id": "x-list", "title": "X"}),
        403,
        "forbidden",
    )
    _problem(
        platform.call("POST", "/catalog/v1/opportunity-lists", None, json={"id": "x-list", "title": "X"}),
        401,
        "unauthenticated",
    )
    _problem(
        platform.call(
            "POST",
            "/catalog/v1/applicants/refusal-lab/vetting",
            lab,
            json={"decision": "vetted", "reason": "me"},
        ),
        403,
        "forbidden",
    )
    _problem(
        platform.call("GET", f"/catalog/v1/openings/{opening['id']}/proposals", lab),
        403,
        "not-the-opening-owner",
    )
    _problem(
        platform.call(
            "GET", f"/catalog/v1/openings/{opening['id']}/proposals", platform.keys[OTHER_DEPARTMENT]
        ),
        403,
        "not-the-opening-owner",
    )
    proposal = platform.ok(
        "POST", f"/catalog/v1/openings/{opening['id']}/proposals", lab, json=proposal_create()
    )
    _problem(
        platform.call(
            "POST",
            f"/catalog/v1/openings/{opening['id']}/selection",
            platform.keys[OTHER_DEPARTMENT],
            json={"proposal_ids": [proposal["id"]], "reason": "mine"},
        ),
        403,
        "not-the-opening-owner",
    )
    _problem(
        platform.call("GET", f"/catalog/v1/proposals/{proposal['id']}", platform.keys[OTHER_DEPARTMENT]),
        403,
        "not-your-proposal",
    )

    # An organisation that was never vetted (its principal made directly) may not propose.
    unvetted = platform.principal("unvetted-org", "organisation")
    _problem(
        platform.call(
            "POST", f"/catalog/v1/openings/{opening['id']}/proposals", unvetted, json=proposal_create()
        ),
        403,
        "applicant-not-vetted",
    )
    _problem(
        platform.call(
            "POST", f"/catalog/v1/openings/{opening['id']}/proposals", owner, json=proposal_create()
        ),
        403,
        "applicant-not-vetted",
    )
    # A refused applicant gets no key; vetting twice is a conflict.
    platform.ok(
        "POST", "/catalog/v1/applicants", None, json={"id": "refused-org", "name": "R", "contact": "r@x.cn"}
    )
    refused = platform.ok(
        "POST",
        "/catalog/v1/applicants/refused-org/vetting",
        ops,
        json={"decision": "refused", "reason": "no licence"},
    )
    assert refused["key"] is None and refused["applicant"]["status"] == "refused"
    _problem(
        platform.call(
            "POST",
            "/catalog/v1/applicants/refused-org/vetting",
            ops,
            json={"decision": "vetted", "reason": "x"},
        ),
        409,
        "applicant-vetted",
    )
    _problem(
        platform.call(
            "POST",
            "/catalog/v1/applicants",
            None,
            json={"id": "refused-org", "name": "R", "contact": "r@x.cn"},
        ),
        409,
        "applicant-exists",
    )

    # Bad proposals: twice on one opening, fields not in the contract.
    _problem(
        platform.call("POST", f"/catalog/v1/openings/{opening['id']}/proposals", lab, json=proposal_create()),
        409,
        "already-proposed",
    )
    other_lab = _vetted(platform, "fields-lab")
    wrong = platform.call(
        "POST",
        f"/catalog/v1/openings/{opening['id']}/proposals",
        other_lab,
        json=proposal_create(
            datasets=[{"dataset_id": "health.outpatient-visits", "fields": ["clinic", "home_address"]}]
        ),
    )
    assert _problem(wrong, 422, "invalid-proposal-data")["errors"][0]["path"] == "/body/datasets/0/fields/1"

    # Lists: a deadline already passed, a published list changed, a draft hidden from anonymous readers.
    past = platform.call(
        "POST",
        "/catalog/v1/opportunity-lists/q2-2027-refusals/openings",
        ops,
        json=opening_create(deadline_in=timedelta(days=-1)),
    )
    _problem(past, 409, "opportunity-list-published")
    platform.ok("POST", "/catalog/v1/opportunity-lists", ops, json={"id": "draft-list", "title": "Draft"})
    late = platform.call(
        "POST",
        "/catalog/v1/opportunity-lists/draft-list/openings",
        ops,
        json=opening_create(deadline_in=timedelta(days=-1)),
    )
    assert _problem(late, 422, "deadline-not-ahead")["errors"][0]["path"] == "/body/deadline"
    _problem(
        platform.call("POST", "/catalog/v1/opportunity-lists/draft-list/publish", ops),
        409,
        "opportunity-list-empty",
    )
    _problem(
        platform.call("GET", "/catalog/v1/opportunity-lists/draft-list", None),
        404,
        "opportunity-list-not-found",
    )
    assert platform.ok("GET", "/catalog/v1/opportunity-lists/draft-list", ops)["status"] == "draft"
    _problem(
        platform.call("GET", "/catalog/v1/opportunity-lists/q2-2027-refusals", "cbk_00000000_forged"),
        401,
        "unauthenticated",
    )

    # Deadlines: a proposal after the deadline; a selection of a proposal of another opening; twice.
    time.sleep(2.2)
    _problem(
        platform.call(
            "POST", f"/catalog/v1/openings/{closing['id']}/proposals", other_lab, json=proposal_create()
        ),
        409,
        "deadline-passed",
    )
    unknown = platform.call(
        "POST",
        f"/catalog/v1/openings/{closing['id']}/selection",
        owner,
        json={"proposal_ids": [proposal["id"]], "reason": "x"},
    )
    assert _problem(unknown, 422, "unknown-proposals")["errors"][0]["path"] == "/body/proposal_ids/0"
    platform.ok(
        "POST",
        f"/catalog/v1/openings/{opening['id']}/selection",
        owner,
        json={"proposal_ids": [proposal["id"]], "reason": "ok"},
    )
    again = platform.call(
        "POST",
        f"/catalog/v1/openings/{opening['id']}/selection",
        owner,
        json={"proposal_ids": [proposal["id"]], "reason": "ok"},
    )
    _problem(again, 409, "opening-decided")
    _problem(
        platform.call(
            "POST", f"/catalog/v1/openings/{opening['id']}/proposals", other_lab, json=proposal_create()
        ),
        409,
        "opening-decided",
    )


def test_a_scenario_moves_through_its_stages_by_the_right_roles(platform: Platform) -> None:
    ops = platform.keys[OPERATOR]
    platform.ok(
        "POST",
        "/catalog/v1/scenarios",
        json={
            "id": "elder-meals",
            "name": "Meals for the elderly",
            "organisation": "Jing'an Civil Affairs",
            "contact": "meals@jingan.example.cn",
            "stage": "proposed",
            "domains": ["community"],
            "objectives": "Every resident over 80 who asks gets a hot meal within 30 minutes.",
            "owning_body": "Jing'an District",
            "serves_residents": True,
        },
    )
    key = str(platform.ok("POST", "/catalog/v1/scenarios/elder-meals/keys", json={"name": "t"})["key"])
    platform.wait_for_key(key)

    def move(stage: str, caller: str) -> Any:
        return platform.call(
            "POST",
            "/catalog/v1/scenarios/elder-meals/stage",
            caller,
            json={"stage": stage, "reason": f"to {stage}"},
        )

    _problem(move("approved", key), 403, "stage-move-not-yours")
    _problem(move("approved", platform.keys[OWNER]), 403, "not-your-scenario")
    _problem(move("live", ops), 409, "stage-transition-not-allowed")
    assert move("approved", ops).json()["stage"] == "approved"
    assert move("building", key).json()["stage"] == "building"  # the scenario starts building itself
    _problem(move("live", key), 403, "stage-move-not-yours")
    assert move("live", ops).json()["stage"] == "live"
    suspended = move("suspended", ops).json()
    assert (suspended["stage"], suspended["status"]) == ("suspended", "suspended")
    assert wait_until(lambda: platform.call("GET", "/catalog/v1/me", key).status_code == 401, 5), (
        "keys kept working"
    )
    assert move("live", ops).json()["status"] == "active"
    assert wait_until(lambda: platform.call("GET", "/catalog/v1/me", key).status_code == 200, 5)
    retired = move("retired", ops).json()
    assert (retired["stage"], retired["status"]) == ("retired", "retired")
    _problem(move("live", ops), 409, "stage-transition-not-allowed")
    history = platform.ok("GET", "/catalog/v1/scenarios/elder-meals/stages", ops)
    assert [(h["previous_stage"], h["stage"]) for h in history] == [
        (None, "proposed"),
        ("proposed", "approved"),
        ("approved", "building"),
        ("building", "live"),
        ("live", "suspended"),
        ("suspended", "live"),
        ("live", "retired"),
    ]
    assert history[2]["changed_by"] == "elder-meals" and history[3]["reason"] == "to live"
    stages = [
        e["details"]["to"]
        for e in platform.ok(
            "GET", "/catalog/v1/audit", params={"action": "scenario.stage", "scenario": "elder-meals"}
        )["items"]
        if e["outcome"] == "success"
    ]
    assert sorted(stages) == sorted(["approved", "building", "live", "suspended", "live", "retired"])
    bad = platform.call(
        "POST",
        "/catalog/v1/scenarios",
        json={"id": "bad-start", "name": "B", "organisation": "O", "contact": "c", "stage": "retired"},
    )
    assert _problem(bad, 422, "invalid-starting-stage")["errors"][0]["path"] == "/body/stage"


def test_retiring_a_scenario_through_its_stage_ends_its_grants_and_drafts(platform: Platform) -> None:
    platform.scenario("bus-board")
    granted = platform.request_access(
        "bus-board",
        dataset_id="transport.bus-arrivals",
        fields=["stop_id", "route_id", "arrived_at", "delay_s"],
    )
    assert granted["status"] == "approved" and granted["grant_id"]  # an open dataset: granted at once
    pending = platform.request_access("bus-board")
    retired = platform.ok(
        "POST",
        "/catalog/v1/scenarios/bus-board/stage",
        platform.keys[OPERATOR],
        json={"stage": "retired", "reason": "replaced by the city-wide app"},
    )
    assert (retired["stage"], retired["status"]) == ("retired", "retired")
    grant = platform.ok("GET", f"/catalog/v1/grants/{granted['grant_id']}")
    assert (grant["status"], grant["status_reason"]) == ("revoked", "scenario bus-board retired")
    assert platform.ok("GET", f"/catalog/v1/access-requests/{pending['id']}")["status"] == "withdrawn"
