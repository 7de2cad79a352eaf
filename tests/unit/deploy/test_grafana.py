"""deploy/grafana: provisioning that Grafana loads, dashboards that query the provisioned Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import DEPLOY, Scrape, dashboard_expressions, panels

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
GRID_WIDTH = 24


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def provisioned_datasource() -> dict[str, Any]:
    document = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert document["apiVersion"] == 1
    (datasource,) = document["datasources"]
    return datasource


def test_the_datasource_is_the_compose_prometheus() -> None:
    datasource = provisioned_datasource()
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True


def test_the_dashboard_provider_reads_a_folder_of_files() -> None:
    document = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "citybase.yml").read_text())
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


def test_the_two_dashboards_exist_with_unique_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert sorted(uids) == ["citybase-overview", "citybase-quality"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_queries_the_provisioned_prometheus(path: Path) -> None:
    dashboard = load(path)
    uid = provisioned_datasource()["uid"]
    assert dashboard["title"].startswith("citybase / ")
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    queried = [panel for panel in panels(dashboard) if panel["type"] != "row"]
    assert len(queried) >= 8
    for panel in queried:
        where = f"{path.name}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert panel["targets"], where
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, where
            assert target["expr"].strip(), where
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH and grid["w"] > 0 and grid["h"] > 0, where
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_do_not_overlap(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(load(path)):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_the_overview_shows_ingest_rates_rejects_lag_and_latency() -> None:
    expressions = " ".join(
        expr for _, expr in dashboard_expressions(GRAFANA / "dashboards" / "platform-overview.json")
    )
    for needed in (
        "citybase_ingest_records_total",
        'outcome="rejected"',
        "citybase_feeds_lag_records",
        "citybase_http_request_duration_seconds_bucket",
    ):
        assert needed in expressions, needed


def test_the_quality_dashboard_shows_scores_per_dataset_and_department_and_idle_scenarios() -> None:
    expressions = " ".join(
        expr for _, expr in dashboard_expressions(GRAFANA / "dashboards" / "data-quality.json")
    )
    for needed in (
        "citybase_dataset_quality_score",
        "by (department)",
        'citybase_utilization_idle{kind="idle_scenarios"}',
    ):
        assert needed in expressions, needed


def test_label_matchers_on_exposed_metrics_name_real_labels(exposed_metrics: dict[str, Scrape]) -> None:
    """A panel filtering on a label the metric does not have shows nothing, silently."""
    labels: dict[str, set[str]] = {}
    for scrape in exposed_metrics.values():
        for (sample, label), _ in scrape.parsed.label_values.items():
            labels.setdefault(sample, set()).add(label)
    selector = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
    checked = 0
    for path in DASHBOARDS:
        for title, expression in dashboard_expressions(path):
            for name, matchers in selector.findall(expression):
                if name not in labels:
                    continue
                for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                    checked += 1
                    assert label in labels[name], f"{path.name}: {title}: {name} has no label {label}"
    assert checked > 5
