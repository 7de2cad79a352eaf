"""Attacks on what a scenario may learn of masked fields, and on the secret that signs cursors.

Each test plays a scenario (or a careless approver) against the whole platform in one process and
holds one promise of the threat model:

- a ``hash`` mask is not reversible by the receiver: with every key a scenario could compute (the
  code is public, the ids are its own), a brute force over the small space the values come from
  finds none of the hashes it was delivered, while equal values still hash equally in its grant;
- a cursor is signed with a secret nobody ships: one forged with what used to be the default is
  refused with problem+json and moves no committed position;
- a mask named on a parent never shows what a mask on a child hides (a restricted
  ``caller.phone`` under a long ``partial`` on ``caller``);
- a new contract version that marks a granted field sensitive masks it on delivery to the grants
  that already exist, and the grant says why.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from citybase.demo import RecordGenerator
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import primary_key
from services.common.policy.masking import hasher
from services.common.worker import wait_until
from services.feeds.cursor import Cursor, CursorCodec
from services.feeds.runtime import FeedsRuntime
from tests.factories import access_request_create, example_contract
from tests.support.platform import Platform

PROBLEM = "application/problem+json"
OLD_DEFAULT_SECRET = b"citybase-local-feeds-secret"
"""What CITYBASE_FEEDS_SECRET was when nobody set it: anyone could read it in the code."""
SPACE = 100_000
"""Patient ids of the attack come from this many candidates (``SHYB`` + 10 digits)."""


def patient_id(number: int) -> str:
    return f"SHYB{number:010d}"


# --- driving the platform -------------------------------------------------------------------------


def grant_for(
    platform: Platform,
    scenario: str,
    dataset_id: str,
    fields: list[str],
    approver: str,
    **approval: Any,
) -> dict[str, Any]:
    """A grant of ``fields`` of the dataset to the scenario, approved by ``approver`` with ``approval``."""
    request = platform.ok(
        "POST",
        "/catalog/v1/access-requests",
        platform.keys[scenario],
        json=access_request_create(dataset_id, fields),
    )
    decided = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{request['id']}/approve",
        platform.keys[approver],
        json={"reason": "hostile test", **approval},
    )
    return platform.ok("GET", f"/catalog/v1/grants/{decided['grant_id']}", platform.keys[scenario])


def subscribe(platform: Platform, scenario: str, dataset_id: str, start: str = "earliest") -> str:
    """A new subscription from ``start``, once the grant has reached feeds."""
    created: dict[str, Any] = {}

    def attempt() -> bool:
        response = platform.call(
            "POST",
            "/feeds/v1/subscriptions",
            platform.keys[scenario],
            json={"dataset": dataset_id, "start": start},
        )
        if response.status_code == 201:
            created.update(response.json())
        return response.status_code == 201

    assert wait_until(attempt, 15.0), "the grant did not reach feeds"
    return str(created["id"])


def generated(dataset_id: str, count: int) -> list[dict[str, Any]]:
    """Valid records of an example dataset, from its current contract."""
    contract = parse_contract(example_contract(dataset_id, "1.1.0"))
    generator = RecordGenerator(
        record_schema(contract), dataset_id, random.Random(7), primary_key=primary_key(contract)
    )
    return generator.records(count)


def publish(platform: Platform, publisher: str, dataset_id: str, records: list[dict[str, Any]]) -> None:
    answer = platform.ok(
        "POST", f"/ingest/v1/datasets/{dataset_id}/records", platform.keys[publisher], json=records
    )
    assert answer["accepted"] == len(records), answer


def receive(platform: Platform, scenario: str, subscription: str, count: int) -> Iterator[dict[str, Any]]:
    """Poll (and acknowledge) until ``count`` records came; each batch's body in turn."""
    received, deadline = 0, time.monotonic() + 30
    while received < count and time.monotonic() < deadline:
        batch = platform.ok(
            "GET",
            f"/feeds/v1/subscriptions/{subscription}/records",
            platform.keys[scenario],
            params={"wait": 1, "max": 500},
        )
        if batch["records"]:
            platform.ok(
                "POST",
                f"/feeds/v1/subscriptions/{subscription}/ack",
                platform.keys[scenario],
                json={"cursor": batch["cursor"]},
            )
        received += len(batch["records"])
        yield batch
    assert received >= count, f"{received} of {count} records came"


