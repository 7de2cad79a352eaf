"""Quality end to end, on the embedded bus with SQLite and on real Kafka with PostgreSQL: records
with faults injected at chosen rates move each dimension as the faults say, a stalled feed drops
timeliness and raises an SLA breach, an unused grant shows up as idle, and the scorecard renders.

The catalog, ingest and feeds do not run: the test publishes what they would (catalog events,
``ds.``/``dlq.`` records routed as ingest routes them, usage events) from tests/factories.py.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from services.common.app import Runtime
from services.common.worker import wait_until
from services.quality.app import create_app
from services.quality.runtime import QualityRuntime
from services.quality.settings import QualitySettings, WindowSize
from tests.factories import (
    catalog_records,
    contract_property,
    contract_state,
    dataset_event_state,
    days_ago,
    embedded_settings,
    grant_state,
    operator_key,
    routed_records,
    usage_record,
)
from tests.support.http import serve
from tests.support.services import QualityHarness

EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"


def assert_matches_schema(name: str, data: Any) -> None:
    schema = json.loads((EVENT_SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(data)


def _settings(unique: str) -> QualitySettings:
    return QualitySettings(
        group_id=f"quality-{unique}",
        usage_group_id=f"quality-usage-{unique}",
        window=WindowSize(records=2000, seconds=1.0),
        resubscribe_interval_s=0.2,
        sla_check_interval_s=0.3,
        dataset_prefix=f"health.q{unique[:6]}-",
        utilization_refresh_s=0.5,
    )


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def quality(request: pytest.FixtureRequest, tmp_path: Path, unique_name: str) -> Iterator[QualityHarness]:
    overrides: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'citybase.db'}"}
    if request.param == "kafka":
        overrides = {
            "database_url": request.getfixturevalue("schema_url"),
            "bus_url": f"kafka://{request.getfixturevalue('kafka_bootstrap')}",
        }
    app = create_app(embedded_settings(tmp_path, **overrides), quality_settings=_settings(unique_name))
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        # The read model creates platform.catalog as it starts; publish once it has.
        assert wait_until(lambda: runtime.service_as(QualityRuntime).read_model.caught_up, 60)
        key, records = operator_key(f"operator-{unique_name}")
        runtime.bus.producer().publish(records)
        harness = QualityHarness(client, runtime, key, f"dept-{unique_name}", [])
        assert wait_until(lambda: harness.get("/v1/quality/rankings").status_code == 200, 15)
        try:
            yield harness
        finally:
            # platform.catalog outlives a test on a shared Kafka: retire what this test made.
            retired = [
                dataset_event_state(d, department_id=harness.department, status="retired")
                for d in harness.datasets
            ]
            if retired:
                runtime.bus.producer().publish(catalog_records(datasets=retired))


def _tolerant_age_band(document: dict[str, Any]) -> None:
    """age_band's set becomes a tolerant rule (< 10 %): ingest lets bad values through, GX counts them."""
    rule = contract_property(document, "age_band")["quality"][0]
    rule.pop("mustBe", None)
    rule["mustBeLessThan"] = 10
    rule["unit"] = "percent"


def _bad_age_band(index: int, record: dict[str, Any]) -> None:
    if index % 20 == 0:
        record["age_band"] = "unknown"


def _record_weighted_timeliness(quality: QualityHarness, dataset_id: str) -> float:
    """Timeliness over every window of the dataset, weighted by records. The rolling view gives the
    latest window's, and on a busy machine the 1 s close can leave the last of 2,000 records in a
    window of a few, whose share of late ones says little."""
    response = quality.get(f"/v1/datasets/{dataset_id}/quality/history")
    assert response.status_code == 200, response.text
    points = [(p["records"], p["scores"]["timeliness"]) for p in response.json()["points"] if p["records"]]
    return sum(records * score for records, score in points) / sum(records for records, _ in points)


