"""``citybase lists``, ``applicants``, ``proposals`` and ``scenarios stage`` against a scripted
platform: the request each verb sends and what its table shows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.cli.test_verbs import KEY, Platform, cli, platform  # noqa: F401  (the fixture)

C = "/catalog/v1"
OPENING = {
    "id": "on-1",
    "list_id": "q1-2027",
    "position": 1,
    "title": "Wait-aware booking",
    "description": "",
    "owner_department_id": "health-commission",
    "datasets": ["health.outpatient-visits"],
    "data_offered": "",
    "conditions": "",
    "deadline": "2027-03-31T00:00:00Z",
    "need_ids": [],
    "domains": [],
    "serves_residents": True,
    "status": "open",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
LIST = {
    "id": "q1-2027",
    "number": 3,
    "title": "2027 Q1, transport and health",
    "summary": "",
    "status": "published",
    "published_at": "2026-12-07T10:00:00Z",
    "created_by": "city-ops",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
    "openings": [OPENING],
}
APPLICANT = {
    "id": "river-tech",
    "name": "River Tech",
    "description": "",
    "contact": "bids@river.example.cn",
    "status": "vetted",
    "vetting_reason": "checked",
    "vetted_by": "city-ops",
    "vetted_at": "2026-12-07T10:00:00Z",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
PROPOSAL = {
    "id": "pr-1",
    "opening_id": "on-1",
    "applicant_id": "river-tech",
    "title": "Queue display",
    "status": "selected",
    "timeline": "3 months",
    "scenario_id": "river-tech-q1-2027-1",
    "datasets": [{"dataset_id": "health.outpatient-visits", "fields": ["clinic"]}],
}
SCENARIO = {
    "id": "elder-meals",
    "name": "Meals",
    "organisation": "Jing'an",
    "status": "active",
    "stage": "building",
    "contact": "c",
}
STAGE = {
    "scenario_id": "elder-meals",
    "stage": "building",
    "previous_stage": "approved",
    "reason": "team ready",
    "changed_by": "elder-meals",
    "changed_at": "2026-12-07T10:00:00Z",
}

VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    (["lists", "list"], "GET", f"{C}/opportunity-lists", None, {"items": [LIST]}, "2027 Q1"),
    (["lists", "show", "q1-2027"], "GET", f"{C}/opportunity-lists/q1-2027", None, LIST, "Wait-aware booking"),
    (
        ["lists", "create", "q1-2027", "--title", "2027 Q1, transport and health"],
        "POST",
        f"{C}/opportunity-lists",
        {"id": "q1-2027", "title": "2027 Q1, transport and health", "summary": ""},
        {**LIST, "status": "draft", "number": None},
        "draft",
    ),
    (
        [
            "lists",
            "add-opening",
            "q1-2027",
            "--title",
            "Wait-aware booking",
            "--owner",
            "health-commission",
            "--deadline",
            "2027-03-31T00:00:00Z",
            "--dataset",
            "health.outpatient-visits",
            "--serves-residents",
        ],
        "POST",
        f"{C}/opportunity-lists/q1-2027/openings",
        {
            "title": "Wait-aware booking",
            "description": "",
            "owner_department_id": "health-commission",
            "datasets": ["health.outpatient-visits"],
            "data_offered": "",
            "conditions": "",
            "deadline": "2027-03-31T00:00:00Z",
            "need_ids": [],
            "domains": [],
            "serves_residents": True,
        },
        LIST,
        "health-commission",
    ),
    (
        ["lists", "publish", "q1-2027"],
        "POST",
        f"{C}/opportunity-lists/q1-2027/publish",
        {},
        LIST,
        "published",
    ),
    (
        ["applicants", "list", "--status", "pending"],
        "GET",
        f"{C}/applicants?status=pending",
        None,
        [{**APPLICANT, "status": "pending"}],
        "river-tech",
    ),
    (
        ["applicants", "vet", "river-tech", "--reason", "checked"],
        "POST",
        f"{C}/applicants/river-tech/vetting",
        {"decision": "vetted", "reason": "checked"},
        {"applicant": APPLICANT, "key": {"prefix": "0a1b2c3d", "key": "cbk_0a1b2c3d_once"}},
        "cbk_0a1b2c3d_once",
    ),
    (
        ["proposals", "compare", "on-1"],
        "GET",
        f"{C}/openings/on-1/proposals",
        None,
        {
            "opening": OPENING,
            "proposals": [PROPOSAL],
            "fields_asked": {"health.outpatient-visits": {"clinic": ["pr-1"]}},
        },
        "clinic",
    ),
    (
        ["proposals", "select", "on-1", "--proposal", "pr-1", "--reason", "best plan"],
        "POST",
        f"{C}/openings/on-1/selection",
        {"proposal_ids": ["pr-1"], "reason": "best plan"},
        {
            "opening": OPENING,
            "selected": [PROPOSAL],
            "not_selected": [],
            "scenarios": [],
            "access_requests": [],
        },
        "river-tech-q1-2027-1",
    ),
    (["proposals", "show", "pr-1"], "GET", f"{C}/proposals/pr-1", None, PROPOSAL, "selected"),
    (["proposals", "mine"], "GET", f"{C}/proposals", None, [PROPOSAL], "Queue display"),
    (
        ["scenarios", "stage", "elder-meals", "building", "--reason", "team ready"],
        "POST",
        f"{C}/scenarios/elder-meals/stage",
        {"stage": "building", "reason": "team ready"},
        SCENARIO,
        "building",
    ),
    (
        ["scenarios", "stages", "elder-meals"],
        "GET",
        f"{C}/scenarios/elder-meals/stages",
        None,
        [STAGE],
        "team ready",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"), VERBS, ids=[" ".join(v[0]) for v in VERBS]
)
def test_each_programme_verb_sends_its_request_and_prints_a_table(
    platform: Platform,  # noqa: F811
    args: list[str],
    method: str,
    path: str,
    body: Any,
    answer: Any,
    shown: str,
) -> None:
    platform.answer = answer
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert platform.body == body
    assert shown in result.output
