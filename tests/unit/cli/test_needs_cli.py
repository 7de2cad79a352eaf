"""``citybase needs ...`` against a scripted platform: the request each verb sends and what it prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.cli.test_verbs import Platform, cli, page, platform

__all__ = ["platform"]

C = "/catalog/v1"
NEED = {
    "id": "nd-0192c3d4e5f6a7b8c9d0e1",
    "title": "Free hospital beds",
    "description": "",
    "domains": ["health"],
    "data_wanted": "Free beds per ward",
    "dataset_ids": [],
    "fields": [],
    "purpose_category": "public_service",
    "serves": "Outpatients",
    "frequency": "high",
    "urgency": "urgent",
    "status": "committed",
    "department_id": "health-commission",
    "filed_by": "one-stop-visit",
    "from_resident": False,
    "answer": {"kind": "commit", "commit_by": "2027-01-31"},
    "commit_by": "2027-01-31",
    "overdue": False,
    "moderation_reason": None,
    "requesters": [
        {
            "principal_id": "one-stop-visit",
            "principal_kind": "scenario",
            "purpose": "Route",
            "created_at": "2026-12-07T10:00:00Z",
        }
    ],
    "followers": 1,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
N = f"{C}/needs/{NEED['id']}"
VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    (
        ["needs", "list", "--status", "open", "--domain", "health"],
        "GET",
        f"{C}/needs?status=open&domain=health&limit=50",
        None,
        page(NEED),
        "health-commission",
    ),
    (["needs", "show", NEED["id"]], "GET", N, None, NEED, "Outpatients"),
    (
        [
            "needs",
            "file",
            "--title",
            "Free hospital beds",
            "--domain",
            "health",
            "--data-wanted",
            "Free beds per ward",
            "--purpose",
            "Route",
            "--serves",
            "Outpatients",
            "--urgency",
            "urgent",
        ],
        "POST",
        f"{C}/needs",
        {
            "title": "Free hospital beds",
            "description": "",
            "domains": ["health"],
            "data_wanted": "Free beds per ward",
            "dataset_ids": [],
            "purpose": "Route",
            "purpose_category": "public_service",
            "serves": "Outpatients",
            "frequency": "medium",
            "urgency": "urgent",
        },
        {
            "need": NEED,
            "similar": [
                {
                    "id": "nd-0192c3d4e5f6a7b8c9d0e2",
                    "title": "Beds now",
                    "status": "open",
                    "requesters": 2,
                    "score": 2,
                }
            ],
        },
        "nd-0192c3d4e5f6a7b8c9d0e2",
    ),
    (
        ["needs", "join", NEED["id"], "--purpose", "Tell residents"],
        "POST",
        f"{N}/join",
        {"purpose": "Tell residents"},
        NEED,
        "committed",
    ),
    (
        ["needs", "comment", NEED["id"], "--body", "When?"],
        "POST",
        f"{N}/comments",
        {"body": "When?"},
        {
            "id": "nc-1",
            "need_id": NEED["id"],
            "author_id": "ai-community",
            "body": "When?",
            "hidden_reason": None,
            "created_at": "2026-12-07T10:00:00Z",
        },
        "ai-community",
    ),
    (
        ["needs", "follow", NEED["id"]],
        "POST",
        f"{N}/follow",
        {},
        {"need_id": NEED["id"], "principal_id": "x", "following": True},
        "True",
    ),
    (
        ["needs", "follow", NEED["id"], "--stop"],
        "POST",
        f"{N}/unfollow",
        {},
        {"need_id": NEED["id"], "principal_id": "x", "following": False},
        "False",
    ),
    (
        ["needs", "answer", NEED["id"], "commit", "--by", "2027-01-31", "--dataset", "health.beds"],
        "POST",
        f"{N}/commit",
        {"commit_by": "2027-01-31", "dataset_id": "health.beds", "note": None},
        NEED,
        "committed",
    ),
    (
        ["needs", "answer", NEED["id"], "offer", "--dataset", "health.beds"],
        "POST",
        f"{N}/offer",
        {"dataset_id": "health.beds", "note": None},
        NEED,
        "committed",
    ),
    (
        ["needs", "answer", NEED["id"], "decline", "--reason", "Not collected"],
        "POST",
        f"{N}/decline",
        {"reason": "Not collected"},
        NEED,
        "committed",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"), VERBS, ids=[" ".join(v[0][:3]) for v in VERBS]
)
def test_each_needs_verb_sends_its_request_and_prints_a_table(
    platform: Platform, args: list[str], method: str, path: str, body: Any, answer: Any, shown: str
) -> None:
    platform.answer = answer
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert platform.body == body
    assert shown in result.output


def test_needs_show_prints_the_platforms_json_with_json(platform: Platform) -> None:
    platform.answer = NEED
    result = cli("needs", "show", NEED["id"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == NEED