def test_each_dimension_moves_as_the_injected_faults_say(quality: QualityHarness) -> None:
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("nulls", "completeness", {"null": 0.05}),
        ("enums", "validity", {"bad_enum": 0.05}),
        ("dups", "uniqueness", {"duplicate": 0.05}),
        ("late", "timeliness", {"late": 0.05}),
        ("values", "conformity", {"mutate": _bad_age_band}),
    ]
    datasets = {}
    for name, dimension, faults in cases:
        contract = quality.register(name, change=_tolerant_age_band if name == "values" else None)
        records, _ = routed_records(contract, 2000, seed=zlib.crc32(name.encode()) % 1000, **faults)
        quality.publish(records)
        datasets[contract["dataset_id"]] = dimension
    for dataset_id, dimension in datasets.items():
        body = quality.wait_scored(dataset_id, 2000)
        scores = body["rolling"]["scores"]
        moved = (
            _record_weighted_timeliness(quality, dataset_id)
            if dimension == "timeliness"
            else scores[dimension]
        )
        assert moved == pytest.approx(95, abs=2.0), (dimension, scores, body["problems"])
        for other in ("validity", "completeness", "uniqueness", "conformity", "timeliness"):
            if other == dimension or (dimension == "completeness" and other == "validity"):
                continue  # a missing required field is also a rejected record
            assert scores[other] > 99.0, (dimension, other, scores)
        assert scores["overall"] < 100.0
    conformity = next(d for d, dim in datasets.items() if dim == "conformity")
    evidence = {rule["rule"]: rule for rule in quality.quality(conformity)["rules"]}
    assert evidence["invalidValues"]["unexpected_count"] > 0
    assert "unknown" in evidence["invalidValues"]["examples"]
    assert evidence["invalidValues"]["success"] is True  # within the contract's 10 % tolerance


def test_a_stalled_feed_drops_timeliness_and_raises_an_sla_breach(quality: QualityHarness) -> None:
    def every_ten_seconds(document: dict[str, Any]) -> None:
        document["slaProperties"] = [{"property": "frequency", "value": 10, "unit": "s"}]

    contract = quality.register("stall", change=every_ten_seconds)
    dataset_id = contract["dataset_id"]
    quality.wait_following(dataset_id)  # so that the records are scored while fresh
    records, _ = routed_records(contract, 200)
    quality.publish(records)
    quality.wait_scored(dataset_id, 200)
    history = quality.get(f"/v1/datasets/{dataset_id}/quality/history").json()["points"]
    # Scored while fresh (a Kafka group join takes seconds, so not necessarily 100).
    assert max(point["scores"]["timeliness"] for point in history) > 90

    def stalled() -> bool:
        body = quality.quality(dataset_id)
        return bool(body["sla_breaches"]) and (body["scores"]["timeliness"] or 100) < 50

    assert wait_until(stalled, 45, 0.2), quality.quality(dataset_id)
    body = quality.quality(dataset_id)
    assert body["window"]["kind"] == "freshness"
    assert body["sla_breaches"][0]["kind"] == "freshness"
    assert any("stalled" in problem for problem in body["problems"])
    breaches = quality.read(
        "platform.quality",
        lambda e: e.type == "city.citybase.quality.sla-breach.v1" and e.data["dataset_id"] == dataset_id,
    )
    assert breaches[0].data["state"] == "open"
    assert breaches[0].data["kind"] == "freshness"
    assert_matches_schema("quality.sla-breach.json", breaches[0].data)

    # Records again: the breach is resolved and announced.
    more, _ = routed_records(contract, 100, seed=11)
    quality.publish(more)
    assert wait_until(lambda: not quality.quality(dataset_id)["sla_breaches"], 20, 0.2)
    resolved = quality.read(
        "platform.quality",
        lambda e: (
            e.type == "city.citybase.quality.sla-breach.v1"
            and e.data["dataset_id"] == dataset_id
            and e.data["state"] == "resolved"
        ),
    )
    assert resolved
    scores = quality.read(
        "platform.quality",
        lambda e: e.type == "city.citybase.quality.score.v1" and e.data["dataset_id"] == dataset_id,
    )
    assert scores, "score changes are announced on platform.quality"
    for event in scores:
        assert_matches_schema("quality.score.json", event.data)
    assert {event.data["kind"] for event in scores} == {"window", "freshness"}
    metrics = quality.client.get("/metrics").text
    assert f'citybase_quality_sla_breaches_total{{dataset="{dataset_id}",kind="freshness"}} 1.0' in metrics
    assert all(event.subject == dataset_id for event in scores + breaches + resolved)