def delivered(platform: Platform, scenario: str, subscription: str, count: int) -> list[dict[str, Any]]:
    return [
        record["data"]
        for batch in receive(platform, scenario, subscription, count)
        for record in batch["records"]
    ]


# --- 1. a hash mask is not reversible by its receiver ------------------------------------------


def visit(number: int, sequence: int) -> dict[str, Any]:
    return {
        "visit_id": f"OV-20261207-{sequence:06d}",
        "hospital_id": "H00012",
        "clinic": "cardiology",
        "patient_id": patient_id(number),
        "age_band": "40-59",
        "wait_minutes": 12,
        "registered_at": "2026-12-07T08:30:00+08:00",
    }


def keys_a_scenario_can_compute(scenario_id: str, grant: dict[str, Any]) -> list[bytes]:
    """Every key a scenario could try from what it knows: the code, the default that used to ship,
    its own ids and its grant as the API shows it."""
    old_context = b"citybase/grant-hash/v1\x00"
    public = [scenario_id, grant["id"], grant["request_id"], grant["dataset_id"]]
    keys = [hmac.digest(OLD_DEFAULT_SECRET, old_context + scenario_id.encode(), hashlib.sha256)]
    keys += [hmac.digest(OLD_DEFAULT_SECRET, old_context + text.encode(), hashlib.sha256) for text in public]
    keys += [text.encode() for text in public]
    return keys


def test_a_scenario_cannot_reverse_the_hashes_it_receives(platform: Platform) -> None:
    scenario, dataset = "one-stop-visit", "health.outpatient-visits"
    grant = grant_for(platform, scenario, dataset, ["visit_id", "patient_id", "clinic"], "health-approver")
    assert grant["masking"]["patient_id"] == {"kind": "hash"}
    assert "hash_key" not in grant, "the API must never hand a grant's hash key to anyone"
    subscription = subscribe(platform, scenario, dataset)
    patients = random.Random(14).sample(range(SPACE), 20)
    visits = [visit(number, sequence) for sequence, number in enumerate(patients + patients[:5])]
    publish(platform, "health-publisher", dataset, visits)
    records = delivered(platform, scenario, subscription, len(visits))
    hashes = {record["visit_id"]: record["patient_id"] for record in records}
    assert all(value.startswith("h:") for value in hashes.values())

    # Linkable within the grant: the five patients who came twice have one hash each.
    by_patient: dict[str, set[str]] = {}
    for original in visits:
        by_patient.setdefault(original["patient_id"], set()).add(hashes[original["visit_id"]])
    assert all(len(seen) == 1 for seen in by_patient.values())
    targets = {value for seen in by_patient.values() for value in seen}
    assert len(targets) == len(patients)

    # The brute force: every candidate id under every key the scenario can compute.
    started = time.perf_counter()
    reversed_ids = set()
    for key in keys_a_scenario_can_compute(scenario, grant):
        hash_value = hasher(key)
        reversed_ids |= {patient_id(n) for n in range(SPACE) if hash_value(patient_id(n)) in targets}
    elapsed = time.perf_counter() - started
    assert reversed_ids == set(), (
        f"reversed {len(reversed_ids)} of {len(targets)} patient ids in {elapsed:.1f} s over {SPACE:,} candidates"
    )


