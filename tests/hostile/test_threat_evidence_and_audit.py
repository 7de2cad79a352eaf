"""Two promises under attack: quality evidence never gives a sensitive value away, and the audit
trail cannot be rewritten behind the verifier's back.

Evidence: the whole platform in one process, with two health datasets whose patient ids come from a
space of 1,000 values. A scenario without any grant, another department, the owner and an operator
read ``/quality/v1/datasets/{id}/quality``; each tries every candidate id against what it reads
(in clear, and as the unkeyed SHA-256 the evidence used to carry). Audit: a catalog whose chain is
rewritten consistently (rows, every later hash, the head and the checkpoint rows) or cut short, as
someone with write access to its database can; the API, the CLI against the bus, and the CLI
against an exported checkpoint file must each name the first entry that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citybase.cli import app as cli
from services.catalog.app import create_app as create_catalog
from services.catalog.audit import service as audit
from services.catalog.audit.models import AuditCheckpoint, AuditEntry
from services.catalog.principals import service as principals_service
from services.catalog.runtime import CatalogRuntime
from services.common import catalog_events, db
from services.common.app import Runtime
from services.common.bus import Bus, TopicSpec, UnknownTopic
from services.common.bus.embedded import EmbeddedBus
from services.common.bus.kafka import KafkaBus
from services.common.worker import wait_until
from tests.factories import embedded_settings, evolve_contract, example_contract
from tests.support.platform import Platform, in_process

YAML = {"content-type": "application/yaml"}
PATIENTS = [f"P{number:07d}" for number in range(1000)]
"""The space of patient ids: small enough to try every one against each token."""

OPEN_SINGLE = "health.evidence-open"  # open, primary key patient_id (hash)
RESTRICTED_PAIR = "health.evidence-pair"  # restricted, primary key (clinic, patient_id)


# --- evidence ----------------------------------------------------------------------------------


def _probe_contract(dataset_id: str, classification: str, primary_key: list[str]) -> str:
    """The outpatient-visits contract under another id, classification and primary key."""

    def change(document: dict[str, Any]) -> None:
        document["id"] = dataset_id
        for custom in document["customProperties"]:
            if custom["property"] == "citybase.classification":
                custom["value"] = classification
        schema = document["schema"][0]
        schema["physicalName"] = f"ds.{dataset_id}"
        for prop in schema["properties"]:
            prop.pop("primaryKey", None)
            prop.pop("primaryKeyPosition", None)
            if prop["name"] == "visit_id":
                prop.pop("quality", None)
            if prop["name"] in primary_key:
                prop["primaryKey"] = True
                prop["primaryKeyPosition"] = primary_key.index(prop["name"]) + 1

    return evolve_contract(example_contract("health.outpatient-visits"), "1.0.0", change)


def _visits(count: int, repeats: int) -> list[dict[str, Any]]:
    """``count`` visits; the last ``repeats`` repeat the clinic and patient of earlier ones."""
    now = datetime.now(UTC).isoformat()
    visits = []
    for index in range(count):
        source = index - (count - repeats) if index >= count - repeats else index
        visits.append(
            {
                "visit_id": f"OV-20261207-{index:06d}",
                "hospital_id": "H00042",
                "clinic": f"clinic-{source % 7}",
                "patient_id": PATIENTS[(source * 37) % len(PATIENTS)],
                "age_band": "40-59",
                "wait_minutes": 20,
                "registered_at": now,
            }
        )
    return visits


def reversed_patients(body: Any) -> set[str]:
    """The patient ids a reader recovers from ``body``: shown in clear, or as any prefix (12 hex
    digits or more) of their SHA-256, tried over the whole space of ids."""
    text = json.dumps(body)
    found = {patient for patient in PATIENTS if patient in text}
    digests = {hashlib.sha256(patient.encode()).hexdigest()[:12]: patient for patient in PATIENTS}
    for token in re.findall(r"[0-9a-f]{12,64}", text):
        if token[:12] in digests:
            found.add(digests[token[:12]])
    return found


@pytest.fixture(scope="module")
def evidence_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform with one-second quality windows, a department of each side, an operator, a
    scenario with no grant, and the two probe datasets scored once with repeated keys."""
    with in_process(
        embedded_settings(tmp_path_factory.mktemp("evidence")),
        key_name="matrix",
        environment={"CITYBASE_QUALITY_WINDOW": '{"records": 1000, "seconds": 1}'},
    ) as platform:
        owner = platform.principal("health-publisher", "department", "health-commission")
        platform.principal("market-publisher", "department", "market-supervision")
        platform.principal("city-ops", "operator")
        platform.scenario("ai-community")
        for dataset_id, classification, key in (
            (OPEN_SINGLE, "open", ["patient_id"]),
            (RESTRICTED_PAIR, "restricted", ["clinic", "patient_id"]),
        ):
            contract = _probe_contract(dataset_id, classification, key)
            platform.ok("POST", "/catalog/v1/contracts", owner, content=contract, headers=YAML)
            path = f"/ingest/v1/datasets/{dataset_id}/records"
            assert wait_until(
                lambda path=path: platform.call("POST", path, owner, json=_visits(60, 20)).status_code == 202,
                20.0,
            ), f"ingest did not take {dataset_id}"
            assert wait_until(lambda dataset_id=dataset_id: _failed_uniqueness(platform, dataset_id), 60.0), (
                f"no window of {dataset_id} with repeated keys was scored"
            )
        yield platform


