"""deploy/prometheus: the scrape config and alert rules pass promtool, and their unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from citybase.platform import SERVICE_FACTORIES
from tests.support.deploy import DEPLOY, rule_expressions, rule_files

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules"
REQUIRED_ALERTS = {
    "CitybaseServiceDown",
    "CitybaseIngestRejectRateHigh",
    "CitybaseDeadLetterGrowing",
    "CitybaseQualityBelowThreshold",
    "CitybaseFreshnessSlaBreached",
    "CitybaseFeedLagGrowing",
    "CitybaseWebhookFailures",
}


def run(promtool: str, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_config_is_valid_and_loads_every_rules_file(promtool: str) -> None:
    output = run(promtool, "check", "config", "prometheus.yml")
    assert f"SUCCESS: {len(rule_files(RULES))} rule files found" in output


def test_every_service_is_scraped_on_its_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {f"citybase-{service}" for service in SERVICE_FACTORIES}
    for service in SERVICE_FACTORIES:
        job = jobs[f"citybase-{service}"]
        assert job["metrics_path"] == "/metrics"
        assert [target for group in job["static_configs"] for target in group["targets"]] == [
            f"{service}:8000"
        ]
        # the services label their series with `service` themselves: a target label would clash
        assert all("service" not in group.get("labels", {}) for group in job["static_configs"])


@pytest.mark.parametrize("path", rule_files(RULES), ids=lambda path: path.name)
def test_rules_pass_promtool(path: Path, promtool: str) -> None:
    output = run(promtool, "check", "rules", path)
    assert "SUCCESS" in output


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
    assert len(tests) == len(rule_files(RULES)), "every rules file has its unit tests"
    output = run(promtool, "test", "rules", *tests)
    assert output.count("SUCCESS") == len(tests), output


def test_the_alerts_operators_asked_for_exist_and_say_what_to_do() -> None:
    alerts: dict[str, dict[str, object]] = {}
    for path in rule_files(RULES):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            alerts.update({rule["alert"]: rule for rule in group["rules"] if "alert" in rule})
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name  # type: ignore[index]
        assert {"summary", "description"} <= set(rule["annotations"]), name  # type: ignore[arg-type]


def test_every_alert_has_a_unit_test() -> None:
    tested = set()
    for path in (PROMETHEUS / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            tested.update(check["alertname"] for check in case.get("alert_rule_test", []))
    untested = {
        name
        for path in rule_files(RULES)
        for name, _ in rule_expressions(path)
        if name.startswith("Citybase") and name in REQUIRED_ALERTS
    } - tested
    assert not untested, f"alerts without a promtool unit test: {sorted(untested)}"