def test_an_unused_grant_shows_up_as_idle(quality: QualityHarness) -> None:
    used = quality.register("used", created_at=days_ago(40))["dataset_id"]
    unused = quality.register("unused", created_at=days_ago(40))["dataset_id"]
    suffix = uuid.uuid4().hex[:6]
    idle_scenario, busy_scenario = f"showcase-{suffix}", f"busy-{suffix}"
    idle_grant = grant_state(idle_scenario, used, valid_from=days_ago(30))
    busy_grant = grant_state(busy_scenario, used, valid_from=days_ago(30))
    revoked = grant_state(idle_scenario, unused, valid_from=days_ago(30), status="revoked", version=2)
    quality.publish(catalog_records(grants=[idle_grant, busy_grant, revoked]))
    # An older version of a grant arriving late does not undo the newer one.
    quality.publish(catalog_records(grants=[{**revoked, "status": "active", "version": 1}]))
    delivery = usage_record(busy_scenario, used, grant_id=busy_grant["id"], records=500)
    quality.publish([delivery, delivery])  # redelivered: stored once

    def delivered() -> bool:
        response = quality.get(f"/v1/utilization/datasets/{used}")
        return response.status_code == 200 and response.json()["daily"] != []

    assert wait_until(delivered, 20, 0.2)  # the metering has reached quality

    def idle_found() -> dict[str, Any] | None:
        body = quality.get("/v1/utilization/idle", days=14).json()
        scenarios = {entry["scenario_id"] for entry in body["idle_scenarios"]}
        return body if idle_scenario in scenarios else None

    assert wait_until(lambda: idle_found() is not None, 20, 0.2)
    body = idle_found()
    assert body is not None
    assert busy_scenario not in {entry["scenario_id"] for entry in body["idle_scenarios"]}
    unused_grants = {entry["grant_id"]: entry for entry in body["unused_grants"]}
    assert idle_grant["id"] in unused_grants and busy_grant["id"] not in unused_grants
    assert revoked["id"] not in unused_grants
    assert unused_grants[idle_grant["id"]]["evidence"] == "never used since it was granted"
    never = {entry["dataset_id"] for entry in body["never_delivered_datasets"]}
    assert unused in never and used not in never

    per_dataset = quality.get(f"/v1/utilization/datasets/{used}").json()
    assert per_dataset["active_grants"] == 2 and per_dataset["grants_used"] == 1
    assert per_dataset["daily"][0]["records"] == 500  # the redelivered event counted once
    assert per_dataset["active_subscribers"] == 1
    [subscription] = per_dataset["subscriptions"]
    assert subscription["scenario_id"] == busy_scenario and subscription["lag_records"] == 0
    assert 0 < per_dataset["score"] < 100
    scenario = quality.get(f"/v1/utilization/scenarios/{busy_scenario}").json()
    assert scenario["records_consumed"] == 500 and scenario["datasets_used"] == 1
    overview = quality.get("/v1/utilization").json()
    assert 0 < overview["penetration_rate"] < 1
    assert quality.get("/v1/utilization/scenarios/nobody-at-all").status_code == 404


