"""Issue 14, the roles part: what a principal can do beyond its role, each attack with its figure.

Each test plays one attack against the whole platform (tests/hostile/conftest.py: SQLite and
PostgreSQL, the example catalog, a principal of every kind) and prints the figure that the
threat model in docs/authorization.md quotes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.catalog.runtime import CatalogRuntime
from services.common.problems import Unauthenticated
from services.common.worker import wait_until
from tests.factories import ingest_contract
from tests.support.platform import Platform

PROBLEM = "application/problem+json"
PROBLEMS = "https://citybase.dev/problems/"


def _works_anywhere(platform: Platform, key: str) -> bool:
    """Whether any service still accepts ``key``."""
    for keyring in platform.keyrings():
        try:
            keyring.authenticate(key)
            return True
        except Unauthenticated:
            pass
    return False


# --- finding 8: only an admin issues keys, but to a department for itself --------------------------


def test_no_role_but_a_department_mints_its_own_keys_and_a_minted_key_dies_with_its_parent(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    # A scenario, an approver and an operator, each with its own key, try every door to a key of its own.
    attempts = [
        (who, f"/catalog/v1/principals/{who}/keys")
        for who in ("one-stop-visit", "market-approver", "city-ops")
    ]
    attempts.append(("one-stop-visit", "/catalog/v1/scenarios/one-stop-visit/keys"))
    minted = []
    for who, path in attempts:
        response = platform.call("POST", path, platform.keys[who], json={"name": "sibling"})
        if response.status_code == 201:
            minted.append(path)
        else:
            assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
            assert response.json()["type"] == PROBLEMS + "forbidden"
    # A department's key is stolen: the thief mints a child, and from the child a grandchild,
    # before the theft is noticed and the stolen key revoked by an admin.
    stolen = platform.principal("stolen-publisher", "department", "market-supervision")
    child = platform.ok(
        "POST", "/catalog/v1/principals/stolen-publisher/keys", stolen, json={"name": "child"}
    )
    platform.wait_for_key(child["key"])
    grandchild = platform.ok(
        "POST", "/catalog/v1/principals/stolen-publisher/keys", child["key"], json={"name": "grandchild"}
    )
    platform.wait_for_key(grandchild["key"])
    revoked = platform.call(
        "DELETE", f"/catalog/v1/principals/stolen-publisher/keys/{stolen.split('_')[1]}", platform.admin_key
    )
    assert revoked.status_code == 200
    descendants = [child["key"], grandchild["key"]]
    wait_until(lambda: not any(_works_anywhere(platform, key) for key in [stolen, *descendants]), 1.0)
    surviving = [key for key in descendants if _works_anywhere(platform, key)]
    # A key the admin issues the same department is no child of the stolen one and keeps working.
    spare = platform.ok("POST", "/catalog/v1/principals/stolen-publisher/keys", json={"name": "replacement"})
    platform.wait_for_key(spare["key"])
    with capsys.disabled():
        print(
            f"\n[finding 8] keys a scenario/approver/operator minted for itself: {len(minted)} of {len(attempts)}; "
            f"keys minted from a stolen key surviving its revocation: {len(surviving)} of {len(descendants)}"
        )
    assert minted == []
    assert surviving == []
    assert not _works_anywhere(platform, stolen)
    assert (child["issued_by"], grandchild["issued_by"]) == (stolen.split("_")[1], child["prefix"])


# --- finding 9: a domain has an owner, and registration honours it --------------------------------


def test_a_department_cannot_register_datasets_in_another_departments_domain(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    market = platform.keys["market-publisher"]
    lookalike = {
        "id": "health.outpatient-visits-v2",
        "title": "Visits",
        "owner_department_id": "market-supervision",
    }
    attempts = {
        "POST /v1/datasets as the market publisher": platform.call(
            "POST", "/catalog/v1/datasets", market, json=lookalike
        ),
        "POST /v1/contracts as the market publisher": platform.call(
            "POST",
            "/catalog/v1/contracts",
            market,
            content=ingest_contract("health.outpatient-visits-v3", "market-supervision"),
            headers={"content-type": "application/yaml"},
        ),
        "POST /v1/datasets as an admin, for market supervision": platform.call(
            "POST", "/catalog/v1/datasets", platform.admin_key, json=lookalike
        ),
    }
    refused = {
        attempt: response.json()
        for attempt, response in attempts.items()
        if response.status_code == 403 and response.headers["content-type"] == PROBLEM
    }
    # The owner is not blocked: the ids the squatter wanted are still the health commission's to take.
    owned = [
        platform.call(
            "POST",
            "/catalog/v1/datasets",
            platform.keys["health-publisher"],
            json={**lookalike, "id": dataset_id, "owner_department_id": "health-commission"},
        ).status_code
        for dataset_id in ("health.outpatient-visits-v2", "health.outpatient-visits-v3")
    ]
    with capsys.disabled():
        print(
            f"\n[finding 9] registrations in another department's domain refused: {len(refused)} of "
            f"{len(attempts)}; the owner's registrations of the same ids: {owned}"
        )
    assert sorted(refused) == sorted(attempts), {a: r.status_code for a, r in attempts.items()}
    assert owned == [201, 201]
    for problem in refused.values():
        assert problem["type"] == PROBLEMS + "domain-owned-by-another-department"
        assert problem["owner_department_id"] == "health-commission"
        assert "health-commission" in problem["detail"]
    # The example catalog's domains belong to the example departments.
    domains = {d["id"]: d.get("owner_department_id") for d in platform.ok("GET", "/catalog/v1/domains")}
    assert {d: domains[d] for d in ("health", "market", "transport", "spatial", "community")} == {
        "health": "health-commission",
        "market": "market-supervision",
        "transport": "transport-bureau",
        "spatial": "urban-construction",
        "community": "putuo-district",
    }
    # A domain an admin creates with an owner: only that department registers in it.
    water = {"id": "water", "name": "Water", "owner_department_id": "urban-construction"}
    assert (
        platform.ok("POST", "/catalog/v1/domains", json=water)["owner_department_id"] == "urban-construction"
    )
    squatted = platform.call(
        "POST",
        "/catalog/v1/datasets",
        market,
        json={"id": "water.mains", "title": "Mains", "owner_department_id": "market-supervision"},
    )
    assert squatted.status_code == 403 and squatted.json()["owner_department_id"] == "urban-construction"


# --- finding 10: repeated identical refusals are one audit entry with a count ----------------------

REFUSED_READS = 300


def _refusals_of(platform: Platform, actor: str, resource_id: str) -> list[dict[str, Any]]:
    entries = platform.ok(
        "GET",
        "/catalog/v1/audit",
        params={"actor": actor, "resource_id": resource_id, "outcome": "denied", "limit": 500},
    )["items"]
    return [entry for entry in entries if entry["action"] == "grant.read"]


def test_repeated_refusals_are_audited_once_with_their_count(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another scenario reads the grant of one-stop-visit over and over: each read is refused.
    grant = platform.context["grant_id"]
    path, thief = f"/catalog/v1/grants/{grant}", platform.keys["ai-community"]
    started = time.perf_counter()
    statuses = {platform.call("GET", path, thief).status_code for _ in range(REFUSED_READS)}
    elapsed = time.perf_counter() - started
    assert statuses == {403}
    # The first refusal is on record at once.
    at_once = _refusals_of(platform, "ai-community", grant)
    # The window closes (at its end, or when the catalog stops): the repeats are appended as one.
    catalog = platform.app.state.services["catalog"].state.runtime
    catalog.service_as(CatalogRuntime).audit_refusals.flush(everything=True)
    entries = _refusals_of(platform, "ai-community", grant)
    counted = sum(entry["details"].get("repeated", 1) for entry in entries)
    verification = platform.ok("GET", "/catalog/v1/audit/verification")
    with capsys.disabled():
        print(
            f"\n[finding 10] {REFUSED_READS} refused reads in {elapsed:.2f} s wrote {len(entries)} audit "
            f"entries counting {counted} refusals; chain verified: {verification['ok']}"
        )
    assert len(at_once) == 1
    assert len(entries) <= 3
    assert counted == REFUSED_READS
    assert verification["ok"] is True
    summary = entries[0]  # newest first
    assert summary["details"]["problem"].endswith("not-your-scenario")
    assert summary["details"]["repeated"] == REFUSED_READS - 1


def _console(platform: Platform, path: str, who: str | None = None) -> tuple[int, str]:
    key = platform.keys[who] if who else platform.admin_key
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