def test_two_grants_hash_one_value_differently(platform: Platform) -> None:
    """Not linkable across grants, even two grants of one scenario on one dataset: each grant's key
    is its own, made by the catalog at random and carried to feeds by the grant event."""
    scenario, dataset = "ai-community", "health.outpatient-visits"
    grants = [grant_for(platform, scenario, dataset, ["patient_id"], "health-approver") for _ in range(2)]
    feeds_catalog = platform.app.state.services["feeds"].state.runtime.service_as(FeedsRuntime).catalog
    assert wait_until(lambda: all(feeds_catalog.grant(grant["id"]) for grant in grants), 10.0)
    policies = [feeds_catalog.policy(feeds_catalog.grant(grant["id"])) for grant in grants]
    hashes = [policy.apply({"patient_id": patient_id(4242)})["patient_id"] for policy in policies]
    assert hashes[0].startswith("h:") and hashes[1].startswith("h:")
    assert hashes[0] != hashes[1]


# --- 1b. a cursor forged with the old default secret moves nothing -----------------------------


def test_a_forged_cursor_is_refused_and_moves_no_position(platform: Platform) -> None:
    scenario, dataset = "one-stop-visit", "market.inspections"
    subscription = platform.context["subscription_id"]
    key = platform.keys[scenario]
    inspections = generated(dataset, 12)
    publish(platform, "market-publisher", dataset, inspections)
    for _ in receive(platform, scenario, subscription, len(inspections)):
        pass

    def committed() -> dict[int, int | None]:
        detail = platform.ok("GET", f"/feeds/v1/subscriptions/{subscription}", key)
        return {position["partition"]: position["committed"] for position in detail["positions"]}

    before = committed()
    assert sum(offset or 0 for offset in before.values()) >= len(inspections)
    epoch = platform.ok("GET", f"/feeds/v1/subscriptions/{subscription}", key)["replays"]
    forged = CursorCodec(OLD_DEFAULT_SECRET).encode(Cursor(subscription, epoch, dict.fromkeys(before, 0)))
    answer = platform.call(
        "POST", f"/feeds/v1/subscriptions/{subscription}/ack", key, json={"cursor": forged}
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["type"].endswith("invalid-cursor"), answer.json()
    assert committed() == before


# --- 5. a mask on a parent never shows a restricted child ---------------------------------------

HOTLINE = "health.hotline-calls"


def hotline_contract(version: str, *, name_sensitive: bool = False) -> str:
    """A restricted dataset of the health commission whose ``caller.phone`` is sensitive; from
    1.1.0 on (``name_sensitive``) ``caller.name`` too."""
    name: dict[str, Any] = {"name": "name", "logicalType": "string", "classification": "internal"}
    if name_sensitive:
        name.update(
            classification="personal",
            customProperties=[{"property": "citybase.masking", "value": "redact"}],
        )
    document = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": HOTLINE,
        "name": "Health hotline calls",
        "version": version,
        "status": "active",
        "domain": "health",
        "description": {"purpose": "One record per call to the 12320 health hotline."},
        "customProperties": [
            {"property": "citybase.classification", "value": "restricted"},
            {"property": "citybase.department", "value": "health-commission"},
            {"property": "citybase.compatibility", "value": "BACKWARD"},
        ],
        "schema": [
            {
                "name": "hotline_calls",
                "physicalType": "topic",
                "properties": [
                    {
                        "name": "call_id",
                        "logicalType": "string",
                        "primaryKey": True,
                        "primaryKeyPosition": 1,
                        "required": True,
                        "classification": "internal",
                    },
                    {"name": "topic", "logicalType": "string", "required": True, "classification": "public"},
                    {
                        "name": "caller",
                        "logicalType": "object",
                        "required": True,
                        "classification": "internal",
                        "properties": [
                            name,
                            {
                                "name": "phone",
                                "logicalType": "string",
                                "classification": "restricted",
                                "customProperties": [
                                    {
                                        "property": "citybase.masking",
                                        "value": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4},
                                    }
                                ],
                            },
                        ],
                    },
                ],
            }
        ],
    }
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def call(number: int, phone: str, name: str = "王芳") -> dict[str, Any]:
    return {"call_id": f"CALL-{number:06d}", "topic": "vaccination", "caller": {"name": name, "phone": phone}}