def _quality(platform: Platform, dataset_id: str, principal: str) -> dict[str, Any]:
    key = platform.keys[principal]
    return platform.ok("GET", f"/quality/v1/datasets/{dataset_id}/quality", key)


def _failed_uniqueness(platform: Platform, dataset_id: str) -> bool:
    """The latest window repeats keys within itself: its key's uniqueness rule failed."""
    response = platform.call("GET", f"/quality/v1/datasets/{dataset_id}/quality", platform.admin_key)
    if response.status_code != 200:
        return False
    return any(
        rule["dimension"] == "uniqueness" and rule["examples"] and rule["column"] != "visit_id"
        for rule in response.json()["rules"]
    )


def _record_evidence(body: dict[str, Any]) -> list[Any]:
    """Every failing value and repeated key the body shows."""
    examples = [value for rule in body["rules"] for value in rule["examples"]]
    return examples + list((body.get("window") or {}).get("details", {}).get("repeated_keys") or [])


def test_a_scenario_without_a_grant_reverses_no_hashed_patient_id(evidence_platform: Platform) -> None:
    """An open dataset's evidence is readable by any key; its hashed ids are keyed tokens, and
    trying all 1,000 ids finds none of them. The operator, who reads the same tokens, finds none
    either: the key is quality's alone."""
    body = _quality(evidence_platform, OPEN_SINGLE, "ai-community")
    shown = _record_evidence(body)
    assert shown, "the open dataset shows its evidence (masked)"
    assert len(reversed_patients(body)) == 0, "0 of 1,000 patient ids recovered"
    assert all(str(value).startswith("hmac:") for value in shown), shown
    assert reversed_patients(_quality(evidence_platform, OPEN_SINGLE, "city-ops")) == set()


def test_record_evidence_of_a_restricted_dataset_is_for_its_owner_and_operators(
    evidence_platform: Platform,
) -> None:
    for outsider in ("ai-community", "market-publisher"):
        body = _quality(evidence_platform, RESTRICTED_PAIR, outsider)
        assert reversed_patients(body) == set(), outsider
        assert _record_evidence(body) == [], outsider
        assert body["record_evidence"]["shown"] is False
        assert "restricted" in body["record_evidence"]["withheld_because"]
        assert body["scores"]["uniqueness"] is not None and body["scores"]["uniqueness"] < 100
    for reader in ("health-publisher", "city-ops"):
        body = _quality(evidence_platform, RESTRICTED_PAIR, reader)
        assert body["record_evidence"]["shown"] is True
        assert _record_evidence(body), reader


def test_a_rule_over_several_columns_and_a_composite_key_leak_no_patient_id(
    evidence_platform: Platform,
) -> None:
    """(clinic, patient_id) is the key: its uniqueness rule reads two columns and its repeated
    keys have two parts, the first of them not sensitive. Each part is masked by its own column's
    rule, so the clinic shows and the patient id is a keyed token."""
    body = _quality(evidence_platform, RESTRICTED_PAIR, "city-ops")
    assert reversed_patients(body) == set(), "0 of 1,000 patient ids recovered"
    compound = next(
        rule for rule in body["rules"] if rule["expectation_type"] == "expect_compound_columns_to_be_unique"
    )
    assert compound["examples"], "the compound key rule failed with examples"
    for example in compound["examples"]:
        assert example["clinic"].startswith("clinic-")
        assert example["patient_id"].startswith("hmac:")
    repeated = body["window"]["details"]["repeated_keys"]
    assert repeated
    for clinic, patient in repeated:
        assert clinic.startswith("clinic-") and patient.startswith("hmac:")


