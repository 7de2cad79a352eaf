"""The audit trail through the catalog's API, on SQLite and PostgreSQL: what is recorded, who sees
what, and that ``citybase audit verify`` catches a tampered, removed or rewritten row."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from citybase.cli import app as cli
from services.catalog.audit import service as audit
from services.catalog.audit.models import AuditEntry
from services.catalog.runtime import CatalogRuntime
from services.common import catalog_events, db, usage_events
from services.common.envelope import CloudEvent, encode_json
from services.common.usage_events import TOPIC as USAGE_TOPIC
from services.common.worker import wait_until
from tests.factories import ingest_contract
from tests.support.services import CatalogHarness


def _entries(catalog: CatalogHarness, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    response = catalog.call("GET", "/v1/audit", key, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _publisher(catalog: CatalogHarness, department: str) -> str:
    catalog.department(department, ["transport"])
    return catalog.principal_key(f"{department}-publisher", "department", department)


def _url(catalog: CatalogHarness) -> str:
    return catalog.runtime.engine.url.render_as_string(hide_password=False)


def _verify(catalog: CatalogHarness) -> audit.AuditVerification:
    with db.unit_of_work(catalog.runtime.sessions) as session:
        return audit.verify(session)


def _execute(catalog: CatalogHarness, statement: str) -> None:
    with catalog.runtime.engine.begin() as connection:
        connection.execute(sa.text(statement))


def test_changes_are_recorded_in_a_chain_that_verifies(catalog: CatalogHarness) -> None:
    key = _publisher(catalog, "transit")
    contract = ingest_contract("transport.audited", "transit")
    assert catalog.call("POST", "/v1/contracts", key, content=contract).status_code == 201
    issued = catalog.call("POST", "/v1/principals/transit-publisher/keys", key, json={"name": "ci"}).json()
    revoked = catalog.call("DELETE", f"/v1/principals/transit-publisher/keys/{issued['prefix']}", key)
    assert revoked.status_code == 200

    entries = _entries(catalog)
    actions = [entry["action"] for entry in reversed(entries)]
    assert actions == ["contract_version.register", "api_key.issue", "api_key.revoke"]
    register = entries[-1]
    assert register["actor_id"] == "transit-publisher"
    assert register["actor_kind"] == "department"
    assert register["dataset_id"] == "transport.audited"
    assert register["department_id"] == "transit"
    assert register["resource_id"] == "transport.audited@1.0.0"
    assert register["outcome"] == "success"
    # Newest first, each entry chained to the one before it.
    for newer, older in itertools.pairwise(entries):
        assert newer["seq"] == older["seq"] + 1
        assert newer["prev_hash"] == older["hash"]
    report = _verify(catalog)
    assert report.ok, report
    assert report.entries_checked == len(entries)
    result = CliRunner().invoke(
        cli,
        ["audit", "verify", "--database-url", _url(catalog), "--bus-url", catalog.runtime.settings.bus_url],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(entries)} entries" in result.output


def test_a_refused_request_is_audited_and_writes_nothing_else(catalog: CatalogHarness) -> None:
    owner = _publisher(catalog, "transit")
    other = _publisher(catalog, "harbour")
    assert (
        catalog.call(
            "POST", "/v1/contracts", owner, content=ingest_contract("transport.owned", "transit")
        ).status_code
        == 201
    )
    newer = ingest_contract("transport.owned", "transit", version="1.1.0")
    refused = catalog.call("POST", "/v1/datasets/transport.owned/contract-versions", other, content=newer)
    assert refused.status_code == 403

    denied = _entries(catalog, outcome="denied")
    assert len(denied) == 1
    entry = denied[0]
    assert entry["action"] == "contract_version.register"
    assert entry["actor_id"] == "harbour-publisher"
    assert entry["dataset_id"] == "transport.owned"
    assert entry["department_id"] == "transit"
    assert entry["details"]["status"] == 403
    assert entry["details"]["problem"].endswith("/forbidden")
    versions = catalog.call("GET", "/v1/datasets/transport.owned/contract-versions").json()
    assert [v["version"] for v in versions] == ["1.0.0"]
    assert _verify(catalog).ok


def test_a_failed_write_without_a_named_attempt_is_audited_under_its_route(catalog: CatalogHarness) -> None:
    response = catalog.call("POST", "/v1/principals", json={"id": "x", "kind": "wizard", "name": "x"})
    assert response.status_code == 422
    (entry,) = _entries(catalog, outcome="denied")
    assert entry["action"] == "http.create_principal"
    assert entry["actor_id"] == "admin"
    assert entry["details"]["status"] == 422
    assert _verify(catalog).ok


def test_each_principal_sees_its_part_of_the_trail(catalog: CatalogHarness) -> None:
    transit = _publisher(catalog, "transit")
    harbour = _publisher(catalog, "harbour")
    operator = catalog.principal_key("watch", "operator")
    scenario = catalog.principal_key("one-stop", "scenario")
    for dataset, key, department in (
        ("transport.ab", transit, "transit"),
        ("transport.bc", harbour, "harbour"),
    ):
        contract = ingest_contract(dataset, department)
        assert catalog.call("POST", "/v1/contracts", key, content=contract).status_code == 201

    assert {e["dataset_id"] for e in _entries(catalog, transit)} == {"transport.ab"}
    assert {e["dataset_id"] for e in _entries(catalog, harbour)} == {"transport.bc"}
    assert {e["dataset_id"] for e in _entries(catalog, operator)} == {"transport.ab", "transport.bc"}
    assert _entries(catalog, scenario) == []
    # A filter cannot widen the scope.
    assert _entries(catalog, transit, department="harbour") == []


def test_filters_and_cursor_pagination(catalog: CatalogHarness) -> None:
    for index in range(7):
        response = catalog.call("POST", "/v1/principals/admin/keys", json={"name": f"k{index}"})
        assert response.status_code == 201
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "api_key", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = catalog.call("GET", "/v1/audit", params=params).json()
        seen.extend(entry["seq"] for entry in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == 7
    assert _entries(catalog, action="api_key.revoke") == []
    bad = catalog.call("GET", "/v1/audit", params={"cursor": "!!"})
    assert bad.status_code == 422
    assert bad.json()["type"].endswith("/invalid-cursor")


def test_only_operators_and_admins_run_the_verification(catalog: CatalogHarness) -> None:
    transit = _publisher(catalog, "transit")
    assert catalog.call("GET", "/v1/audit/verification", transit).status_code == 403
    operator = catalog.principal_key("watch", "operator")
    body = catalog.call("GET", "/v1/audit/verification", operator).json()
    assert body["ok"] is True


@pytest.mark.parametrize(
    ("tamper", "broken_at", "words"),
    [
        ("UPDATE catalog_audit_entries SET resource_id = 'someone-else' WHERE seq = 3", 3, "was changed"),
        ("UPDATE catalog_audit_entries SET outcome = 'denied' WHERE seq = 2", 2, "was changed"),
        ("DELETE FROM catalog_audit_entries WHERE seq = 2", 2, "missing"),
        ("DELETE FROM catalog_audit_entries WHERE seq = 5", 5, "missing"),
    ],
)
def test_verify_names_the_first_entry_that_does_not_match(
    catalog: CatalogHarness, tamper: str, broken_at: int, words: str
) -> None:
    for index in range(5):
        assert (
            catalog.call("POST", "/v1/principals/admin/keys", json={"name": f"k{index}"}).status_code == 201
        )
    assert _verify(catalog).ok
    _execute(catalog, tamper)

    report = _verify(catalog)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == broken_at
    assert words in report.first_break.reason

    result = CliRunner().invoke(
        cli,
        ["audit", "verify", "--database-url", _url(catalog), "--bus-url", catalog.runtime.settings.bus_url],
    )
    assert result.exit_code == 1, result.output
    assert f"broken at entry {broken_at}" in result.output


def test_a_consistent_rewrite_is_caught_by_the_checkpoint(catalog: CatalogHarness) -> None:
    for index in range(3):
        assert (
            catalog.call("POST", "/v1/principals/admin/keys", json={"name": f"k{index}"}).status_code == 201
        )
    point = catalog.runtime.service_as(CatalogRuntime).audit_checkpoints.checkpoint_once()
    assert point is not None
    assert point.seq == 3

    # Someone with write access edits entry 2 and recomputes every hash after it, head included.
    with db.unit_of_work(catalog.runtime.sessions) as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)).all()
        entries[1].resource_id = "forged"
        prev = entries[0].hash
        for entry in entries[1:]:
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(entry)
            prev = entry.hash
        session.execute(sa.text("UPDATE catalog_audit_head SET hash = :h"), {"h": prev})

    report = _verify(catalog)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == 3
    assert "checkpoint" in report.first_break.reason


def test_checkpoints_are_published_on_the_catalog_topic(catalog: CatalogHarness) -> None:
    assert catalog.call("POST", "/v1/principals/admin/keys", json={"name": "k"}).status_code == 201
    checkpoints = catalog.runtime.service_as(CatalogRuntime).audit_checkpoints
    point = checkpoints.checkpoint_once()
    assert point is not None
    assert checkpoints.checkpoint_once() is None  # head unchanged

    found: list[dict[str, Any]] = []

    def published() -> bool:
        consumer = catalog.runtime.bus.consumer(None, [catalog_events.TOPIC])
        try:
            while messages := consumer.poll(0.5, 1000):
                for message in messages:
                    event = catalog_events.read_catalog_event(message)
                    if event and event[0] == catalog_events.AUDIT_CHECKPOINT:
                        assert message.key == f"auditcheckpoint:{point.seq}:{point.hash}".encode()
                        found.append(event[1])
        finally:
            consumer.close()
        return bool(found)

    assert wait_until(published, 10.0)
    assert found[0]["seq"] == point.seq
    assert found[0]["hash"] == point.hash


def test_concurrent_appends_make_one_gap_free_chain(catalog: CatalogHarness) -> None:
    errors: list[BaseException] = []

    def issue(count: int) -> None:
        try:
            for index in range(count):
                response = catalog.call("POST", "/v1/principals/admin/keys", json={"name": f"c{index}"})
                assert response.status_code == 201, response.text
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=issue, args=(8,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    report = _verify(catalog)
    assert report.ok, report
    assert report.entries_checked == 32


def _usage_event(scenario: str, dataset: str, **data: Any) -> CloudEvent:
    payload = {
        "scenario_id": scenario,
        "subscription_id": "sub-1",
        "grant_id": "grant-1",
        "grant_version": 2,
        "dataset_id": dataset,
        "records": 250,
        "bytes": 51_200,
        "mode": "pull",
        "delivered_at": "2026-11-24T10:00:00+00:00",
        **data,
    }
    return CloudEvent(type="city.citybase.feeds.usage.v1", source="/feeds", subject=scenario, data=payload)


def test_every_delivered_batch_is_audited_once(catalog: CatalogHarness) -> None:
    key = _publisher(catalog, "transit")
    contract = ingest_contract("transport.delivered", "transit")
    assert catalog.call("POST", "/v1/contracts", key, content=contract).status_code == 201
    first = _usage_event("one-stop", "transport.delivered")
    second = _usage_event("one-stop", "transport.delivered", records=10)
    records = [
        event.to_record(USAGE_TOPIC, b"one-stop", value=encode_json(event.data))
        for event in (first, second, first)  # the first one redelivered
    ]
    catalog.runtime.bus.producer().publish(records)

    assert wait_until(lambda: len(_entries(catalog, action="feed.deliver")) == 2, 10.0)
    time.sleep(0.5)  # a duplicate would land within the same or the next batch
    entries = _entries(catalog, action="feed.deliver")
    assert len(entries) == 2
    assert {e["details"]["records"] for e in entries} == {250, 10}
    entry = entries[-1]
    assert entry["actor_id"] == entry["scenario_id"] == "one-stop"
    assert entry["department_id"] == "transit"  # the owner sees deliveries of its datasets
    assert entry["resource_id"] == "sub-1"
    assert {e["dataset_id"] for e in _entries(catalog, key)} >= {"transport.delivered"}

    replay_data = {
        "subscription_id": "sub-1",
        "scenario_id": "one-stop",
        "dataset_id": "transport.delivered",
        "principal_id": "one-stop",
        "target": {"timestamp": "2026-11-24T08:00:00+00:00"},
        "positions": {"0": 12},
        "epoch": 2,
        "replayed_at": "2026-11-24T10:05:00+00:00",
    }
    replay = CloudEvent(type=usage_events.REPLAY, source="/feeds", subject="sub-1", data=replay_data)
    catalog.runtime.bus.producer().publish(
        [replay.to_record(USAGE_TOPIC, b"one-stop", value=encode_json(replay_data))]
    )
    assert wait_until(lambda: len(_entries(catalog, action="feed.replay")) == 1, 10.0)
    assert len(_entries(catalog, action="feed.deliver")) == 2  # a replay is no delivery
    assert _verify(catalog).ok


# --- incremental verification ------------------------------------------------------------------


def _add_keys(catalog: CatalogHarness, count: int, prefix: str) -> None:
    for index in range(count):
        response = catalog.call("POST", "/v1/principals/admin/keys", json={"name": f"{prefix}{index}"})
        assert response.status_code == 201, response.text


def _published_checkpoint(catalog: CatalogHarness) -> audit.Checkpoint:
    """Checkpoint the head now and wait until platform.catalog holds it."""
    point = catalog.runtime.service_as(CatalogRuntime).audit_checkpoints.checkpoint_once()
    assert point is not None
    wanted = audit.Checkpoint(point.seq, point.hash)
    assert wait_until(lambda: wanted in audit.published_checkpoints(catalog.runtime.bus, timeout_s=5), 15.0)
    return wanted


def _verify_over_api(catalog: CatalogHarness, mode: str) -> dict[str, Any]:
    response = catalog.call("GET", "/v1/audit/verification", params={"mode": mode})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_incremental_verification_walks_only_what_came_after_the_last_verified_checkpoint(
    catalog: CatalogHarness,
) -> None:
    _add_keys(catalog, 4, "a")
    first = _published_checkpoint(catalog)
    # No verification yet: an incremental one has nothing to start from and walks it all.
    report = _verify_over_api(catalog, "incremental")
    assert (report["ok"], report["mode"], report["from_seq"]) == (True, "full", 0)
    assert report["entries_checked"] == report["head_seq"] >= first.seq
    assert report["anchor_seq"] == first.seq

    _add_keys(catalog, 3, "b")
    second = _published_checkpoint(catalog)
    report = _verify_over_api(catalog, "incremental")
    assert (report["ok"], report["mode"], report["from_seq"], report["anchor_seq"]) == (
        True,
        "incremental",
        first.seq,
        second.seq,
    )
    # Only the entries after the first checkpoint were walked (the verification reads are audited
    # too, so count from the head).
    assert report["entries_checked"] == report["head_seq"] - first.seq

    full = _verify_over_api(catalog, "full")
    assert (full["ok"], full["mode"], full["from_seq"], full["entries_checked"]) == (
        True,
        "full",
        0,
        full["head_seq"],
    )


def test_an_incremental_verification_catches_a_rewrite_before_its_anchor_and_an_edit_after_it(
    catalog: CatalogHarness,
) -> None:
    _add_keys(catalog, 3, "a")
    anchor = _published_checkpoint(catalog)
    assert _verify_over_api(catalog, "incremental")["anchor_seq"] == anchor.seq
    _add_keys(catalog, 2, "b")

    # An entry after the anchor edited in place: its own hash no longer fits.
    with db.unit_of_work(catalog.runtime.sessions) as session:
        later = session.scalars(sa.select(AuditEntry).where(AuditEntry.seq > anchor.seq).limit(1)).one()
        later_seq = later.seq
    _execute(catalog, f"UPDATE catalog_audit_entries SET resource_id = 'forged' WHERE seq = {later_seq}")
    report = _verify_over_api(catalog, "incremental")
    assert not report["ok"] and report["first_break"]["seq"] == later_seq
    assert report["from_seq"] == anchor.seq


def test_a_consistent_rewrite_before_the_anchor_fails_the_incremental_verification(
    catalog: CatalogHarness,
) -> None:
    _add_keys(catalog, 3, "a")
    anchor = _published_checkpoint(catalog)
    assert _verify_over_api(catalog, "incremental")["ok"]

    # Entry 2 edited and every hash after it recomputed, head included: the entry at the anchor
    # no longer hashes to the checkpoint published on platform.catalog.
    with db.unit_of_work(catalog.runtime.sessions) as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)).all()
        entries[1].resource_id = "forged"
        prev = entries[0].hash
        for entry in entries[1:]:
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(entry)
            prev = entry.hash
        session.execute(sa.text("UPDATE catalog_audit_head SET hash = :h"), {"h": prev})

    report = _verify_over_api(catalog, "incremental")
    assert not report["ok"]
    assert report["first_break"]["seq"] == anchor.seq
    assert "full verification" in report["first_break"]["reason"]