@pytest.fixture(scope="module")
def hotline(platform: Platform) -> str:
    platform.ok(
        "POST",
        "/catalog/v1/contracts",
        platform.keys["health-publisher"],
        content=hotline_contract("1.0.0"),
        headers={"content-type": "application/yaml"},
    )
    return HOTLINE


def test_a_long_partial_on_a_parent_does_not_reveal_a_restricted_child(
    platform: Platform, hotline: str
) -> None:
    scenario = "ai-community"
    grant = grant_for(
        platform,
        scenario,
        hotline,
        ["call_id", "caller"],
        "health-approver",
        # {"name":"王芳","phone":"13900000001"} is 35 characters: keep all but the closing brace
        masking={"caller": {"kind": "partial", "keepPrefix": 34, "keepSuffix": 0}},
    )
    assert grant["masking"]["caller.phone"]["kind"] == "partial"  # the contract's rule stays
    subscription = subscribe(platform, scenario, hotline)
    phones = [f"139{7100 + 37 * n}{5000 + n}" for n in range(10)]  # the middle four digits differ
    calls = [call(100 + n, phone) for n, phone in enumerate(phones)]
    publish(platform, "health-publisher", hotline, calls)
    texts = [str(record) for record in delivered(platform, scenario, subscription, len(calls))]
    leaked = {phone for phone in phones if any(phone[3:7] in text for text in texts)}
    assert leaked == set(), f"{len(leaked)} of {len(phones)} restricted phone numbers left in clear"
    actions = platform.ok("GET", "/catalog/v1/audit", params={"action": "grant.unmask"})["items"]
    assert [entry for entry in actions if entry.get("resource_id") == grant["id"]] == []


# --- 7. a contract version that marks a granted field sensitive masks it on existing grants ------


def test_a_field_newly_marked_sensitive_is_masked_for_grants_that_exist(
    platform: Platform, hotline: str
) -> None:
    scenario = "one-stop-visit"
    grant = grant_for(platform, scenario, hotline, ["call_id", "caller"], "health-approver")
    assert "caller.name" not in grant["masking"]
    subscription = subscribe(platform, scenario, hotline, start="latest")
    publish(platform, "health-publisher", hotline, [call(500, "13900000500", name="张伟国")])
    assert "张伟国" in str(delivered(platform, scenario, subscription, 1))  # internal until now

    platform.ok(
        "POST",
        f"/catalog/v1/datasets/{hotline}/contract-versions",
        platform.keys["health-publisher"],
        content=hotline_contract("1.1.0", name_sensitive=True),
        headers={"content-type": "application/yaml"},
    )
    registered = time.monotonic()
    changed = platform.ok("GET", f"/catalog/v1/grants/{grant['id']}", platform.keys[scenario])
    assert changed["masking"]["caller.name"] == {"kind": "redact"}
    assert changed["version"] > grant["version"]
    assert "1.1.0" in changed["status_reason"] and "caller.name" in changed["status_reason"]
    # The grant's new version reaches feeds with the contract version's events, as a revocation does.
    feeds_catalog = platform.app.state.services["feeds"].state.runtime.service_as(FeedsRuntime).catalog
    assert wait_until(lambda: feeds_catalog.grant(grant["id"]).version == changed["version"], 5.0)
    assert time.monotonic() - registered < 1.5, "the new masking must reach feeds within about a second"

    names = [f"李{n}明华" for n in range(10)]
    publish(
        platform,
        "health-publisher",
        hotline,
        [call(600 + n, f"1390000{600 + n:04d}", name=name) for n, name in enumerate(names)],
    )
    batches = list(receive(platform, scenario, subscription, len(names)))
    text = str(batches)
    assert [name for name in names if name in text] == []
    assert all(batch["grant"]["version"] == changed["version"] for batch in batches if batch["records"])