# --- audit -------------------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime, str]]:
    """A catalog alone on SQLite and the embedded bus, with its admin key."""
    app = create_catalog(embedded_settings(tmp_path))
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        with db.unit_of_work(runtime.sessions) as session:
            issued = principals_service.bootstrap_admin(
                session, events=runtime.service_as(CatalogRuntime).events
            )
        assert issued is not None
        assert wait_until(lambda: _authenticates(runtime, issued.key), 10.0)
        yield client, runtime, issued.key


def _authenticates(runtime: Runtime, key: str) -> bool:
    try:
        runtime.service_as(CatalogRuntime).keyring.authenticate(key)
        return True
    except Exception:
        return False


def _act(client: TestClient, admin: str, runtime: Runtime, count: int, *, checkpoint: bool) -> None:
    """``count`` audited changes, each checkpointed (and published) when ``checkpoint``."""
    for _ in range(count):
        response = client.post(
            "/v1/principals/admin/keys", json={"name": "k"}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert response.status_code == 201, response.text
        if checkpoint:
            assert runtime.service_as(CatalogRuntime).audit_checkpoints.checkpoint_once() is not None


def _head(runtime: Runtime) -> int:
    with db.unit_of_work(runtime.sessions) as session:
        return int(session.scalar(sa.select(sa.func.max(AuditEntry.seq))) or 0)


def _on_the_bus(runtime: Runtime) -> set[tuple[int, str]]:
    """The (sequence, hash) of every checkpoint event platform.catalog holds."""
    found: set[tuple[int, str]] = set()
    consumer = runtime.bus.consumer(None, [catalog_events.TOPIC], client_id="test-checkpoints")
    try:
        while messages := consumer.poll(0.3, 1000):
            for message in messages:
                event = catalog_events.read_catalog_event(message)
                if event is not None and event[0] == catalog_events.AUDIT_CHECKPOINT:
                    found.add((event[1]["seq"], event[1]["hash"]))
    finally:
        consumer.close()
    return found


def _published(runtime: Runtime) -> None:
    """Wait until every checkpoint row is on platform.catalog, then compact the topic."""
    with db.unit_of_work(runtime.sessions) as session:
        rows = {(p.seq, p.hash) for p in session.scalars(sa.select(AuditCheckpoint))}
    assert wait_until(lambda: rows <= _on_the_bus(runtime), 10.0), "the checkpoints are not on the bus"
    bus = runtime.bus
    assert isinstance(bus, EmbeddedBus)
    bus.maintain()


def _rewrite(runtime: Runtime, seq: int) -> None:
    """Edit entry ``seq`` and recompute every later hash, the head and the checkpoint rows."""
    with db.unit_of_work(runtime.sessions) as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)).all()
        prev = audit.GENESIS
        for entry in entries:
            if entry.seq == seq:
                entry.resource_id = "forged"
            entry.prev_hash = prev
            entry.hash = audit.entry_hash(entry)
            prev = entry.hash
            point = session.get(AuditCheckpoint, entry.seq)
            if point is not None:
                point.hash = entry.hash
        session.execute(sa.text("UPDATE catalog_audit_head SET hash = :h"), {"h": prev})


def _cut(runtime: Runtime, keep: int) -> None:
    """Drop the entries after ``keep`` with their checkpoint rows; the head points at ``keep``."""
    with db.unit_of_work(runtime.sessions) as session:
        session.execute(sa.delete(AuditEntry).where(AuditEntry.seq > keep))
        session.execute(sa.delete(AuditCheckpoint).where(AuditCheckpoint.seq > keep))
        last = session.get(AuditEntry, keep)
        assert last is not None
        session.execute(
            sa.text("UPDATE catalog_audit_head SET seq = :s, hash = :h"), {"s": keep, "h": last.hash}
        )


Verifier = Callable[[tuple[TestClient, Runtime, str], Path], tuple[bool, int, str]]


