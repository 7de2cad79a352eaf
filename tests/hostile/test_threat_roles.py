"""Issue 14, the roles part: what a principal can do beyond its role, each attack with its figure.

Each test plays one attack against the whole platform (tests/hostile/conftest.py: SQLite and
PostgreSQL, the example catalog, a principal of every kind) and prints the figure that the
threat model in docs/authorization.md quotes.
"""

from __future__ import annotations

import pytest

from tests.integration.test_authorization import Platform

PROBLEM = "application/problem+json"


def _console(platform: Platform, path: str, who: str | None = None) -> tuple[int, str]:
    key = platform.keys[who] if who else platform.admin
    response = platform.client.get(
        path, headers={"Cookie": f"citybase_console={key}"}, follow_redirects=False
    )
    return response.status_code, response.text


# --- finding 11: ids with reserved characters reach the APIs encoded -------------------------------

RESERVED_IDS = (
    "health.outpatient-visits%23",  # '#': would end the path, and the dataset itself would answer
    "health.outpatient-visits%3Fstatus=retired",  # '?': would start a query
    "health.outpatient-visits%2Fcontract-versions",  # '/': would add a segment
    "%2E%2E",  # '..': would climb to /v1/datasets
    "health.outpatient-visits%20",
    "health.outpatient-visits%25",
)


def test_console_encodes_ids_with_reserved_characters(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = [
        f"/console/{kind}/{raw}"
        for kind in ("datasets", "grants", "access-requests", "scenarios")
        for raw in RESERVED_IDS
    ]
    answers = {page: _console(platform, page) for page in pages}
    errors = {page: status for page, (status, _) in answers.items() if status >= 500}
    not_found = [page for page, (status, _) in answers.items() if status == 404]
    with capsys.disabled():
        print(
            f"\n[finding 11] {len(pages)} console pages with reserved characters in ids: "
            f"{len(errors)} answered 5xx, {len(not_found)} answered 404"
        )
    assert errors == {}
    # Each id reached the API whole, as the one id it is: no such dataset, grant, request or scenario.
    assert not_found == pages
    status, page = _console(platform, "/console/datasets/health.outpatient-visits%23")
    assert status == 404 and "health.outpatient-visits#" in page
    # The plain id still works.
    assert _console(platform, "/console/datasets/health.outpatient-visits")[0] == 200
