"""The authorization table of docs/authorization.md, held against every operation of every service.

The whole platform runs in one process (as ``citybase up`` does, on SQLite and the embedded bus,
with the example catalog). The table is read from the document itself, so the rule and the test
cannot drift apart: the test checks that the table lists every operation of every service's
OpenAPI, then calls each operation as each role, both as a principal the row concerns ("own") and
as one it does not, with no key and with a revoked key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.problems import Unauthenticated
from services.common.worker import wait_until
from tests.factories import (
    access_request_create,
    evaluation_report,
    evolve_contract,
    example_contract,
    objective_create,
    opening_create,
    outcome_create,
    proposal_create,
    scenario_create,
    verdict_create,
)
from tests.support.platform import Platform, in_process
from tests.support.principals import cast

DOC = Path(__file__).resolve().parents[2] / "docs" / "authorization.md"
PROBLEM = "application/problem+json"
ROLES = ("anonymous", "scenario", "department", "approver", "operator", "organisation", "evaluator", "admin")
PUBLIC = {"GET /healthz", "GET /readyz", "GET /metrics"}


@dataclass(frozen=True)
class Rule:
    service: str
    operation: str  # "METHOD /path/{template}"
    cells: dict[str, str]  # role -> yes | own | no


def documented_rules() -> list[Rule]:
    """Every (service, operation) row of the table in docs/authorization.md."""
    rules: list[Rule] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 + len(ROLES) or not cells[1].startswith("`"):
            continue
        service, endpoints, *verdicts = cells
        assert all(v in ("yes", "own", "no") for v in verdicts), line
        for operation in re.findall(r"`([A-Z]+ [^`]+)`", endpoints):
            rules.append(Rule(service, operation, dict(zip(ROLES, verdicts, strict=True))))
    return rules


# Each role column is played by a principal the rows concern ("own") and by one they do not.
OWN = {
    "scenario": "one-stop-visit",
    "department": "market-publisher",
    "approver": "market-approver",
    "organisation": "city-lab",
}
FOREIGN = {
    "scenario": "ai-community",
    "department": "health-publisher",
    "approver": "health-approver",
    "organisation": "other-lab",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("authorization"), key_name="matrix", prepare_platform=cast
    ) as platform:
        yield platform


# --- one request per operation ----------------------------------------------------------------

NEXT_CONTRACT = evolve_contract(example_contract("market.inspections", "1.1.0"), "1.2.0")
YAML = {"content-type": "application/yaml"}


def _unique(platform: Platform, prefix: str) -> str:
    return f"{prefix}{next(platform.counter)}"


RequestKwargs = Callable[[Platform], dict[str, Any]]
REQUESTS: dict[str, RequestKwargs] = {
    "POST /v1/domains": lambda p: {"json": {"id": _unique(p, "matrix-domain-"), "name": "Matrix"}},
    "POST /v1/departments": lambda p: {
        "json": {"id": _unique(p, "matrix-dept-"), "name": "Matrix", "kind": "bureau"}
    },
    "POST /v1/principals": lambda p: {
        "json": {"id": _unique(p, "matrix-ops-"), "kind": "operator", "name": "Matrix"}
    },
    "POST /v1/datasets": lambda p: {
        "json": {
            "id": _unique(p, "market.matrix-"),
            "title": "Matrix",
            "owner_department_id": "market-supervision",
        }
    },
    "PATCH /v1/datasets/{dataset_id}": lambda p: {
        "json": {"description": "Inspections of shops and markets."}
    },
    "POST /v1/datasets/{dataset_id}/contract-versions": lambda p: {"content": NEXT_CONTRACT, "headers": YAML},
    "POST /v1/datasets/{dataset_id}/contract-versions/check": lambda p: {
        "content": NEXT_CONTRACT,
        "headers": YAML,
    },
    "POST /v1/contracts": lambda p: {"content": NEXT_CONTRACT, "headers": YAML},
    "POST /v1/principals/{principal_id}/keys": lambda p: {"json": {"name": "matrix"}},
    "POST /v1/scenarios": lambda p: {"json": scenario_create(_unique(p, "matrix-scenario-"))},
    "PATCH /v1/scenarios/{scenario_id}": lambda p: {"json": {"contact": "team@shdc.example.cn"}},
    "POST /v1/scenarios/{scenario_id}/keys": lambda p: {"json": {"name": "matrix"}},
    "POST /v1/access-requests": lambda p: {"json": access_request_create()},
    "POST /v1/access-requests/{request_id}/approve": lambda p: {"json": {"reason": "serves residents"}},
    "POST /v1/access-requests/{request_id}/reject": lambda p: {"json": {"reason": "not needed"}},
    "POST /v1/access-requests/{request_id}/withdraw": lambda p: {"json": {}},
    "POST /v1/access-requests/{request_id}/submit": lambda p: {},
    "PATCH /v1/grants/{grant_id}": lambda p: {
        "json": {"reason": "fewer rows", "row_filter": 'result == "pass"'}
    },
    "POST /v1/grants/{grant_id}/suspend": lambda p: {"json": {"reason": "review"}},
    "POST /v1/grants/{grant_id}/resume": lambda p: {"json": {"reason": "reviewed"}},
    "POST /v1/grants/{grant_id}/revoke": lambda p: {"json": {"reason": "done"}},
    "POST /v1/scenarios/{scenario_id}/stage": lambda p: {"json": {"stage": "live", "reason": "already live"}},
    "POST /v1/opportunity-lists": lambda p: {"json": {"id": _unique(p, "matrix-list-"), "title": "Matrix"}},
    "POST /v1/opportunity-lists/{list_id}/openings": lambda p: {
        "json": opening_create(owner_department_id="market-supervision", datasets=["market.inspections"])
    },
    "POST /v1/opportunity-lists/{list_id}/publish": lambda p: {},
    "POST /v1/applicants": lambda p: {
        "json": {"id": _unique(p, "matrix-applicant-"), "name": "Matrix", "contact": "m@x.cn"}
    },
    "POST /v1/applicants/{applicant_id}/vetting": lambda p: {"json": {"decision": "vetted", "reason": "ok"}},
    "POST /v1/openings/{opening_id}/proposals": lambda p: {
        "json": proposal_create(datasets=[{"dataset_id": "market.inspections", "fields": ["result"]}])
    },
    "POST /v1/openings/{opening_id}/selection": lambda p: {
        "json": {"proposal_ids": [p.context["proposal_id"]], "reason": "strongest plan"}
    },
    "POST /v1/subscriptions": lambda p: {"json": {"dataset": "market.inspections"}},
    "POST /v1/subscriptions/{subscription_id}/ack": lambda p: {"json": {"cursor": "not-a-cursor"}},
    "POST /v1/subscriptions/{subscription_id}/replay": lambda p: {"json": {"to": "latest"}},
    "POST /v1/subscriptions/{subscription_id}/pause": lambda p: {},
    "POST /v1/subscriptions/{subscription_id}/resume": lambda p: {},
    "POST /v1/needs": lambda p: {
        "json": {
            "title": "Matrix need",
            "domains": ["market"],
            "data_wanted": "Inspection results.",
            "purpose": "Matrix.",
            "purpose_category": "research",
            "serves": "Matrix",
            "frequency": "low",
            "urgency": "normal",
        }
    },
    "POST /v1/needs/residents": lambda p: {
        "json": {"title": "Matrix", "domains": ["market"], "data_wanted": "Matrix.", "serves": "Matrix"}
    },
    "POST /v1/needs/{need_id}/join": lambda p: {"json": {"purpose": "Matrix."}},
    "POST /v1/needs/{need_id}/follow": lambda p: {},
    "POST /v1/needs/{need_id}/unfollow": lambda p: {},
    "POST /v1/needs/{need_id}/comments": lambda p: {"json": {"body": "Matrix."}},
    "POST /v1/needs/{need_id}/comments/{comment_id}/hide": lambda p: {"json": {"reason": "Matrix."}},
    "POST /v1/needs/{need_id}/accept": lambda p: {"json": {}},
    "POST /v1/needs/{need_id}/reject": lambda p: {"json": {"reason": "Matrix."}},
    "POST /v1/needs/{need_id}/route": lambda p: {"json": {"department_id": "market-supervision"}},
    "POST /v1/needs/{need_id}/offer": lambda p: {"json": {"dataset_id": "market.inspections"}},
    "POST /v1/needs/{need_id}/commit": lambda p: {
        "json": {"commit_by": (date.today() + timedelta(days=30)).isoformat()}
    },
    "POST /v1/needs/{need_id}/decline": lambda p: {"json": {"reason": "Matrix."}},
    "POST /v1/scenarios/{scenario_id}/objectives": lambda p: {"json": objective_create()},
    "POST /v1/objectives/{objective_id}/withdraw": lambda p: {"json": {"reason": "Matrix."}},
    "POST /v1/scenarios/{scenario_id}/outcomes": lambda p: {
        "json": outcome_create(p.context["objective_id"])
    },
    "POST /v1/scenarios/{scenario_id}/verdicts": lambda p: {"json": verdict_create([])},
    "POST /v1/audit/checkpoints": lambda p: {},
    "POST /v1/evaluations/verify": lambda p: {"json": evaluation_report("one-stop-visit", None, [])},
    "POST /v1/datasets/{dataset_id}/records": lambda p: {
        "json": [{"inspection_id": "I-1", "district": "Putuo", "result": "pass"}]
    },
}
# Operations that change a request's state get a fresh pending request each, so that every role
# meets the same situation.
FRESH_REQUEST = {"approve", "reject", "withdraw", "submit"}


def _operations(platform: Platform) -> set[tuple[str, str]]:
    found = set()
    for name, service in platform.app.state.services.items():
        for path, operations in service.openapi()["paths"].items():
            found |= {(name, f"{method.upper()} {path}") for method in operations}
    return found


def _rule_operations(platform: Platform) -> set[tuple[str, str]]:
    services = set(platform.app.state.services)
    covered = set()
    for rule in documented_rules():
        for service in services if rule.service == "every" else {rule.service}:
            covered.add((service, rule.operation))
    return covered


def test_the_table_lists_every_operation_of_every_service(platform: Platform) -> None:
    assert len(documented_rules()) > 40, "the table in docs/authorization.md was not found"
    operations = _operations(platform)
    covered = _rule_operations(platform)
    assert sorted(operations - covered) == [], "operations missing from docs/authorization.md"
    assert sorted(covered - operations) == [], "the table names operations no service has"
    unbuildable = sorted(
        op for _, op in operations if op.split(" ")[0] in ("POST", "PATCH", "PUT") and op not in REQUESTS
    )
    assert unbuildable == [], "write operations this test has no request for"


def _path(platform: Platform, service: str, operation: str) -> tuple[str, str]:
    method, template = operation.split(" ", 1)
    context = dict(platform.context)
    if any(f"/{verb}" in template for verb in FRESH_REQUEST):
        context["request_id"] = platform.pending_request()
    return method, f"/{service}" + template.format(**context)


def _callers(rule: Rule, platform: Platform) -> list[tuple[str, str | None, bool]]:
    """(who, key, allowed) for every caller of a row, the refused ones first."""
    callers: list[tuple[str, str | None, bool]] = [("anonymous", None, rule.cells["anonymous"] == "yes")]
    # A row about a principal ({principal_id}) is "own" for that principal alone: the others are
    # refused here, and each role on itself is held by the test after this one.
    about = platform.context["principal_id"] if "{principal_id}" in rule.operation else None
    for role in ("scenario", "department", "approver", "organisation"):
        own = rule.cells[role] == "own" and about in (None, OWN[role])
        callers.append((OWN[role], platform.keys[OWN[role]], rule.cells[role] == "yes" or own))
        callers.append((FOREIGN[role], platform.keys[FOREIGN[role]], rule.cells[role] == "yes"))
    callers.append(("city-ops", platform.keys["city-ops"], rule.cells["operator"] == "yes"))
    callers.append(("city-evaluator", platform.keys["city-evaluator"], rule.cells["evaluator"] == "yes"))
    callers.append(("admin", platform.admin_key, rule.cells["admin"] == "yes"))
    # Refused callers first: an allowed call may change the state (a 409 after it is still allowed).
    return sorted(callers, key=lambda caller: caller[2])


def test_each_role_may_call_exactly_what_the_table_says(platform: Platform) -> None:
    mismatches = []
    for rule in documented_rules():
        services = platform.app.state.services if rule.service == "every" else [rule.service]
        for service in services:
            for who, key, allowed in _callers(rule, platform):
                method, path = _path(platform, service, rule.operation)
                kwargs = REQUESTS.get(rule.operation, lambda p: {})(platform)
                response = platform.call(method, path, key, **kwargs)
                refused = response.status_code in (401, 403)
                if refused == allowed:
                    mismatches.append(
                        f"{method} {path} as {who}: {response.status_code} {response.text[:160]}"
                    )
                elif refused and response.headers.get("content-type") != PROBLEM:
                    mismatches.append(f"{method} {path} as {who}: refused without problem+json")
                elif response.status_code >= 500:
                    mismatches.append(
                        f"{method} {path} as {who}: {response.status_code} {response.text[:160]}"
                    )
    assert mismatches == []


# The principal each role plays when a row is about a principal ({principal_id}): itself.
SELF = {"scenario": OWN["scenario"], "department": OWN["department"], "approver": OWN["approver"]}
SELF["operator"] = "city-ops"
SELF["organisation"] = OWN["organisation"]
SELF["evaluator"] = "city-evaluator"


def test_on_its_own_principal_each_role_may_call_exactly_what_the_table_says(platform: Platform) -> None:
    """A row about a principal ({principal_id}: its keys) is "own" for the caller's own principal:
    each role calls it on itself, so that a role the table refuses can neither mint, list nor
    revoke its own keys (a key it minted itself would outlive the revocation of a stolen one)."""
    mismatches = []
    for rule in documented_rules():
        if "{principal_id}" not in rule.operation:
            continue
        for role, principal_id in SELF.items():
            # A key of the principal's own for the DELETE row to revoke, issued by an admin.
            spare = platform.ok("POST", f"/catalog/v1/principals/{principal_id}/keys", json={"name": "spare"})
            method, template = rule.operation.split(" ", 1)
            path = f"/{rule.service}" + template.format(principal_id=principal_id, prefix=spare["prefix"])
            kwargs = REQUESTS.get(rule.operation, lambda p: {})(platform)
            response = platform.call(method, path, platform.keys[principal_id], **kwargs)
            allowed = rule.cells[role] in ("yes", "own")
            if (response.status_code in (401, 403)) == allowed or response.status_code >= 500:
                mismatches.append(
                    f"{method} {path} as {principal_id}: {response.status_code} {response.text[:160]}"
                )
            elif not allowed and response.headers.get("content-type") != PROBLEM:
                mismatches.append(f"{method} {path} as {principal_id}: refused without problem+json")
    assert mismatches == []


def test_no_key_and_a_revoked_key_are_refused_everywhere_but_the_operations_endpoints(
    platform: Platform,
) -> None:
    revoked = platform.principal(_unique(platform, "revoked-ops-"), "operator")
    prefix = revoked.split("_")[1]
    principal = next(pid for pid, key in platform.keys.items() if key == revoked)
    platform.ok("DELETE", f"/catalog/v1/principals/{principal}/keys/{prefix}")

    def gone() -> bool:
        for keyring in platform.keyrings():
            try:
                keyring.authenticate(revoked)
                return False
            except Unauthenticated:
                pass
        return True

    assert wait_until(gone, 1.0), "a revocation took more than a second to reach every service"
    # What the table opens to anonymous readers (the public catalog) answers without a key, but a
    # revoked or forged key is refused there too: never read as no key.
    anonymous = {
        (rule.service, rule.operation) for rule in documented_rules() if rule.cells["anonymous"] == "yes"
    }
    mismatches = []
    for service, operation in sorted(_operations(platform)):
        if operation in PUBLIC:
            continue
        for who, key in (("no key", None), ("revoked key", revoked), ("forged key", revoked[:-4] + "AAAA")):
            if key is None and (service, operation) in anonymous:
                continue
            method, path = _path(platform, service, operation)
            response = platform.call(method, path, key, **REQUESTS.get(operation, lambda p: {})(platform))
            if response.status_code != 401 or response.headers.get("content-type") != PROBLEM:
                mismatches.append(f"{method} {path} with {who}: {response.status_code}")
            elif key and key[-8:] in response.text:
                mismatches.append(f"{method} {path} with {who}: the key is echoed back")
    assert mismatches == []