def _by_api(catalog: tuple[TestClient, Runtime, str], _: Path) -> tuple[bool, int, str]:
    client, _runtime, admin = catalog
    response = client.get("/v1/audit/verification", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200, response.text
    body = response.json()
    first = body.get("first_break") or {}
    return bool(body["ok"]), int(first.get("seq") or 0), json.dumps(body)


def _by_cli(catalog: tuple[TestClient, Runtime, str], _: Path) -> tuple[bool, int, str]:
    _client, runtime, _admin = catalog
    return _cli(runtime, ["--bus-url", runtime.settings.bus_url])


def _by_file(catalog: tuple[TestClient, Runtime, str], tmp_path: Path) -> tuple[bool, int, str]:
    _client, runtime, _admin = catalog
    exported = tmp_path / "checkpoints.jsonl"
    result = CliRunner().invoke(
        cli, ["audit", "export-checkpoints", "--bus-url", runtime.settings.bus_url, "--output", str(exported)]
    )
    assert result.exit_code == 0, result.output
    # The verifier has the file and the database, not the bus.
    return _cli(runtime, ["--checkpoints", str(exported), "--bus-url", "kafka://127.0.0.1:1"])


def _cli(runtime: Runtime, extra: list[str]) -> tuple[bool, int, str]:
    exit_code, said = _cli_exit(runtime, extra)
    assert exit_code in (0, 1), said
    found = re.search(r"broken at entry (\d+)", said)
    return exit_code == 0, int(found.group(1)) if found else 0, said


VERIFIERS = {"api": _by_api, "cli-bus": _by_cli, "cli-file": _by_file}


def _attack(
    catalog: tuple[TestClient, Runtime, str],
    tmp_path: Path,
    verifier: str,
    tamper: Callable[[Runtime, int], int],
) -> tuple[bool, int, str, int]:
    """Six checkpointed changes, all published; then ``tamper(runtime, head)`` on the database,
    which returns the first entry it changed and leaves a chain the database alone still vouches
    for. The verifier's (ok, first entry named, what it said) and that entry."""
    client, runtime, admin = catalog
    _act(client, admin, runtime, 6, checkpoint=True)
    _published(runtime)
    assert VERIFIERS[verifier](catalog, tmp_path)[0] is True
    changed = tamper(runtime, _head(runtime))
    with db.unit_of_work(runtime.sessions) as session:
        assert audit.verify(session).ok, "the database alone cannot tell"
    return (*VERIFIERS[verifier](catalog, tmp_path), changed)


def _rewrite_third_last(runtime: Runtime, head: int) -> int:
    _rewrite(runtime, head - 3)
    return head - 3


def _cut_last_two(runtime: Runtime, head: int) -> int:
    _cut(runtime, head - 2)
    return head - 1


@pytest.mark.parametrize("verifier", list(VERIFIERS))
def test_a_consistent_rewrite_of_the_chain_is_named_at_the_first_entry_that_differs(
    catalog: tuple[TestClient, Runtime, str], tmp_path: Path, verifier: str
) -> None:
    ok, first, said, edited = _attack(catalog, tmp_path, verifier, _rewrite_third_last)
    assert not ok, said
    assert first == edited, said


@pytest.mark.parametrize("verifier", list(VERIFIERS))
def test_dropping_the_last_entries_with_their_checkpoints_is_named(
    catalog: tuple[TestClient, Runtime, str], tmp_path: Path, verifier: str
) -> None:
    ok, first, said, first_dropped = _attack(catalog, tmp_path, verifier, _cut_last_two)
    assert not ok, said
    assert first == first_dropped, said
    assert "removed" in said


def test_a_cut_chain_grown_again_past_its_last_checkpoint_is_caught_after_compaction(
    catalog: tuple[TestClient, Runtime, str], tmp_path: Path
) -> None:
    """The tail after checkpoint K is cut and grown again to the same length; the catalog then
    checkpoints the forged head at the same position. That second checkpoint must not replace the
    first on the compacted topic: both survive, and the position shows two hashes."""
    client, runtime, admin = catalog
    _act(client, admin, runtime, 3, checkpoint=True)
    kept = _head(runtime)
    _act(client, admin, runtime, 3, checkpoint=False)
    assert runtime.service_as(CatalogRuntime).audit_checkpoints.checkpoint_once() is not None
    head = _head(runtime)
    _published(runtime)

    _cut(runtime, kept)
    _act(client, admin, runtime, head - kept, checkpoint=False)
    assert runtime.service_as(CatalogRuntime).audit_checkpoints.checkpoint_once() is not None
    assert _head(runtime) == head
    _published(runtime)

    for verify_by in VERIFIERS.values():
        ok, first, said = verify_by(catalog, tmp_path)
        assert not ok, said
        assert first == head, said


def test_an_intact_chain_verifies_against_the_bus_and_the_file(
    catalog: tuple[TestClient, Runtime, str], tmp_path: Path
) -> None:
    client, runtime, admin = catalog
    _act(client, admin, runtime, 4, checkpoint=True)
    _published(runtime)
    for verify_by in VERIFIERS.values():
        ok, _first, said = verify_by(catalog, tmp_path)
        assert ok, said
    body = json.loads(_by_api(catalog, tmp_path)[2])
    assert body["published_checkpoints"] == 4
    assert body["checkpoints"] == 4
    assert body["last_published_seq"] == _head(runtime)
    assert body["checkpoint_source"] == catalog_events.TOPIC


def test_a_verifier_pointed_at_the_wrong_bus_does_not_vouch_for_the_chain(
    catalog: tuple[TestClient, Runtime, str], tmp_path: Path
) -> None:
    """No bus, or a bus without platform.catalog, is an error (exit 2), not an intact trail."""
    _client, runtime, _admin = catalog
    missing = tmp_path / "elsewhere" / "bus.db"
    exit_code, said = _cli_exit(runtime, ["--bus-url", f"embedded://{missing}"])
    assert exit_code == 2 and "no embedded bus" in said, said
    assert not missing.exists()
    other = EmbeddedBus(tmp_path / "other.db")
    other.close()
    exit_code, said = _cli_exit(runtime, ["--bus-url", f"embedded://{tmp_path / 'other.db'}"])
    assert exit_code == 2 and "cannot read the audit checkpoints" in said, said
    exit_code, said = _cli_exit(runtime, ["--checkpoints", str(tmp_path / "none.jsonl")])
    assert exit_code == 2, said
    (tmp_path / "bad.jsonl").write_text('{"seq": 1, "hash": "ab"}\n{"seq": "two"}\n')
    exit_code, said = _cli_exit(runtime, ["--checkpoints", str(tmp_path / "bad.jsonl")])
    assert exit_code == 2 and "line 2" in said, said


def _cli_exit(runtime: Runtime, extra: list[str]) -> tuple[int, str]:
    url = runtime.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["audit", "verify", "--database-url", url, *extra])
    return result.exit_code, result.output


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def any_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bus]:
    if request.param == "embedded":
        built: Bus = EmbeddedBus(tmp_path / "bus.db")
    else:
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        built = KafkaBus(bootstrap.split(","), client_id="citybase-test")
    yield built
    built.close()