def test_the_scorecard_renders_as_json_csv_and_html(quality: QualityHarness) -> None:
    contract = quality.register("card")
    dataset_id = contract["dataset_id"]
    records, _ = routed_records(contract, 500, null=0.1)
    quality.publish(records)
    quality.wait_scored(dataset_id, 500)
    path = f"/v1/scorecards/departments/{quality.department}"
    card = quality.get(path, period="30d").json()
    assert card["summary"]["datasets"] == 1
    row = card["datasets"][0]
    assert row["dataset_id"] == dataset_id and row["records"] >= 500
    assert row["quality"]["completeness"] == pytest.approx(90, abs=3)
    csv_text = quality.get(path, period="30d", format="csv").text
    assert csv_text.splitlines()[0].startswith("dataset_id,status,windows,records,validity")
    assert dataset_id in csv_text
    page = quality.get(path, period="7d", format="html")
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "<rect" in page.text and dataset_id in page.text
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "1 dataset," in page.text and "<th>Dataset</th>" in page.text
    chinese = quality.client.get(
        path,
        params={"period": "7d", "format": "html"},
        headers={"Authorization": f"Bearer {quality.key}", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"},
    )
    assert chinese.headers["content-language"] == "zh-CN"
    assert '<html lang="zh-CN">' in chinese.text and "1 个数据集" in chinese.text
    assert quality.get(path, period="forever").status_code == 422
    assert quality.get("/v1/scorecards/departments/nobody").status_code == 404


def test_bad_input_is_scored_with_what_is_possible_and_reported(quality: QualityHarness) -> None:
    # A dataset without a contract version still gets validity and timeliness, never a silent 100.
    bare = quality.register("bare", version=None)["dataset_id"]
    contract = contract_state(bare)
    records, _ = routed_records(contract, 50)
    quality.publish(records)
    body = quality.wait_scored(bare, 50)
    assert body["scores"]["validity"] == 100
    assert body["scores"]["completeness"] is None and body["scores"]["conformity"] is None
    assert any("no contract version" in problem for problem in body["problems"])

    # A suite with an expectation GX cannot build, and records whose types do not fit: the rest runs.
    def broken_suite(document: dict[str, Any]) -> None:
        contract_property(document, "clinic")["quality"] = [
            {
                "type": "custom",
                "engine": "greatExpectations",
                "implementation": {"type": "expect_column_values_to_be_frobnicated", "kwargs": {}},
            }
        ]

    odd = quality.register("odd", change=broken_suite)
    records, _ = routed_records(odd, 100)
    quality.publish(records)
    body = quality.wait_scored(odd["dataset_id"], 100)
    assert any("frobnicated" in problem for problem in body["problems"])
    assert body["scores"]["conformity"] is not None
    assert body["scores"]["overall"] is not None


def test_the_api_answers_404_422_and_ranks_worst_first(quality: QualityHarness) -> None:
    good = quality.register("good")
    bad = quality.register("bad")
    quality.publish(routed_records(good, 300)[0] + routed_records(bad, 300, seed=3, bad_enum=0.3)[0])
    quality.wait_scored(good["dataset_id"], 300)
    quality.wait_scored(bad["dataset_id"], 300)
    assert quality.get("/v1/datasets/health.nothing-here/quality").status_code == 404
    unknown = quality.get("/v1/datasets/health.nothing-here/quality/history")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    now = datetime.now(UTC)
    backwards = quality.get(
        f"/v1/datasets/{good['dataset_id']}/quality/history",
        **{"from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()},
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["path"] == "/query/to"
    assert (
        quality.get(f"/v1/datasets/{good['dataset_id']}/quality/history", **{"from": "yesterday"}).status_code
        == 422
    )
    history = quality.get(f"/v1/datasets/{good['dataset_id']}/quality/history").json()
    assert history["points"] and history["downsampled"] is False
    ranked = quality.get("/v1/quality/rankings", department=quality.department).json()["items"]
    order = [entry["dataset_id"] for entry in ranked]
    assert order.index(bad["dataset_id"]) < order.index(good["dataset_id"])
    departments = quality.get("/v1/quality/rankings", by="department", department=quality.department).json()
    assert departments["items"][0]["key"] == quality.department
    assert quality.client.get("/v1/quality/rankings").status_code == 401
    metrics = quality.client.get("/metrics").text
    assert f'citybase_dataset_quality_score{{dataset="{good["dataset_id"]}",dimension="overall"}}' in metrics
    assert "citybase_quality_window_processing_seconds_count" in metrics
    assert json.loads(json.dumps(history))  # plain JSON all the way


def test_metrics_hold_each_dataset_to_its_threshold_and_sla_and_name_its_department(
    quality: QualityHarness,
) -> None:
    dataset_id = quality.register("described")["dataset_id"]
    info = f'citybase_dataset_info{{dataset="{dataset_id}",department="{quality.department}",domain="health"}} 1.0'
    assert wait_until(lambda: info in quality.client.get("/metrics").text, 20, 0.2)
    metrics = quality.client.get("/metrics").text
    assert f'citybase_dataset_quality_threshold{{dataset="{dataset_id}"}} 80.0' in metrics
    # the health example contract's SLA frequency: PT15M
    assert f'citybase_dataset_freshness_target_seconds{{dataset="{dataset_id}"}} 900.0' in metrics


def test_citybase_scorecard_writes_the_department_page(quality: QualityHarness, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from citybase.cli import app as cli

    contract = quality.register("cli")
    quality.publish(routed_records(contract, 300)[0])
    quality.wait_scored(contract["dataset_id"], 300)
    page = tmp_path / "card.html"
    with serve(quality.client.app, lifespan="off") as url:
        arguments = ["scorecard", "--department", quality.department, "--period", "30d"]
        arguments += ["--url", url, "--key", quality.key]
        result = CliRunner().invoke(cli, [*arguments, "--format", "html", "--output", str(page)])
        assert result.exit_code == 0, result.output
        assert "<svg" in page.read_text(encoding="utf-8") and contract["dataset_id"] in page.read_text(
            encoding="utf-8"
        )
        as_json = CliRunner().invoke(cli, arguments)
        assert as_json.exit_code == 0, as_json.output
        assert json.loads(as_json.stdout)["datasets"][0]["dataset_id"] == contract["dataset_id"]
        nobody = CliRunner().invoke(
            cli,
            ["scorecard", "--department", "nobody", "--url", url, "--key", quality.key],
        )
        assert nobody.exit_code == 1


def test_citybase_scorecard_reads_the_quality_api_from_any_directory(
    quality: QualityHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory that holds no platform, the command asks quality (key from the
    environment, as the other commands take it), and makes no database of its own there."""
    from typer.testing import CliRunner

    from citybase.cli import app as cli

    contract = quality.register("anywhere")
    quality.publish(routed_records(contract, 200)[0])
    quality.wait_scored(contract["dataset_id"], 200)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CITYBASE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CITYBASE_DATA_DIR", raising=False)
    monkeypatch.setenv("CITYBASE_API_KEY", quality.key)
    with serve(quality.client.app, lifespan="off") as url:
        result = CliRunner().invoke(cli, ["scorecard", "--department", quality.department, "--url", url])
        expected = quality.get(f"/v1/scorecards/departments/{quality.department}", period="30d").json()
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert [row["dataset_id"] for row in card["datasets"]] == [contract["dataset_id"]]
    assert card["summary"]["datasets"] == expected["summary"]["datasets"] == 1
    assert list(elsewhere.rglob("*")) == []
    monkeypatch.delenv("CITYBASE_API_KEY")
    keyless = CliRunner().invoke(cli, ["scorecard", "--department", quality.department, "--url", url])
    assert keyless.exit_code == 2
    assert "API key" in keyless.output
