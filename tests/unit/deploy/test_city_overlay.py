"""The city overlay runs what docs/capacity.md sizes for a city, and scales as it says: ingest and
feeds on CPU, quality on its consumer group's lag, read through the Prometheus adapter from a
metric quality really exposes. The sizing table and the manifests are compared, so neither moves
without the other."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.support.deploy import DEPLOY, K8S, REPO, Scrape, build, by_kind, promql_metric_names

CITY = K8S / "overlays" / "city"
CAPACITY = REPO / "docs" / "capacity.md"
SCALED = {"ingest": "ingest cores", "quality": "quality cores", "feeds": "feeds cores"}


def _sizing_row(label: str) -> tuple[str, str, str]:
    """The district, city and peak cells of the sizing table's row starting with ``label``."""
    for line in CAPACITY.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {label}"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            return cells[1], cells[2], cells[3]
    raise AssertionError(f"docs/capacity.md has no sizing row {label!r}")


def _replicas_and_cores(cell: str) -> tuple[int, float]:
    """``12.7 → 7 replicas of 2 cores`` -> (7, 2.0); ``... of 0.5 core`` -> (n, 0.5)."""
    found = re.search(r"→ (\d+) replicas of ([\d.]+) cores?", cell)
    assert found, cell
    return int(found.group(1)), float(found.group(2))


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_the_city_overlay_runs_the_city_column_and_scales_to_the_peak_column(kustomize: list[str]) -> None:
    manifests = build(kustomize, CITY)
    deployments = by_kind(manifests, "Deployment")
    autoscalers = by_kind(manifests, "HorizontalPodAutoscaler")
    for service, label in SCALED.items():
        _, city, peak = _sizing_row(label)
        replicas, cores = _replicas_and_cores(city)
        peak_replicas, _ = _replicas_and_cores(peak)
        deployment = deployments[f"citybase-{service}"]
        assert deployment["spec"]["replicas"] == replicas, service
        requests = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert _cpu(str(requests["cpu"])) == cores, service
        autoscaler = autoscalers[f"citybase-{service}"]
        assert autoscaler["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"citybase-{service}",
        }
        assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (
            replicas,
            peak_replicas,
        )


def test_ingest_and_feeds_scale_on_cpu_and_quality_on_the_lag_it_reports(
    kustomize: list[str], exposed_metrics: dict[str, Scrape]
) -> None:
    autoscalers = by_kind(build(kustomize, CITY), "HorizontalPodAutoscaler")
    for service in ("ingest", "feeds"):
        (metric,) = autoscalers[f"citybase-{service}"]["spec"]["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    quality: dict[str, Any] = autoscalers["citybase-quality"]["spec"]
    (metric,) = quality["metrics"]
    assert metric["type"] == "External"
    # One replica at a time: a rebalance re-reads the open windows of every dataset it moves.
    assert [p["value"] for p in quality["behavior"]["scaleUp"]["policies"]] == [1]
    assert quality["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300

    adapter = yaml.safe_load((CITY / "prometheus-adapter-rules.yaml").read_text(encoding="utf-8"))
    rules = {rule["name"]["as"]: rule for rule in adapter["externalRules"]}
    rule = rules[metric["external"]["metric"]["name"]]
    served = promql_metric_names(rule["seriesQuery"]) | promql_metric_names(
        rule["metricsQuery"].replace("<<.LabelMatchers>>", "")
    )
    scraped = exposed_metrics["quality"].parsed.series_names
    assert served == {"citybase_quality_consumer_lag_records"} and served <= scraped
    # Every replica reports the whole group's lag by dataset: one figure per dataset, not per pod.
    assert "max by (dataset)" in rule["metricsQuery"]


def test_the_overlay_is_named_where_the_capacity_document_sends_a_city() -> None:
    text = CAPACITY.read_text(encoding="utf-8")
    assert "deploy/k8s/overlays/city" in text
    assert (DEPLOY / "k8s" / "overlays" / "city" / "kustomization.yaml").is_file()