def test_the_verifier_reads_every_checkpoint_from_the_beginning_on_either_bus(any_bus: Bus) -> None:
    """Checkpoints spread over the partitions of a compacted topic, two of them at one sequence:
    all are read back, from the beginning, by a reader of no group (so it reads them again)."""
    topic = f"test.audit-checkpoints.{uuid.uuid4().hex[:10]}"
    any_bus.admin().ensure_topic(TopicSpec(topic, partitions=3, compact=True), timeout_s=30.0)
    points = [(seq, hashlib.sha256(str(seq).encode()).hexdigest()) for seq in range(1, 41)]
    points.append((40, "f" * 64))  # the chain cut back and grown again: a second hash at 40
    records = []
    for seq, digest in points:
        state = {"seq": seq, "hash": digest, "at": "2026-12-07T08:00:00.000000Z"}
        record = catalog_events.catalog_record(catalog_events.AUDIT_CHECKPOINT, f"{seq}:{digest}", state)
        records.append(dataclasses.replace(record, topic=topic))
    any_bus.producer().publish(records)
    if isinstance(any_bus, EmbeddedBus):
        any_bus.maintain()
    for _ in range(2):
        read = audit.published_checkpoints(any_bus, topic=topic)
        assert [(point.seq, point.hash) for point in read] == sorted(points)
    with pytest.raises(UnknownTopic):
        audit.published_checkpoints(any_bus, topic=f"{topic}.missing", timeout_s=5.0)
